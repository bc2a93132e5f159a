package merkle

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
)

// Size is the length in bytes of a Hash.
const Size = sha256.Size

// Hash is a SHA-256 digest: a leaf hash, an interior node hash or a root.
type Hash [Size]byte

// emptyRoot is SHA-256 of the empty string, the root of a tree with no leaves
// (RFC 9162, section 2.1.1).
var emptyRoot = Hash(sha256.Sum256(nil))

// EmptyRoot returns the root of the tree with no leaves: SHA-256("").
func EmptyRoot() Hash { return emptyRoot }

// LeafHash returns the hash of a leaf holding data: SHA-256(0x00 || data).
func LeafHash(data []byte) Hash {
	h := sha256.New()
	h.Write([]byte{0x00})
	h.Write(data)
	var out Hash
	h.Sum(out[:0])
	return out
}

// NodeHash returns the hash of an interior node with the given children:
// SHA-256(0x01 || left || right).
func NodeHash(left, right Hash) Hash {
	var buf [1 + 2*Size]byte
	buf[0] = 0x01
	copy(buf[1:], left[:])
	copy(buf[1+Size:], right[:])
	return sha256.Sum256(buf[:])
}

// Equal reports whether h and o are the same hash, in constant time.
func (h Hash) Equal(o Hash) bool { return subtle.ConstantTimeCompare(h[:], o[:]) == 1 }

// String returns the hash in lower-case hexadecimal.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText encodes the hash as lower-case hexadecimal, so that it appears
// as a hex string in JSON.
func (h Hash) MarshalText() ([]byte, error) {
	out := make([]byte, hex.EncodedLen(Size))
	hex.Encode(out, h[:])
	return out, nil
}

// UnmarshalText decodes a hash from 64 hexadecimal characters.
func (h *Hash) UnmarshalText(text []byte) error {
	parsed, err := ParseHash(string(text))
	if err != nil {
		return err
	}
	*h = parsed
	return nil
}

// ParseHash decodes a hash from 64 hexadecimal characters. It returns an
// error wrapping ErrMalformed for any other input.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != hex.EncodedLen(Size) {
		return h, fmt.Errorf("%w: hash has %d characters, want %d", ErrMalformed, len(s), hex.EncodedLen(Size))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("%w: hash is not hexadecimal", ErrMalformed)
	}
	return h, nil
}
