// Package merkle implements the Merkle tree of RFC 9162 (Certificate
// Transparency 2.0, after RFC 6962) for append-only logs: leaf and node
// hashing, the right edge of a growing tree, roots at any size, inclusion
// and consistency proofs, and their verifiers.
//
// The package has no dependencies beyond the standard library, so a client
// that holds only hashes (a member's app, an auditor, a person keeping a
// consent receipt) can check a proof without the ledger's database.
//
// # Hashing
//
// A leaf holding data hashes to SHA-256(0x00 || data); an interior node to
// SHA-256(0x01 || left || right); a tree of n > 1 leaves splits at the
// largest power of two below n; the empty tree's root is SHA-256("").
//
// # Use
//
// A log appends leaf hashes to a Tree, which keeps the O(log n) peaks needed
// for the current root and reports each perfect subtree it completes, for
// the log to store. Proofs are built from those stored subtrees through a
// NodeSource:
//
//	var t merkle.Tree
//	t.Append(merkle.LeafHash(data), store.Put)
//	proof, err := merkle.InclusionProof(store, index, t.Size())
//
// and checked with nothing but hashes:
//
//	err := merkle.VerifyInclusion(leaf, index, size, proof, root)
//	err := merkle.VerifyConsistency(oldSize, newSize, oldRoot, newRoot, proof)
//
// # Caveats
//
// A proof binds a leaf to a root, not the root to a size: the same audit
// path can fit a tree of n and of n+1 leaves. Trust a root only together
// with its size, as a signed tree head pairs them. The verifiers return nil
// or an error wrapping ErrMalformed or ErrInvalidProof; never treat a
// returned root as trusted without comparing it with one you already trust.
package merkle
