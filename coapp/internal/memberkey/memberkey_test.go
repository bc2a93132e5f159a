package memberkey

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"testing"
)

// TestKeyFiles makes a key, reads it back on a fresh start, refuses to
// replace it, and says ErrNoKey for a member without one.
func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	pub, err := New(dir, nil).Create("coop-a")
	if err != nil {
		t.Fatal(err)
	}
	k, err := New(dir, nil).Load("coop-a", false)
	if err != nil || !pub.Equal(k.Public()) {
		t.Fatalf("the key read back: %v", err)
	}
	if _, err := New(dir, nil).Create("coop-a"); err == nil {
		t.Fatal("Create replaced a key file")
	}
	if _, err := New(dir, nil).Load("coop-b", false); !errors.Is(err, ErrNoKey) {
		t.Fatalf("Load of a member without a key: %v, want ErrNoKey", err)
	}
	if fi, err := os.Stat(New(dir, nil).Path("coop-a")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v, %v", fi, err)
	}
}

// TestSealedKeyFiles: with a passphrase the file holds no seed in clear,
// and opens only with the passphrase; a damaged file is refused.
func TestSealedKeyFiles(t *testing.T) {
	dir := t.TempDir()
	pass := []byte("correct horse")
	s := New(dir, pass)
	k, err := s.Key("coop-a")
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(s.Path("coop-a"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(file, []byte(base64.StdEncoding.EncodeToString(k.Seed()))) || bytes.Contains(file, k.Seed()) {
		t.Fatal("the sealed file holds the seed in clear")
	}
	if _, err := New(dir, []byte("wrong")).Load("coop-a", false); err == nil {
		t.Fatal("a wrong passphrase opened the key")
	}
	if back, err := New(dir, pass).Load("coop-a", false); err != nil || !back.Equal(k) {
		t.Fatalf("the right passphrase: %v", err)
	}
	if err := os.WriteFile(s.Path("coop-a"), []byte("{damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(dir, pass).Load("coop-a", false); err == nil {
		t.Fatal("a damaged key file was read")
	}
}
