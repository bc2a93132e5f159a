package coapp

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
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
	// Refused says why every replica refused the record, when it did:
	// no valid batch signature of its member covers it. A refused record
	// stays in the log, inert: no export, aggregate or share counts it.
	Refused string `json:"refused,omitempty"`
}

// recordPayload is the ledger payload of a record: the schema's type and
// version, the subject's pseudonym, the time, and the fields as the
// schema's policies left them, sealed under the subject's data key (Box).
// It is written deterministically (see encode), so that the same record
// sent twice makes the same entry.
type recordPayload struct {
	Type    string              `json:"type"`
	Version int                 `json:"version"`
	Subject pseudonym.Pseudonym `json:"subject"`
	Time    string              `json:"time"`
	Box     []byte              `json:"box,omitempty"`
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

// prepared is a record validated and transformed, waiting for its subject's
// data key.
type prepared struct {
	entry   ledger.Entry
	payload recordPayload
	fields  map[string]json.RawMessage
}

// prepare applies the schema to a validated record: subject pseudonymised,
// fields transformed. seal then finishes the entry with the subject's key.
func (r *Record) prepare(t *transformer, s *Schema, at string) (prepared, error) {
	fields, err := t.apply(s, at, r.Fields)
	if err != nil {
		return prepared{}, err
	}
	subject, err := t.pseudonym(t.domain(s.SubjectDomain), r.Subject)
	if err != nil {
		return prepared{}, invalid(at+".subject", "cannot be pseudonymised: %v", err)
	}
	tm := r.Time.UTC()
	return prepared{
		entry:   ledger.Entry{ID: r.ID, Kind: KindRecord, Author: t.member, Time: tm},
		payload: recordPayload{Type: r.Type, Version: s.Version, Subject: subject},
		fields:  fields,
	}, nil
}

// seal encrypts the fields under the subject's data key, deterministically,
// and returns the finished entry.
func (p *prepared) seal(dataKey pseudonym.Secret) (ledger.Entry, error) {
	box, err := pseudonym.SealDeterministic(dataKey, encodeFields(p.fields), recordADv2(p.entry, &p.payload))
	if err != nil {
		return ledger.Entry{}, err
	}
	p.payload.Box = box
	e := p.entry
	e.Payload = p.payload.encode()
	return e, nil
}

// encodeFields writes canonical field values as a JSON object with sorted
// keys, as encoding/json would, without reflection.
func encodeFields(fields map[string]json.RawMessage) []byte {
	n := 2
	for k, v := range fields {
		n += len(k) + len(v) + 4
	}
	return appendFields(make([]byte, 0, n), fields)
}

// appendFields appends what encodeFields writes to b.
func appendFields(b []byte, fields map[string]json.RawMessage) []byte {
	var small [16]string
	keys := small[:0]
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendQuoted(b, k)
		b = append(b, ':')
		b = append(b, fields[k]...)
	}
	return append(b, '}')
}

// payloadV2 starts a record payload in the binary format (a JSON payload,
// the first format, starts with '{'):
//
//	0xC2 | uvarint len | type | uvarint version |
//	subject: uvarint key version | 32 bytes (the pseudonym's MAC) |
//	box (the rest)
//
// The time is the entry's. Binary, because the bytes of every record go
// through the Raft log and the state database: the JSON form, with the box
// in base64, was 40% larger, and publishing is bound by bytes written.
const payloadV2 byte = 0xC2

// encode writes the payload in the binary format.
func (p *recordPayload) encode() []byte {
	b := make([]byte, 0, 48+len(p.Type)+len(p.Box))
	b = append(b, payloadV2)
	b = binary.AppendUvarint(b, uint64(len(p.Type)))
	b = append(b, p.Type...)
	b = binary.AppendUvarint(b, uint64(p.Version))
	b = appendPseudonym(b, p.Subject)
	return append(b, p.Box...)
}

// appendPseudonym writes "ps1.<v>.<43 base64url characters>" as its key
// version and 32 bytes; anything else (never made by this package) as 0,
// a length and the string.
func appendPseudonym(b []byte, p pseudonym.Pseudonym) []byte {
	s := string(p)
	if v, err := p.KeyVersion(); err == nil && strings.HasPrefix(s, "ps1.") {
		raw, err := base64.RawURLEncoding.DecodeString(s[strings.LastIndexByte(s, '.')+1:])
		if err == nil && len(raw) == 32 && pseudonymString(v, raw) == s {
			b = binary.AppendUvarint(b, uint64(v))
			return append(b, raw...)
		}
	}
	b = binary.AppendUvarint(b, 0)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func pseudonymString(v uint32, mac []byte) string {
	out := make([]byte, 0, 58)
	out = append(out, "ps1."...)
	out = strconv.AppendUint(out, uint64(v), 10)
	out = append(out, '.')
	return string(base64.RawURLEncoding.AppendEncode(out, mac))
}

// isLegacyPayload reports whether a payload is in the first, JSON, format.
func isLegacyPayload(b []byte) bool { return len(b) == 0 || b[0] != payloadV2 }

// binaryPayload is a binary record payload split into its parts, which
// alias the payload: the subject as stored (its key version and 32 bytes,
// or 0, a length and the string).
type binaryPayload struct {
	typ, subject, box []byte
	version           int
}

// splitBinaryPayload splits the binary format without copying.
func splitBinaryPayload(b []byte) (binaryPayload, error) {
	var p binaryPayload
	bad := errors.New("coapp: malformed record payload")
	if len(b) == 0 || b[0] != payloadV2 {
		return p, bad
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > maxTypeLen || uint64(len(b)-k) < n {
		return p, bad
	}
	p.typ, b = b[k:k+int(n)], b[k+int(n):]
	ver, k := binary.Uvarint(b)
	if k <= 0 || ver > math.MaxInt32 {
		return p, bad
	}
	p.version, b = int(ver), b[k:]
	kv, k := binary.Uvarint(b)
	if k <= 0 || kv > math.MaxUint32 {
		return p, bad
	}
	size := k + 32
	if kv == 0 {
		n, k2 := binary.Uvarint(b[k:])
		if k2 <= 0 || n > maxSubjectLen || uint64(len(b)-k-k2) < n {
			return p, bad
		}
		size = k + k2 + int(n)
	}
	if len(b) < size {
		return p, bad
	}
	p.subject, p.box = b[:size], b[size:]
	return p, nil
}

// pseudonym returns the subject as a pseudonym.
func (p *binaryPayload) pseudonym() pseudonym.Pseudonym {
	kv, k := binary.Uvarint(p.subject)
	if kv == 0 {
		_, k2 := binary.Uvarint(p.subject[k:])
		return pseudonym.Pseudonym(p.subject[k+k2:])
	}
	return pseudonym.Pseudonym(pseudonymString(uint32(kv), p.subject[k:]))
}

// decodeBinaryPayload reads the binary format.
func decodeBinaryPayload(b []byte) (recordPayload, error) {
	bp, err := splitBinaryPayload(b)
	if err != nil {
		return recordPayload{}, err
	}
	p := recordPayload{Type: string(bp.typ), Version: bp.version, Subject: bp.pseudonym()}
	if len(bp.box) > 0 {
		p.Box = append([]byte(nil), bp.box...)
	}
	return p, nil
}

// encodeJSON writes the payload in the first format, JSON, as
// encoding/json would (kept to read ledgers written before the binary
// format, and for tests).
func (p *recordPayload) encodeJSON() []byte {
	b := make([]byte, 0, 96+len(p.Type)+len(p.Subject)+base64.StdEncoding.EncodedLen(len(p.Box)))
	b = append(b, `{"type":`...)
	b = append(b, quoteJSON(p.Type)...)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, int64(p.Version), 10)
	b = append(b, `,"subject":`...)
	b = append(b, quoteJSON(string(p.Subject))...)
	b = append(b, `,"time":`...)
	b = append(b, quoteJSON(p.Time)...)
	if len(p.Box) > 0 {
		b = append(b, `,"box":"`...)
		b = base64.StdEncoding.AppendEncode(b, p.Box)
		b = append(b, '"')
	}
	return append(b, '}')
}

// recordInfo describes a stored record entry.
func recordInfo(e ledger.Entry, rc ledger.Receipt) (RecordInfo, error) {
	p, err := decodeRecordPayload(e.Payload)
	if err != nil {
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
