package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"coapp.coop/coapp/coapptest"
)

// TestEnergyCommunity runs the example and checks its story: the lone
// household's district is withheld, the peak hour found, the DP budget
// enforced, every query audited.
func TestEnergyCommunity(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, coapptest.Config(t), 40); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"40 households, 35 of them consenting, published 200 evening readings.",
		"The dataset proposal passed.",
		"district 10*: 110 readings",
		"1 district(s) withheld: fewer than 5 households.",
		"Peak hour 19:00: 30.0 kWh",
		"epsilon 0.5; 0.5 of the budget left",
		"would be overspent: true",
		"The audit trail holds 3 queries",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "30*") {
		t.Errorf("the lone household's district was released:\n%s", out.String())
	}
}
