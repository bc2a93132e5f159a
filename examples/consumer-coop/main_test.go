package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"coapp.coop/coapp/coapptest"
)

// TestConsumerCoop runs the example and checks its story: the withdrawal
// and the erasure each take their person out of the next export, and the
// ledger still verifies.
func TestConsumerCoop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, coapptest.Config(t)); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"Export 1: 20 rows (4 without consent, 0 erased",
		"their rows: 2 in export 1, 0 in export 2.",
		"Export 2, after north-card-1000 withdrew: 18 rows (6 without consent",
		"Export 3, after south-card-1002 was erased: 16 rows (6 without consent, 2 erased",
		"2 records still in the log, 2 of them unreadable; their rows: 2 in export 2, 0 in export 3.",
		"The ledger still verifies",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "@mail.example") {
		t.Error("an e-mail address reached the output")
	}
}
