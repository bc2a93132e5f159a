package merkle_test

import (
	"fmt"

	"coapp.coop/ledger/merkle"
)

// store keeps every perfect subtree a Tree reports, as a log's database would.
type store map[[2]uint64]merkle.Hash

func (s store) Put(n merkle.Node) { s[[2]uint64{uint64(n.Level), n.Index}] = n.Hash }

func (s store) Node(level uint8, index uint64) (merkle.Hash, error) {
	h, ok := s[[2]uint64{uint64(level), index}]
	if !ok {
		return h, fmt.Errorf("no node %d/%d", level, index)
	}
	return h, nil
}

func Example() {
	var tree merkle.Tree
	nodes := store{}
	for _, record := range []string{"harvest 12kg", "delivery 3 crates", "meter 4.2kWh", "care 2h"} {
		tree.Append(merkle.LeafHash([]byte(record)), nodes.Put)
	}
	size, root := tree.Size(), tree.Root()

	// Prove that "meter 4.2kWh" is leaf 2 of the tree, and check the proof
	// with hashes alone.
	proof, _ := merkle.InclusionProof(nodes, 2, size)
	err := merkle.VerifyInclusion(merkle.LeafHash([]byte("meter 4.2kWh")), 2, size, proof, root)
	fmt.Println("inclusion of leaf 2:", err)

	// A changed record does not verify.
	err = merkle.VerifyInclusion(merkle.LeafHash([]byte("meter 9.9kWh")), 2, size, proof, root)
	fmt.Println("tampered record rejected:", err != nil)

	// The tree of 4 leaves extends the tree of 3 leaves.
	oldRoot, _ := merkle.RootAt(nodes, 3)
	cproof, _ := merkle.ConsistencyProof(nodes, 3, size)
	fmt.Println("consistency 3 -> 4:", merkle.VerifyConsistency(3, size, oldRoot, root, cproof))
	// Output:
	// inclusion of leaf 2: <nil>
	// tampered record rejected: true
	// consistency 3 -> 4: <nil>
}
