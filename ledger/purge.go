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
