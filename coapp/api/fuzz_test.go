package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
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

// FuzzDecode feeds arbitrary bodies to Decode, whole and a byte a read:
// both give the same answer; every refusal is a *ValidationError naming a
// field; a body that is not UTF-8 is never accepted; what is accepted is
// one JSON value.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"records":[{"id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","type":"purchase","subject":"anna","time":"2026-11-01T10:00:00Z","fields":{"amount":3}}]}`,
		"{\"records\":[{\"subject\":\"anna\xff\"}]}",
		`{"records":[{"subject":"\ud800"}]}`,
		`{"records":[{"version":0}]}`,
		`{"records":[{"id":"../../keys.json"}]}`,
		`{"":[]}`,
		`{"records":[]} {}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var whole, bytewise PublishRequest
		err := DecodeBytes(body, &whole)
		err2 := Decode(iotest.OneByteReader(bytes.NewReader(body)), &bytewise)
		if err != nil {
			checkInvalid(t, err, "")
		}
		if fmt.Sprint(err) != fmt.Sprint(err2) {
			t.Fatalf("whole: %v; a byte a read: %v", err, err2)
		}
		if err == nil && (!utf8.Valid(body) || !json.Valid(body)) {
			t.Fatalf("accepted %q", body)
		}
		// DecodePublish, the one-pass decoder of the same request, takes
		// and refuses the same bodies, and gives the same records.
		one, err3 := DecodePublish(bytes.NewReader(body))
		if (err == nil) != (err3 == nil) || err == nil && !reflect.DeepEqual(one, whole) {
			t.Fatalf("Decode: %+v, %v; DecodePublish: %+v, %v", whole, err, one, err3)
		}
		if err3 != nil {
			checkInvalid(t, err3, "")
		}
	})
}
