package coapp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"coapp.coop/ledger"
	"coapp.coop/ledger/merkle"
)

// KindRecord is the ledger kind of an exchange record.
const KindRecord = "coapp.record/v1"

// Record is one exchange published by a member: a purchase, a delivery, a
// harvest, a meter reading, care hours. Its id makes publishing idempotent.
type Record struct {
	ID      uuid.UUID                  `json:"id"`
	Type    string                     `json:"type"`
	Subject string                     `json:"subject"`
	Time    time.Time                  `json:"time"`
	Fields  map[string]json.RawMessage `json:"fields,omitempty"`
}

// Receipt acknowledges a published record: where the ledger holds it and
// its Merkle leaf hash, for inclusion proofs.
type Receipt struct {
	ID    uuid.UUID   `json:"id"`
	Index uint64      `json:"index"`
	Leaf  merkle.Hash `json:"leaf"`
}

// RecordInfo is what the API tells of a stored record: its receipt and
// metadata, not its subject or fields.
type RecordInfo struct {
	Receipt
	Type   string    `json:"type"`
	Time   time.Time `json:"time"`
	Member string    `json:"member"`
}

// recordPayload is the ledger payload of a record: its canonical JSON
// (struct fields in order, map keys sorted by encoding/json), so that the
// same record sent twice, in any key order, makes the same entry.
type recordPayload struct {
	Type    string                     `json:"type"`
	Subject string                     `json:"subject"`
	Time    string                     `json:"time"`
	Fields  map[string]json.RawMessage `json:"fields,omitempty"`
}

const (
	maxTypeLen    = 64
	maxSubjectLen = 256
	maxFields     = 256
)

// validate checks a record; at names it in errors ("records[3]").
func (r *Record) validate(at string) error {
	if r.ID == uuid.Nil {
		return invalid(at+".id", "required")
	}
	if r.Type == "" {
		return invalid(at+".type", "required")
	}
	if len(r.Type) > maxTypeLen {
		return invalid(at+".type", "longer than %d characters", maxTypeLen)
	}
	for i := 0; i < len(r.Type); i++ {
		c := r.Type[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return invalid(at+".type", "characters outside [a-z0-9._-]")
		}
	}
	if r.Subject == "" {
		return invalid(at+".subject", "required")
	}
	if len(r.Subject) > maxSubjectLen || !utf8.ValidString(r.Subject) {
		return invalid(at+".subject", "not UTF-8 of at most %d bytes", maxSubjectLen)
	}
	if r.Time.IsZero() {
		return invalid(at+".time", "required")
	}
	if y := r.Time.Year(); y < 1900 || y > 2200 {
		return invalid(at+".time", "outside the years 1900 to 2200")
	}
	if len(r.Fields) > maxFields {
		return invalid(at+".fields", "more than %d fields", maxFields)
	}
	for k, v := range r.Fields {
		if k == "" || len(k) > maxTypeLen {
			return invalid(at+".fields", "a field name is empty or longer than %d characters", maxTypeLen)
		}
		canon, err := canonicalJSON(v)
		if err != nil {
			return invalid(fmt.Sprintf("%s.fields.%s", at, k), "not JSON")
		}
		r.Fields[k] = canon
	}
	return nil
}

// canonicalJSON re-encodes a JSON value with object keys sorted and no
// insignificant space, keeping numbers as written, so that equal values
// sent in another order or layout store the same bytes.
func canonicalJSON(v json.RawMessage) (json.RawMessage, error) {
	if plainScalar(v) {
		return v, nil
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data")
	}
	return json.Marshal(x)
}

// plainScalar reports whether v is a number, true, false, null, or a
// string without escapes or characters encoding/json would escape: a value
// that is already in canonical form, which most fields are.
func plainScalar(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	switch c := v[0]; {
	case c == '"':
		if len(v) < 2 || v[len(v)-1] != '"' {
			return false
		}
		for _, c := range v[1 : len(v)-1] {
			if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return false
			}
		}
		return true
	case c == '-' || ('0' <= c && c <= '9'):
		for _, c := range v {
			if !('0' <= c && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
				return false
			}
		}
		return json.Valid(v)
	default:
		s := string(v)
		return s == "true" || s == "false" || s == "null"
	}
}

// entry turns a validated record into the ledger entry that stores it.
func (r *Record) entry(member string) (ledger.Entry, error) {
	t := r.Time.UTC()
	payload, err := json.Marshal(recordPayload{
		Type:    r.Type,
		Subject: r.Subject,
		Time:    t.Format(time.RFC3339Nano),
		Fields:  r.Fields,
	})
	if err != nil {
		return ledger.Entry{}, err
	}
	return ledger.Entry{ID: r.ID, Kind: KindRecord, Author: member, Time: t, Payload: payload}, nil
}

// recordInfo describes a stored record entry.
func recordInfo(e ledger.Entry, rc ledger.Receipt) (RecordInfo, error) {
	var p recordPayload
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		return RecordInfo{}, fmt.Errorf("coapp: record %s: %w", e.ID, err)
	}
	return RecordInfo{
		Receipt: Receipt{ID: rc.ID, Index: rc.Index, Leaf: rc.Leaf},
		Type:    p.Type,
		Time:    e.Time,
		Member:  e.Author,
	}, nil
}
