package ledger

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// The purger runs on every node. Once the state machine has applied a
// Destroy, or restored a snapshot that holds one, it removes every other
// copy of the destroyed values from this node's files, then checks:
//
//  1. the state database: the keys' older versions are dropped from its
//     memtables and tables (Badger's DropPrefix of each key exactly; the
//     tombstones, and any key a destroyed name prefixes, are written back);
//  2. the Raft log: a snapshot at or after the destruction is taken when
//     there is none, then every log through the destruction is removed
//     from the Raft store's files (the logs that carried the values were
//     written long before, and usually compacted already: their bytes are
//     in the tables until a compaction merges them, which Purge forces);
//  3. snapshots taken before the destruction are removed;
//  4. the value logs are collected;
//  5. every file under the node's directory is scanned for the values'
//     fingerprints. Only then is the purge verified, and the markers that
//     held the fingerprints removed.
//
// It runs PurgeDelay (and up to half as much again, at random) after a
// Destroy is committed or a snapshot restored, so that one round covers
// the erasures committed meanwhile, and again on a
// timer (Config.PurgeRetry) while anything is left to do: a purge that
// fails (a configuration change not yet committed, a disk error) is tried
// again. Every step is idempotent, and a restart resumes from the markers.

// PurgeStatus is how far a node has purged destroyed keys from its files.
type PurgeStatus struct {
	// Destroyed is the Raft index of the last Destroy this node applied
	// (or found in a snapshot it restored); 0 when none.
	Destroyed uint64
	// Purged is the Raft index through which the copies were removed from
	// this node's files, and PurgedAt when.
	Purged   uint64
	PurgedAt time.Time
	// Verified is the Raft index through which a scan of every file of
	// the node found none of the destroyed values, and VerifiedAt when.
	Verified   uint64
	VerifiedAt time.Time
	// Pending is how many destroyed values this node has yet to verify
	// gone, and Since when it first saw the oldest of them (this node's
	// clock; zero when none is pending).
	Pending int
	Since   time.Time
	// Error says why the last purge or check failed, if it did; Found are
	// the files where the last check found a destroyed value.
	Error string
	Found []string
	// Rounds is how many purge rounds (each a snapshot, a flush and
	// compaction of both stores) this node ran since it opened: with
	// Config.PurgeDelay, one round covers the erasures committed together.
	Rounds uint64
}

// purgeRecord is what Dir/purged keeps of the status across restarts.
type purgeRecord struct {
	Purged     uint64    `json:"purged"`
	PurgedAt   time.Time `json:"purged_at,omitzero"`
	Verified   uint64    `json:"verified"`
	VerifiedAt time.Time `json:"verified_at,omitzero"`
}

// purgedFile, in Dir, records through which Raft index this node purged
// and verified destroyed keys: a node-local fact, not replicated.
const purgedFile = "purged"

func readPurged(dir string) purgeRecord {
	b, err := os.ReadFile(filepath.Join(dir, purgedFile))
	if err != nil {
		return purgeRecord{}
	}
	if len(b) == 8 { // the first format: the purged index alone
		return purgeRecord{Purged: binary.BigEndian.Uint64(b)}
	}
	var r purgeRecord
	if json.Unmarshal(b, &r) != nil {
		return purgeRecord{}
	}
	return r
}

func (l *Ledger) writePurged(r purgeRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return writeFileSync(filepath.Join(l.cfg.Dir, purgedFile), b)
}

// purgeFault, set by tests only, makes a purge fail before it starts.
var purgeFault func() error

// marker is a destroyed key's purge marker.
type marker struct {
	index uint64
	name  []byte
	fp    fingerprint
}

// purger is the node's purge loop.
func (l *Ledger) purger() {
	defer l.done.Done()
	for {
		_, ch := l.fsm.purge.wait()
		more, err := l.purgeOnce()
		l.purgeMu.Lock()
		if err != nil {
			l.purgeErr = err.Error()
			l.logger.Error("purging destroyed keys failed; retrying", "err", err, "in", l.cfg.PurgeRetry)
		} else {
			l.purgeErr = ""
		}
		l.purgeMu.Unlock()
		var retry <-chan time.Time
		if more || err != nil {
			retry = time.After(l.cfg.PurgeRetry)
		}
		select {
		case <-ch:
			// Let the erasures that follow this one gather into one round.
			if !l.sleep(l.purgeDelay()) {
				return
			}
		case <-retry:
		case <-l.closing:
			return
		}
	}
}

// purgeDelay is PurgeDelay, plus up to half as much at random.
func (l *Ledger) purgeDelay() time.Duration {
	d := l.cfg.PurgeDelay
	if d <= 0 {
		return 0
	}
	return d + rand.N(d/2+1)
}

// sleep waits d, or until the ledger closes: then it reports false.
func (l *Ledger) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.closing:
		return false
	}
}

// purgeOnce does what is left to do; more reports that something still
// is (a check that found a value: the next round purges again).
func (l *Ledger) purgeOnce() (more bool, err error) {
	if purgeFault != nil {
		if err := purgeFault(); err != nil {
			return true, err
		}
	}
	target := l.fsm.destroyed.Load()
	markers, err := l.fsm.markers()
	if err != nil {
		return true, err
	}
	l.notePending(markers)
	rec := l.purgeRecord()
	if target <= rec.Purged && len(markers) == 0 {
		return false, nil
	}
	if target > rec.Purged || l.fsm.undropped(markers) {
		if err := l.purgeStores(target, markers); err != nil {
			return true, err
		}
		rec.Purged, rec.PurgedAt = max(rec.Purged, target), time.Now().UTC()
		if err := l.setPurgeRecord(rec); err != nil {
			return true, err
		}
		l.logger.Info("destroyed keys purged from the state, the raft log and the snapshots", "through", rec.Purged)
	}
	// The check: no file of this node holds a destroyed value.
	fps := make([]fingerprint, len(markers))
	for i, m := range markers {
		fps[i] = m.fp
	}
	t0 := time.Now()
	found, err := scanFiles([]string{l.cfg.Dir}, fps)
	l.logger.Debug("purge check", "markers", len(markers), "took", time.Since(t0), "found", len(found))
	l.purgeMu.Lock()
	l.purgeFound = found
	l.purgeMu.Unlock()
	if err != nil {
		return true, fmt.Errorf("ledger: check the purge: %w", err)
	}
	if len(found) > 0 {
		l.fsm.forgetDropped() // drop them again next round
		return true, fmt.Errorf("ledger: a destroyed key's value is still in %s", strings.Join(found, ", "))
	}
	if err := l.fsm.removeMarkers(markers); err != nil {
		return true, err
	}
	rec.Verified, rec.VerifiedAt = rec.Purged, time.Now().UTC()
	if err := l.setPurgeRecord(rec); err != nil {
		return true, err
	}
	l.notePending(nil)
	l.purgeDone.notify()
	l.logger.Info("purge verified: no file of this node holds a destroyed key", "through", rec.Verified)
	return false, nil
}

// purgeStores removes the destroyed values from the files of both stores
// and the snapshots: the markers' keys in the state, the logs through
// target, and every snapshot before it. Each store's writes wait while
// Badger flushes its memtables, the only way it has to get a delete into
// the tables (DropPrefix); PurgeDelay gathers erasures into fewer rounds.
func (l *Ledger) purgeStores(target uint64, markers []marker) error {
	l.purgeRounds.Add(1)
	start := time.Now()
	if err := l.fsm.dropKeys(markers); err != nil {
		return err
	}
	dropped := time.Now()
	if target > 0 {
		if err := l.snapshotAtLeast(target); err != nil {
			return err
		}
	}
	snapped := time.Now()
	if target > 0 {
		if err := l.logs.Purge(target); err != nil {
			return fmt.Errorf("ledger: purge the raft log: %w", err)
		}
		if err := l.removeSnapshotsBefore(target); err != nil {
			return err
		}
	}
	logged := time.Now()
	if err := l.logs.RunGC(); err != nil {
		return fmt.Errorf("ledger: raft value log: %w", err)
	}
	if err := l.fsm.runGC(); err != nil {
		return err
	}
	l.logger.Debug("purge round", "markers", len(markers), "state", dropped.Sub(start),
		"snapshot", snapped.Sub(dropped), "raft_log", logged.Sub(snapped), "gc", time.Since(logged))
	return nil
}

// snapshotAtLeast makes sure a snapshot at or after Raft index index
// exists, taking one when needed: the logs before it can then go.
func (l *Ledger) snapshotAtLeast(index uint64) error {
	if metas, err := l.snaps.List(); err == nil && len(metas) > 0 && metas[0].Index >= index {
		return nil
	}
	if err := l.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return fmt.Errorf("ledger: purge snapshot: %w", err)
	}
	metas, err := l.snaps.List()
	if err != nil {
		return fmt.Errorf("ledger: purge: %w", err)
	}
	if len(metas) == 0 || metas[0].Index < index {
		return fmt.Errorf("ledger: purge: no snapshot at or after raft index %d yet", index)
	}
	return nil
}

// removeSnapshotsBefore removes the snapshots taken before Raft index
// index: they hold the values destroyed there. The newest stays.
func (l *Ledger) removeSnapshotsBefore(index uint64) error {
	metas, err := l.snaps.List()
	if err != nil {
		return fmt.Errorf("ledger: purge: %w", err)
	}
	for i, m := range metas {
		if i == 0 || m.Index >= index {
			continue
		}
		if err := os.RemoveAll(filepath.Join(l.cfg.Dir, "snapshots", m.ID)); err != nil {
			return fmt.Errorf("ledger: purge: remove snapshot %s: %w", m.ID, err)
		}
	}
	return nil
}

func (l *Ledger) purgeRecord() purgeRecord {
	l.purgeMu.Lock()
	defer l.purgeMu.Unlock()
	return l.purgeRec
}

func (l *Ledger) setPurgeRecord(r purgeRecord) error {
	l.purgeMu.Lock()
	l.purgeRec = r
	l.purgeMu.Unlock()
	l.purged.Store(r.Purged)
	if err := l.writePurged(r); err != nil {
		return fmt.Errorf("ledger: record the purge: %w", err)
	}
	return nil
}

// notePending remembers when this node first saw each pending marker.
func (l *Ledger) notePending(ms []marker) {
	l.purgeMu.Lock()
	defer l.purgeMu.Unlock()
	now := time.Now().UTC()
	seen := make(map[uint64]time.Time, len(ms))
	for _, m := range ms {
		if t, ok := l.pendingSince[m.index]; ok {
			seen[m.index] = t
		} else {
			seen[m.index] = now
		}
	}
	l.pendingSince = seen
	l.pendingCount = len(ms)
}

// PurgeStatus reports how far this node has purged destroyed keys.
func (l *Ledger) PurgeStatus() PurgeStatus {
	l.purgeMu.Lock()
	defer l.purgeMu.Unlock()
	st := PurgeStatus{
		Destroyed: l.fsm.destroyed.Load(), Purged: l.purgeRec.Purged, PurgedAt: l.purgeRec.PurgedAt,
		Verified: l.purgeRec.Verified, VerifiedAt: l.purgeRec.VerifiedAt,
		Pending: l.pendingCount, Error: l.purgeErr, Found: append([]string(nil), l.purgeFound...),
		Rounds: l.purgeRounds.Load(),
	}
	for _, t := range l.pendingSince {
		if st.Since.IsZero() || t.Before(st.Since) {
			st.Since = t
		}
	}
	return st
}

// Purged returns the Raft index through which destroyed keys have been
// purged from this node's files; 0 when none was.
func (l *Ledger) Purged() uint64 { return l.purged.Load() }

// WaitPurged waits until this node has purged the keys destroyed at or
// before Raft index index from its files, and verified that none of their
// values is left in them, or ctx ends.
func (l *Ledger) WaitPurged(ctx context.Context, index uint64) error {
	for {
		_, ch := l.purgeDone.wait()
		if l.purgeRecord().Verified >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-l.closing:
			return ErrClosed
		}
	}
}

// The state machine's side of the purge.

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
