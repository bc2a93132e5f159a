package merkle

import (
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
)

// The RFC 6962 test vectors used by Certificate Transparency
// (transparency-dev/merkle testonly): eight leaf inputs, the roots of every
// prefix of them, and known inclusion and consistency proofs.
var (
	vectorLeaves = []string{
		"", "00", "10", "2021", "3031", "40414243",
		"5051525354555657", "606162636465666768696a6b6c6d6e6f",
	}
	vectorRoots = []string{
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
		"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
		"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
		"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
	}
	vectorInclusion = []struct {
		index, size uint64
		proof       []string
	}{
		{0, 8, []string{
			"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
			"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
			"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
		}},
		{5, 8, []string{
			"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
			"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
			"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		}},
		{2, 3, []string{
			"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		}},
		{1, 5, []string{
			"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
			"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
			"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
		}},
	}
	vectorConsistency = []struct {
		size1, size2 uint64
		proof        []string
	}{
		{1, 1, nil},
		{1, 8, []string{
			"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
			"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
			"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
		}},
		{6, 8, []string{
			"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
			"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
			"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		}},
		{2, 5, []string{
			"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
			"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
		}},
		{6, 7, []string{
			"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
			"b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
			"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		}},
	}
)

func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func mustHash(tb testing.TB, s string) Hash {
	tb.Helper()
	h, err := ParseHash(s)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

func mustHashes(tb testing.TB, ss []string) []Hash {
	tb.Helper()
	out := make([]Hash, len(ss))
	for i, s := range ss {
		out[i] = mustHash(tb, s)
	}
	return out
}

// memSource is an independent reference: it recomputes every subtree hash
// from the leaves, by the RFC's recursive definition, on every call.
type memSource struct{ leaves []Hash }

func (m *memSource) Node(level uint8, index uint64) (Hash, error) {
	lo := index << level
	hi := lo + 1<<level
	if hi > uint64(len(m.leaves)) {
		return Hash{}, fmt.Errorf("node %d/%d beyond %d leaves", level, index, len(m.leaves))
	}
	return referenceMTH(m.leaves[lo:hi]), nil
}

func referenceMTH(leaves []Hash) Hash {
	switch len(leaves) {
	case 0:
		return EmptyRoot()
	case 1:
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	return NodeHash(referenceMTH(leaves[:k]), referenceMTH(leaves[k:]))
}

func vectorSource(tb testing.TB) *memSource {
	src := &memSource{}
	for _, l := range vectorLeaves {
		src.leaves = append(src.leaves, LeafHash(mustHex(tb, l)))
	}
	return src
}

func syntheticSource(n int) *memSource {
	src := &memSource{}
	for i := 0; i < n; i++ {
		src.leaves = append(src.leaves, LeafHash([]byte(fmt.Sprintf("leaf %d", i))))
	}
	return src
}

func TestRootsMatchVectors(t *testing.T) {
	src := vectorSource(t)
	var tree Tree
	for size := 0; size <= len(vectorLeaves); size++ {
		want := mustHash(t, vectorRoots[size])
		if got := tree.Root(); got != want {
			t.Errorf("Tree.Root() at size %d = %s, want %s", size, got, want)
		}
		got, err := RootAt(src, uint64(size))
		if err != nil {
			t.Fatalf("RootAt(%d): %v", size, err)
		}
		if got != want {
			t.Errorf("RootAt(%d) = %s, want %s", size, got, want)
		}
		if size < len(vectorLeaves) {
			tree.Append(src.leaves[size], nil)
		}
	}
}

func TestInclusionVectors(t *testing.T) {
	src := vectorSource(t)
	for _, v := range vectorInclusion {
		want := mustHashes(t, v.proof)
		got, err := InclusionProof(src, v.index, v.size)
		if err != nil {
			t.Fatalf("InclusionProof(%d, %d): %v", v.index, v.size, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("InclusionProof(%d, %d) = %v, want %v", v.index, v.size, got, want)
		}
		root := mustHash(t, vectorRoots[v.size])
		if err := VerifyInclusion(src.leaves[v.index], v.index, v.size, want, root); err != nil {
			t.Errorf("VerifyInclusion(%d, %d) of the published proof: %v", v.index, v.size, err)
		}
	}
}

func TestConsistencyVectors(t *testing.T) {
	src := vectorSource(t)
	for _, v := range vectorConsistency {
		want := mustHashes(t, v.proof)
		got, err := ConsistencyProof(src, v.size1, v.size2)
		if err != nil {
			t.Fatalf("ConsistencyProof(%d, %d): %v", v.size1, v.size2, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("ConsistencyProof(%d, %d) = %v, want %v", v.size1, v.size2, got, want)
		}
		r1, r2 := mustHash(t, vectorRoots[v.size1]), mustHash(t, vectorRoots[v.size2])
		if err := VerifyConsistency(v.size1, v.size2, r1, r2, want); err != nil {
			t.Errorf("VerifyConsistency(%d, %d) of the published proof: %v", v.size1, v.size2, err)
		}
	}
}

// TestTreeAppendVisitsCompletedNodes checks that the nodes Append reports are
// exactly the perfect subtrees it completes, with the reference hashes.
func TestTreeAppendVisitsCompletedNodes(t *testing.T) {
	src := syntheticSource(70)
	var tree Tree
	seen := map[[2]uint64]bool{}
	for i, leaf := range src.leaves {
		tree.Append(leaf, func(n Node) {
			want, err := src.Node(n.Level, n.Index)
			if err != nil {
				t.Fatalf("append %d reported node %d/%d: %v", i, n.Level, n.Index, err)
			}
			if n.Hash != want {
				t.Errorf("append %d: node %d/%d = %s, want %s", i, n.Level, n.Index, n.Hash, want)
			}
			seen[[2]uint64{uint64(n.Level), n.Index}] = true
		})
		if got, want := tree.Root(), referenceMTH(src.leaves[:i+1]); got != want {
			t.Fatalf("Root() after %d leaves = %s, want %s", i+1, got, want)
		}
	}
	// Every perfect subtree inside 70 leaves was reported once.
	for level := uint8(0); 1<<level <= 70; level++ {
		for idx := uint64(0); (idx+1)<<level <= 70; idx++ {
			if !seen[[2]uint64{uint64(level), idx}] {
				t.Errorf("node %d/%d never reported", level, idx)
			}
		}
	}
	loaded, err := LoadTree(src, 70)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Root() != tree.Root() {
		t.Errorf("LoadTree(70).Root() = %s, want %s", loaded.Root(), tree.Root())
	}
}

func TestNewTreeRejectsWrongPeakCount(t *testing.T) {
	if _, err := NewTree(5, make([]Hash, 1)); !errors.Is(err, ErrMalformed) {
		t.Errorf("NewTree(5, 1 peak) error = %v, want ErrMalformed", err)
	}
	tr, err := NewTree(5, make([]Hash, 2))
	if err != nil || tr.Size() != 5 {
		t.Errorf("NewTree(5, 2 peaks) = %v, %v", tr, err)
	}
}

// TestAllProofsVerify builds every inclusion and consistency proof for trees
// up to 40 leaves and checks that each verifies, and that each tampered
// variant fails. (A proof does not bind the tree size on its own: the same
// path can fit size n and n+1, which is why a root is only ever trusted
// together with its size, as a signed tree head is.)
func TestAllProofsVerify(t *testing.T) {
	const n = 40
	src := syntheticSource(n)
	roots := make([]Hash, n+1)
	for s := 0; s <= n; s++ {
		roots[s] = referenceMTH(src.leaves[:s])
	}
	for size := uint64(1); size <= n; size++ {
		for index := uint64(0); index < size; index++ {
			proof, err := InclusionProof(src, index, size)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", index, size, err)
			}
			leaf := src.leaves[index]
			if err := VerifyInclusion(leaf, index, size, proof, roots[size]); err != nil {
				t.Fatalf("VerifyInclusion(%d, %d): %v", index, size, err)
			}
			for _, bad := range tamperedInclusion(leaf, index, size, proof, roots[size]) {
				if err := VerifyInclusion(bad.leaf, bad.index, bad.size, bad.proof, bad.root); err == nil {
					t.Errorf("VerifyInclusion(%d, %d) accepted a proof with %s", index, size, bad.desc)
				}
			}
		}
	}
	for size2 := uint64(0); size2 <= n; size2++ {
		for size1 := uint64(0); size1 <= size2; size1++ {
			proof, err := ConsistencyProof(src, size1, size2)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d): %v", size1, size2, err)
			}
			if err := VerifyConsistency(size1, size2, roots[size1], roots[size2], proof); err != nil {
				t.Fatalf("VerifyConsistency(%d, %d): %v", size1, size2, err)
			}
			if size1 == 0 || size1 == size2 {
				continue
			}
			for _, bad := range tamperedConsistency(size1, size2, roots[size1], roots[size2], proof) {
				if err := VerifyConsistency(bad.size1, bad.size2, bad.root1, bad.root2, bad.proof); err == nil {
					t.Errorf("VerifyConsistency(%d, %d) accepted a proof with %s", size1, size2, bad.desc)
				}
			}
		}
	}
}

type inclusionCase struct {
	desc        string
	leaf, root  Hash
	index, size uint64
	proof       []Hash
}

var someHash = LeafHash([]byte("some other data"))

func withHashes(p []Hash, front, back []Hash) []Hash {
	out := append([]Hash(nil), front...)
	out = append(out, p...)
	return append(out, back...)
}

func tamperedInclusion(leaf Hash, index, size uint64, proof []Hash, root Hash) []inclusionCase {
	cases := []inclusionCase{
		{"index-1", leaf, root, index - 1, size, proof},
		{"index+1", leaf, root, index + 1, size, proof},
		{"index^2", leaf, root, index ^ 2, size, proof},
		{"size*2", leaf, root, index, size * 2, proof},
		{"size/2", leaf, root, index, size / 2, proof},
		{"wrong leaf", someHash, root, index, size, proof},
		{"empty root", leaf, EmptyRoot(), index, size, proof},
		{"other root", leaf, someHash, index, size, proof},
		{"trailing hash", leaf, root, index, size, withHashes(proof, nil, []Hash{someHash})},
		{"trailing root", leaf, root, index, size, withHashes(proof, nil, []Hash{root})},
		{"leading root", leaf, root, index, size, withHashes(proof, []Hash{root}, nil)},
		{"leading leaf", leaf, root, index, size, withHashes(proof, []Hash{leaf}, nil)},
	}
	for i := range proof {
		bad := append([]Hash(nil), proof...)
		bad[i][i%Size] ^= 0x08
		cases = append(cases, inclusionCase{fmt.Sprintf("bit flipped in proof[%d]", i), leaf, root, index, size, bad})
	}
	if len(proof) > 0 {
		cases = append(cases, inclusionCase{"last hash removed", leaf, root, index, size, proof[:len(proof)-1]})
		cases = append(cases, inclusionCase{"first hash removed", leaf, root, index, size, proof[1:]})
	}
	if len(proof) > 1 {
		swapped := append([]Hash(nil), proof...)
		swapped[0], swapped[1] = swapped[1], swapped[0]
		cases = append(cases, inclusionCase{"hashes swapped", leaf, root, index, size, swapped})
	}
	// A tampered case may coincide with the honest one (index^2 == index
	// when the bit is clear in neither): keep only real changes.
	out := cases[:0]
	for _, c := range cases {
		if c.index == index && c.size == size && c.leaf == leaf && c.root == root && fmt.Sprint(c.proof) == fmt.Sprint(proof) {
			continue
		}
		out = append(out, c)
	}
	return out
}

type consistencyCase struct {
	desc         string
	size1, size2 uint64
	root1, root2 Hash
	proof        []Hash
}

func tamperedConsistency(size1, size2 uint64, root1, root2 Hash, proof []Hash) []consistencyCase {
	cases := []consistencyCase{
		{"size1-1", size1 - 1, size2, root1, root2, proof},
		{"size1+1", size1 + 1, size2, root1, root2, proof},
		{"size1^2", size1 ^ 2, size2, root1, root2, proof},
		{"size2*2", size1, size2 * 2, root1, root2, proof},
		{"size2/2", size1, size2 / 2, root1, root2, proof},
		{"wrong root1", size1, size2, someHash, root2, proof},
		{"wrong root2", size1, size2, root1, someHash, proof},
		{"swapped roots", size1, size2, root2, root1, proof},
		{"empty proof", size1, size2, root1, root2, nil},
		{"trailing hash", size1, size2, root1, root2, withHashes(proof, nil, []Hash{someHash})},
		{"trailing root1", size1, size2, root1, root2, withHashes(proof, nil, []Hash{root1})},
		{"trailing root2", size1, size2, root1, root2, withHashes(proof, nil, []Hash{root2})},
		{"leading root1", size1, size2, root1, root2, withHashes(proof, []Hash{root1}, nil)},
		{"leading root2", size1, size2, root1, root2, withHashes(proof, []Hash{root2}, nil)},
		{"leading proof[0]", size1, size2, root1, root2, withHashes(proof, []Hash{proof[0]}, nil)},
		{"last hash removed", size1, size2, root1, root2, proof[:len(proof)-1]},
	}
	for i := range proof {
		bad := append([]Hash(nil), proof...)
		bad[i][(i+3)%Size] ^= 0x10
		cases = append(cases, consistencyCase{fmt.Sprintf("bit flipped in proof[%d]", i), size1, size2, root1, root2, bad})
	}
	out := cases[:0]
	for _, c := range cases {
		if c.size1 == size1 && c.size2 == size2 && c.root1 == root1 && c.root2 == root2 && fmt.Sprint(c.proof) == fmt.Sprint(proof) {
			continue
		}
		out = append(out, c)
	}
	return out
}

func TestVerifyEdgeCases(t *testing.T) {
	leaf := LeafHash([]byte("data"))
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"single leaf", VerifyInclusion(leaf, 0, 1, nil, leaf), nil},
		{"single leaf, wrong root", VerifyInclusion(leaf, 0, 1, nil, EmptyRoot()), ErrInvalidProof},
		{"index 0 of size 0", VerifyInclusion(leaf, 0, 0, nil, leaf), ErrMalformed},
		{"index past size", VerifyInclusion(leaf, 2, 1, nil, leaf), ErrMalformed},
		{"consistency 0,0 equal roots", VerifyConsistency(0, 0, leaf, leaf, nil), nil},
		{"consistency 0,0 different roots", VerifyConsistency(0, 0, leaf, someHash, nil), ErrInvalidProof},
		{"consistency 0,1", VerifyConsistency(0, 1, leaf, someHash, nil), nil},
		{"consistency 0,1 with a proof", VerifyConsistency(0, 1, leaf, someHash, []Hash{leaf}), ErrInvalidProof},
		{"consistency 1,1 with a proof", VerifyConsistency(1, 1, leaf, leaf, []Hash{leaf}), ErrInvalidProof},
		{"consistency backwards", VerifyConsistency(2, 1, leaf, leaf, nil), ErrMalformed},
		{"consistency 1,2 empty proof", VerifyConsistency(1, 2, leaf, someHash, nil), ErrInvalidProof},
	}
	for _, tt := range tests {
		if tt.want == nil && tt.err != nil || tt.want != nil && !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: error = %v, want %v", tt.name, tt.err, tt.want)
		}
	}
}

func TestProofBuildersRejectBadSizes(t *testing.T) {
	src := syntheticSource(4)
	if _, err := InclusionProof(src, 4, 4); !errors.Is(err, ErrMalformed) {
		t.Errorf("InclusionProof(4, 4) error = %v, want ErrMalformed", err)
	}
	if _, err := ConsistencyProof(src, 3, 2); !errors.Is(err, ErrMalformed) {
		t.Errorf("ConsistencyProof(3, 2) error = %v, want ErrMalformed", err)
	}
	if _, err := InclusionProof(src, 1, 9); err == nil {
		t.Error("InclusionProof beyond the source's leaves succeeded")
	}
}

func TestHashText(t *testing.T) {
	h := LeafHash([]byte("x"))
	text, _ := h.MarshalText()
	var back Hash
	if err := back.UnmarshalText(text); err != nil || back != h {
		t.Errorf("UnmarshalText(MarshalText(h)) = %s, %v; want %s", back, err, h)
	}
	for _, bad := range []string{"", "00", h.String()[:63] + "g", h.String() + "00"} {
		if _, err := ParseHash(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseHash(%q) error = %v, want ErrMalformed", bad, err)
		}
	}
}
