package ledger

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
)

// TestScanFiles finds fingerprinted values wherever they are in a file
// (at its start, its end, across the reader's buffer), and nothing else.
func TestScanFiles(t *testing.T) {
	dir := t.TempDir()
	key := make([]byte, 72)
	other := make([]byte, 72)
	rand.Read(key)
	rand.Read(other)
	big := make([]byte, 3<<20)
	rand.Read(big)
	write := func(name string, parts ...[]byte) {
		if err := os.WriteFile(filepath.Join(dir, name), bytes.Join(parts, nil), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("start", key, big[:100])
	write("end", big[:1000], key)
	write("across", big[:1<<20-30], key, big[:10])
	write("clean", big, other)
	write("near", big[:50], key[:71], big[:50]) // all but the last byte
	// A sparse file, as Badger preallocates them: a hole, then the key.
	sparse, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sparse.WriteAt(key, 1<<30); err != nil {
		t.Fatal(err)
	}
	sparse.Close()
	found, err := scanFiles([]string{dir, filepath.Join(dir, "missing")}, []fingerprint{newFingerprint(key)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range found {
		got[filepath.Base(p)] = true
	}
	for _, name := range []string{"start", "end", "across", "sparse"} {
		if !got[name] {
			t.Errorf("the key in %s was not found", name)
		}
	}
	for _, name := range []string{"clean", "near"} {
		if got[name] {
			t.Errorf("%s reported, but does not hold the key", name)
		}
	}
	fp := newFingerprint(key)
	if back, ok := decodeFingerprint(fp.encode()); !ok || back != fp {
		t.Fatal("a fingerprint does not read back")
	}
}

// BenchmarkScan measures the check's speed over data (not holes).
func BenchmarkScan(b *testing.B) {
	dir := b.TempDir()
	data := make([]byte, 64<<20)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(dir, "data"), data, 0o600); err != nil {
		b.Fatal(err)
	}
	key := make([]byte, 72)
	rand.Read(key)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if found, err := scanFiles([]string{dir}, []fingerprint{newFingerprint(key)}); err != nil || len(found) > 0 {
			b.Fatal(found, err)
		}
	}
}
