package ledger

import (
	"context"
	"iter"
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
func (l *Ledger) Follow(ctx context.Context, from uint64) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		next := from
		for {
			m, changed := l.fsm.state()
			if next < m.Size {
				var batch []Entry
				to := min(m.Size, next+followChunk)
				err := l.Read(ctx, Stale, func(v *View) error {
					for e, err := range v.Entries(next, to) {
						if err != nil {
							return err
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
