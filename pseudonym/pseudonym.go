package pseudonym

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Domain is a pseudonymisation domain: pseudonyms of one identifier in two
// domains cannot be linked without the secret.
type Domain string

// Federation is the domain shared by every member, for records a subject
// agreed may be linked across cooperatives.
const Federation Domain = "federation"

// MemberDomain is a member cooperative's own domain, the default for its
// records.
func MemberDomain(member string) Domain { return Domain("member:" + member) }

// DatasetDomain is a dataset's own domain, used by its exports, so that two
// datasets cannot be joined on their pseudonyms.
func DatasetDomain(dataset string) Domain { return Domain("dataset:" + dataset) }

const (
	derivationSalt = "coapp.coop/pseudonym/v1"
	pseudonymInfo  = "coapp/v1/pseudonym|"
	pseudonymTag   = "ps1"
	maxIDLen       = 1024
)

// Canonical returns the form of an identifier that pseudonyms are computed
// over, so that spellings of one identifier get one pseudonym: Unicode NFKC
// normalisation, then lower case (Unicode simple case mapping), then
// leading and trailing white space removed and every inner run of white
// space replaced by one space. It returns an error wrapping ErrInvalid for
// an identifier that is empty after that, not UTF-8, or longer than 1024
// bytes.
//
// Those rules, and only those, make two identifiers one: "Anna" and
// "anna" (case), "ＡＮＮＡ" and "anna" (NFKC: full-width forms, also
// ligatures, compatibility characters such as the Kelvin sign, composed
// and decomposed accents), "anna\u00a0maria" and " anna  maria" (white
// space: Unicode's, so also no-break and ideographic spaces). Everything
// else keeps identifiers apart, in particular:
//
//   - invisible format characters, which are not white space and which
//     NFKC keeps: "anna\u200b" (zero-width space), "an\u00adna" (soft
//     hyphen), "anna\u200d" (zero-width joiner) and "anna\ufeff" are each
//     another identifier than "anna";
//   - U+FFFD REPLACEMENT CHARACTER is a character like any other:
//     "anna\ufffd" is neither "anna" nor "anna?". Bytes that are not
//     UTF-8 are refused, never replaced by it, so that "anna\xff" and
//     "anna\xfe" cannot both become "anna\ufffd";
//   - case is mapped, not folded: "ß" is not "ss", final "ς" is not "σ".
//
// Canonical is idempotent: the canonical form of a canonical form is
// itself (tested over every code point).
func Canonical(id string) (string, error) {
	if !utf8.ValidString(id) {
		return "", fmt.Errorf("%w: identifier is not UTF-8", ErrInvalid)
	}
	if len(id) > maxIDLen {
		return "", fmt.Errorf("%w: identifier longer than %d bytes", ErrInvalid, maxIDLen)
	}
	if isASCII(id) {
		return canonicalASCII(id)
	}
	return canonicalUnicode(id)
}

// canonicalUnicode is Canonical for UTF-8 input of any kind.
func canonicalUnicode(s string) (string, error) {
	s = norm.NFKC.String(s)
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(unicode.ToLower(r))
	}
	if b.Len() == 0 {
		return "", fmt.Errorf("%w: identifier is empty", ErrInvalid)
	}
	return b.String(), nil
}

// canonicalASCII is Canonical for ASCII input, without decoding runes.
func canonicalASCII(s string) (string, error) {
	b := make([]byte, 0, len(s))
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r':
			space = len(b) > 0
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if space {
			b = append(b, ' ')
			space = false
		}
		b = append(b, c)
	}
	if len(b) == 0 {
		return "", fmt.Errorf("%w: identifier is empty", ErrInvalid)
	}
	return string(b), nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Pseudonym is a keyed pseudonym: "ps1.<key version>.<43 characters>", the
// characters being the base64url of HMAC-SHA-256 under the domain's key of
// that version over the canonical identifier.
type Pseudonym string

// KeyVersion returns the version of the key that made the pseudonym.
func (p Pseudonym) KeyVersion() (uint32, error) {
	parts := strings.Split(string(p), ".")
	if len(parts) != 3 || parts[0] != pseudonymTag || len(parts[2]) != 43 {
		return 0, fmt.Errorf("%w: not a pseudonym", ErrInvalid)
	}
	v, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("%w: bad key version in pseudonym", ErrInvalid)
	}
	return uint32(v), nil
}

// Keyring holds the versions of the federation secret: the current one,
// which makes new pseudonyms, and older ones kept during a rotation so
// that pseudonyms made before it can still be resolved. It is safe for
// concurrent use.
type Keyring struct {
	mu      sync.RWMutex
	secrets map[uint32]Secret
	current uint32
	domains map[domainKeyID]*domainKey
	keks    map[uint32]Secret
}

type domainKeyID struct {
	version uint32
	domain  Domain
}

type domainKey struct {
	pool sync.Pool // of keyed hash.Hash
}

// NewKeyring returns a keyring whose current key is secret, as version
// (versions start at 1).
func NewKeyring(version uint32, secret Secret) (*Keyring, error) {
	if version == 0 {
		return nil, fmt.Errorf("%w: key versions start at 1", ErrInvalid)
	}
	if secret.IsZero() {
		return nil, fmt.Errorf("%w: the secret is unset", ErrInvalid)
	}
	return &Keyring{
		secrets: map[uint32]Secret{version: secret},
		current: version,
		domains: map[domainKeyID]*domainKey{},
	}, nil
}

// Rotate adds secret as a new current version; the previous versions stay
// for resolving older pseudonyms until Retire removes them.
func (k *Keyring) Rotate(version uint32, secret Secret) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if version <= k.current {
		return fmt.Errorf("%w: new key version %d is not above %d", ErrInvalid, version, k.current)
	}
	if secret.IsZero() {
		return fmt.Errorf("%w: the secret is unset", ErrInvalid)
	}
	k.secrets[version] = secret
	k.current = version
	return nil
}

// Retire forgets a version other than the current one: its pseudonyms can
// no longer be recomputed.
func (k *Keyring) Retire(version uint32) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if version == k.current {
		return fmt.Errorf("%w: cannot retire the current key version", ErrInvalid)
	}
	if _, ok := k.secrets[version]; !ok {
		return fmt.Errorf("%w: version %d", ErrUnknownKey, version)
	}
	delete(k.secrets, version)
	delete(k.keks, version)
	for id := range k.domains {
		if id.version == version {
			delete(k.domains, id)
		}
	}
	return nil
}

// Current returns the current key version.
func (k *Keyring) Current() uint32 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.current
}

// Versions returns the key versions held, newest first.
func (k *Keyring) Versions() []uint32 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]uint32, 0, len(k.secrets))
	for v := range k.secrets {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] > out[j] })
	return out
}

// deriveKey returns HKDF-SHA-256(secret, salt, info) of length 32.
func deriveKey(secret Secret, info string) []byte {
	key, err := hkdf.Key(sha256.New, secret.bytes(), []byte(derivationSalt), info, 32)
	if err != nil {
		panic(err) // only for lengths HKDF-SHA-256 cannot produce
	}
	return key
}

func (k *Keyring) domainKey(version uint32, d Domain) (*domainKey, error) {
	id := domainKeyID{version, d}
	k.mu.RLock()
	dk, ok := k.domains[id]
	k.mu.RUnlock()
	if ok {
		return dk, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if dk, ok := k.domains[id]; ok {
		return dk, nil
	}
	secret, ok := k.secrets[version]
	if !ok {
		return nil, fmt.Errorf("%w: version %d", ErrUnknownKey, version)
	}
	key := deriveKey(secret, pseudonymInfo+string(d))
	dk = &domainKey{}
	dk.pool.New = func() any { return hmac.New(sha256.New, key) }
	k.domains[id] = dk
	return dk, nil
}

// Pseudonym returns the pseudonym of an identifier in a domain, under the
// current key version.
func (k *Keyring) Pseudonym(d Domain, id string) (Pseudonym, error) {
	return k.PseudonymAt(k.Current(), d, id)
}

// PseudonymAt returns the pseudonym of an identifier in a domain under a
// given key version.
func (k *Keyring) PseudonymAt(version uint32, d Domain, id string) (Pseudonym, error) {
	if d == "" {
		return "", fmt.Errorf("%w: empty domain", ErrInvalid)
	}
	c, err := Canonical(id)
	if err != nil {
		return "", err
	}
	dk, err := k.domainKey(version, d)
	if err != nil {
		return "", err
	}
	h := dk.pool.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(c))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	dk.pool.Put(h)
	out := make([]byte, 0, 4+10+1+43)
	out = append(out, pseudonymTag...)
	out = append(out, '.')
	out = strconv.AppendUint(out, uint64(version), 10)
	out = append(out, '.')
	out = base64.RawURLEncoding.AppendEncode(out, sum[:])
	return Pseudonym(out), nil
}

// All returns the identifier's pseudonym in a domain under every key
// version held, newest first: during a rotation, a lookup by identifier
// finds records pseudonymised under the old key as well as the new.
func (k *Keyring) All(d Domain, id string) ([]Pseudonym, error) {
	var out []Pseudonym
	for _, v := range k.Versions() {
		p, err := k.PseudonymAt(v, d, id)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Matches reports whether p is the pseudonym of id in domain d, under the
// key version p names.
func (k *Keyring) Matches(p Pseudonym, d Domain, id string) (bool, error) {
	v, err := p.KeyVersion()
	if err != nil {
		return false, err
	}
	q, err := k.PseudonymAt(v, d, id)
	if err != nil {
		return false, err
	}
	return hmac.Equal([]byte(p), []byte(q)), nil
}
