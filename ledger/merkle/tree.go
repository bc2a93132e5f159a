package merkle

import (
	"fmt"
	"math/bits"
)

// Node identifies the root of a perfect subtree: the 2^Level leaves starting
// at leaf Index<<Level. Level 0 nodes are leaves.
type Node struct {
	Level uint8
	Index uint64
	Hash  Hash
}

// Tree is the right edge of an append-only Merkle tree: the roots ("peaks")
// of the perfect subtrees that together cover its leaves, largest first. It
// holds O(log n) hashes, appends in amortised O(1) and computes the current
// root in O(log n). It is what a log keeps in memory; the hashes needed for
// proofs live in a NodeSource.
//
// A Tree is not safe for concurrent use. The zero value is an empty tree.
type Tree struct {
	size  uint64
	peaks []Hash
}

// NewTree returns a tree of the given size whose peaks are given largest
// first, as Peaks lists their positions. It returns an error wrapping
// ErrMalformed when the number of peaks does not match the size.
func NewTree(size uint64, peaks []Hash) (*Tree, error) {
	if want := bits.OnesCount64(size); len(peaks) != want {
		return nil, fmt.Errorf("%w: a tree of size %d has %d peaks, got %d", ErrMalformed, size, want, len(peaks))
	}
	return &Tree{size: size, peaks: append([]Hash(nil), peaks...)}, nil
}

// LoadTree rebuilds the right edge of a tree of the given size from the
// perfect subtree hashes held by src.
func LoadTree(src NodeSource, size uint64) (*Tree, error) {
	pos := Peaks(size)
	peaks := make([]Hash, len(pos))
	for i, p := range pos {
		h, err := src.Node(p.Level, p.Index)
		if err != nil {
			return nil, err
		}
		peaks[i] = h
	}
	return &Tree{size: size, peaks: peaks}, nil
}

// Peaks returns the positions (Hash unset) of the perfect subtrees that cover
// the leaves [0, size), largest first.
func Peaks(size uint64) []Node {
	out := make([]Node, 0, bits.OnesCount64(size))
	var start uint64
	for level := 63; level >= 0; level-- {
		if size&(1<<uint(level)) == 0 {
			continue
		}
		out = append(out, Node{Level: uint8(level), Index: start >> uint(level)})
		start += 1 << uint(level)
	}
	return out
}

// Size returns the number of leaves in the tree.
func (t *Tree) Size() uint64 { return t.size }

// Root returns the RFC 9162 root of the tree: EmptyRoot for an empty tree.
func (t *Tree) Root() Hash {
	if len(t.peaks) == 0 {
		return emptyRoot
	}
	r := t.peaks[len(t.peaks)-1]
	for i := len(t.peaks) - 2; i >= 0; i-- {
		r = NodeHash(t.peaks[i], r)
	}
	return r
}

// Append adds a leaf hash at index Size(). If visit is not nil it is called
// for every node that the leaf completes, the leaf itself (level 0) first and
// then each new interior node in increasing level, so that a caller can store
// them for later proofs.
func (t *Tree) Append(leaf Hash, visit func(Node)) {
	h, index := leaf, t.size
	var level uint8
	if visit != nil {
		visit(Node{Level: 0, Index: index, Hash: h})
	}
	for s := t.size; s&1 == 1; s >>= 1 {
		last := len(t.peaks) - 1
		h = NodeHash(t.peaks[last], h)
		t.peaks = t.peaks[:last]
		level++
		index >>= 1
		if visit != nil {
			visit(Node{Level: level, Index: index, Hash: h})
		}
	}
	t.peaks = append(t.peaks, h)
	t.size++
}

// Clone returns an independent copy of the tree.
func (t *Tree) Clone() *Tree {
	return &Tree{size: t.size, peaks: append([]Hash(nil), t.peaks...)}
}
