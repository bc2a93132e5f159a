package entry

import (
	"crypto/sha256"
	"encoding/binary"
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
	// current time when it is zero, or, for an ID the log holds with the
	// same kind, author and payload, the time held (a retry).
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

// FormatVersion is the first byte of every canonical encoding. Decode
// refuses any other.
const FormatVersion byte = 1

// Limits on an entry's Kind and Author, in bytes. Validate enforces them;
// Decode refuses an encoding whose fields exceed them.
const (
	MaxKindLen   = 64
	MaxAuthorLen = 256
)

// ReasonTooLarge is the reason Validate gives for a payload larger than
// its limit.
const ReasonTooLarge = "too large"

// headerLen is the fixed part of an encoding: version, id and time.
const headerLen = 1 + 16 + 8

func validKindByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == ':' || c == '/' || c == '-'
}

// Validate checks the shape of the entry's fields, as the ledger does
// before it appends one: Kind, Author and Time as their comments say, and
// Payload at most maxPayload bytes. It does not check ID (the ledger fills
// a zero one). When a field is wrong it returns the field's name ("kind",
// "author", "payload" or "time"), the reason and ok false; a payload too
// large has the reason ReasonTooLarge.
func (e *Entry) Validate(maxPayload int) (field, reason string, ok bool) {
	if e.Kind == "" {
		return "kind", "empty", false
	}
	if len(e.Kind) > MaxKindLen {
		return "kind", "longer than 64 characters", false
	}
	for j := 0; j < len(e.Kind); j++ {
		if !validKindByte(e.Kind[j]) {
			return "kind", "characters outside [A-Za-z0-9._:/-]", false
		}
	}
	if e.Author == "" {
		return "author", "empty", false
	}
	if len(e.Author) > MaxAuthorLen {
		return "author", "longer than 256 bytes", false
	}
	if !utf8.ValidString(e.Author) {
		return "author", "not UTF-8", false
	}
	if len(e.Payload) > maxPayload {
		return "payload", ReasonTooLarge, false
	}
	if y := e.Time.Year(); y < 1678 || y > 2261 {
		return "time", "outside the years 1678 to 2261", false
	}
	return "", "", true
}

// Encode returns the entry's canonical encoding, the bytes its leaf hash
// covers:
//
//	version (1) | id (16) | time, Unix ns (8, big-endian) |
//	uvarint len | kind | uvarint len | author | uvarint len | payload
//
// Index is not part of it. Encode does not validate the entry: see
// Validate.
func (e Entry) Encode() []byte {
	n := headerLen + 3*binary.MaxVarintLen32 + len(e.Kind) + len(e.Author) + len(e.Payload)
	return e.AppendEncode(make([]byte, 0, n))
}

// AppendEncode appends the entry's canonical encoding (see Encode) to b
// and returns the extended slice.
func (e Entry) AppendEncode(b []byte) []byte {
	b = append(b, FormatVersion)
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
	// The encoding is hashed as it is written, without building it: the
	// head (up to the payload's length) on the stack, then the payload.
	var head [1 + 1 + 16 + 8 + 3*binary.MaxVarintLen64 + MaxKindLen + MaxAuthorLen]byte
	b := head[:0]
	if len(e.Kind) > MaxKindLen || len(e.Author) > MaxAuthorLen {
		return merkle.LeafHash(e.Encode()) // not an entry the ledger takes; hashed all the same
	}
	b = append(b, 0x00) // the leaf prefix of RFC 9162
	b = append(b, FormatVersion)
	b = append(b, e.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixNano()))
	b = binary.AppendUvarint(b, uint64(len(e.Kind)))
	b = append(b, e.Kind...)
	b = binary.AppendUvarint(b, uint64(len(e.Author)))
	b = append(b, e.Author...)
	b = binary.AppendUvarint(b, uint64(len(e.Payload)))
	h := sha256.New()
	h.Write(b)
	h.Write(e.Payload)
	var out merkle.Hash
	h.Sum(out[:0])
	return out
}

// Decode parses a canonical encoding, refusing (ok false) anything that
// Encode would not produce. The entry's Payload aliases b; its Index is
// zero and its Time is in UTC. Decode checks the framing only, not the
// fields' shapes: see Validate.
func Decode(b []byte) (Entry, bool) {
	var e Entry
	kind, author, payload, ok := Split(b)
	if !ok {
		return e, false
	}
	copy(e.ID[:], b[1:17])
	e.Time = time.Unix(0, int64(binary.BigEndian.Uint64(b[17:25]))).UTC()
	e.Kind, e.Author, e.Payload = string(kind), string(author), payload
	return e, true
}

// Split checks the framing of a canonical encoding, as Decode does, and
// returns its variable fields, aliasing b, without allocating.
func Split(b []byte) (kind, author, payload []byte, ok bool) {
	if len(b) < headerLen+3 || b[0] != FormatVersion {
		return nil, nil, nil, false
	}
	rest := b[headerLen:]
	if kind, rest, ok = readField(rest, MaxKindLen); !ok {
		return nil, nil, nil, false
	}
	if author, rest, ok = readField(rest, MaxAuthorLen); !ok {
		return nil, nil, nil, false
	}
	if payload, rest, ok = readField(rest, math.MaxInt); !ok || len(rest) != 0 {
		return nil, nil, nil, false
	}
	return kind, author, payload, true
}

// ID returns the id of a canonical encoding that Split or Decode accepts,
// without decoding the rest. It panics when enc is shorter than 17 bytes.
func ID(enc []byte) uuid.UUID {
	var id uuid.UUID
	copy(id[:], enc[1:17])
	return id
}

// readField reads a uvarint length of at most max and that many bytes.
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
