package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
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
	var ve *api.ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, api.ErrInvalid) {
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
	if err := schema.Validate(); err != nil {
		f.Fatal(err)
	}
	keys, dk := fuzzKeys(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		var req api.PublishRequest
		if err := api.DecodeBytes(body, &req); err != nil {
			checkInvalid(t, err, "")
			return
		}
		tr := NewTransformer(keys, "coop-a")
		for i := range req.Records {
			rec := &req.Records[i]
			at := fmt.Sprintf("records[%d]", i)
			if err := api.Within(at, rec.Validate()); err != nil {
				checkInvalid(t, err, at)
				continue
			}
			if rec.Type != schema.Type || (rec.Version != 0 && rec.Version != schema.Version) {
				continue // Publish refuses it: no such schema
			}
			p, err := tr.Prepare(rec, &schema)
			if err != nil {
				err = api.Within(at, err)
				checkInvalid(t, err, at)
				continue
			}
			for name, v := range p.fields {
				if schema.Field(name) == nil || !json.Valid(v) {
					t.Fatalf("stored field %s = %q is not a valid value of the schema", name, v)
				}
			}
			e, err := p.Seal(dk)
			if err != nil {
				t.Fatalf("seal: %v", err)
			}
			again, err := p.Seal(dk)
			if err != nil || !bytes.Equal(again.Payload, e.Payload) {
				t.Fatalf("sealing the same record twice made different payloads")
			}
			stored, err := format.DecodeRecordPayload(e.Payload)
			if err != nil {
				t.Fatalf("payload %q does not decode: %v", e.Payload, err)
			}
			if again := stored.Encode(); !bytes.Equal(again, e.Payload) {
				t.Fatalf("payload %q does not re-encode to itself (%q)", e.Payload, again)
			}
			plain, err := pseudonym.Open(dk, stored.Box, format.RecordAD(e, &stored))
			if err != nil {
				t.Fatalf("sealed fields do not open: %v", err)
			}
			if !bytes.Equal(plain, format.EncodeFields(p.fields)) {
				t.Fatalf("sealed fields opened to %q, want %q", plain, format.EncodeFields(p.fields))
			}
			if len(rec.Subject) >= 8 && bytes.Contains(e.Payload, []byte(rec.Subject)) {
				t.Fatalf("payload %q holds the raw subject %q", e.Payload, rec.Subject)
			}
		}
	})
}

func careSchema() api.Schema {
	return api.Schema{Type: "care-hours", Version: 1, Fields: []api.Field{
		{Name: "email", Kind: "string", Class: "direct", Policy: api.Policy{Action: "pseudonymise"}},
		{Name: "phone", Kind: "string", Class: "direct", Policy: api.Policy{Action: "drop"}},
		{Name: "birth_date", Kind: "date", Class: "quasi", Policy: api.Policy{Action: "generalise", Unit: "year"}},
		{Name: "age", Kind: "integer", Class: "quasi", Min: f64(0), Max: f64(130), Policy: api.Policy{Action: "generalise", Width: 10, Band: true}},
		{Name: "postcode", Kind: "postcode", Class: "quasi", Policy: api.Policy{Action: "generalise", Keep: 3}},
		{Name: "service", Kind: "enum", Class: "attribute", Required: true, Values: []string{"home-care", "meals", "transport"}, Policy: api.Policy{Action: "keep"}},
		{Name: "hours", Kind: "decimal", Class: "attribute", Required: true, Min: f64(0), Max: f64(24), Policy: api.Policy{Action: "keep"}},
		{Name: "diagnosis", Kind: "string", Class: "sensitive", Policy: api.Policy{Action: "keep"}},
		{Name: "when", Kind: "time", Class: "quasi", Policy: api.Policy{Action: "generalise", Unit: "week"}},
	}}
}
