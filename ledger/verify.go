package ledger

import (
	"context"
	"encoding/binary"

	"github.com/dgraph-io/badger/v4"

	"coapp.coop/ledger/entry"
	"coapp.coop/ledger/merkle"
)

// Verify walks the whole log on this node: it checks every chunk's checksum
// and position, recomputes every leaf and every stored tree node, checks the
// id index against the entries, and compares the rebuilt root with the
// stored one. It returns nil, a *CorruptionError, or ctx's error. It reads
// one consistent view (Stale) and does not block appends.
func (l *Ledger) Verify(ctx context.Context) error {
	return l.Read(ctx, Stale, func(v *View) error { return v.verify(ctx) })
}

func (v *View) verify(ctx context.Context) error {
	var tree merkle.Tree
	var failure error
	check := func(n merkle.Node) {
		if n.Level < nodeMinLevel || failure != nil {
			return
		}
		stored, err := v.r.storedNode(n.Level, n.Index)
		if err != nil {
			failure = err
		} else if !stored.Equal(n.Hash) {
			failure = corruptAt(n.Index<<n.Level, "stored tree node %d/%d differs from the entries", n.Level, n.Index)
		}
	}
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte{prefixChunk}
	it := v.r.txn.NewIterator(opts)
	defer it.Close()
	var next uint64
	for it.Rewind(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		first := binary.BigEndian.Uint64(it.Item().Key()[1:])
		if first != next {
			return corruptAt(next, "chunk starts at %d, want %d", first, next)
		}
		val, err := it.Item().ValueCopy(nil)
		if err != nil {
			return storageErr(err)
		}
		c, err := decodeChunk(first, val)
		if err != nil {
			return err
		}
		for j, enc := range c.encs {
			index := first + uint64(j)
			e, ok := entry.Decode(enc)
			if !ok {
				return corruptAt(index, "entry does not decode")
			}
			tree.Append(merkle.LeafHash(enc), check)
			if failure != nil {
				return failure
			}
			at, ok, err := v.r.lookupID(e.ID)
			if err != nil {
				return err
			}
			if !ok || at != index {
				return corruptAt(index, "id index does not match the entry")
			}
		}
		next = first + uint64(len(c.encs))
	}
	if next != v.m.Size {
		return corrupt("entries stored up to %d for a log of %d", next, v.m.Size)
	}
	if root := tree.Root(); !root.Equal(v.m.Root) {
		return corrupt("rebuilt root %s differs from the stored root %s", root, v.m.Root)
	}
	if n := v.r.countKeys(prefixID); n != v.m.Size {
		return corrupt("%d id index records for a log of %d", n, v.m.Size)
	}
	return nil
}
