package coapp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"coapp.coop/pseudonym"
)

// fuzzKeys returns a keyring and a data key made from fixed bytes, so that
// the fuzz targets are deterministic.
func fuzzKeys(tb testing.TB) (*pseudonym.Keyring, pseudonym.Secret) {
	tb.Helper()
	secret, err := pseudonym.SecretFromBytes(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		tb.Fatal(err)
	}
	k, err := pseudonym.NewKeyring(1, secret)
	if err != nil {
		tb.Fatal(err)
	}
	dk, err := pseudonym.SecretFromBytes(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		tb.Fatal(err)
	}
	return k, dk
}

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

// FuzzPublishRequest feeds arbitrary bodies of POST /v1/records through the
// decoder, the record validator, the schema's validation and policies and
// the sealing, as Publish does before anything is proposed. Every body is
// either refused with a *ValidationError naming a field, or makes entries
// that encode deterministically, whose sealed fields open again, and that
// never hold the raw subject.
func FuzzPublishRequest(f *testing.F) {
	good := `{"records":[{"id":"0193a3c2-0000-7000-8000-000000000001","type":"care-hours","subject":"anna.rossi@example.org","time":"2026-03-02T10:00:00Z","fields":{"email":"anna.rossi@example.org","phone":"+39 051 555 0199","birth_date":"1987-03-14","age":38,"postcode":"40126","service":"home-care","hours":2.5,"when":"2026-03-02T10:00:00Z","diagnosis":"none"}}]}`
	for _, s := range []string{
		good,
		`{"records":[]}`,
		`{"records":[{"id":"0193a3c2-0000-7000-8000-000000000001","type":"care-hours","subject":"x","time":"2026-03-02T10:00:00Z","fields":{"hours":25,"service":"meals"}}]}`,
		`{"records":[{"id":"0193a3c2-0000-7000-8000-000000000001","type":"care-hours","version":2,"subject":"x","time":"2026-03-02T10:00:00Z"}]}`,
		`{"records":[{"id":"0193a3c2-0000-7000-8000-000000000001","type":"care-hours","subject":"x","time":"2026-03-02T10:00:00Z","fields":{"hours":"2","service":"nope","age":-1}}]}`,
		`{"records":[{"id":"0193a3c2-0000-7000-8000-000000000001","type":"Bad Type!","subject":"","time":"0001-01-01T00:00:00Z"}]}`,
		`{"records":[{"id":"0193a3c2-0000-7000-8000-000000000001","type":"care-hours","subject":"x","time":"2026-03-02T10:00:00Z","fields":{"when":"yesterday","birth_date":"1987-02-30","postcode":"4","hours":1e400,"service":"meals"}}]}`,
		`{"records":[{"extra":1}]}`,
		`{"records":`,
		`[1,2,3]`,
		`{"records":[]} trailing`,
	} {
		f.Add([]byte(s))
	}
	schema := careSchema()
	if err := schema.validate(); err != nil {
		f.Fatal(err)
	}
	keys, dk := fuzzKeys(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		r, _ := http.NewRequest(http.MethodPost, "/v1/records", bytes.NewReader(body))
		var req publishRequest
		if err := decodeBody(r, &req); err != nil {
			checkInvalid(t, err, "")
			return
		}
		tr := &transformer{keys: keys, member: "coop-a"}
		for i := range req.Records {
			rec := &req.Records[i]
			at := "records[" + itoa(i) + "]"
			if err := rec.validate(at); err != nil {
				checkInvalid(t, err, at)
				continue
			}
			if rec.Type != schema.Type || (rec.Version != 0 && rec.Version != schema.Version) {
				continue // Publish refuses it: no such schema
			}
			p, err := rec.prepare(tr, &schema, at)
			if err != nil {
				checkInvalid(t, err, at)
				continue
			}
			for name, v := range p.fields {
				if schema.field(name) == nil || !json.Valid(v) {
					t.Fatalf("stored field %s = %q is not a valid value of the schema", name, v)
				}
			}
			e, err := p.seal(dk)
			if err != nil {
				t.Fatalf("seal: %v", err)
			}
			again, err := p.seal(dk)
			if err != nil || !bytes.Equal(again.Payload, e.Payload) {
				t.Fatalf("sealing the same record twice made different payloads")
			}
			stored, err := decodeRecordPayload(e.Payload)
			if err != nil {
				t.Fatalf("payload %q does not decode: %v", e.Payload, err)
			}
			if again := stored.encode(); !bytes.Equal(again, e.Payload) {
				t.Fatalf("payload %q does not re-encode to itself (%q)", e.Payload, again)
			}
			plain, err := pseudonym.Open(dk, stored.Box, recordAD(e, &stored))
			if err != nil {
				t.Fatalf("sealed fields do not open: %v", err)
			}
			if !bytes.Equal(plain, encodeFields(p.fields)) {
				t.Fatalf("sealed fields opened to %q, want %q", plain, encodeFields(p.fields))
			}
			if len(rec.Subject) >= 8 && bytes.Contains(e.Payload, []byte(rec.Subject)) {
				t.Fatalf("payload %q holds the raw subject %q", e.Payload, rec.Subject)
			}
		}
	})
}

// FuzzSchema feeds arbitrary schema definitions to the decoder and the
// schema validator: each is refused with a *ValidationError, or is a schema
// that survives a JSON round trip still valid.
func FuzzSchema(f *testing.F) {
	seed, _ := json.Marshal(careSchema())
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
		r, _ := http.NewRequest(http.MethodPost, "/v1/schemas", bytes.NewReader(body))
		var s Schema
		if err := decodeBody(r, &s); err != nil {
			checkInvalid(t, err, "")
			return
		}
		if err := s.validate(); err != nil {
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
		if err := back.validate(); err != nil {
			t.Fatalf("a valid schema is invalid after a round trip: %v", err)
		}
	})
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// FuzzDecoders checks that the fast decoders of record payloads and fields
// agree with encoding/json on every input they accept, and that the binary
// payload decoder never panics and reads back what it accepts.
func FuzzDecoders(f *testing.F) {
	f.Add((&recordPayload{Type: "purchase", Version: 3, Subject: "ps1.2.lU1BvDB7iamvJhPEbehC63ehCCvKm8QqI0PtNc-HtuI", Box: []byte{1, 2, 3}}).encode())
	f.Add((&recordPayload{Type: "x", Version: 1, Subject: "not a pseudonym"}).encode())
	f.Add([]byte(`{"type":"purchase","version":1,"subject":"ps1.1.abc","time":"2026-01-02T03:04:05Z","box":"AAEC"}`))
	f.Add([]byte(`{"type":"purchase","version":12,"subject":"ps1.1.abc","time":"2026-01-02T03:04:05Z"}`))
	f.Add([]byte(`{"amount":12.50,"email":"ps1.1.x","postcode":"401*","ok":true,"n":null}`))
	f.Add([]byte(`{"a":"x\"y","b":-1e3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := decodeBinaryPayload(b); err == nil {
			if again := p.encode(); !bytes.Equal(again, b) {
				// Only a pseudonym written the long way may read back
				// shorter; anything else must round-trip.
				if q, err := decodeBinaryPayload(again); err != nil || fmt.Sprint(q) != fmt.Sprint(p) {
					t.Fatalf("binary payload %x read as %+v, re-encoded %x", b, p, again)
				}
			}
		}
		if p, err := fastRecordPayload(b); err == nil {
			var want recordPayload
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
