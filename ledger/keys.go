package ledger

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
)

// The key store is a small replicated map beside the log, outside the
// Merkle tree, for key material that must be destroyable: a subject's data
// key, wrapped. An Append may require keys (KeyRequirement): create one if
// absent, or check that one still holds the value the caller used. Destroy
// removes keys on every replica for good: it leaves a tombstone, drops the
// value from the state database's files, and compacts the Raft log and the
// snapshots so that no copy stays on disk (see Purged).

var (
	// ErrKeyDestroyed is returned when an Append requires a key that was
	// destroyed, and by View.Key for one.
	ErrKeyDestroyed = errors.New("ledger: key destroyed")

	// ErrKeyConflict is returned when an Append requires a key with a
	// value other than the one the key store holds (another writer
	// created it first: read it and retry).
	ErrKeyConflict = errors.New("ledger: key holds another value")
)

const (
	maxKeyName = 256
	// maxKeyValue keeps a key's value inline in the state's tables (below
	// the value log's threshold, 1 KiB), so that a purge reaches every
	// copy of it.
	maxKeyValue = 1000
)

// KeyRequirement ties an Append to the key store. With Create set, the key
// Name is created with that value when absent; otherwise the key must
// exist. Either way, Hash must be the SHA-256 of the value the caller used,
// and the key's value must have it; a destroyed key fails the Append with
// ErrKeyDestroyed, another value with ErrKeyConflict, a missing key with
// ErrNotFound. Nothing of the Append is written then.
type KeyRequirement struct {
	Name   []byte
	Create []byte
	Hash   [sha256.Size]byte
}

// NewKey returns the requirement that creates a key with value, or finds it
// with that value.
func NewKey(name, value []byte) KeyRequirement {
	return KeyRequirement{Name: name, Create: value, Hash: sha256.Sum256(value)}
}

// ExistingKey returns the requirement that a key still holds value; only
// the value's hash travels in the command.
func ExistingKey(name, value []byte) KeyRequirement {
	return KeyRequirement{Name: name, Hash: sha256.Sum256(value)}
}

func (k *KeyRequirement) validate(i int) error {
	bad := func(reason string) error {
		return &ValidationError{Entry: -1, Field: fmt.Sprintf("keys[%d]", i), Reason: reason}
	}
	switch {
	case len(k.Name) == 0 || len(k.Name) > maxKeyName:
		return bad("name must be 1 to 256 bytes")
	case k.Create != nil && (len(k.Create) == 0 || len(k.Create) > maxKeyValue):
		return bad("value must be 1 to 1000 bytes")
	case k.Create != nil && sha256.Sum256(k.Create) != k.Hash:
		return bad("hash does not match the value")
	}
	return nil
}

// KeyError reports which key failed an Append, wrapping ErrKeyDestroyed,
// ErrKeyConflict or ErrNotFound.
type KeyError struct {
	Name []byte
	Err  error
}

// Error names the key and the failure.
func (e *KeyError) Error() string { return fmt.Sprintf("%v: %q", e.Err, e.Name) }

// Unwrap returns the sentinel.
func (e *KeyError) Unwrap() error { return e.Err }

// Destroy destroys the named keys on every replica, each key exactly (a
// name that prefixes another destroys only itself). It returns once the
// destruction is committed; the values are then gone from every replica's
// key store. Each replica then purges its files, in the background: the
// state database's older copies, the Raft logs that carried the values
// (behind a snapshot taken after the destruction) and older snapshots;
// then it scans its files for the values' fingerprints (PurgeStatus
// reports how far it got, WaitPurged waits). Destroying a key that does
// not exist leaves a tombstone, so it can never be created.
//
// It returns the Raft index of the destruction, for WaitPurged.
func (l *Ledger) Destroy(ctx context.Context, names ...[]byte) (uint64, error) {
	if len(names) == 0 {
		return 0, nil
	}
	for i, n := range names {
		if len(n) == 0 || len(n) > maxKeyName {
			return 0, &ValidationError{Entry: -1, Field: fmt.Sprintf("names[%d]", i), Reason: "must be 1 to 256 bytes"}
		}
	}
	if err := l.awaitLeadership(ctx); err != nil {
		return 0, err
	}
	f := l.raft.Apply(encodeDestroy(names), l.cfg.ApplyTimeout)
	if err := l.await(ctx, f); err != nil {
		return 0, err
	}
	if err, ok := f.Response().(error); ok && err != nil {
		return 0, err
	}
	return f.Index(), nil
}

// Key returns the value of a key in the key store; ErrNotFound when it was
// never created, ErrKeyDestroyed when it was destroyed.
func (v *View) Key(name []byte) ([]byte, error) {
	return v.r.key(name)
}

// keyHashCache maps key names to the SHA-256 of their values, for the
// state machine's goroutine only. It holds at most keyHashCacheSize names
// and forgets them all when full: a miss costs one lookup.
type keyHashCache struct {
	m map[string][sha256.Size]byte
}

const keyHashCacheSize = 1 << 16

func (c *keyHashCache) get(name []byte) ([sha256.Size]byte, bool) {
	h, ok := c.m[string(name)]
	return h, ok
}

func (c *keyHashCache) put(name []byte, h [sha256.Size]byte) {
	if c.m == nil || len(c.m) >= keyHashCacheSize {
		c.m = make(map[string][sha256.Size]byte)
	}
	c.m[string(name)] = h
}

func (c *keyHashCache) drop(name []byte) { delete(c.m, string(name)) }
