package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
)

// purger runs on every node. When the state machine has applied a Destroy,
// it removes the destroyed keys' other copies from this node's files: it
// snapshots with no trailing Raft log, so that the logs that carried the
// keys are deleted, and purged from the Raft store's files; then it removes
// the older snapshots, which held the keys too. The state machine already
// dropped them from the state database while applying the Destroy.
func (l *Ledger) purger() {
	defer l.done.Done()
	for {
		_, ch := l.fsm.purge.wait()
		if target := l.fsm.destroyed.Load(); target > l.purged.Load() {
			if err := l.purge(target); err != nil {
				l.logger.Error("purging destroyed keys failed; retrying at the next destroy or restart", "err", err)
			} else {
				l.purged.Store(target)
				if err := writeFileSync(filepath.Join(l.cfg.Dir, purgedFile), binary.BigEndian.AppendUint64(nil, target)); err != nil {
					l.logger.Error("recording the purge", "err", err)
				}
				l.purgeDone.notify()
				continue
			}
		}
		select {
		case <-ch:
		case <-l.closing:
			return
		}
	}
}

func (l *Ledger) purge(through uint64) error {
	rc := l.raft.ReloadableConfig()
	compact := rc
	compact.TrailingLogs = 0
	if err := l.raft.ReloadConfig(compact); err != nil {
		return fmt.Errorf("ledger: purge: %w", err)
	}
	defer func() { _ = l.raft.ReloadConfig(rc) }()
	l.logs.PurgeNextDelete()
	if err := l.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return fmt.Errorf("ledger: purge snapshot: %w", err)
	}
	metas, err := l.snaps.List()
	if err != nil {
		return fmt.Errorf("ledger: purge: %w", err)
	}
	if len(metas) == 0 || metas[0].Index < through {
		return fmt.Errorf("ledger: purge: no snapshot at or after raft index %d", through)
	}
	for _, m := range metas[1:] {
		if err := os.RemoveAll(filepath.Join(l.cfg.Dir, "snapshots", m.ID)); err != nil {
			return fmt.Errorf("ledger: purge: remove snapshot %s: %w", m.ID, err)
		}
	}
	l.logger.Info("destroyed keys purged from the raft log and snapshots", "through", through, "snapshot", metas[0].ID)
	return nil
}

// purgedFile, in Dir, records through which Raft index this node purged
// destroyed keys: a node local fact, not replicated.
const purgedFile = "purged"

func readPurged(dir string) uint64 {
	b, err := os.ReadFile(filepath.Join(dir, purgedFile))
	if err != nil || len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// Purged returns the Raft index through which destroyed keys have been
// purged from this node's files; 0 when none was.
func (l *Ledger) Purged() uint64 { return l.purged.Load() }

// WaitPurged waits until this node has purged the keys destroyed at or
// before Raft index index, or ctx ends.
func (l *Ledger) WaitPurged(ctx context.Context, index uint64) error {
	for {
		_, ch := l.purgeDone.wait()
		if l.purged.Load() >= index {
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
