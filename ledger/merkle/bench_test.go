package merkle

import "testing"

func BenchmarkLeafHash300(b *testing.B) {
	data := make([]byte, 300)
	b.SetBytes(300)
	for b.Loop() {
		LeafHash(data)
	}
}

func BenchmarkTreeAppend(b *testing.B) {
	var t Tree
	leaf := LeafHash([]byte("x"))
	for b.Loop() {
		t.Append(leaf, nil)
	}
}

// storedSource is a NodeSource with every perfect subtree precomputed, as
// a log's database holds them.
type storedSource map[[2]uint64]Hash

func (s storedSource) Node(level uint8, index uint64) (Hash, error) {
	return s[[2]uint64{uint64(level), index}], nil
}

func benchSource(n uint64) storedSource {
	s := storedSource{}
	var t Tree
	for i := uint64(0); i < n; i++ {
		t.Append(LeafHash([]byte{byte(i), byte(i >> 8), byte(i >> 16)}), func(nd Node) {
			s[[2]uint64{uint64(nd.Level), nd.Index}] = nd.Hash
		})
	}
	return s
}

func BenchmarkInclusionProof(b *testing.B) {
	const n = 1 << 16
	src := benchSource(n)
	var i uint64
	for b.Loop() {
		if _, err := InclusionProof(src, i%n, n-3); err != nil && i%n < n-3 {
			b.Fatal(err)
		}
		i += 7919
	}
}

func BenchmarkVerifyInclusion(b *testing.B) {
	const n = 1 << 16
	src := benchSource(n)
	root, _ := RootAt(src, n-3)
	leaf, _ := src.Node(0, 12345)
	proof, _ := InclusionProof(src, 12345, n-3)
	for b.Loop() {
		if err := VerifyInclusion(leaf, 12345, n-3, proof, root); err != nil {
			b.Fatal(err)
		}
	}
}
