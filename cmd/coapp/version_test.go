package main

import (
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestVersion: coapp version prints the module's version, the Go version
// and the version control information of the build, one per line; a
// binary built in the repository with VCS stamping names its commit.
func TestVersion(t *testing.T) {
	out, _, err := runSplit(t, "version")
	if err != nil {
		t.Fatalf("coapp version: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 5 || lines[1] != "go "+runtime.Version() || !strings.HasPrefix(lines[2], "vcs.revision ") ||
		!strings.HasPrefix(lines[3], "vcs.time ") || !strings.HasPrefix(lines[4], "vcs.modified ") {
		t.Errorf("coapp version printed:\n%s", out)
	}
	if _, _, err := runSplit(t, "version", "extra"); exitCode(err) != exitUsage {
		t.Errorf("coapp version extra: %v, want a usage error", err)
	}

	if testing.Short() {
		return
	}
	if err := exec.Command("git", "rev-parse", "HEAD").Run(); err != nil {
		t.Skipf("not in a git work tree (%v): no VCS stamp to check", err)
	}
	bin := t.TempDir() + "/coapp"
	if b, err := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -buildvcs=true: %v\n%s", err, b)
	}
	b, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("coapp version: %v", err)
	}
	want := regexp.MustCompile(`^coapp\.coop \S+\ngo ` + regexp.QuoteMeta(runtime.Version()) +
		`\nvcs\.revision [0-9a-f]{40}\nvcs\.time \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\nvcs\.modified (true|false)\n$`)
	if !want.Match(b) {
		t.Errorf("coapp version of a stamped build printed:\n%s", b)
	}
}
