package ledger

import (
	"bytes"
	"context"
	"iter"
	"slices"
)

// followChunk is how many entries Follow reads per database transaction.
const followChunk = 256

// Follow yields the entries from index from onwards, in order, and then each
// new entry as this node applies it, until ctx ends or the ledger closes;
// it then yields that error once and stops. It reads this node's state
// (Stale consistency), so on a follower it trails the leader by the
// replication delay. Apps use it to maintain their own views of the log:
//
//	for e, err := range l.Follow(ctx, next) {
//		if err != nil {
//			return err
//		}
//		handle(e)
//	}
//
// A slow consumer never holds up the ledger: Follow reads from the
// database, not from a buffer the ledger fills.
//
// When kinds are given, entries of other kinds are still yielded, in order,
// but without their payload (nil), which saves copying payloads a consumer
// does not read.
func (l *Ledger) Follow(ctx context.Context, from uint64, kinds ...string) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		next := from
		for {
			m, changed := l.fsm.state()
			if next < m.Size {
				var batch []Entry
				to := min(m.Size, next+followChunk)
				err := l.Read(ctx, Stale, func(v *View) error {
					for i := next; i < to; i++ {
						e, _, err := v.r.entry(i)
						if err != nil {
							return v.missing(i, err)
						}
						if len(kinds) == 0 || slices.Contains(kinds, e.Kind) {
							e.Payload = bytes.Clone(e.Payload)
						} else {
							e.Payload = nil
						}
						batch = append(batch, e)
					}
					return nil
				})
				if err != nil {
					yield(Entry{}, err)
					return
				}
				for _, e := range batch {
					if !yield(e, nil) {
						return
					}
				}
				next = to
				continue
			}
			select {
			case <-changed:
			case <-ctx.Done():
				yield(Entry{}, ctx.Err())
				return
			case <-l.closing:
				yield(Entry{}, ErrClosed)
				return
			}
		}
	}
}
