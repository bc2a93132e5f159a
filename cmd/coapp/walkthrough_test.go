package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// walkthroughBlocks returns the shell blocks of docs/operations.md that
// lie between the <!-- walkthrough --> and <!-- /walkthrough --> marks:
// the steps a new operator follows, each run by TestOperationsWalkthrough.
func walkthroughBlocks(t *testing.T) []string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	var cur *strings.Builder
	in := false
	sc := bufio.NewScanner(bytes.NewReader(doc))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "<!-- walkthrough -->":
			in = true
		case strings.TrimSpace(line) == "<!-- /walkthrough -->":
			in = false
		case in && cur == nil && line == "```sh":
			cur = &strings.Builder{}
		case cur != nil && line == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	if in || cur != nil {
		t.Fatal("docs/operations.md: a walkthrough mark or a block is not closed")
	}
	return blocks
}

// TestOperationsWalkthrough runs, in order and in one shell, every command
// block of the walkthrough in docs/operations.md, with the coapp binary
// built from this tree first on the PATH, in an empty directory: what a
// new operator types, on one machine.
func TestOperationsWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("builds coapp and runs a three-node federation")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("the walkthrough uses curl, as an operator would: install it")
	}
	blocks := walkthroughBlocks(t)
	if len(blocks) < 5 {
		t.Fatalf("docs/operations.md: %d walkthrough blocks, want the whole walk", len(blocks))
	}
	bin := coappBinary(t)
	dir := t.TempDir()
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	for i, b := range blocks {
		// Each block announces itself, so that a failure names it.
		script.WriteString("echo '### walkthrough block " + strconv.Itoa(i+1) + "' >&2\n" + b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"), "HOME="+dir)
	for _, kv := range os.Environ() { // the walk sets its own
		if strings.HasPrefix(kv, "COAPP_") {
			cmd.Env = append(cmd.Env, strings.SplitN(kv, "=", 2)[0]+"=")
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	// Whatever the walk left running (a node it did not stop) goes.
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			t.Logf("%s:\n%s", filepath.Base(l), tail(b, 40))
		}
		t.Fatalf("the walkthrough failed: %v\n%s", err, out.String())
	}
	t.Logf("the walkthrough's output:\n%s", out.String())
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
