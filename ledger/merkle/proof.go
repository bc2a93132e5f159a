package merkle

import (
	"fmt"
	"math/bits"
)

// NodeSource gives the hashes of perfect subtrees of a tree, for building
// roots and proofs. Node returns the hash of the subtree of 2^level leaves
// whose first leaf is index<<level; level 0 is a leaf hash. The builders
// below only ask for subtrees that lie wholly inside the sizes they are given.
type NodeSource interface {
	Node(level uint8, index uint64) (Hash, error)
}

// RootAt returns the root of the first size leaves of the tree held by src.
func RootAt(src NodeSource, size uint64) (Hash, error) {
	if size == 0 {
		return emptyRoot, nil
	}
	return rangeHash(src, 0, size)
}

// InclusionProof returns the RFC 9162 inclusion proof (audit path) of the
// leaf at index in the tree of the given size, deepest sibling first.
func InclusionProof(src NodeSource, index, size uint64) ([]Hash, error) {
	if index >= size {
		return nil, fmt.Errorf("%w: index %d is not below size %d", ErrMalformed, index, size)
	}
	var path []Hash
	// Walk down from the root, collecting the sibling at each level; the
	// RFC's recursive PATH lists them deepest first, so reverse at the end.
	lo, hi := uint64(0), size
	for hi-lo > 1 {
		k := splitPoint(hi - lo)
		var sib Hash
		var err error
		if index < lo+k {
			sib, err = rangeHash(src, lo+k, hi)
			hi = lo + k
		} else {
			sib, err = rangeHash(src, lo, lo+k)
			lo += k
		}
		if err != nil {
			return nil, err
		}
		path = append(path, sib)
	}
	reverse(path)
	return path, nil
}

// ConsistencyProof returns the RFC 9162 consistency proof between the tree
// of size1 leaves and the tree of size2 leaves held by src. The proof is
// empty when size1 is 0 or equal to size2.
func ConsistencyProof(src NodeSource, size1, size2 uint64) ([]Hash, error) {
	if size1 > size2 {
		return nil, fmt.Errorf("%w: size %d is larger than size %d", ErrMalformed, size1, size2)
	}
	if size1 == 0 || size1 == size2 {
		return nil, nil
	}
	// SUBPROOF(m, D[lo:hi], b) of RFC 6962, section 2.1.2, unrolled: each
	// step appends one hash and descends into one half.
	var path []Hash
	lo, hi, complete := uint64(0), size2, true
	for {
		if size1 == hi {
			if !complete {
				h, err := rangeHash(src, lo, hi)
				if err != nil {
					return nil, err
				}
				path = append(path, h)
			}
			break
		}
		k := splitPoint(hi - lo)
		var h Hash
		var err error
		if size1 <= lo+k {
			h, err = rangeHash(src, lo+k, hi)
			hi = lo + k
		} else {
			h, err = rangeHash(src, lo, lo+k)
			lo += k
			complete = false
		}
		if err != nil {
			return nil, err
		}
		path = append(path, h)
	}
	reverse(path)
	return path, nil
}

// rangeHash returns the Merkle tree hash of the leaves [lo, hi), where lo is
// a multiple of the largest power of two not above hi-lo, as every range the
// RFC's recursion visits is.
func rangeHash(src NodeSource, lo, hi uint64) (Hash, error) {
	n := hi - lo
	if n&(n-1) == 0 && lo%n == 0 {
		level := uint8(bits.TrailingZeros64(n))
		return src.Node(level, lo>>level)
	}
	k := splitPoint(n)
	left, err := rangeHash(src, lo, lo+k)
	if err != nil {
		return Hash{}, err
	}
	right, err := rangeHash(src, lo+k, hi)
	if err != nil {
		return Hash{}, err
	}
	return NodeHash(left, right), nil
}

// splitPoint returns the largest power of two strictly below n, for n > 1.
func splitPoint(n uint64) uint64 {
	return 1 << (bits.Len64(n-1) - 1)
}

func reverse(p []Hash) {
	for i, j := 0, len(p)-1; i < j; i, j = i+1, j-1 {
		p[i], p[j] = p[j], p[i]
	}
}
