package pseudonym

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
)

var (
	// ErrInvalid is returned for malformed input: a secret of the wrong
	// length, an empty identifier or domain, a malformed pseudonym.
	ErrInvalid = errors.New("pseudonym: invalid input")

	// ErrUnknownKey is returned when a pseudonym or a sealed value names a
	// key version the keyring does not hold (rotated out, or never known).
	ErrUnknownKey = errors.New("pseudonym: unknown key version")

	// ErrDecrypt is returned when sealed data cannot be opened: a wrong
	// key or passphrase, or data that was changed.
	ErrDecrypt = errors.New("pseudonym: cannot decrypt")
)

// SecretSize is the length in bytes of a Secret.
const SecretSize = 32

// Secret is key material: the federation secret from which every
// pseudonymisation domain key and key-encryption key is derived, or a
// subject's data key. It never prints: String, GoString and Format show
// "REDACTED", and it has no exported field. Compare with Equal.
type Secret struct {
	b [SecretSize]byte
}

// NewSecret returns a new random secret.
func NewSecret() (Secret, error) {
	var s Secret
	if _, err := rand.Read(s.b[:]); err != nil {
		return Secret{}, fmt.Errorf("pseudonym: random: %w", err)
	}
	return s, nil
}

// SecretFromBytes copies b, which must be SecretSize bytes long.
func SecretFromBytes(b []byte) (Secret, error) {
	var s Secret
	if len(b) != SecretSize {
		return s, fmt.Errorf("%w: a secret is %d bytes, not %d", ErrInvalid, SecretSize, len(b))
	}
	copy(s.b[:], b)
	return s, nil
}

// Equal reports whether two secrets are the same, in constant time.
func (s Secret) Equal(o Secret) bool { return subtle.ConstantTimeCompare(s.b[:], o.b[:]) == 1 }

// IsZero reports whether the secret is unset.
func (s Secret) IsZero() bool { return s.Equal(Secret{}) }

// String returns "pseudonym.Secret(REDACTED)".
func (Secret) String() string { return "pseudonym.Secret(REDACTED)" }

// GoString is String, so that %#v redacts too.
func (s Secret) GoString() string { return s.String() }

// Format makes every fmt verb print String.
func (s Secret) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.String()) }

// MarshalText refuses: a secret is written only by a key file.
func (Secret) MarshalText() ([]byte, error) {
	return nil, errors.New("pseudonym: a secret is not marshalled as text; use a key file")
}

// bytes exposes the key material inside the package.
func (s *Secret) bytes() []byte { return s.b[:] }

// encoded is for key files only.
func (s *Secret) encoded() string { return base64.StdEncoding.EncodeToString(s.b[:]) }
