package ledger

import (
	"context"
	"errors"

	"coapp.coop/ledger/merkle"
)

// Verify walks the whole log on this node: it checks every entry's checksum,
// recomputes every leaf and every stored tree node, checks the id index
// against the entries, and compares the rebuilt root with the stored one. It
// returns nil, a *CorruptionError, or ctx's error. It reads one consistent
// view (Stale) and does not block appends.
func (l *Ledger) Verify(ctx context.Context) error {
	return l.Read(ctx, Stale, func(v *View) error { return v.verify(ctx) })
}

func (v *View) verify(ctx context.Context) error {
	var tree merkle.Tree
	var failure error
	for i := uint64(0); i < v.m.Size; i++ {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		e, enc, err := v.r.entry(i)
		if errors.Is(err, ErrNotFound) {
			return corruptAt(i, "entry missing below the log's size")
		}
		if err != nil {
			return err
		}
		leaf := merkle.LeafHash(enc)
		tree.Append(leaf, func(n merkle.Node) {
			if n.Level == 0 || failure != nil {
				return
			}
			stored, err := v.r.Node(n.Level, n.Index)
			if err != nil {
				failure = err
			} else if !stored.Equal(n.Hash) {
				failure = corruptAt(n.Index<<n.Level, "stored tree node %d/%d differs from the entries", n.Level, n.Index)
			}
		})
		if failure != nil {
			return failure
		}
		index, idLeaf, ok, err := v.r.lookupID(e.ID)
		if err != nil {
			return err
		}
		if !ok || index != i || !idLeaf.Equal(leaf) {
			return corruptAt(i, "id index does not match the entry")
		}
	}
	if root := tree.Root(); !root.Equal(v.m.Root) {
		return corrupt("rebuilt root %s differs from the stored root %s", root, v.m.Root)
	}
	// Nothing may be stored beyond the tree: count each key space.
	for _, ks := range []struct {
		prefix byte
		what   string
	}{{prefixEntry, "entries"}, {prefixID, "id index records"}} {
		n, err := v.r.countKeys(ks.prefix)
		if err != nil {
			return err
		}
		if n != v.m.Size {
			return corrupt("%d %s stored for a log of %d", n, ks.what, v.m.Size)
		}
	}
	return nil
}
