package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"coapp.coop/coapp/coapptest"
)

// TestQuickstart runs the example as a newcomer would and checks its story.
func TestQuickstart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := coapptest.Config(t) // loopback, free ports, short Raft timeouts
	dir := cfg.Dir
	var out bytes.Buffer
	if err := run(ctx, &out, cfg); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"admit coop-b: passed (yes: 1, members: 1)",
		"admit coop-c: passed (yes: 2, members: 2)",
		"both receipts verify offline with coop-b's public key: true, true",
		"12 purchases published",
		"dataset proposal: passed (yes: 2, members: 3)",
		"grant proposal: passed (yes: 2, members: 3)",
		"7 rows, 1 suppressed (groups under k=2), 4 without consent",
		"coop-a, without a grant, is refused: true",
		"coop-b contributed 2 records",
		"the ledger is intact",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	export, err := os.ReadFile(filepath.Join(dir, "market-study.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(export), "\n"); lines != 7 || strings.Contains(string(export), "@") {
		t.Errorf("the export file has %d lines, or a raw identifier:\n%s", lines, export)
	}
	// A second run on the same directory tells the story is there.
	out.Reset()
	if err := run(ctx, &out, cfg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "exists already") || !strings.Contains(out.String(), "the ledger is intact") {
		t.Errorf("second run:\n%s", out.String())
	}
}
