package server

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/ledger"
	"coapp.coop/pseudonym"
)

// Each subject's record fields are sealed (XChaCha20-Poly1305) under a data
// key of their own, stored in the ledger's key store wrapped under a
// key-encryption key derived from the federation secret, under the name
// format.SubjectKeyName. Erasing a subject destroys that key on every
// replica: their records stay in the log (and the Merkle tree still
// verifies over the ciphertexts), but no replica, snapshot or later backup
// can open them.

// keyCache holds unwrapped data keys by the hash of their wrapped form, so
// that a key is unwrapped once; and, for publishing, each subject's key as
// last seen (subjectKey). A stale subject entry is harmless: the ledger
// checks every Append's keys against its key store, and a destroyed or
// replaced key fails the Append (and is forgotten here). Reads take a
// read lock only, so that concurrent publishers do not queue on it.
type keyCache struct {
	mu       sync.RWMutex
	keys     map[[sha256.Size]byte]pseudonym.Secret
	subjects map[pseudonym.Pseudonym]*subjectKey
}

// subjectKey is a subject's data key as the key store held it: its name
// there, the wrapped value and its SHA-256 (what a key requirement
// names), and the key unwrapped.
type subjectKey struct {
	name    []byte
	wrapped []byte
	hash    [sha256.Size]byte
	dk      pseudonym.Secret
}

const keyCacheMax = 100000

func (c *keyCache) subject(p pseudonym.Pseudonym) (*subjectKey, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	k, ok := c.subjects[p]
	return k, ok
}

func (c *keyCache) rememberSubject(p pseudonym.Pseudonym, k *subjectKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subjects == nil || len(c.subjects) >= keyCacheMax {
		c.subjects = map[pseudonym.Pseudonym]*subjectKey{}
	}
	c.subjects[p] = k
}

// forgetKey drops the remembered subject key of that name (an Append
// found it stale).
func (c *keyCache) forgetKey(name []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, k := range c.subjects {
		if string(k.name) == string(name) {
			delete(c.subjects, p)
			return
		}
	}
}

// forget drops erased subjects' keys from memory.
func (c *keyCache) forget(ps []pseudonym.Pseudonym) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range ps {
		if k, ok := c.subjects[p]; ok {
			delete(c.keys, k.hash)
			delete(c.subjects, p)
		}
	}
}

func (c *keyCache) unwrap(k *pseudonym.Keyring, name, wrapped []byte) (pseudonym.Secret, error) {
	h := sha256.Sum256(wrapped)
	c.mu.RLock()
	dk, ok := c.keys[h]
	c.mu.RUnlock()
	if ok {
		return dk, nil
	}
	dk, err := k.UnwrapKey(wrapped, name)
	if err != nil {
		return pseudonym.Secret{}, err
	}
	c.mu.Lock()
	if c.keys == nil || len(c.keys) >= keyCacheMax {
		c.keys = map[[sha256.Size]byte]pseudonym.Secret{}
	}
	c.keys[h] = dk
	c.mu.Unlock()
	return dk, nil
}

// subjectKeys returns the data key of each subject, read from the ledger on
// this node, creating the missing ones; and the key requirements that tie
// an Append to exactly those keys. Keys it creates are returned apart, to
// be remembered only once the Append that creates them succeeds: another
// writer may win the race.
func (s *Service) subjectKeys(ctx context.Context, subjects []pseudonym.Pseudonym) (map[pseudonym.Pseudonym]pseudonym.Secret, []ledger.KeyRequirement, map[pseudonym.Pseudonym]*subjectKey, error) {
	keys := make(map[pseudonym.Pseudonym]pseudonym.Secret, len(subjects))
	created := map[pseudonym.Pseudonym]*subjectKey{}
	reqs := make([]ledger.KeyRequirement, 0, len(subjects))
	var missing []pseudonym.Pseudonym
	for _, p := range subjects {
		if _, done := keys[p]; done {
			continue
		}
		if k, ok := s.cache.subject(p); ok {
			keys[p] = k.dk
			reqs = append(reqs, ledger.KeyRequirement{Name: k.name, Hash: k.hash})
			continue
		}
		keys[p] = pseudonym.Secret{}
		missing = append(missing, p)
	}
	if len(missing) == 0 {
		return keys, reqs, created, nil
	}
	wrapped := make([][]byte, len(missing))
	read := func(v *ledger.View) error {
		for i, p := range missing {
			w, err := v.Key(format.SubjectKeyName(p))
			switch {
			case errors.Is(err, ledger.ErrKeyDestroyed):
				return fmt.Errorf("%w: %s", api.ErrErased, p)
			case errors.Is(err, ledger.ErrNotFound):
				w = nil
			case err != nil:
				return err
			}
			wrapped[i] = w
		}
		return nil
	}
	if err := s.ledger.Read(ctx, ledger.Stale, read); err != nil {
		return nil, nil, nil, err
	}
	for i, p := range missing {
		name, w := format.SubjectKeyName(p), wrapped[i]
		if w == nil {
			dk, err := pseudonym.NewSecret()
			if err != nil {
				return nil, nil, nil, err
			}
			if w, err = s.keys.WrapKey(dk, name); err != nil {
				return nil, nil, nil, err
			}
			keys[p] = dk
			req := ledger.NewKey(name, w)
			reqs = append(reqs, req)
			created[p] = &subjectKey{name: name, wrapped: w, hash: req.Hash, dk: dk}
			continue
		}
		dk, err := s.cache.unwrap(s.keys, name, w)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("coapp: subject key %s: %w", p, err)
		}
		keys[p] = dk
		req := ledger.ExistingKey(name, w)
		reqs = append(reqs, req)
		s.cache.rememberSubject(p, &subjectKey{name: name, wrapped: w, hash: req.Hash, dk: dk})
	}
	return keys, reqs, created, nil
}

// DataKey reads a subject's data key from the key store in v:
// api.ErrErased when it was destroyed, format.ErrUnreadable when it does not
// unwrap. legacy asks for the key of records in the JSON payload format.
func (s *Service) DataKey(v *ledger.View, p pseudonym.Pseudonym, legacy bool) (pseudonym.Secret, error) {
	name := format.SubjectKeyName(p)
	if legacy {
		name = format.LegacyKeyName(p)
	}
	w, err := v.Key(name)
	if errors.Is(err, ledger.ErrKeyDestroyed) {
		return pseudonym.Secret{}, api.ErrErased
	}
	if err != nil {
		return pseudonym.Secret{}, err
	}
	dk, err := s.cache.unwrap(s.keys, name, w)
	if err != nil {
		return pseudonym.Secret{}, fmt.Errorf("%w: subject key %s: %v", format.ErrUnreadable, p, err)
	}
	return dk, nil
}

// openRecord decrypts a stored record's fields on this node, reading the
// subject's key from v. An erased subject's record gives api.ErrErased.
func (s *Service) openRecord(v *ledger.View, e ledger.Entry) (format.RecordPayload, map[string]json.RawMessage, error) {
	p, err := format.DecodeRecordPayload(e.Payload)
	if err != nil {
		return p, nil, fmt.Errorf("coapp: record %s: %w", e.ID, err)
	}
	if len(p.Box) == 0 {
		return p, nil, nil
	}
	dk, err := s.DataKey(v, p.Subject, format.IsLegacyPayload(e.Payload))
	if err != nil {
		return p, nil, err
	}
	fields, err := format.OpenFields(dk, e, &p)
	return p, fields, err
}
