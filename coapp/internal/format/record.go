package format

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"strings"

	"coapp.coop/coapp/api"
	"coapp.coop/ledger/entry"
	"coapp.coop/pseudonym"
)

// RecordPayload is the ledger payload of a record: the schema's type and
// version, the subject's pseudonym, and the fields as the schema's
// policies left them, sealed under the subject's data key (Box). It is
// written deterministically (see Encode), so that the same record sent
// twice makes the same entry. Time is set only in the first, JSON, format
// (the binary format's time is the entry's).
type RecordPayload struct {
	Type    string              `json:"type"`
	Version int                 `json:"version"`
	Subject pseudonym.Pseudonym `json:"subject"`
	Time    string              `json:"time"`
	Box     []byte              `json:"box,omitempty"`
}

// PayloadV2 starts a record payload in the binary format (a JSON payload,
// the first format, starts with '{'):
//
//	0xC2 | uvarint len | type | uvarint version |
//	subject: uvarint key version | 32 bytes (the pseudonym's MAC) |
//	box (the rest)
//
// The time is the entry's. Binary, because the bytes of every record go
// through the Raft log and the state database: the JSON form, with the box
// in base64, was 40% larger, and publishing is bound by bytes written.
const PayloadV2 byte = 0xC2

// ErrMalformed is returned by the decoders for bytes this package did not
// write.
var ErrMalformed = errors.New("coapp: malformed payload")

// Encode writes the payload in the binary format.
func (p *RecordPayload) Encode() []byte {
	b := make([]byte, 0, 48+len(p.Type)+len(p.Box))
	b = append(b, PayloadV2)
	b = binary.AppendUvarint(b, uint64(len(p.Type)))
	b = append(b, p.Type...)
	b = binary.AppendUvarint(b, uint64(p.Version))
	b = AppendPseudonym(b, p.Subject)
	return append(b, p.Box...)
}

// AppendPseudonym writes "ps1.<v>.<43 base64url characters>" as its key
// version and 32 bytes; anything else (never made by package pseudonym) as
// 0, a length and the string.
func AppendPseudonym(b []byte, p pseudonym.Pseudonym) []byte {
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

// IsLegacyPayload reports whether a payload is in the first, JSON, format.
func IsLegacyPayload(b []byte) bool { return len(b) == 0 || b[0] != PayloadV2 }

// BinaryPayload is a binary record payload split into its parts, which
// alias the payload: the subject as stored (its key version and 32 bytes,
// or 0, a length and the string).
type BinaryPayload struct {
	Type, Subject, Box []byte
	Version            int
}

// SplitBinaryPayload splits the binary format without copying.
func SplitBinaryPayload(b []byte) (BinaryPayload, error) {
	var p BinaryPayload
	if len(b) == 0 || b[0] != PayloadV2 {
		return p, ErrMalformed
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > api.MaxTypeLen || uint64(len(b)-k) < n {
		return p, ErrMalformed
	}
	p.Type, b = b[k:k+int(n)], b[k+int(n):]
	ver, k := binary.Uvarint(b)
	if k <= 0 || ver > math.MaxInt32 {
		return p, ErrMalformed
	}
	p.Version, b = int(ver), b[k:]
	kv, k := binary.Uvarint(b)
	if k <= 0 || kv > math.MaxUint32 {
		return p, ErrMalformed
	}
	size := k + 32
	if kv == 0 {
		n, k2 := binary.Uvarint(b[k:])
		if k2 <= 0 || n > api.MaxSubjectLen || uint64(len(b)-k-k2) < n {
			return p, ErrMalformed
		}
		size = k + k2 + int(n)
	}
	if len(b) < size {
		return p, ErrMalformed
	}
	p.Subject, p.Box = b[:size], b[size:]
	return p, nil
}

// Pseudonym returns the subject as a pseudonym.
func (p *BinaryPayload) Pseudonym() pseudonym.Pseudonym {
	kv, k := binary.Uvarint(p.Subject)
	if kv == 0 {
		_, k2 := binary.Uvarint(p.Subject[k:])
		return pseudonym.Pseudonym(p.Subject[k+k2:])
	}
	return pseudonym.Pseudonym(pseudonymString(uint32(kv), p.Subject[k:]))
}

// IsPseudonym reports whether the stored subject is a pseudonym of package
// pseudonym (a key version and a MAC), never an identifier in clear.
func (p *BinaryPayload) IsPseudonym() bool {
	kv, _ := binary.Uvarint(p.Subject)
	return kv != 0
}

// decodeBinaryPayload reads the binary format.
func decodeBinaryPayload(b []byte) (RecordPayload, error) {
	bp, err := SplitBinaryPayload(b)
	if err != nil {
		return RecordPayload{}, err
	}
	p := RecordPayload{Type: string(bp.Type), Version: bp.Version, Subject: bp.Pseudonym()}
	if len(bp.Box) > 0 {
		p.Box = append([]byte(nil), bp.Box...)
	}
	return p, nil
}

// EncodeJSON writes the payload in the first format, JSON, as
// encoding/json would (kept to read ledgers written before the binary
// format, and for tests).
func (p *RecordPayload) EncodeJSON() []byte {
	b := make([]byte, 0, 96+len(p.Type)+len(p.Subject)+base64.StdEncoding.EncodedLen(len(p.Box)))
	b = append(b, `{"type":`...)
	b = AppendQuoted(b, p.Type)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, int64(p.Version), 10)
	b = append(b, `,"subject":`...)
	b = AppendQuoted(b, string(p.Subject))
	b = append(b, `,"time":`...)
	b = AppendQuoted(b, p.Time)
	if len(p.Box) > 0 {
		b = append(b, `,"box":"`...)
		b = base64.StdEncoding.AppendEncode(b, p.Box)
		b = append(b, '"')
	}
	return append(b, '}')
}

// SubjectKeyName is the name of a subject's data key in the ledger's key
// store: "s/" and the pseudonym as AppendPseudonym writes it.
func SubjectKeyName(p pseudonym.Pseudonym) []byte { return AppendPseudonym([]byte("s/"), p) }

// LegacyKeyName is the key name of records in the JSON payload format.
func LegacyKeyName(p pseudonym.Pseudonym) []byte { return []byte("subject/" + string(p)) }

// RecordAD is the additional data a record's box is bound to: the entry it
// travels in and the subject it belongs to, so that a box cannot be moved
// to another record. Records in the binary payload format use a binary
// form of it (RecordADv2); those in the JSON format, this text form.
func RecordAD(e entry.Entry, p *RecordPayload) []byte {
	if !IsLegacyPayload(e.Payload) {
		return RecordADv2(e, p)
	}
	b := make([]byte, 0, 160+len(e.Author)+len(p.Type)+len(p.Subject))
	b = append(b, "coapp/v1/record|"...)
	b = append(b, e.ID.String()...)
	b = append(b, '|')
	b = append(b, e.Author...)
	b = append(b, '|')
	b = e.Time.UTC().AppendFormat(b, "2006-01-02T15:04:05.999999999Z")
	b = append(b, '|')
	b = append(b, p.Type...)
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(p.Version), 10)
	b = append(b, '|')
	return append(b, p.Subject...)
}

// RecordADv2 is the binary additional data of records in the binary
// payload format: a context, the entry's id and time, and length-prefixed
// author, type, schema version and subject.
func RecordADv2(e entry.Entry, p *RecordPayload) []byte {
	b := make([]byte, 0, 64+len(e.Author)+len(p.Type)+len(p.Subject))
	b = append(b, "coapp/v2/record|"...)
	b = append(b, e.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixNano()))
	b = binary.AppendUvarint(b, uint64(len(e.Author)))
	b = append(b, e.Author...)
	b = binary.AppendUvarint(b, uint64(len(p.Type)))
	b = append(b, p.Type...)
	b = binary.AppendUvarint(b, uint64(p.Version))
	b = binary.AppendUvarint(b, uint64(len(p.Subject)))
	return append(b, p.Subject...)
}

// ConsentSubjectField is a sealed field of the records whose schema puts
// the subject in the federation's domain (subject_domain "federation"):
// the subject's pseudonym in the domain of the member that published the
// record, as a JSON string. A person consents to a member under that
// pseudonym (consent records are pseudonymised in the member's domain),
// and the federation pseudonym cannot be mapped back to it without the
// identifier; so the node that seals the record, which has the
// identifier, writes it in the record's box. Sealed with the fields, it
// is shredded with them on erasure; no schema field can have its name
// (field names start with a letter), so no export or aggregate releases
// it, and the right of access does not show it.
const ConsentSubjectField = "@consent_subject"
