package api

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// checkInvalid fails unless err is a *ValidationError naming a field under
// prefix: bad input must always be reported that way, never as a panic or
// an untyped error.
func checkInvalid(t *testing.T, err error, prefix string) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	if ve.Field == "" || !strings.HasPrefix(ve.Field, prefix) {
		t.Fatalf("error %v names field %q, not one under %q", err, ve.Field, prefix)
	}
}

// FuzzSchema feeds arbitrary schema definitions to the decoder and the
// schema validator: each is refused with a *ValidationError, or is a schema
// that survives a JSON round trip still valid.
func FuzzSchema(f *testing.F) {
	seed := []byte(`{"type":"care-hours","version":1,"fields":[{"name":"email","kind":"string","class":"direct","policy":{"action":"pseudonymise"}},{"name":"age","kind":"integer","class":"quasi","min":0,"max":130,"policy":{"action":"generalise","width":10,"band":true}},{"name":"when","kind":"time","class":"quasi","policy":{"action":"generalise","unit":"week"}}]}`)
	f.Add(seed)
	for _, s := range []string{
		`{"type":"harvest","version":1,"fields":[{"name":"kg","kind":"decimal","class":"attribute","min":0,"policy":{"action":"keep"}}]}`,
		`{"type":"harvest","version":0,"fields":[]}`,
		`{"type":"harvest","version":1,"fields":[{"name":"kg","kind":"decimal","class":"attribute","min":5,"max":1,"policy":{"action":"keep"}}]}`,
		`{"type":"harvest","version":1,"fields":[{"name":"d","kind":"date","class":"quasi","policy":{"action":"generalise","unit":"fortnight"}}]}`,
		`{"type":"harvest","version":1,"fields":[{"name":"e","kind":"enum","class":"attribute","policy":{"action":"keep"}}]}`,
		`{"type":"harvest","version":1,"fields":[{"name":"a","kind":"string","class":"direct","policy":{"action":"keep"}},{"name":"a","kind":"string","class":"attribute","policy":{"action":"drop"}}]}`,
		`{"type":"harvest","version":1,"subject_domain":"galaxy","fields":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var s Schema
		if err := DecodeBytes(body, &s); err != nil {
			checkInvalid(t, err, "")
			return
		}
		if err := s.Validate(); err != nil {
			checkInvalid(t, err, "")
			return
		}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("a valid schema does not encode: %v", err)
		}
		var back Schema
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("a valid schema does not decode: %v", err)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("a valid schema is invalid after a round trip: %v", err)
		}
	})
}
