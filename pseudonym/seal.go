package pseudonym

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// Overhead is what Seal adds to a plaintext: a 24-byte nonce and a 16-byte
// tag.
const Overhead = chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead

const kekInfo = "coapp/v1/kek"

// Seal encrypts plaintext under key with XChaCha20-Poly1305 and a random
// nonce, binding additional (authenticated, not encrypted) data such as the
// envelope of the entry the ciphertext travels in.
func Seal(key Secret, plaintext, additional []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key.bytes())
	if err != nil {
		return nil, err
	}
	out := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+len(plaintext)+chacha20poly1305.Overhead)
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("pseudonym: random: %w", err)
	}
	return aead.Seal(out, out, plaintext, additional), nil
}

// SealDeterministic is Seal with a synthetic nonce: SHA-256 of a label, the
// key, the additional data's length, the additional data and the plaintext,
// cut to 24 bytes. The same key, data and plaintext always give the same
// bytes (so that a retried write is the same write), and any change gives a
// fresh nonce. It reveals only whether two sealed values under one key,
// with the same additional data, are equal.
func SealDeterministic(key Secret, plaintext, additional []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key.bytes())
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write([]byte("coapp/v1/nonce\x00"))
	h.Write(key.bytes())
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(additional)))
	h.Write(n[:])
	h.Write(additional)
	h.Write(plaintext)
	var sum [sha256.Size]byte
	nonce := h.Sum(sum[:0])[:chacha20poly1305.NonceSizeX]
	out := make([]byte, 0, chacha20poly1305.NonceSizeX+len(plaintext)+chacha20poly1305.Overhead)
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plaintext, additional), nil
}

// Open decrypts what Seal made with the same key and additional data. A
// wrong key, wrong additional data or any changed byte gives an error
// wrapping ErrDecrypt.
func Open(key Secret, sealed, additional []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("%w: too short", ErrDecrypt)
	}
	aead, err := chacha20poly1305.NewX(key.bytes())
	if err != nil {
		return nil, err
	}
	nonce, ct := sealed[:chacha20poly1305.NonceSizeX], sealed[chacha20poly1305.NonceSizeX:]
	pt, err := aead.Open(nil, nonce, ct, additional)
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", ErrDecrypt)
	}
	return pt, nil
}

// kek returns the key-encryption key of a key version, derived once.
func (k *Keyring) kek(version uint32) (Secret, error) {
	k.mu.RLock()
	kek, cached := k.keks[version]
	secret, ok := k.secrets[version]
	k.mu.RUnlock()
	if cached {
		return kek, nil
	}
	if !ok {
		return Secret{}, fmt.Errorf("%w: version %d", ErrUnknownKey, version)
	}
	copy(kek.b[:], deriveKey(secret, kekInfo))
	k.mu.Lock()
	if k.keks == nil {
		k.keks = map[uint32]Secret{}
	}
	k.keks[version] = kek
	k.mu.Unlock()
	return kek, nil
}

// WrapKey encrypts a subject's data key under the current key-encryption
// key (derived from the federation secret), binding additional data such
// as the subject's pseudonym. The result starts with the key version.
func (k *Keyring) WrapKey(dataKey Secret, additional []byte) ([]byte, error) {
	v := k.Current()
	kek, err := k.kek(v)
	if err != nil {
		return nil, err
	}
	sealed, err := Seal(kek, dataKey.bytes(), additional)
	if err != nil {
		return nil, err
	}
	out := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(sealed)), v)
	return append(out, sealed...), nil
}

// UnwrapKey reverses WrapKey with the key version the wrapped key names.
func (k *Keyring) UnwrapKey(wrapped, additional []byte) (Secret, error) {
	if len(wrapped) < 4+Overhead+SecretSize {
		return Secret{}, fmt.Errorf("%w: wrapped key too short", ErrDecrypt)
	}
	kek, err := k.kek(binary.BigEndian.Uint32(wrapped))
	if err != nil {
		return Secret{}, err
	}
	pt, err := Open(kek, wrapped[4:], additional)
	if err != nil {
		return Secret{}, err
	}
	return SecretFromBytes(pt)
}
