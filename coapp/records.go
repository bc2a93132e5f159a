package coapp

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"coapp.coop/ledger"
	"coapp.coop/ledger/merkle"
	"coapp.coop/pseudonym"
)

// KindRecord is the ledger kind of an exchange record.
const KindRecord = "coapp.record/v1"

// Record is one exchange published by a member: a purchase, a delivery, a
// harvest, a meter reading, care hours. Its id makes publishing
// idempotent. It follows the schema of its type, at Version (the latest
// when 0). Subject is the person's raw identifier: the node pseudonymises
// it, and applies the schema's policy to every field, before anything is
// stored.
type Record struct {
	ID      uuid.UUID                  `json:"id"`
	Type    string                     `json:"type"`
	Version int                        `json:"version,omitempty"`
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
	Type    string    `json:"type"`
	Version int       `json:"version"`
	Time    time.Time `json:"time"`
	Member  string    `json:"member"`
}

// recordPayload is the ledger payload of a record: the schema's type and
// version, the subject's pseudonym, the time, and the fields as the
// schema's policies left them. encoding/json writes it deterministically
// (struct fields in order, map keys sorted), so that the same record sent
// twice makes the same entry.
type recordPayload struct {
	Type    string                     `json:"type"`
	Version int                        `json:"version"`
	Subject pseudonym.Pseudonym        `json:"subject"`
	Time    string                     `json:"time"`
	Fields  map[string]json.RawMessage `json:"fields,omitempty"`
}

const (
	maxTypeLen    = 64
	maxSubjectLen = 256
	maxFields     = 256
)

// validate checks a record's shape; at names it in errors ("records[3]").
func (r *Record) validate(at string) error {
	if r.ID == uuid.Nil {
		return invalid(at+".id", "required")
	}
	if r.Type == "" {
		return invalid(at+".type", "required")
	}
	if !validType(r.Type) {
		return invalid(at+".type", "1 to %d characters of [a-z0-9._-]", maxTypeLen)
	}
	if r.Version < 0 {
		return invalid(at+".version", "must not be negative")
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
	return nil
}

// entry applies the schema to a validated record and returns the ledger
// entry that stores it: subject pseudonymised, fields transformed.
func (r *Record) entry(t transformer, s *Schema, at string) (ledger.Entry, error) {
	fields, err := t.apply(s, at, r.Fields)
	if err != nil {
		return ledger.Entry{}, err
	}
	subject, err := t.keys.Pseudonym(t.domain(s.SubjectDomain), r.Subject)
	if err != nil {
		return ledger.Entry{}, invalid(at+".subject", "cannot be pseudonymised: %v", err)
	}
	tm := r.Time.UTC()
	payload := recordPayload{
		Type:    r.Type,
		Version: s.Version,
		Subject: subject,
		Time:    tm.Format(time.RFC3339Nano),
		Fields:  fields,
	}
	return ledger.Entry{ID: r.ID, Kind: KindRecord, Author: t.member, Time: tm, Payload: payload.encode()}, nil
}

// encode writes the payload as encoding/json would (struct fields in order,
// map keys sorted), without reflection: every field value is already
// canonical JSON, from the schema's policies.
func (p *recordPayload) encode() []byte {
	keys := make([]string, 0, len(p.Fields))
	n := 96 + len(p.Type) + len(p.Subject)
	for k, v := range p.Fields {
		keys = append(keys, k)
		n += len(k) + len(v) + 4
	}
	sort.Strings(keys)
	b := make([]byte, 0, n)
	b = append(b, `{"type":`...)
	b = append(b, quoteJSON(p.Type)...)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, int64(p.Version), 10)
	b = append(b, `,"subject":`...)
	b = append(b, quoteJSON(string(p.Subject))...)
	b = append(b, `,"time":`...)
	b = append(b, quoteJSON(p.Time)...)
	if len(keys) > 0 {
		b = append(b, `,"fields":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, quoteJSON(k)...)
			b = append(b, ':')
			b = append(b, p.Fields[k]...)
		}
		b = append(b, '}')
	}
	return append(b, '}')
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
		Version: p.Version,
		Time:    e.Time,
		Member:  e.Author,
	}, nil
}
