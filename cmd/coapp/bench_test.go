package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"coapp.coop/coapp"
	"coapp.coop/internal/testcerts"
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
	for _, want := range []string{`coapp over HTTP +(\d+) records/s`, `raw Raft floor \(3 records per Apply\) +(\d+) records/s`,
		`ratio: [0-9.]+x the floor \([0-9.]+x in CPU per record\)`, `[0-9.]+ µs CPU per record \([0-9.]+ s user, [0-9.]+ s system\), \d+ minor page faults`} {
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

// TestBenchTarget loads a running node over mutual TLS with --target, its
// token read from a file, twice (the second run finds the bench's schema
// registered); without a token it is a usage error.
func TestBenchTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	ca, err := testcerts.NewCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	nodeCert, err := ca.Issue("n0")
	if err != nil {
		t.Fatal(err)
	}
	app, err := ca.Issue("bench")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := coapp.Open(ctx, coapp.Config{Dir: dir, NodeID: "n0", HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0",
		Bootstrap: true, Federation: "Bench", TLS: coapp.TLSFiles(nodeCert)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	args := []string{"bench", "--target", n.URL(), "--token-file", filepath.Join(dir, coapp.AdminTokenFile),
		"--tls-cert", app.Cert, "--tls-key", app.Key, "--tls-ca", app.CA,
		"--records", "200", "--clients", "4", "--batch", "5", "--floor=false"}
	for run := 1; run <= 2; run++ {
		out, err := runCLI(t, args...)
		if err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, out)
		}
		if !regexp.MustCompile(`coapp over HTTP +[1-9]\d* records/s`).MatchString(out) {
			t.Fatalf("run %d printed no rate:\n%s", run, out)
		}
	}
	st, err := n.Ledger().Status()
	if err != nil {
		t.Fatal(err)
	}
	// Genesis, node, token, schema, then 400 records in batches.
	if st.Size < 4+400 {
		t.Errorf("ledger size %d after two runs of 200 records", st.Size)
	}
	t.Setenv("COAPP_TOKEN", "")
	if _, err := runCLI(t, "bench", "--target", n.URL(), "--records", "10"); exitCode(err) != 2 {
		t.Errorf("--target without a token: %v, want a usage error", err)
	}
}

// TestBenchSmallestSize: the smallest --size the flag accepts works (it
// panicked below 150 bytes when the flag allowed 64); smaller sizes are
// usage errors (TestBadFlags).
func TestBenchSmallestSize(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	out, err := runCLI(t, "bench", "--records", "40", "--clients", "2", "--batch", "4", "--size", strconv.Itoa(minRecordSize))
	if err != nil {
		t.Fatalf("coapp bench --size %d: %v\n%s", minRecordSize, err, out)
	}
	if !regexp.MustCompile(`coapp over HTTP +[1-9]\d* records/s`).MatchString(out) || !strings.Contains(out, "records of 150 bytes") {
		t.Errorf("coapp bench --size %d printed:\n%s", minRecordSize, out)
	}
}
