// Package policy applies an exchange schema to a record before anything is
// stored: every field is parsed and checked against its definition, and
// its policy applied (dropped, pseudonymised in the member's or the
// federation's domain, generalised, or kept); the subject is
// pseudonymised; and the fields are sealed under the subject's data key,
// deterministically, bound to the entry that carries them.
//
//	t := policy.NewTransformer(keys, "coop-a")
//	p, err := t.Prepare(&record, &schema)   // a *api.ValidationError names the field
//	e, err := p.Seal(dataKey)               // the ledger entry, with no raw identifier in it
//
// # Caveats
//
//   - Pseudonyms are made once per Transformer: use one per request.
//   - The same record and key give the same entry, byte for byte, so that
//     a retried publish is recognised as the same record.
package policy

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/ledger/entry"
	"coapp.coop/pseudonym"
)

var units = map[string]pseudonym.Unit{"day": pseudonym.Day, "week": pseudonym.Week, "month": pseudonym.Month, "year": pseudonym.Year}

// Transformer applies a schema to records for one member. It is not safe
// for concurrent use.
type Transformer struct {
	keys   *pseudonym.Keyring
	member string
	memo   map[memoKey]pseudonym.Pseudonym // pseudonyms made in this call
}

type memoKey struct {
	domain pseudonym.Domain
	id     string
}

// pseudonym returns an identifier's pseudonym, once per call: a record's
// subject is often also one of its fields.
func (t *Transformer) pseudonym(d pseudonym.Domain, id string) (pseudonym.Pseudonym, error) {
	k := memoKey{d, id}
	if p, ok := t.memo[k]; ok {
		return p, nil
	}
	p, err := t.keys.Pseudonym(d, id)
	if err != nil {
		return "", err
	}
	if t.memo == nil {
		t.memo = map[memoKey]pseudonym.Pseudonym{}
	}
	t.memo[k] = p
	return p, nil
}

func (t *Transformer) domain(name string) pseudonym.Domain {
	if name == "federation" {
		return pseudonym.Federation
	}
	return pseudonym.MemberDomain(t.member)
}

// NewTransformer returns a Transformer for member's records, with the
// federation's keys.
func NewTransformer(keys *pseudonym.Keyring, member string) *Transformer {
	return &Transformer{keys: keys, member: member}
}

// Prepared is a record validated and transformed, waiting for its subject's
// data key.
type Prepared struct {
	entry   entry.Entry
	payload format.RecordPayload
	fields  map[string]json.RawMessage
}

// Prepare applies the schema to a validated record (api.Record.Validate):
// subject pseudonymised, fields transformed. Seal then finishes the entry
// with the subject's key. Its errors are *api.ValidationErrors naming the
// field ("fields.amount").
func (t *Transformer) Prepare(r *api.Record, s *api.Schema) (Prepared, error) {
	fields, err := t.apply(s, r.Fields)
	if err != nil {
		return Prepared{}, err
	}
	subject, err := t.pseudonym(t.domain(s.SubjectDomain), r.Subject)
	if err != nil {
		return Prepared{}, api.Invalid("subject", "cannot be pseudonymised: %v", err)
	}
	if s.SubjectDomain == "federation" {
		// The person consents to this member under their pseudonym in
		// the member's domain: seal it with the fields, for exports to
		// decide consent by (format.ConsentSubjectField).
		own, err := t.pseudonym(pseudonym.MemberDomain(t.member), r.Subject)
		if err != nil {
			return Prepared{}, api.Invalid("subject", "cannot be pseudonymised: %v", err)
		}
		fields[format.ConsentSubjectField] = format.QuoteJSON(string(own))
	}
	return Prepared{
		entry:   entry.Entry{ID: r.ID, Kind: format.KindRecord, Author: t.member, Time: r.Time.UTC()},
		payload: format.RecordPayload{Type: r.Type, Version: s.Version, Subject: subject},
		fields:  fields,
	}, nil
}

// Subject is the record's subject, pseudonymised.
func (p *Prepared) Subject() pseudonym.Pseudonym { return p.payload.Subject }

// Fields are the record's fields as they will be stored, before sealing.
func (p *Prepared) Fields() map[string]json.RawMessage { return p.fields }

// Seal encrypts the fields under the subject's data key, deterministically,
// and returns the finished entry.
func (p *Prepared) Seal(dataKey pseudonym.Secret) (entry.Entry, error) {
	box, err := pseudonym.SealDeterministic(dataKey, format.EncodeFields(p.fields), format.RecordADv2(p.entry, &p.payload))
	if err != nil {
		return entry.Entry{}, err
	}
	p.payload.Box = box
	e := p.entry
	e.Payload = p.payload.Encode()
	return e, nil
}

// apply validates a record's fields against the schema and returns them as
// they are to be stored, every policy applied.
func (t *Transformer) apply(s *api.Schema, fields map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	for name := range fields {
		if s.Field(name) == nil {
			return nil, api.Invalid("fields."+name, "not a field of %s version %d", s.Type, s.Version)
		}
	}
	out := make(map[string]json.RawMessage, len(fields))
	for i := range s.Fields {
		f := &s.Fields[i]
		at := "fields." + f.Name
		raw, ok := fields[f.Name]
		if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			if f.Required {
				return nil, api.Invalid(at, "required")
			}
			continue
		}
		v, err := parse(f, at, raw)
		if err != nil {
			return nil, err
		}
		stored, keep, err := t.policy(f, at, v)
		if err != nil {
			return nil, err
		}
		if keep {
			out[f.Name] = stored
		}
	}
	return out, nil
}

// value is a parsed field value.
type value struct {
	s    string
	num  float64
	t    time.Time
	b    bool
	kind string
}

func parse(f *api.Field, at string, raw json.RawMessage) (value, error) {
	v := value{kind: f.Kind}
	switch f.Kind {
	case "string", "postcode", "enum", "date", "time":
		s, ok := format.JSONString(raw)
		if !ok {
			return v, api.Invalid(at, "must be a string")
		}
		if strings.ContainsRune(s, utf8.RuneError) && !api.ValidText(raw) {
			// Bytes that are not UTF-8, or half a surrogate pair, which
			// decoding replaced with U+FFFD: two values would become one.
			// (A body over HTTP is refused before; this is for the Go
			// API's raw fields.)
			return v, api.Invalid(at, "not valid UTF-8")
		}
		v.s = s
		if len(v.s) > 1024 {
			return v, api.Invalid(at, "longer than 1024 bytes")
		}
		switch f.Kind {
		case "enum":
			ok := false
			for _, allowed := range f.Values {
				ok = ok || allowed == v.s
			}
			if !ok {
				return v, api.Invalid(at, "not one of the allowed values")
			}
		case "date":
			t, err := time.Parse("2006-01-02", v.s)
			if err != nil {
				return v, api.Invalid(at, "not a date (YYYY-MM-DD)")
			}
			v.t = t
		case "time":
			t, err := time.Parse(time.RFC3339Nano, v.s)
			if err != nil {
				return v, api.Invalid(at, "not an RFC 3339 time")
			}
			v.t = t
		case "postcode":
			if v.s == "" {
				return v, api.Invalid(at, "empty postcode")
			}
		}
	case "integer", "decimal":
		n := string(bytes.TrimSpace(raw))
		if n == "" || (n[0] != '-' && (n[0] < '0' || n[0] > '9')) || !json.Valid([]byte(n)) {
			return v, api.Invalid(at, "must be a number")
		}
		x, err := strconv.ParseFloat(n, 64)
		if err != nil || math.IsInf(x, 0) {
			return v, api.Invalid(at, "must be a number")
		}
		if f.Kind == "integer" && x != math.Trunc(x) {
			return v, api.Invalid(at, "must be an integer")
		}
		if f.Min != nil && x < *f.Min || f.Max != nil && x > *f.Max {
			return v, api.Invalid(at, "out of range")
		}
		v.num, v.s = x, n
	case "boolean":
		switch string(bytes.TrimSpace(raw)) {
		case "true":
			v.b = true
		case "false":
		default:
			return v, api.Invalid(at, "must be true or false")
		}
	}
	return v, nil
}

// policy returns the stored form of a value, and whether it is stored.
func (t *Transformer) policy(f *api.Field, at string, v value) (json.RawMessage, bool, error) {
	p := f.Policy
	var out string
	switch p.Action {
	case "drop":
		return nil, false, nil
	case "keep":
		switch f.Kind {
		case "integer", "decimal":
			return json.RawMessage(v.s), true, nil
		case "boolean":
			return json.RawMessage(strconv.FormatBool(v.b)), true, nil
		default:
			out = v.s
		}
	case "pseudonymise":
		ps, err := t.pseudonym(t.domain(p.Domain), v.s)
		if err != nil {
			return nil, false, api.Invalid(at, "cannot be pseudonymised: %v", err)
		}
		out = string(ps)
	case "generalise":
		var s string
		var err error
		switch f.Kind {
		case "date", "time":
			s, err = pseudonym.GeneraliseDate(v.t, units[p.Unit])
		case "integer", "decimal":
			if p.Band {
				s, err = pseudonym.AgeBand(int(v.num), int(p.Width))
			} else {
				s, err = pseudonym.GeneraliseNumber(v.num, p.Width)
			}
		case "postcode":
			s, err = pseudonym.GeneralisePostcode(v.s, p.Keep)
		}
		if err != nil {
			return nil, false, api.Invalid(at, "cannot be generalised: %v", err)
		}
		out = s
	}
	return format.QuoteJSON(out), true, nil
}
