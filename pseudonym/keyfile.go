package pseudonym

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/crypto/argon2"
)

// A key file holds the versions of the federation secret, optionally
// sealed with a passphrase (Argon2id, then XChaCha20-Poly1305):
//
//	{"format":"coapp-keyfile/v1","current":2,
//	 "keys":[{"version":1,"secret":"<base64>"},...]}          unsealed
//	{"format":"coapp-keyfile/v1","current":2,
//	 "sealed":{"kdf":"argon2id","time":3,"memory_kib":65536,"threads":2,
//	           "salt":"<base64>","box":"<base64>"}}              sealed
//
// where the box seals the JSON of "keys". The file is written with mode
// 0600. It reaches each node out of band; the secret is never written to
// the ledger, the Raft log or a log.
const keyFileFormat = "coapp-keyfile/v1"

type keyFileJSON struct {
	Format  string         `json:"format"`
	Current uint32         `json:"current"`
	Keys    []keyJSON      `json:"keys,omitempty"`
	Sealed  *PassphraseBox `json:"sealed,omitempty"`
}

type keyJSON struct {
	Version uint32 `json:"version"`
	Secret  string `json:"secret"`
}

// PassphraseBox is data sealed with a passphrase: a key derived with
// Argon2id (its parameters and salt recorded), then XChaCha20-Poly1305.
// Key files use it, and so do other secrets kept on disk (members' signing
// keys).
type PassphraseBox struct {
	KDF       string `json:"kdf"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
	Salt      string `json:"salt"`
	Box       string `json:"box"`
}

// Argon2id cost for sealing key files: 3 passes over 64 MiB, 2 lanes.
var argonTime, argonMemoryKiB, argonThreads uint32 = 3, 64 << 10, 2

// WriteKeyFile writes the keyring to path, sealed with passphrase unless it
// is empty. The file is created with mode 0600 and replaced atomically.
func WriteKeyFile(path string, k *Keyring, passphrase []byte) error {
	k.mu.RLock()
	kf := keyFileJSON{Format: keyFileFormat, Current: k.current}
	var keys []keyJSON
	for _, v := range k.versionsLocked() {
		s := k.secrets[v]
		keys = append(keys, keyJSON{Version: v, Secret: s.encoded()})
	}
	k.mu.RUnlock()
	if len(passphrase) == 0 {
		kf.Keys = keys
	} else {
		plain, err := json.Marshal(keys)
		if err != nil {
			return err
		}
		if kf.Sealed, err = SealWithPassphrase(plain, passphrase, []byte(keyFileFormat)); err != nil {
			return err
		}
	}
	data, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("pseudonym: write key file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pseudonym: write key file: %w", err)
	}
	return nil
}

// SealWithPassphrase seals plain with a key derived from passphrase
// (Argon2id, 3 passes over 64 MiB, a random salt), bound to additional.
func SealWithPassphrase(plain, passphrase, additional []byte) (*PassphraseBox, error) {
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("%w: empty passphrase", ErrInvalid)
	}
	var salt [16]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return nil, err
	}
	box, err := Seal(passphraseKey(passphrase, salt[:], argonTime, argonMemoryKiB, uint8(argonThreads)), plain, additional)
	if err != nil {
		return nil, err
	}
	return &PassphraseBox{KDF: "argon2id", Time: argonTime, MemoryKiB: argonMemoryKiB, Threads: uint8(argonThreads),
		Salt: base64.StdEncoding.EncodeToString(salt[:]), Box: base64.StdEncoding.EncodeToString(box)}, nil
}

// Open opens a box sealed with SealWithPassphrase: a wrong passphrase or
// damaged box gives an error wrapping ErrDecrypt, a malformed one
// ErrInvalid.
func (b *PassphraseBox) Open(passphrase, additional []byte) ([]byte, error) {
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("%w: sealed with a passphrase; a passphrase is needed", ErrDecrypt)
	}
	salt, err1 := base64.StdEncoding.DecodeString(b.Salt)
	box, err2 := base64.StdEncoding.DecodeString(b.Box)
	if b.KDF != "argon2id" || err1 != nil || err2 != nil || b.Time == 0 || b.MemoryKiB == 0 || b.Threads == 0 || b.MemoryKiB > 4<<20 || b.Time > 100 {
		return nil, fmt.Errorf("%w: malformed sealed box", ErrInvalid)
	}
	plain, err := Open(passphraseKey(passphrase, salt, b.Time, b.MemoryKiB, b.Threads), box, additional)
	if err != nil {
		return nil, fmt.Errorf("%w: wrong passphrase or damaged box", ErrDecrypt)
	}
	return plain, nil
}

func passphraseKey(passphrase, salt []byte, time, memKiB uint32, threads uint8) Secret {
	var s Secret
	copy(s.b[:], argon2.IDKey(passphrase, salt, time, memKiB, threads, SecretSize))
	return s
}

// ReadKeyFile reads a key file written by WriteKeyFile. A sealed file needs
// its passphrase: a wrong one gives an error wrapping ErrDecrypt; a
// malformed file, ErrInvalid.
func ReadKeyFile(path string, passphrase []byte) (*Keyring, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pseudonym: read key file: %w", err)
	}
	var kf keyFileJSON
	if err := json.Unmarshal(data, &kf); err != nil || kf.Format != keyFileFormat {
		return nil, fmt.Errorf("%w: %s is not a coapp key file", ErrInvalid, path)
	}
	keys := kf.Keys
	if kf.Sealed != nil {
		if len(passphrase) == 0 {
			return nil, fmt.Errorf("%w: the key file is sealed; a passphrase is needed", ErrDecrypt)
		}
		plain, err := kf.Sealed.Open(passphrase, []byte(keyFileFormat))
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(plain, &keys); err != nil {
			return nil, fmt.Errorf("%w: malformed sealed key set", ErrInvalid)
		}
	}
	secrets := map[uint32]Secret{}
	for _, kj := range keys {
		raw, err := base64.StdEncoding.DecodeString(kj.Secret)
		if err != nil {
			return nil, fmt.Errorf("%w: key version %d is not base64", ErrInvalid, kj.Version)
		}
		s, err := SecretFromBytes(raw)
		if err != nil {
			return nil, err
		}
		if _, dup := secrets[kj.Version]; dup || kj.Version == 0 || kj.Version > kf.Current {
			return nil, fmt.Errorf("%w: bad or repeated key version %d", ErrInvalid, kj.Version)
		}
		secrets[kj.Version] = s
	}
	k, err := NewKeyring(kf.Current, secrets[kf.Current])
	if err != nil {
		return nil, fmt.Errorf("%w: the current key version %d is missing", ErrInvalid, kf.Current)
	}
	for v, s := range secrets {
		k.secrets[v] = s
	}
	return k, nil
}

func (k *Keyring) versionsLocked() []uint32 {
	out := make([]uint32, 0, len(k.secrets))
	for v := range k.secrets {
		out = append(out, v)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
