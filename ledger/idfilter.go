package ledger

import (
	"hash/maphash"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
)

// idFilter is an in-memory Bloom filter over every entry id in the state,
// so that the state machine looks an id up in Badger only when it may be
// there: most appends carry new ids, and the lookup is a fifth of the cost
// of applying one (BenchmarkFSMApply). It never answers "absent" for an id
// it was given; a wrong "maybe" costs one lookup.
//
// It grows by layers of doubling capacity at 10 bits per id (about 1% false
// positives each), so it is never rebuilt while the ledger runs; it is
// built at start and after a snapshot restore by reading the id key space.
// Only the state machine's goroutine uses it.
type idFilter struct {
	seed   maphash.Seed
	layers []*bloomLayer
}

type bloomLayer struct {
	bits     []uint64
	n, limit int
}

const (
	filterBitsPerID  = 10
	filterHashes     = 7
	filterFirstLimit = 1 << 16
)

func newIDFilter() *idFilter {
	return &idFilter{seed: maphash.MakeSeed()}
}

func newLayer(limit int) *bloomLayer {
	words := (limit*filterBitsPerID + 63) / 64
	return &bloomLayer{bits: make([]uint64, words), limit: limit}
}

// positions yields the filterHashes bit positions of id in a layer of m
// bits (double hashing).
func (f *idFilter) hash(id uuid.UUID) (uint64, uint64) {
	h := maphash.Bytes(f.seed, id[:])
	return h, (h >> 32) | (h << 32) | 1
}

func (f *idFilter) add(id uuid.UUID) {
	last := len(f.layers) - 1
	if last < 0 || f.layers[last].n >= f.layers[last].limit {
		limit := filterFirstLimit
		if last >= 0 {
			limit = f.layers[last].limit * 2
		}
		f.layers = append(f.layers, newLayer(limit))
		last++
	}
	l := f.layers[last]
	h1, h2 := f.hash(id)
	m := uint64(len(l.bits) * 64)
	for i := uint64(0); i < filterHashes; i++ {
		p := (h1 + i*h2) % m
		l.bits[p/64] |= 1 << (p % 64)
	}
	l.n++
}

func (f *idFilter) mayContain(id uuid.UUID) bool {
	h1, h2 := f.hash(id)
	for _, l := range f.layers {
		m := uint64(len(l.bits) * 64)
		all := true
		for i := uint64(0); i < filterHashes && all; i++ {
			p := (h1 + i*h2) % m
			all = l.bits[p/64]&(1<<(p%64)) != 0
		}
		if all {
			return true
		}
	}
	return false
}

// loadIDFilter builds a filter of every id in the state read by txn.
func loadIDFilter(txn *badger.Txn) *idFilter {
	f := newIDFilter()
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = []byte{prefixID}
	it := txn.NewIterator(opts)
	defer it.Close()
	var id uuid.UUID
	for it.Rewind(); it.Valid(); it.Next() {
		copy(id[:], it.Item().Key()[1:])
		f.add(id)
	}
	return f
}
