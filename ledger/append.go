package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"
)

// appendReq is one Append call waiting for its group's result.
type appendReq struct {
	g    group
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
	return l.AppendWithKeys(ctx, nil, entries...)
}

// AppendWithKeys is Append with requirements on the key store (see
// KeyRequirement), checked and applied atomically with the entries: if one
// fails, nothing of the call is written.
func (l *Ledger) AppendWithKeys(ctx context.Context, keys []KeyRequirement, entries ...Entry) ([]Receipt, error) {
	if l.closed.Load() {
		return nil, ErrClosed
	}
	if len(entries) == 0 && len(keys) == 0 {
		return nil, nil
	}
	entries, err := l.retriedTimes(entries)
	if err != nil {
		return nil, err
	}
	req, err := l.prepare(entries)
	if err != nil {
		return nil, err
	}
	named := make(map[string]int, len(keys))
	for i := range keys {
		if err := keys[i].validate(i); err != nil {
			return nil, err
		}
		if j, dup := named[string(keys[i].Name)]; dup {
			return nil, &ValidationError{Entry: -1, Field: fmt.Sprintf("keys[%d]", i), Reason: fmt.Sprintf("names the key of keys[%d] again", j)}
		}
		named[string(keys[i].Name)] = i
		req.size += len(keys[i].Name) + len(keys[i].Create) + 40
	}
	if req.size > l.cfg.MaxBatchBytes {
		return nil, &ValidationError{Entry: -1, Field: "entries", Reason: reasonTooLarge}
	}
	req.g.keys = keys
	if err := l.awaitLeadership(ctx); err != nil {
		return nil, err
	}
	if err := l.enqueue(ctx, req); err != nil {
		return nil, err
	}
	select {
	case res := <-req.done:
		return res.receipts, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// enqueue hands a call to the batcher, unless the ledger is closing.
func (l *Ledger) enqueue(ctx context.Context, req *appendReq) error {
	l.lifeMu.RLock()
	defer l.lifeMu.RUnlock()
	if l.closed.Load() {
		return ErrClosed
	}
	select {
	case l.reqs <- req:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retriedTimes gives an entry with an ID but no Time the time of the entry
// the log holds under that ID with the same kind, author and payload: the
// retry of an Append whose answer was lost is the same entry, not a
// conflicting one. entries is not modified.
func (l *Ledger) retriedTimes(entries []Entry) ([]Entry, error) {
	var out []Entry
	for i := range entries {
		e := entries[i]
		if e.ID == uuid.Nil || !e.Time.IsZero() {
			continue
		}
		var held Entry
		err := l.Read(context.Background(), Stale, func(v *View) error {
			var err error
			held, _, err = v.ByID(e.ID)
			return err
		})
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if held.Kind == e.Kind && held.Author == e.Author && bytes.Equal(held.Payload, e.Payload) {
			if out == nil {
				out = append([]Entry(nil), entries...)
			}
			out[i].Time = held.Time
		}
	}
	if out == nil {
		return entries, nil
	}
	return out, nil
}

// prepare validates and encodes entries on the caller's goroutine, filling
// a zero ID or Time.
func (l *Ledger) prepare(entries []Entry) (*appendReq, error) {
	req := &appendReq{g: group{encs: make([][]byte, len(entries))}, done: make(chan groupResult, 1)}
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
		if err := validateEntry(&e, i, l.cfg.MaxEntryBytes); err != nil {
			return nil, err
		}
		req.g.encs[i] = e.Encode()
		req.size += len(req.g.encs[i]) + 4
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

// maxInflight is how many commands the batcher keeps in Raft at once: one
// being written to the Raft log while the one before is applied. More only
// makes smaller commands (BenchmarkAppend measured 3, 4 and 6 no faster).
const maxInflight = 2

// lingerYields is how many times in a row the batcher yields the processor
// when the queue is empty before it proposes what it has: callers just
// handed their results are runnable and about to append again, and a yield
// lets them join this command rather than wait for the next one (one node,
// 256 callers: about +25% in BenchmarkAppend, with a lower p50 latency).
const lingerYields = 4

// batcher takes Append calls as they come and proposes them in commands of
// up to MaxBatchBytes: whatever queued while Raft was busy with the previous
// command goes into the next one.
func (l *Ledger) batcher() {
	defer l.done.Done()
	defer close(l.inflight)
	var cb commandBuilder
	var carry *appendReq
	var started uint64 // FSM batches begun when the last command was proposed
	for {
		// Take a slot first, then whatever has queued: while the slots
		// are taken, calls gather into the next command.
		select {
		case l.sem <- struct{}{}:
		case <-l.closing:
			l.refuseQueued(carry)
			return
		}
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-l.reqs:
			case <-l.closing:
				l.refuseQueued(nil)
				return
			}
		}
		cb.reset()
		cb.add(first.g)
		reqs := []*appendReq{first}
		size := first.size
		yields := 0
	fill:
		for size < l.cfg.MaxBatchBytes {
			select {
			case r := <-l.reqs:
				if size+r.size > l.cfg.MaxBatchBytes {
					carry = r
					break fill
				}
				cb.add(r.g)
				reqs = append(reqs, r)
				size += r.size
				yields = 0
			default:
				if yields >= lingerYields {
					break fill
				}
				yields++
				runtime.Gosched()
			}
		}
		started = l.awaitApplyStart(started)
		f := l.raft.Apply(cb.bytes(), l.cfg.ApplyTimeout)
		l.inflight <- &pending{future: f, reqs: reqs}
	}
}

// awaitApplyStart waits, briefly, until the FSM has begun a batch since the
// previous command was proposed, and returns the count to wait past next.
//
// hashicorp/raft's leader loop picks at random between storing a new
// command and handing a committed one to the FSM; proposing the next
// command before the previous one reaches the FSM lets the store go first
// and serialises the two stages. Waiting here keeps them overlapped (one
// node at 256 callers: about +10% in BenchmarkAppend). The wait is capped,
// so that a missed signal costs 2ms, never a stall.
func (l *Ledger) awaitApplyStart(last uint64) uint64 {
	n, ch := l.fsm.started.wait()
	if n == last {
		select {
		case <-ch:
		case <-time.After(2 * time.Millisecond):
		case <-l.closing:
		}
	}
	n, _ = l.fsm.started.wait()
	return n
}

// refuseQueued fails the calls still queued at Close. No call is queued
// after closing is signalled: Append sends under lifeMu, which Close takes.
func (l *Ledger) refuseQueued(carry *appendReq) {
	if carry != nil {
		carry.done <- groupResult{err: ErrClosed}
	}
	for {
		select {
		case r := <-l.reqs:
			r.done <- groupResult{err: ErrClosed}
		default:
			return
		}
	}
}

// responder hands each command's results to its callers, in order.
func (l *Ledger) responder() {
	defer l.done.Done()
	for p := range l.inflight {
		var results []groupResult
		err := p.future.Error()
		<-l.sem
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
