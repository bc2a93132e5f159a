package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestQuickstart runs the example as a newcomer would and checks its story.
func TestQuickstart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run(ctx, &out, dir); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"published a harvest",
		"-> entry 4,",
		"duplicate: true",
		"The log holds 5 entries",
		"Inclusion proof for entry 2 (3 hashes): verified=true",
		"Consistency proof from 3 to 5 entries: verified=true",
		"rejected=true",
		"the ledger is intact",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	// A second run on the same directory adds nothing.
	out.Reset()
	if err := run(ctx, &out, dir); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "The log holds 5 entries") {
		t.Errorf("second run changed the log:\n%s", out.String())
	}
}
