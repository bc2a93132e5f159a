package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"

	"coapp.coop/ledger/merkle"
)

// Consistency is how fresh a read must be, as in rqlite and etcd.
type Consistency int

const (
	// Leader reads on the node that believes it leads, without checking
	// with a quorum: fresh unless a new leader was elected within the last
	// LeaderLeaseTimeout. A follower returns ErrNotLeader. The default.
	Leader Consistency = iota

	// Stale reads this node's state as it is, leader or not: fast and
	// always available, possibly behind.
	Stale

	// Linearizable reads on the leader after confirming with a quorum that
	// it still leads and waiting until it has applied everything committed
	// when the read began: it sees every write acknowledged before it.
	Linearizable
)

// String returns "leader", "stale" or "linearizable".
func (c Consistency) String() string {
	switch c {
	case Leader:
		return "leader"
	case Stale:
		return "stale"
	case Linearizable:
		return "linearizable"
	}
	return fmt.Sprintf("Consistency(%d)", int(c))
}

// ParseConsistency parses "stale", "leader" or "linearizable"; the empty
// string gives Leader.
func ParseConsistency(s string) (Consistency, error) {
	switch s {
	case "", "leader":
		return Leader, nil
	case "stale":
		return Stale, nil
	case "linearizable":
		return Linearizable, nil
	}
	return 0, &ValidationError{Entry: -1, Field: "consistency", Reason: "not one of stale, leader, linearizable"}
}

// Read runs fn with a View of the state at the given consistency. Every read
// through the view sees the same size and root. The view is valid only
// inside fn; fn must not call other Ledger methods, and should be short: a
// snapshot restore waits for it.
func (l *Ledger) Read(ctx context.Context, c Consistency, fn func(*View) error) error {
	l.lifeMu.RLock()
	defer l.lifeMu.RUnlock()
	if l.closed.Load() {
		return ErrClosed
	}
	if err := l.ensure(ctx, c); err != nil {
		return err
	}
	if err := l.fsm.err(); err != nil {
		return err
	}
	l.fsm.restoreMu.RLock()
	defer l.fsm.restoreMu.RUnlock()
	return l.fsm.view(func(r *reader, m meta) error { return fn(&View{r: r, m: m}) })
}

// ensure establishes the consistency level before a read.
func (l *Ledger) ensure(ctx context.Context, c Consistency) error {
	switch c {
	case Stale:
		return nil
	case Leader:
		if l.raft.State() != raft.Leader {
			return l.notLeader()
		}
		return nil
	case Linearizable:
		return l.linearize(ctx)
	}
	return &ValidationError{Entry: -1, Field: "consistency", Reason: "unknown level"}
}

// linearize implements the read-index protocol on hashicorp/raft, which has
// no ReadIndex: once per term the leader applies a barrier (so that it has
// applied every entry committed by earlier leaders); then each read takes
// the commit index, confirms leadership with a quorum, and waits until that
// index is applied.
func (l *Ledger) linearize(ctx context.Context) error {
	if l.raft.State() != raft.Leader {
		return l.notLeader()
	}
	if l.readyTerm.Load() != l.raft.CurrentTerm() {
		if err := l.barrier(ctx); err != nil {
			return err
		}
	}
	readIndex := l.raft.CommitIndex()
	if err := l.await(ctx, l.raft.VerifyLeader()); err != nil {
		return err
	}
	for l.raft.AppliedIndex() < readIndex {
		_, ch := l.fsm.state()
		select {
		case <-ch:
		case <-time.After(time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		case <-l.closing:
			return ErrClosed
		}
	}
	return nil
}

// barrier waits until this leader has applied every entry before a barrier
// it commits, and records the term in which it did.
func (l *Ledger) barrier(ctx context.Context) error {
	term := l.raft.CurrentTerm()
	if err := l.await(ctx, l.raft.Barrier(l.cfg.ApplyTimeout)); err != nil {
		return err
	}
	l.readyTerm.Store(term)
	return nil
}

// await waits for a Raft future within ctx.
func (l *Ledger) await(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return l.raftErr(err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// View is a consistent read of the ledger's state, valid inside the function
// given to Read. It is not safe for concurrent use.
type View struct {
	r *reader
	m meta
}

// Size returns the number of entries in the log.
func (v *View) Size() uint64 { return v.m.Size }

// Root returns the Merkle root of the whole log.
func (v *View) Root() merkle.Hash { return v.m.Root }

// AppliedIndex returns the Raft index the state reflects.
func (v *View) AppliedIndex() uint64 { return v.m.Applied }

// Entry returns the entry at index. An index at or beyond Size is
// ErrNotFound; damaged data is a *CorruptionError, never a wrong entry.
func (v *View) Entry(index uint64) (Entry, error) {
	if index >= v.m.Size {
		return Entry{}, ErrNotFound
	}
	e, _, err := v.entry(index)
	return e, err
}

// entry reads the entry at index and its canonical encoding, copied: the
// view's reader reuses its chunk buffer.
func (v *View) entry(index uint64) (Entry, []byte, error) {
	e, enc, err := v.r.entry(index)
	if err != nil {
		return Entry{}, nil, v.missing(index, err)
	}
	e.Payload = bytes.Clone(e.Payload)
	return e, enc, nil
}

// missing turns a failed read of an entry below the log's size into
// corruption: such an entry must exist.
func (v *View) missing(index uint64, err error) error {
	if errors.Is(err, ErrNotFound) {
		return corruptAt(index, "entry missing below the log's size")
	}
	return err
}

// LeafHash returns the Merkle leaf hash of the entry at index.
func (v *View) LeafHash(index uint64) (merkle.Hash, error) {
	if index >= v.m.Size {
		return merkle.Hash{}, ErrNotFound
	}
	_, enc, err := v.entry(index)
	if err != nil {
		return merkle.Hash{}, err
	}
	return merkle.LeafHash(enc), nil
}

// ByID returns the entry with the given id and its receipt, or ErrNotFound.
func (v *View) ByID(id uuid.UUID) (Entry, Receipt, error) {
	index, ok, err := v.r.lookupID(id)
	if err != nil {
		return Entry{}, Receipt{}, err
	}
	if !ok || index >= v.m.Size {
		return Entry{}, Receipt{}, ErrNotFound
	}
	e, enc, err := v.entry(index)
	if err != nil {
		return Entry{}, Receipt{}, err
	}
	if e.ID != id {
		return Entry{}, Receipt{}, corruptAt(index, "id index points at another entry")
	}
	return e, Receipt{ID: id, Index: index, Leaf: merkle.LeafHash(enc)}, nil
}

// Entries iterates over the entries from index from up to, not including,
// to (clamped to Size), in order. It stops at the first error, which it
// yields.
func (v *View) Entries(from, to uint64) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		if to > v.m.Size {
			to = v.m.Size
		}
		for i := from; i < to; i++ {
			e, err := v.Entry(i)
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

// RootAt returns the Merkle root of the first size entries.
func (v *View) RootAt(size uint64) (merkle.Hash, error) {
	if size > v.m.Size {
		return merkle.Hash{}, fmt.Errorf("%w: size %d, log has %d", ErrOutOfRange, size, v.m.Size)
	}
	if size == v.m.Size {
		return v.m.Root, nil
	}
	return merkle.RootAt(v.r, size)
}

// InclusionProof returns the proof that the entry at index is in the tree of
// the first size entries, for merkle.VerifyInclusion.
func (v *View) InclusionProof(index, size uint64) ([]merkle.Hash, error) {
	if size > v.m.Size {
		return nil, fmt.Errorf("%w: size %d, log has %d", ErrOutOfRange, size, v.m.Size)
	}
	if index >= size {
		return nil, &ValidationError{Entry: -1, Field: "index", Reason: fmt.Sprintf("%d is not below size %d", index, size)}
	}
	return merkle.InclusionProof(v.r, index, size)
}

// ConsistencyProof returns the proof that the tree of the first from entries
// is a prefix of the tree of the first to entries, for
// merkle.VerifyConsistency.
func (v *View) ConsistencyProof(from, to uint64) ([]merkle.Hash, error) {
	if to > v.m.Size {
		return nil, fmt.Errorf("%w: size %d, log has %d", ErrOutOfRange, to, v.m.Size)
	}
	if from > to {
		return nil, &ValidationError{Entry: -1, Field: "from", Reason: fmt.Sprintf("%d is above to %d", from, to)}
	}
	return merkle.ConsistencyProof(v.r, from, to)
}
