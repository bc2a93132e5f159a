package ledger

// The state's side of the purge: its markers, the forced drop of their
// keys, and what a crash in the middle leaves to put back.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// markers lists the purge markers in the state.
func (f *fsm) markers() ([]marker, error) {
	var out []marker
	err := f.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte{prefixPurge}
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			fp, ok := decodeFingerprint(v)
			if len(k) < 9 || !ok {
				return corrupt("purge marker %x is damaged", k)
			}
			out = append(out, marker{index: binary.BigEndian.Uint64(k[1:9]), name: k[9:], fp: fp})
		}
		return nil
	})
	return out, storageErr(err)
}

// undropped reports whether some marker's key was not dropped from the
// state's files by this process yet.
func (f *fsm) undropped(ms []marker) bool {
	f.dropMu.Lock()
	defer f.dropMu.Unlock()
	for _, m := range ms {
		if !f.dropped[string(purgeKey(m.index, m.name))] {
			return true
		}
	}
	return false
}

func (f *fsm) forgetDropped() {
	f.dropMu.Lock()
	f.dropped = nil
	f.dropMu.Unlock()
}

// dropKeys removes every version of the markers' keys from the state's
// memtables and tables, then writes their tombstones back. A key that one
// of the names prefixes (DropPrefix drops by prefix) is saved first under
// prefixKeep, in its own transaction, and written back after: a crash in
// between leaves it saved, and load writes it back (restoreKept). Applies,
// reads and snapshots wait while it runs: Badger refuses writes during a
// DropPrefix, and a snapshot's read must not see keys disappear under it.
func (f *fsm) dropKeys(ms []marker) error {
	if len(ms) == 0 {
		return nil
	}
	f.waitPersists()
	f.restoreMu.Lock()
	defer f.restoreMu.Unlock()
	names := map[string]bool{}
	var prefixes [][]byte
	for _, m := range ms {
		if !names[string(m.name)] {
			names[string(m.name)] = true
			prefixes = append(prefixes, storeKey(prefixKey, m.name))
		}
	}
	// The keys the names prefix, and not themselves destroyed here.
	keep := map[string][]byte{}
	err := f.db.View(func(txn *badger.Txn) error {
		for _, p := range prefixes {
			opts := badger.DefaultIteratorOptions
			opts.Prefix = p
			it := txn.NewIterator(opts)
			for it.Rewind(); it.Valid(); it.Next() {
				k := it.Item().KeyCopy(nil)
				if names[string(k[1:])] {
					continue
				}
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					it.Close()
					return err
				}
				keep[string(k)] = v
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return storageErr(err)
	}
	if len(keep) > 0 {
		if err := f.db.Update(func(txn *badger.Txn) error {
			for k, v := range keep {
				if err := txn.Set(append([]byte{prefixKeep}, k...), v); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return storageErr(err)
		}
	}
	if err := f.db.DropPrefix(prefixes...); err != nil {
		return fmt.Errorf("ledger: drop destroyed keys: %w", storageErr(err))
	}
	if err := f.db.Update(func(txn *badger.Txn) error {
		for name := range names {
			if err := txn.Set(storeKey(prefixKey, []byte(name)), []byte{}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return storageErr(err)
	}
	if err := f.restoreKept(); err != nil {
		return err
	}
	f.dropMu.Lock()
	if f.dropped == nil {
		f.dropped = map[string]bool{}
	}
	for _, m := range ms {
		f.dropped[string(purgeKey(m.index, m.name))] = true
	}
	f.dropMu.Unlock()
	return nil
}

// restoreKept writes back the keys a purge saved under prefixKeep, and
// removes the saved copies.
func (f *fsm) restoreKept() error {
	return storageErr(f.db.Update(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte{prefixKeep}
		it := txn.NewIterator(opts)
		defer it.Close()
		var saved [][2][]byte
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			saved = append(saved, [2][]byte{it.Item().KeyCopy(nil), v})
		}
		for _, kv := range saved {
			if err := txn.Set(kv[0][1:], kv[1]); err != nil {
				return err
			}
			if err := txn.Delete(kv[0]); err != nil {
				return err
			}
		}
		return nil
	}))
}

// reassertTombstones writes the tombstone of every marker's key: a crash
// between a purge's DropPrefix and its write-back leaves markers whose
// keys have no tombstone.
func (f *fsm) reassertTombstones() error {
	ms, err := f.markers()
	if err != nil || len(ms) == 0 {
		return err
	}
	return storageErr(f.db.Update(func(txn *badger.Txn) error {
		for _, m := range ms {
			k := storeKey(prefixKey, m.name)
			item, err := txn.Get(k)
			if err == nil && item.ValueSize() == 0 {
				continue
			}
			if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
			if err := txn.Set(k, []byte{}); err != nil {
				return err
			}
		}
		return nil
	}))
}

// removeMarkers removes purge markers once their values are verified gone.
func (f *fsm) removeMarkers(ms []marker) error {
	if len(ms) == 0 {
		return nil
	}
	return storageErr(f.db.Update(func(txn *badger.Txn) error {
		for _, m := range ms {
			if err := txn.Delete(purgeKey(m.index, m.name)); err != nil {
				return err
			}
		}
		return nil
	}))
}

// runGC rewrites the state's value-log files that are mostly garbage.
func (f *fsm) runGC() error {
	for {
		err := f.db.RunValueLogGC(0.5)
		switch {
		case err == nil:
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			return nil
		default:
			return fmt.Errorf("ledger: state value log: %w", storageErr(err))
		}
	}
}

// waitPersists waits until no snapshot is being written: a purge waiting
// for the state's lock would hold every apply behind a long snapshot.
func (f *fsm) waitPersists() {
	for f.persisting.Load() > 0 {
		time.Sleep(10 * time.Millisecond)
	}
}

// liveKeys returns the fingerprints of the key store's live values, by
// name: before a restore replaces the state, so that the values the
// snapshot destroyed get purge markers.
func (f *fsm) liveKeys() (map[string]fingerprint, error) {
	out := map[string]fingerprint{}
	err := f.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte{prefixKey}
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if it.Item().ValueSize() == 0 {
				continue
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out[string(it.Item().Key()[1:])] = newFingerprint(v)
		}
		return nil
	})
	return out, storageErr(err)
}
