package format

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
)

// FuzzDecoders checks that the fast decoders of record payloads and fields
// agree with encoding/json on every input they accept, and that the binary
// payload decoder never panics and reads back what it accepts.
func FuzzDecoders(f *testing.F) {
	f.Add((&RecordPayload{Type: "purchase", Version: 3, Subject: "ps1.2.lU1BvDB7iamvJhPEbehC63ehCCvKm8QqI0PtNc-HtuI", Box: []byte{1, 2, 3}}).Encode())
	f.Add((&RecordPayload{Type: "x", Version: 1, Subject: "not a pseudonym"}).Encode())
	f.Add([]byte(`{"type":"purchase","version":1,"subject":"ps1.1.abc","time":"2026-01-02T03:04:05Z","box":"AAEC"}`))
	f.Add([]byte(`{"type":"purchase","version":12,"subject":"ps1.1.abc","time":"2026-01-02T03:04:05Z"}`))
	f.Add([]byte(`{"amount":12.50,"email":"ps1.1.x","postcode":"401*","ok":true,"n":null}`))
	f.Add([]byte(`{"a":"x\"y","b":-1e3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := decodeBinaryPayload(b); err == nil {
			if again := p.Encode(); !bytes.Equal(again, b) {
				// Only a pseudonym written the long way may read back
				// shorter; anything else must round-trip.
				if q, err := decodeBinaryPayload(again); err != nil || fmt.Sprint(q) != fmt.Sprint(p) {
					t.Fatalf("binary payload %x read as %+v, re-encoded %x", b, p, again)
				}
			}
		}
		if p, err := fastRecordPayload(b); err == nil {
			var want RecordPayload
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatalf("fast payload decoder accepted %q, encoding/json refuses: %v", b, err)
			}
			if p.Type != want.Type || p.Version != want.Version || p.Subject != want.Subject || p.Time != want.Time || !bytes.Equal(p.Box, want.Box) {
				t.Fatalf("payload %q: fast %+v, encoding/json %+v", b, p, want)
			}
		}
		if m, err := fastFields(b); err == nil {
			var want map[string]json.RawMessage
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatalf("fast fields decoder accepted %q, encoding/json refuses: %v", b, err)
			}
			if len(m) != len(want) {
				t.Fatalf("fields %q: fast %v, encoding/json %v", b, m, want)
			}
			for k, v := range want {
				if string(m[k]) != string(v) {
					t.Fatalf("fields %q: %s is %q fast, %q by encoding/json", b, k, m[k], v)
				}
			}
		}
	})
}
