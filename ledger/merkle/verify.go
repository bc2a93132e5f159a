package merkle

import (
	"errors"
	"fmt"
)

var (
	// ErrMalformed is returned when an argument cannot describe a tree or a
	// proof at all: an index not below the size, sizes in the wrong order, a
	// hash of the wrong length.
	ErrMalformed = errors.New("merkle: malformed input")

	// ErrInvalidProof is returned when a proof does not prove what it is
	// said to prove: its length is wrong for the sizes given, or the hashes
	// it leads to differ from the roots given.
	ErrInvalidProof = errors.New("merkle: invalid proof")
)

// RootFromInclusionProof returns the root that the inclusion proof leads to
// from the leaf hash at index in a tree of the given size (RFC 9162, section
// 2.1.3.2). A caller compares it with a root it trusts; VerifyInclusion does.
func RootFromInclusionProof(leaf Hash, index, size uint64, proof []Hash) (Hash, error) {
	if index >= size {
		return Hash{}, fmt.Errorf("%w: index %d is not below size %d", ErrMalformed, index, size)
	}
	fn, sn := index, size-1
	r := leaf
	for _, p := range proof {
		if sn == 0 {
			return Hash{}, fmt.Errorf("%w: inclusion proof is too long", ErrInvalidProof)
		}
		if fn&1 == 1 || fn == sn {
			r = NodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = NodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return Hash{}, fmt.Errorf("%w: inclusion proof is too short", ErrInvalidProof)
	}
	return r, nil
}

// VerifyInclusion checks that proof shows the leaf hash at index in the tree
// of the given size whose root is root. It returns nil on success, an error
// wrapping ErrMalformed or ErrInvalidProof otherwise.
func VerifyInclusion(leaf Hash, index, size uint64, proof []Hash, root Hash) error {
	got, err := RootFromInclusionProof(leaf, index, size, proof)
	if err != nil {
		return err
	}
	if !got.Equal(root) {
		return fmt.Errorf("%w: inclusion proof leads to root %s, not %s", ErrInvalidProof, got, root)
	}
	return nil
}

// VerifyConsistency checks that proof shows the tree of size1 leaves with
// root1 to be a prefix of the tree of size2 leaves with root2 (RFC 9162,
// section 2.1.4.2). The empty tree is a prefix of every tree, with an empty
// proof; a tree is consistent with itself only through an empty proof and
// equal roots. It returns nil on success, an error wrapping ErrMalformed or
// ErrInvalidProof otherwise.
func VerifyConsistency(size1, size2 uint64, root1, root2 Hash, proof []Hash) error {
	switch {
	case size1 > size2:
		return fmt.Errorf("%w: size %d is larger than size %d", ErrMalformed, size1, size2)
	case size1 == size2:
		if len(proof) != 0 {
			return fmt.Errorf("%w: proof between equal sizes must be empty", ErrInvalidProof)
		}
		if !root1.Equal(root2) {
			return fmt.Errorf("%w: roots differ at equal sizes", ErrInvalidProof)
		}
		return nil
	case size1 == 0:
		if len(proof) != 0 {
			return fmt.Errorf("%w: proof from the empty tree must be empty", ErrInvalidProof)
		}
		return nil
	case len(proof) == 0:
		return fmt.Errorf("%w: consistency proof is empty", ErrInvalidProof)
	}

	path := proof
	if size1&(size1-1) == 0 {
		// The old tree is a perfect subtree of the new one: its root is
		// the first node of the path and the proof leaves it out.
		path = make([]Hash, 0, len(proof)+1)
		path = append(append(path, root1), proof...)
	}
	fn, sn := size1-1, size2-1
	for fn&1 == 1 {
		fn >>= 1
		sn >>= 1
	}
	fr, sr := path[0], path[0]
	for _, c := range path[1:] {
		if sn == 0 {
			return fmt.Errorf("%w: consistency proof is too long", ErrInvalidProof)
		}
		if fn&1 == 1 || fn == sn {
			fr = NodeHash(c, fr)
			sr = NodeHash(c, sr)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			sr = NodeHash(sr, c)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return fmt.Errorf("%w: consistency proof is too short", ErrInvalidProof)
	}
	if !fr.Equal(root1) {
		return fmt.Errorf("%w: consistency proof leads to old root %s, not %s", ErrInvalidProof, fr, root1)
	}
	if !sr.Equal(root2) {
		return fmt.Errorf("%w: consistency proof leads to new root %s, not %s", ErrInvalidProof, sr, root2)
	}
	return nil
}
