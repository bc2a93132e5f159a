package ledger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"coapp.coop/internal/fsscan"
)

func keyErr(err error, want error) bool {
	var ke *KeyError
	return errors.As(err, &ke) && errors.Is(err, want)
}

func TestKeyStore(t *testing.T) {
	l := mustOpen(t, testConfig(t.TempDir()))
	ctx := testContext(t)
	name, value := []byte("subject/ps1.1.abc"), []byte("wrapped data key")
	if _, err := l.AppendWithKeys(ctx, []KeyRequirement{NewKey(name, value)}, newEntry(1)); err != nil {
		t.Fatal(err)
	}
	mustRead(t, l, Stale, func(v *View) error {
		got, err := v.Key(name)
		if err != nil || string(got) != string(value) {
			t.Errorf("Key = %q, %v", got, err)
		}
		if _, err := v.Key([]byte("nobody")); !errors.Is(err, ErrNotFound) {
			t.Errorf("Key(absent) = %v, want ErrNotFound", err)
		}
		return nil
	})
	// The same value again, by value or by hash: fine.
	if _, err := l.AppendWithKeys(ctx, []KeyRequirement{NewKey(name, value)}, newEntry(2)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.AppendWithKeys(ctx, []KeyRequirement{ExistingKey(name, value)}, newEntry(3)); err != nil {
		t.Fatal(err)
	}
	size, root := sizeRoot(t, l)
	refused := []struct {
		name string
		keys []KeyRequirement
		want error
	}{
		{"another value", []KeyRequirement{NewKey(name, []byte("another key"))}, ErrKeyConflict},
		{"another hash", []KeyRequirement{ExistingKey(name, []byte("another key"))}, ErrKeyConflict},
		{"missing key", []KeyRequirement{ExistingKey([]byte("nobody"), value)}, ErrNotFound},
		{"one good, one bad", []KeyRequirement{NewKey([]byte("fresh"), value), ExistingKey([]byte("nobody"), value)}, ErrNotFound},
	}
	for _, tt := range refused {
		_, err := l.AppendWithKeys(ctx, tt.keys, newEntry(50))
		if !keyErr(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if s, r := sizeRoot(t, l); s != size || r != root {
		t.Errorf("refused appends changed the log")
	}
	mustRead(t, l, Stale, func(v *View) error {
		if _, err := v.Key([]byte("fresh")); !errors.Is(err, ErrNotFound) {
			t.Errorf("a refused append created a key: %v", err)
		}
		return nil
	})
	bad := KeyRequirement{Name: name, Create: value} // hash not set
	if _, err := l.AppendWithKeys(ctx, []KeyRequirement{bad}, newEntry(60)); !errors.Is(err, ErrInvalid) {
		t.Errorf("a requirement whose hash does not match its value: %v, want ErrInvalid", err)
	}

	// Destroy: the key is gone for good, a tombstone stays.
	if _, err := l.Destroy(ctx, name); err != nil {
		t.Fatal(err)
	}
	mustRead(t, l, Stale, func(v *View) error {
		if _, err := v.Key(name); !errors.Is(err, ErrKeyDestroyed) {
			t.Errorf("Key after Destroy = %v, want ErrKeyDestroyed", err)
		}
		return nil
	})
	for _, kr := range []KeyRequirement{ExistingKey(name, value), NewKey(name, []byte("a new key"))} {
		if _, err := l.AppendWithKeys(ctx, []KeyRequirement{kr}, newEntry(70)); !keyErr(err, ErrKeyDestroyed) {
			t.Errorf("append with a destroyed key: %v, want ErrKeyDestroyed", err)
		}
	}
	// Entries appended with the key are still in the log, and it verifies.
	if err := l.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestDestroyedKeyLeavesEveryFile writes a key on three nodes, lets it
// reach snapshots, destroys it, and checks after the purge that its bytes
// are in no file of any node, while the log still verifies and the
// tombstone survives a restart and a restore from snapshot.
func TestDestroyedKeyLeavesEveryFile(t *testing.T) {
	tune := func(c *Config) {
		c.SnapshotThreshold = 50
		c.TrailingLogs = 60
		c.SnapshotInterval = time.Hour
	}
	nodes := startCluster(t, 3, tune)
	leader := leaderOf(t, nodes)
	ctx := testContext(t)
	name := []byte("subject/ps1.1.erase-me")
	value := []byte(fmt.Sprintf("WRAPPED-KEY-%d-MUST-VANISH", time.Now().UnixNano()))
	kept := []byte(fmt.Sprintf("OTHER-KEY-%d-MUST-STAY", time.Now().UnixNano()))
	if _, err := leader.AppendWithKeys(ctx, []KeyRequirement{NewKey(name, value), NewKey([]byte("subject/other"), kept)}, newEntry(0)); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 120; i++ {
		mustAppend(t, leader, newEntry(i))
	}
	waitConverged(t, nodes, 120)
	for _, n := range nodes {
		if err := n.Snapshot(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Before: the key is on every node's disk (state, Raft log, snapshot).
	for _, n := range nodes {
		found, err := fsscan.Scan(n.cfg.Dir, value)
		if err != nil || len(found) == 0 {
			t.Fatalf("%s: the key is not on disk before the destroy (%v): the scan proves nothing", n.ID(), err)
		}
	}
	index, err := leader.Destroy(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := n.WaitPurged(pctx, index); err != nil {
			t.Fatalf("%s: purge: %v", n.ID(), err)
		}
		cancel()
		found, err := fsscan.Scan(n.cfg.Dir, value, kept)
		if err != nil {
			t.Fatal(err)
		}
		sawKept := false
		for _, m := range found {
			if string(m.Needle) == string(kept) {
				sawKept = true
				continue
			}
			t.Errorf("%s: the destroyed key is still in %s", n.ID(), m.Path)
		}
		if !sawKept {
			t.Errorf("%s: the key that was kept is gone too", n.ID())
		}
		if err := n.Verify(ctx); err != nil {
			t.Errorf("%s: Verify after the purge: %v", n.ID(), err)
		}
	}
	// The tombstone survives a restart, and a restore of a node that lost
	// its state from the snapshot.
	victim := nodes[2]
	cfg := victim.cfg
	if err := victim.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(cfg.Dir, "state")); err != nil {
		t.Fatal(err)
	}
	back := mustOpen(t, cfg)
	waitFor(t, "the restored node to catch up", 20*time.Second, func() error {
		var err error
		rerr := back.Read(ctx, Stale, func(v *View) error {
			if v.Size() < 120 {
				err = fmt.Errorf("size %d", v.Size())
				return nil
			}
			_, err = v.Key(name)
			if errors.Is(err, ErrKeyDestroyed) {
				err = nil
			}
			return nil
		})
		if rerr != nil {
			return rerr
		}
		return err
	})
	if found, _ := fsscan.Scan(cfg.Dir, value); len(found) > 0 {
		t.Errorf("the restored node holds the destroyed key in %s", found[0].Path)
	}
}
