package ledger

import (
	"encoding/binary"
	"hash/crc32"
	"math"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"coapp.coop/ledger/merkle"
)

// Entry is one record of the log: an opaque payload with its kind, author,
// id and time. The ledger interprets none of them beyond validating their
// shape; the id makes appends idempotent.
type Entry struct {
	// Index is the entry's 0-based position in the log. Reads set it;
	// Append ignores it.
	Index uint64

	// ID identifies the entry. Appending an ID already in the log returns
	// the original receipt. Append assigns a UUIDv7 when it is zero; set it
	// yourself to make retries safe.
	ID uuid.UUID

	// Kind names the payload's type: 1 to 64 characters from
	// [A-Za-z0-9._:/-], such as "coapp.record/v1".
	Kind string

	// Author names who wrote the entry (a member id): 1 to 256 bytes of
	// UTF-8.
	Author string

	// Time is when the entry was made, as the caller says; stored to the
	// nanosecond in UTC, between the years 1678 and 2262. Append uses the
	// current time when it is zero.
	Time time.Time

	// Payload is opaque to the ledger, up to Config.MaxEntryBytes.
	Payload []byte
}

// Receipt acknowledges an appended entry: where it is in the log and the
// Merkle leaf hash that proofs refer to.
type Receipt struct {
	ID    uuid.UUID
	Index uint64
	Leaf  merkle.Hash
	// Duplicate is true when the log already held this entry and nothing
	// new was stored.
	Duplicate bool
}

const entryFormatV1 byte = 1

const (
	maxKindLen   = 64
	maxAuthorLen = 256
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func validKindByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == ':' || c == '/' || c == '-'
}

// validate checks an entry's fields. i is its position in the call.
func (e *Entry) validate(i int, maxPayload int) error {
	bad := func(field, reason string) error { return &ValidationError{Entry: i, Field: field, Reason: reason} }
	if e.Kind == "" {
		return bad("kind", "empty")
	}
	if len(e.Kind) > maxKindLen {
		return bad("kind", "longer than 64 characters")
	}
	for j := 0; j < len(e.Kind); j++ {
		if !validKindByte(e.Kind[j]) {
			return bad("kind", "characters outside [A-Za-z0-9._:/-]")
		}
	}
	if e.Author == "" {
		return bad("author", "empty")
	}
	if len(e.Author) > maxAuthorLen {
		return bad("author", "longer than 256 bytes")
	}
	if !utf8.ValidString(e.Author) {
		return bad("author", "not UTF-8")
	}
	if len(e.Payload) > maxPayload {
		return bad("payload", reasonTooLarge)
	}
	if y := e.Time.Year(); y < 1678 || y > 2261 {
		return bad("time", "outside the years 1678 to 2261")
	}
	return nil
}

// encode returns the entry's canonical encoding, the bytes its leaf hash
// covers:
//
//	version (1) | id (16) | time, Unix ns (8, big-endian) |
//	uvarint len | kind | uvarint len | author | uvarint len | payload
func (e Entry) encode() []byte {
	n := 1 + 16 + 8 + 3*binary.MaxVarintLen32 + len(e.Kind) + len(e.Author) + len(e.Payload)
	b := make([]byte, 0, n)
	b = append(b, entryFormatV1)
	b = append(b, e.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixNano()))
	b = binary.AppendUvarint(b, uint64(len(e.Kind)))
	b = append(b, e.Kind...)
	b = binary.AppendUvarint(b, uint64(len(e.Author)))
	b = append(b, e.Author...)
	b = binary.AppendUvarint(b, uint64(len(e.Payload)))
	return append(b, e.Payload...)
}

// LeafHash returns the entry's Merkle leaf hash: the hash of its canonical
// encoding, as Receipt.Leaf gives it and proofs verify it. Index is not
// part of it. Anyone holding an entry checks it against a proof with this
// alone (consent receipts do, offline).
func (e Entry) LeafHash() merkle.Hash {
	return merkle.LeafHash(e.encode())
}

// decodeEntry parses a canonical encoding. The entry's Payload aliases b.
func decodeEntry(b []byte) (Entry, bool) {
	var e Entry
	kind, author, payload, ok := splitEntry(b)
	if !ok {
		return e, false
	}
	copy(e.ID[:], b[1:17])
	e.Time = time.Unix(0, int64(binary.BigEndian.Uint64(b[17:25]))).UTC()
	e.Kind, e.Author, e.Payload = string(kind), string(author), payload
	return e, true
}

// splitEntry checks the framing of a canonical encoding and returns its
// variable fields, aliasing b, without allocating.
func splitEntry(b []byte) (kind, author, payload []byte, ok bool) {
	if len(b) < 1+16+8+3 || b[0] != entryFormatV1 {
		return nil, nil, nil, false
	}
	rest := b[25:]
	if kind, rest, ok = readField(rest, maxKindLen); !ok {
		return nil, nil, nil, false
	}
	if author, rest, ok = readField(rest, maxAuthorLen); !ok {
		return nil, nil, nil, false
	}
	if payload, rest, ok = readField(rest, math.MaxInt); !ok || len(rest) != 0 {
		return nil, nil, nil, false
	}
	return kind, author, payload, true
}

// entryID returns the id of a canonical encoding that decodes.
func entryID(enc []byte) uuid.UUID {
	var id uuid.UUID
	copy(id[:], enc[1:17])
	return id
}

func readField(b []byte, max int) (field, rest []byte, ok bool) {
	n, k, ok := readUvarint(b)
	if !ok || n > uint64(len(b)-k) || n > uint64(max) {
		return nil, nil, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}

// readUvarint reads a minimally encoded uvarint: a longer encoding of the
// same number would give one entry two encodings, and two leaf hashes.
func readUvarint(b []byte) (n uint64, k int, ok bool) {
	n, k = binary.Uvarint(b)
	if k <= 0 || k != uvarintLen(n) {
		return 0, 0, false
	}
	return n, k, true
}

func uvarintLen(n uint64) int {
	k := 1
	for n >= 0x80 {
		n >>= 7
		k++
	}
	return k
}
