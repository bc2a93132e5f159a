package policy

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/pseudonym"
)

// TestConsentSubjectSealed checks that a record whose schema puts the
// subject in the federation's domain carries, in its sealed fields, the
// subject's pseudonym in the publishing member's domain (under which the
// person's consent to that member is recorded), and that a record in the
// member's domain carries none: its subject is that pseudonym already.
func TestConsentSubjectSealed(t *testing.T) {
	keys, dk := fuzzKeys(t)
	schema := api.Schema{Type: "basket", Version: 1, Fields: []api.Field{
		{Name: "amount", Kind: "decimal", Class: "attribute", Policy: api.Policy{Action: "keep"}},
	}}
	rec := api.Record{ID: uuid.New(), Type: "basket", Subject: " Anna@Coop.example", Time: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		Fields: map[string]json.RawMessage{"amount": json.RawMessage("3")}}
	own, _ := keys.Pseudonym(pseudonym.MemberDomain("coop-a"), "anna@coop.example")
	fed, _ := keys.Pseudonym(pseudonym.Federation, "anna@coop.example")
	for _, domain := range []string{"", "member", "federation"} {
		schema.SubjectDomain = domain
		p, err := NewTransformer(keys, "coop-a").Prepare(&rec, &schema)
		if err != nil {
			t.Fatal(err)
		}
		e, err := p.Seal(dk)
		if err != nil {
			t.Fatal(err)
		}
		head, err := format.DecodeRecordPayload(e.Payload)
		if err != nil {
			t.Fatal(err)
		}
		fields, err := format.OpenFields(dk, e, &head)
		if err != nil {
			t.Fatal(err)
		}
		link, sealed := fields[format.ConsentSubjectField]
		switch domain {
		case "federation":
			if head.Subject != fed || !sealed || string(link) != `"`+string(own)+`"` {
				t.Errorf("federation domain: subject %s, consent subject %s; want %s and %s", head.Subject, link, fed, own)
			}
		default:
			if head.Subject != own || sealed {
				t.Errorf("domain %q: subject %s, consent subject %s; want %s and none", domain, head.Subject, link, own)
			}
		}
		if string(fields["amount"]) != "3" || len(fields) != map[bool]int{true: 2, false: 1}[domain == "federation"] {
			t.Errorf("domain %q: fields %v", domain, fields)
		}
	}
}

// TestFieldNotUTF8 checks that a string field whose raw JSON (as the Go
// API takes it) is not UTF-8, or holds half a surrogate pair, is refused
// rather than decoded with U+FFFD in its place, which would give
// "caf\xe9" and "caf\xe8" one pseudonym; U+FFFD written as such passes.
func TestFieldNotUTF8(t *testing.T) {
	keys, _ := fuzzKeys(t)
	schema := api.Schema{Type: "t", Version: 1, Fields: []api.Field{
		{Name: "email", Kind: "string", Class: "direct", Policy: api.Policy{Action: "pseudonymise"}},
	}}
	for raw, ok := range map[string]bool{
		"\"caf\xe9\"": false, "\"caf\xe8\"": false, `"caf\ud800"`: false, `"\udc00x"`: false,
		`"caf\ufffd"`: true, "\"caf\xef\xbf\xbd\"": true, `"caf\u00e9"`: true, `"café"`: true,
	} {
		rec := api.Record{ID: uuid.New(), Type: "t", Subject: "anna", Time: time.Now(), Fields: map[string]json.RawMessage{"email": json.RawMessage(raw)}}
		_, err := NewTransformer(keys, "coop-a").Prepare(&rec, &schema)
		if ok && err != nil {
			t.Errorf("%q: %v", raw, err)
		}
		var ve *api.ValidationError
		if !ok && (!errors.As(err, &ve) || ve.Field != "fields.email") {
			t.Errorf("%q: %v; want invalid fields.email", raw, err)
		}
	}
}
