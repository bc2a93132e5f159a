package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"coapp.coop/ledger/merkle"
	"coapp.coop/pseudonym"
)

// Record is one exchange published by a member: a purchase, a delivery, a
// harvest, a meter reading, care hours. Its id makes publishing
// idempotent. It follows the schema of its type, at Version (the latest
// when 0; in JSON, when left out: an explicit version below 1 is refused).
// Subject is the person's raw identifier: the node pseudonymises
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

// Limits of a record's shape.
const (
	MaxTypeLen    = 64  // bytes of a record type
	MaxSubjectLen = 256 // bytes of a subject's identifier
	MaxFields     = 256 // fields of a record or a schema
)

// Validate checks a record's shape: what does not depend on its schema.
func (r *Record) Validate() error {
	if r.ID == uuid.Nil {
		return Invalid("id", "required")
	}
	if r.Type == "" {
		return Invalid("type", "required")
	}
	if !ValidType(r.Type) {
		return Invalid("type", "1 to %d characters of [a-z0-9._-]", MaxTypeLen)
	}
	if r.Version < 0 {
		return Invalid("version", "1 or more; 0 (left out) for the latest version")
	}
	if err := CheckSubject(r.Subject); err != nil {
		return err
	}
	if r.Time.IsZero() {
		return Invalid("time", "required")
	}
	if y := r.Time.Year(); y < 1900 || y > 2200 {
		return Invalid("time", "outside the years 1900 to 2200")
	}
	if len(r.Fields) > MaxFields {
		return Invalid("fields", "more than %d fields", MaxFields)
	}
	return nil
}

// recordJSON is a Record as JSON carries it: its version a pointer, to
// tell a version left out (the latest) from one given as 0. Its fields'
// names are Record's (TestRecordJSONFields).
type recordJSON struct {
	ID      uuid.UUID                  `json:"id"`
	Type    string                     `json:"type"`
	Version *int                       `json:"version"`
	Subject string                     `json:"subject"`
	Time    time.Time                  `json:"time"`
	Fields  map[string]json.RawMessage `json:"fields"`
}

// record returns the Record, refusing a version given below 1.
func (w *recordJSON) record() (Record, error) {
	r := Record{ID: w.ID, Type: w.Type, Subject: w.Subject, Time: w.Time, Fields: w.Fields}
	if w.Version != nil {
		if *w.Version < 1 {
			return Record{}, Invalid("version", "1 or more; leave it out for the schema's latest version")
		}
		r.Version = *w.Version
	}
	return r, nil
}

// UnmarshalJSON decodes a record strictly (as Decode does: unknown fields
// and bad values are *ValidationErrors naming the field), and refuses a
// version that is given but below 1: a record leaves its version out to
// follow the schema's latest, which Version 0 says in Go.
func (r *Record) UnmarshalJSON(b []byte) error {
	if string(bytes.TrimSpace(b)) == "null" {
		return nil
	}
	var w recordJSON
	if err := decodeQuick(b, &w); err != nil {
		return err
	}
	rec, err := w.record()
	if err != nil {
		return err
	}
	*r = rec
	return nil
}

// DecodePublish decodes the body of POST /v1/records as Decode does into
// a PublishRequest, records' versions included, in one pass (without a
// decoder for each record's UnmarshalJSON).
func DecodePublish(r io.Reader) (PublishRequest, error) {
	var w struct {
		Records []recordJSON `json:"records"`
	}
	if err := Decode(r, &w); err != nil {
		return PublishRequest{}, err
	}
	var out PublishRequest
	if w.Records != nil {
		out.Records = make([]Record, len(w.Records))
	}
	for i := range w.Records {
		rec, err := w.Records[i].record()
		if err != nil {
			return PublishRequest{}, Within(fmt.Sprintf("records[%d]", i), err)
		}
		out.Records[i] = rec
	}
	return out, nil
}

// decodeQuick is DecodeBytes for the small values that a decoder hands to
// an UnmarshalJSON method, many times a request: bytes that are UTF-8 and
// hold no \u escape (the common case) are decoded strictly without
// following their structure; anything else, and any error, goes through
// DecodeBytes, which names the field.
func decodeQuick(b []byte, v any) error {
	if utf8.Valid(b) && !bytes.Contains(b, []byte(`\u`)) {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if dec.Decode(v) == nil {
			if _, err := dec.Token(); err == io.EOF {
				return nil
			}
		}
	}
	return DecodeBytes(b, v)
}

// CheckSubject checks a subject's raw identifier as every request that
// names a person takes it (records, consents, checks, access, erasure,
// the exports of a subject): 1 to MaxSubjectLen bytes of UTF-8, not empty
// once canonical (pseudonym.Canonical: NFKC, lower case, white space
// folded: "  " is no one). Its errors name the field "subject".
func CheckSubject(s string) error {
	switch {
	case s == "":
		return Invalid("subject", "required")
	case !utf8.ValidString(s):
		return Invalid("subject", "not valid UTF-8")
	case len(s) > MaxSubjectLen:
		return Invalid("subject", "longer than %d bytes", MaxSubjectLen)
	}
	if _, err := pseudonym.Canonical(s); err != nil {
		return Invalid("subject", "empty once white space is folded")
	}
	return nil
}

// ValidType reports whether t is 1 to 64 characters of [a-z0-9._-]: a
// record type.
func ValidType(t string) bool {
	if len(t) == 0 || len(t) > MaxTypeLen {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
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
	// Refused says why every replica refused the record, when it did:
	// no valid batch signature of its member covers it. A refused record
	// stays in the log, inert: no export, aggregate or share counts it.
	Refused string `json:"refused,omitempty"`
}

// PublishRequest is the body of POST /v1/records.
type PublishRequest struct {
	Records []Record `json:"records"`
}

// Validate checks every record's shape, naming the first bad one
// ("records[2].time").
func (p *PublishRequest) Validate() error {
	if len(p.Records) == 0 {
		return Invalid("records", "required: at least one record")
	}
	for i := range p.Records {
		if err := p.Records[i].Validate(); err != nil {
			return Within(fmt.Sprintf("records[%d]", i), err)
		}
	}
	return nil
}

// PublishResponse is the answer of POST /v1/records and
// POST /v1/records/signed.
type PublishResponse struct {
	Receipts []Receipt `json:"receipts"`
}

// SealedBatch is the body of POST /v1/records/signed: a member's records
// pseudonymised, sealed and signed on the node that received them, with
// the key requirements they were sealed under, for the leader to append.
type SealedBatch struct {
	Records   []SealedRecord `json:"records"`
	Signature []byte         `json:"signature"`
	Keys      []SealedKey    `json:"keys"`
	// PublicKey is the member's key, for its first signed entry.
	PublicKey []byte `json:"public_key,omitempty"`
}

// SealedRecord is one record of a SealedBatch: its entry's id, time and
// payload (the binary record format).
type SealedRecord struct {
	ID      uuid.UUID `json:"id"`
	Time    time.Time `json:"time"`
	Payload []byte    `json:"payload"`
}

// SealedKey is a data key a SealedBatch was sealed under: its name in the
// key store, the SHA-256 of its wrapped value, and the wrapped value when
// the batch creates it.
type SealedKey struct {
	Name   []byte `json:"name"`
	Create []byte `json:"create,omitempty"`
	Hash   []byte `json:"hash"`
}
