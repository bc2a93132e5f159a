package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"
)

// appendReq is one Append call waiting for its group's result.
type appendReq struct {
	encs [][]byte
	size int
	done chan groupResult // buffered: the responder never blocks
}

// pending is a proposed command and the calls it carries.
type pending struct {
	future raft.ApplyFuture
	reqs   []*appendReq
}

// Append appends entries to the log atomically and returns their receipts,
// in order, once they are committed by a quorum and durable on it.
//
// Concurrent calls are grouped into few Raft commands (group commit); each
// call stays atomic: on error nothing of it was written, except that after
// ctx ends or ErrNotLeader arrives from a leader that lost its post mid-way,
// the outcome is unknown. Entries carry their ids, so retrying the same call
// is always safe: an entry whose id the log holds with the same content gets
// its original receipt (Duplicate set) and nothing new is stored; with other
// content the call fails with a *ConflictError.
//
// Append on a follower returns a *NotLeaderError naming the leader; while no
// leader is known it waits for one, within ctx.
func (l *Ledger) Append(ctx context.Context, entries ...Entry) ([]Receipt, error) {
	if l.closed.Load() {
		return nil, ErrClosed
	}
	if len(entries) == 0 {
		return nil, nil
	}
	req, err := l.prepare(entries)
	if err != nil {
		return nil, err
	}
	if err := l.awaitLeadership(ctx); err != nil {
		return nil, err
	}
	select {
	case l.reqs <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.closing:
		return nil, ErrClosed
	}
	select {
	case res := <-req.done:
		return res.receipts, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// prepare validates and encodes entries on the caller's goroutine, filling
// a zero ID or Time.
func (l *Ledger) prepare(entries []Entry) (*appendReq, error) {
	req := &appendReq{encs: make([][]byte, len(entries)), done: make(chan groupResult, 1)}
	var now time.Time
	for i := range entries {
		e := entries[i]
		if e.ID == uuid.Nil {
			id, err := uuid.NewV7()
			if err != nil {
				return nil, fmt.Errorf("ledger: new id: %w", err)
			}
			e.ID = id
		}
		if e.Time.IsZero() {
			if now.IsZero() {
				now = time.Now()
			}
			e.Time = now
		}
		if err := e.validate(i, l.cfg.MaxEntryBytes); err != nil {
			return nil, err
		}
		req.encs[i] = e.encode()
		req.size += len(req.encs[i]) + 4
	}
	if req.size > l.cfg.MaxBatchBytes {
		return nil, &ValidationError{Entry: -1, Field: "entries", Reason: reasonTooLarge}
	}
	return req, nil
}

// awaitLeadership returns nil when this node leads, a *NotLeaderError when
// another does, and waits while none is known.
func (l *Ledger) awaitLeadership(ctx context.Context) error {
	if l.raft.State() == raft.Leader {
		return nil
	}
	if _, id := l.raft.LeaderWithID(); id == "" {
		if err := l.WaitLeader(ctx); err != nil {
			if errors.Is(err, ErrClosed) {
				return err
			}
			return fmt.Errorf("%w: %w", l.notLeader(), ctx.Err())
		}
	}
	if l.raft.State() == raft.Leader {
		return nil
	}
	return l.notLeader()
}

// batcher takes Append calls as they come and proposes them in commands of
// up to MaxBatchBytes: whatever queued while Raft was busy with the previous
// command goes into the next one.
func (l *Ledger) batcher() {
	defer l.done.Done()
	defer close(l.inflight)
	var cb commandBuilder
	var carry *appendReq
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-l.reqs:
			case <-l.closing:
				return
			}
		}
		cb.reset()
		cb.add(first.encs)
		reqs := []*appendReq{first}
		size := first.size
	fill:
		for size < l.cfg.MaxBatchBytes {
			select {
			case r := <-l.reqs:
				if size+r.size > l.cfg.MaxBatchBytes {
					carry = r
					break fill
				}
				cb.add(r.encs)
				reqs = append(reqs, r)
				size += r.size
			default:
				break fill
			}
		}
		f := l.raft.Apply(cb.bytes(), l.cfg.ApplyTimeout)
		l.inflight <- &pending{future: f, reqs: reqs}
	}
}

// responder hands each command's results to its callers, in order.
func (l *Ledger) responder() {
	defer l.done.Done()
	for p := range l.inflight {
		var results []groupResult
		err := p.future.Error()
		if err == nil {
			switch r := p.future.Response().(type) {
			case []groupResult:
				results = r
				if len(r) != len(p.reqs) {
					err = fmt.Errorf("ledger: command at raft index %d: %d results for %d calls", p.future.Index(), len(r), len(p.reqs))
				}
			case error:
				err = r
			default:
				err = fmt.Errorf("ledger: command at raft index %d was not applied", p.future.Index())
			}
		} else {
			err = l.raftErr(err)
		}
		for i, req := range p.reqs {
			if err != nil {
				req.done <- groupResult{err: err}
			} else {
				req.done <- results[i]
			}
		}
	}
}

// raftErr translates hashicorp/raft's errors into the ledger's.
func (l *Ledger) raftErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return l.notLeader()
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return ErrTimeout
	default:
		return fmt.Errorf("ledger: raft: %w", err)
	}
}
