// Package memberkey keeps the members' Ed25519 signing keys that a node
// holds, one file each under the node's directory (members/), mode 0600,
// sealed with a passphrase (Argon2id, then XChaCha20-Poly1305) when the
// node has one. A node signs for a member only with the key in its file;
// the ledger holds the public keys.
//
// # Caveats
//
//   - A key file is created once and never overwritten; a rotation writes
//     the new key beside it (<file>.next) and renames it over the old one
//     only after the ledger holds the new public key (Replace).
//   - Without a passphrase the seed is in clear in the file: protect the
//     directory.
package memberkey

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"coapp.coop/pseudonym"
)

// Member signing keys. A node signs for a member only when that member
// asks (one of its tokens, or a program embedding the node), with the
// member's Ed25519 key, which lives in Dir/members/ on the node where the
// member first signed (mode 0600). Its public key goes into the ledger
// with the member's first signed entry; every replica verifies every entry
// under it.

// Dir is the directory of member key files in a node's Dir.
const Dir = "members"

// Signers holds the member signing keys of one node. It is safe for
// concurrent use.
type Signers struct {
	mu         sync.Mutex
	dir        string
	passphrase []byte // seals the key files when set
	keys       map[string]ed25519.PrivateKey
}

// New returns the signing keys kept in dir/members/, sealed with
// passphrase when it is set.
func New(dir string, passphrase []byte) *Signers {
	return &Signers{dir: dir, passphrase: passphrase, keys: map[string]ed25519.PrivateKey{}}
}

// memberKeyFormat names a member key file sealed with a passphrase:
// {"format":"coapp-member-key/v1","member":"…","sealed":{…}}; an unsealed
// one holds the base64 of the key's seed.
const memberKeyFormat = "coapp-member-key/v1"

type memberKeyFile struct {
	Format string                   `json:"format"`
	Member string                   `json:"member"`
	Sealed *pseudonym.PassphraseBox `json:"sealed"`
}

// Path is where member's key file is.
func (s *Signers) Path(member string) string {
	return filepath.Join(s.dir, Dir, hex.EncodeToString([]byte(member))+".key")
}

// Encode returns a key file's contents: sealed when the node has a
// passphrase.
func (s *Signers) Encode(member string, key ed25519.PrivateKey) ([]byte, error) {
	seed := base64.StdEncoding.EncodeToString(key.Seed())
	if len(s.passphrase) == 0 {
		return []byte(seed + "\n"), nil
	}
	box, err := pseudonym.SealWithPassphrase(key.Seed(), s.passphrase, []byte(memberKeyFormat+"|"+member))
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(memberKeyFile{Format: memberKeyFormat, Member: member, Sealed: box}, "", "  ")
	return append(b, '\n'), err
}

// decode reads a key file's contents.
func (s *Signers) decode(member, path string, b []byte) (ed25519.PrivateKey, error) {
	var seed []byte
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		var f memberKeyFile
		if err := json.Unmarshal(t, &f); err != nil || f.Format != memberKeyFormat || f.Member != member || f.Sealed == nil {
			return nil, fmt.Errorf("coapp: member key file %s is damaged", path)
		}
		plain, err := f.Sealed.Open(s.passphrase, []byte(memberKeyFormat+"|"+member))
		if err != nil {
			return nil, fmt.Errorf("coapp: member key file %s: %w", path, err)
		}
		seed = plain
	} else {
		var err error
		if seed, err = base64.StdEncoding.DecodeString(string(t)); err != nil {
			return nil, fmt.Errorf("coapp: member key file %s is damaged", path)
		}
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("coapp: member key file %s is damaged", path)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// Replace makes the key in file next member's key, in place of the old.
func (s *Signers) Replace(member, next string, key ed25519.PrivateKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[member] = key
	return os.Rename(next, s.Path(member))
}

// Key returns member's signing key on this node, creating it when absent.
func (s *Signers) Key(member string) (ed25519.PrivateKey, error) {
	return s.Load(member, true)
}

// Create makes a member's key file and returns its public key. It refuses
// to replace an existing key file.
func (s *Signers) Create(member string) (ed25519.PublicKey, error) {
	if _, err := os.Stat(s.Path(member)); err == nil {
		return nil, fmt.Errorf("coapp: %s already holds a key for %s", s.Path(member), member)
	}
	k, err := s.Key(member)
	if err != nil {
		return nil, err
	}
	return k.Public().(ed25519.PublicKey), nil
}

// ErrNoKey is Load's answer for a member without a key file here.
var ErrNoKey = errors.New("coapp: no signing key for this member on this node")

// Load returns member's signing key on this node; when there is none, a
// new one if create, else ErrNoKey.
func (s *Signers) Load(member string, create bool) (ed25519.PrivateKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[member]; ok {
		return k, nil
	}
	path := s.Path(member)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, err := s.decode(member, path, b)
		if err != nil {
			return nil, err
		}
		s.keys[member] = k
		return k, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	case !create:
		return nil, ErrNoKey
	}
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	data, err := s.Encode(member, k)
	if err != nil {
		return nil, err
	}
	if err := WriteFileSync(path, data); err != nil {
		return nil, err
	}
	s.keys[member] = k
	return k, nil
}

// WriteFileSync writes a new file, mode 0600, durably.
func WriteFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
