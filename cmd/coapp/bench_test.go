package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// TestBench runs a small coapp bench on a three-node in-process cluster,
// with its floor and both profiles: every request must be answered with a
// receipt per record (the loader checks), and the figures printed.
func TestBench(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.prof"), filepath.Join(dir, "mem.prof")
	out, err := runCLI(t, "bench", "--nodes", "3", "--records", "600", "--clients", "16", "--batch", "3",
		"--cpuprofile", cpu, "--memprofile", mem)
	if err != nil {
		t.Fatalf("coapp bench: %v\n%s", err, out)
	}
	for _, want := range []string{`coapp over HTTP +(\d+) records/s`, `raw Raft floor \(3 records per Apply\) +(\d+) records/s`, `ratio: [0-9.]+x the floor`} {
		m := regexp.MustCompile(want).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
		if len(m) > 1 {
			if n, _ := strconv.Atoi(m[1]); n <= 0 {
				t.Errorf("%s: %d records/s", want, n)
			}
		}
	}
	for _, p := range []string{cpu, mem} {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("profile %s: %v", p, err)
		}
	}
}
