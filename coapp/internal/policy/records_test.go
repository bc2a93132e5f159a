package policy

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/ledger"
)

// TestBoxBoundToItsEntry moves a sealed box to an entry with another id,
// author or time, or to another subject: it no longer opens.
func TestBoxBoundToItsEntry(t *testing.T) {
	keys, dk := fuzzKeys(t)
	s := basketSchema()
	r := api.Record{ID: uuid.New(), Type: "basket", Subject: "anna", Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		Fields: map[string]json.RawMessage{"amount": json.RawMessage(`3.5`), "postcode": json.RawMessage(`"40126"`)}}
	p, err := NewTransformer(keys, "coop-a").Prepare(&r, &s)
	if err != nil {
		t.Fatal(err)
	}
	e, err := p.Seal(dk)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := format.DecodeRecordPayload(e.Payload)
	if _, err := format.OpenFields(dk, e, &head); err != nil {
		t.Fatalf("the record's own box: %v", err)
	}
	moved := []func(*ledger.Entry, *format.RecordPayload){
		func(e *ledger.Entry, _ *format.RecordPayload) { e.ID = uuid.New() },
		func(e *ledger.Entry, _ *format.RecordPayload) { e.Author = "coop-b" },
		func(e *ledger.Entry, _ *format.RecordPayload) { e.Time = e.Time.Add(time.Nanosecond) },
		func(_ *ledger.Entry, p *format.RecordPayload) { p.Subject = "ps1.1.someone-else" },
		func(_ *ledger.Entry, p *format.RecordPayload) { p.Version = 2 },
	}
	for i, move := range moved {
		e2, h2 := e, head
		move(&e2, &h2)
		if _, err := format.OpenFields(dk, e2, &h2); err == nil {
			t.Errorf("move %d: the box opened elsewhere", i)
		}
	}
}

func basketSchema() api.Schema {
	return api.Schema{Type: "basket", Version: 1, Fields: []api.Field{
		{Name: "email", Kind: "string", Class: "direct", Policy: api.Policy{Action: "pseudonymise"}},
		{Name: "postcode", Kind: "postcode", Class: "quasi", Policy: api.Policy{Action: "generalise", Keep: 3}},
		{Name: "amount", Kind: "decimal", Class: "attribute", Required: true, Min: f64(0), Policy: api.Policy{Action: "keep"}},
	}}
}

func f64(x float64) *float64 { return &x }
