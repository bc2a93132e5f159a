package merkle

import (
	"testing"
)

// splitHashes turns fuzzer bytes into whole hashes, dropping a tail.
func splitHashes(b []byte) []Hash {
	out := make([]Hash, len(b)/Size)
	for i := range out {
		copy(out[i][:], b[i*Size:])
	}
	return out
}

func joinHashes(hs []Hash) []byte {
	var out []byte
	for _, h := range hs {
		out = append(out, h[:]...)
	}
	return out
}

// FuzzVerifyInclusion feeds arbitrary proofs to the verifier. It must never
// panic, and whenever it accepts, the proof must be the honest one for a tree
// whose leaves it knows (the synthetic tree of the seed corpus).
func FuzzVerifyInclusion(f *testing.F) {
	src := syntheticSource(33)
	for size := uint64(1); size <= 33; size += 4 {
		for index := uint64(0); index < size; index += 3 {
			proof, _ := InclusionProof(src, index, size)
			f.Add(index, size, joinHashes(proof))
		}
	}
	f.Fuzz(func(t *testing.T, index, size uint64, raw []byte) {
		proof := splitHashes(raw)
		if size == 0 || size > 33 || index >= size {
			// Outside the known tree only the absence of panics is checked.
			_ = VerifyInclusion(someHash, index, size, proof, someHash)
			return
		}
		root := referenceMTH(src.leaves[:size])
		err := VerifyInclusion(src.leaves[index], index, size, proof, root)
		honest, _ := InclusionProof(src, index, size)
		if err == nil && string(joinHashes(proof)) != string(joinHashes(honest)) {
			t.Fatalf("VerifyInclusion(%d, %d) accepted a proof that is not the honest one", index, size)
		}
		if err != nil && string(joinHashes(proof)) == string(joinHashes(honest)) {
			t.Fatalf("VerifyInclusion(%d, %d) rejected the honest proof: %v", index, size, err)
		}
	})
}

// FuzzVerifyConsistency is FuzzVerifyInclusion for consistency proofs.
func FuzzVerifyConsistency(f *testing.F) {
	src := syntheticSource(33)
	for size2 := uint64(1); size2 <= 33; size2 += 5 {
		for size1 := uint64(1); size1 <= size2; size1 += 2 {
			proof, _ := ConsistencyProof(src, size1, size2)
			f.Add(size1, size2, joinHashes(proof))
		}
	}
	f.Fuzz(func(t *testing.T, size1, size2 uint64, raw []byte) {
		proof := splitHashes(raw)
		if size2 > 33 || size1 > size2 {
			_ = VerifyConsistency(size1, size2, someHash, someHash, proof)
			return
		}
		r1, r2 := referenceMTH(src.leaves[:size1]), referenceMTH(src.leaves[:size2])
		err := VerifyConsistency(size1, size2, r1, r2, proof)
		honest, _ := ConsistencyProof(src, size1, size2)
		if err == nil && string(joinHashes(proof)) != string(joinHashes(honest)) {
			t.Fatalf("VerifyConsistency(%d, %d) accepted a proof that is not the honest one", size1, size2)
		}
		if err != nil && string(joinHashes(proof)) == string(joinHashes(honest)) {
			t.Fatalf("VerifyConsistency(%d, %d) rejected the honest proof: %v", size1, size2, err)
		}
	})
}
