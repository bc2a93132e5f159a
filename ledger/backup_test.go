package ledger

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestBackupAndRestore(t *testing.T) {
	src := mustOpen(t, testConfig(t.TempDir()))
	for i := 0; i < 150; i++ {
		mustAppend(t, src, newEntry(i))
	}
	var buf bytes.Buffer
	size, root, err := src.Backup(testContext(t), &buf, Linearizable)
	if err != nil {
		t.Fatal(err)
	}
	if ws, wr := sizeRoot(t, src); size != ws || root.String() != wr {
		t.Fatalf("Backup reported size %d root %s, want %d %s", size, root, ws, wr)
	}
	// Appends after the backup are not in it.
	mustAppend(t, src, newEntry(150))

	dir := t.TempDir()
	rsize, rroot, err := RestoreBackup(testContext(t), dir, bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if rsize != size || rroot != root {
		t.Fatalf("RestoreBackup = size %d root %s, want %d %s", rsize, rroot, size, root)
	}
	restored := mustOpen(t, testConfig(dir))
	if s, r := sizeRoot(t, restored); s != size || r != root.String() {
		t.Fatalf("restored ledger: size %d root %s, want %d %s", s, r, size, root)
	}
	// The restored ledger takes new appends, keeps its ids, and restarts.
	rs := mustAppend(t, restored, newEntry(150), newEntry(7))
	if rs[0].Index != 150 || !rs[1].Duplicate || rs[1].Index != 7 {
		t.Errorf("receipts on the restored ledger = %+v", rs)
	}
	if err := restored.Close(testContext(t)); err != nil {
		t.Fatal(err)
	}
	again := mustOpen(t, testConfig(dir))
	if s, _ := sizeRoot(t, again); s != 151 {
		t.Errorf("restored ledger after restart: size %d, want 151", s)
	}
	// Same content as the source at the same size.
	_, srcRoot := sizeRoot(t, src)
	if _, r := sizeRoot(t, again); r != srcRoot {
		t.Errorf("restored root %s, source root %s at the same entries", r, srcRoot)
	}
}

func TestRestoreBackupRefusals(t *testing.T) {
	src := mustOpen(t, testConfig(t.TempDir()))
	for i := 0; i < 20; i++ {
		mustAppend(t, src, newEntry(i))
	}
	var buf bytes.Buffer
	if _, _, err := src.Backup(testContext(t), &buf, Stale); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()

	// Into a directory that holds a ledger.
	if _, _, err := RestoreBackup(testContext(t), src.cfg.Dir, bytes.NewReader(b)); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("RestoreBackup into a live ledger's directory = %v, want ErrNotEmpty", err)
	}
	// Damaged or truncated backups: refused, and nothing left behind.
	for name, bad := range map[string][]byte{
		"flipped":   flip(b, len(b)/2),
		"truncated": b[:len(b)-100],
		"empty":     nil,
	} {
		dir := t.TempDir()
		if _, _, err := RestoreBackup(testContext(t), dir, bytes.NewReader(bad)); err == nil {
			t.Errorf("%s backup: RestoreBackup succeeded", name)
		}
		if _, err := os.Stat(filepath.Join(dir, "state")); !os.IsNotExist(err) {
			t.Errorf("%s backup: a state was left in %s", name, dir)
		}
	}
}
