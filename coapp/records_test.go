package coapp

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"coapp.coop/ledger"
	"coapp.coop/pseudonym"
)

// TestRecordPayloadEncoding checks that the payload and fields written
// without reflection are byte for byte what encoding/json makes of them,
// so that the same record always makes the same entry.
func TestRecordPayloadEncoding(t *testing.T) {
	for _, p := range []recordPayload{
		{Type: "purchase", Version: 1, Subject: "ps1.1.abc", Time: "2026-01-02T03:04:05.0000006Z"},
		{Type: "care-hours", Version: 12, Subject: pseudonym.Pseudonym("ps1.2.x<y>&\"z\""), Time: "2026-01-02T03:04:05Z", Box: []byte{0, 1, 2, 250, 251, 252, 253}},
	} {
		want, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.encodeJSON(); string(got) != string(want) {
			t.Errorf("encodeJSON\n %s\nwant\n %s", got, want)
		}
		// The binary form reads back to the same payload, less the time
		// (the entry's).
		back, err := decodeRecordPayload(p.encode())
		if err != nil {
			t.Fatal(err)
		}
		p.Time = ""
		if fmt.Sprint(back) != fmt.Sprint(p) {
			t.Errorf("binary round trip: %+v, want %+v", back, p)
		}
	}
	fields := map[string]json.RawMessage{"b": json.RawMessage(`2.50`), "a": quoteJSON(`Zoë <z@x.it> & "co"`), "ü": quoteJSON("€"), "t": json.RawMessage(`true`)}
	want, _ := json.Marshal(fields)
	if got := encodeFields(fields); string(got) != string(want) {
		t.Errorf("encodeFields\n %s\nwant\n %s", got, want)
	}
}

// TestExportRowEncoding checks that export rows written without
// reflection are byte for byte what encoding/json makes of them.
func TestExportRowEncoding(t *testing.T) {
	for _, r := range []exportRow{
		{Subject: "ps1.1.abc", Member: "coop-a", Type: "purchase", Date: "2026-11-02", Fields: map[string]json.RawMessage{}},
		{Subject: "ps1.1.x", Member: "coop <b> & c", Type: "care-hours", Date: "2026-01-02",
			Fields: map[string]json.RawMessage{"z": json.RawMessage(`12.50`), "a": quoteJSON(`A&B "shop"`), "ü": quoteJSON("€"), "n": json.RawMessage(`null`)}},
	} {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.appendJSON(nil); string(got) != string(want)+"\n" {
			t.Errorf("appendJSON\n %s\nwant\n %s", got, want)
		}
	}
}

// TestBoxBoundToItsEntry moves a sealed box to an entry with another id,
// author or time, or to another subject: it no longer opens.
func TestBoxBoundToItsEntry(t *testing.T) {
	keys, dk := fuzzKeys(t)
	s := basketSchema()
	r := Record{ID: uuid.New(), Type: "basket", Subject: "anna", Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		Fields: map[string]json.RawMessage{"amount": json.RawMessage(`3.5`), "postcode": json.RawMessage(`"40126"`)}}
	p, err := r.prepare(&transformer{keys: keys, member: "coop-a"}, &s, "r")
	if err != nil {
		t.Fatal(err)
	}
	e, err := p.seal(dk)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := decodeRecordPayload(e.Payload)
	if _, err := openFields(dk, e, &head); err != nil {
		t.Fatalf("the record's own box: %v", err)
	}
	moved := []func(*ledger.Entry, *recordPayload){
		func(e *ledger.Entry, _ *recordPayload) { e.ID = uuid.New() },
		func(e *ledger.Entry, _ *recordPayload) { e.Author = "coop-b" },
		func(e *ledger.Entry, _ *recordPayload) { e.Time = e.Time.Add(time.Nanosecond) },
		func(_ *ledger.Entry, p *recordPayload) { p.Subject = "ps1.1.someone-else" },
		func(_ *ledger.Entry, p *recordPayload) { p.Version = 2 },
	}
	for i, move := range moved {
		e2, h2 := e, head
		move(&e2, &h2)
		if _, err := openFields(dk, e2, &h2); err == nil {
			t.Errorf("move %d: the box opened elsewhere", i)
		}
	}
}
