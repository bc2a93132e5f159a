package fsscan

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestScanFindsNeedlesInSparseFiles(t *testing.T) {
	dir := t.TempDir()
	// A sparse file with data far from its start, and a needle across the
	// 1 MiB read boundary.
	f, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("...SECRET-ONE..."), 512<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("SECRET-TWO"), 700<<20+1<<20-4); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "plain"), bytes.Repeat([]byte("x"), 100), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Scan(dir, []byte("SECRET-ONE"), []byte("SECRET-TWO"), []byte("ABSENT"), []byte("xxx"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"sparse/SECRET-ONE": true, "sparse/SECRET-TWO": true, "plain/xxx": true}
	if len(got) != len(want) {
		t.Fatalf("Scan = %v, want %d matches", got, len(want))
	}
	for _, m := range got {
		if !want[filepath.Base(m.Path)+"/"+string(m.Needle)] {
			t.Errorf("unexpected match %s in %s", m.Needle, m.Path)
		}
	}
}
