package ledger

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestInspect reads a directory without starting the node: nothing in a
// directory that does not exist (and nothing created), the node's id, its
// cluster and its state in one that a ledger closed, the state without a
// Raft state in one that RestoreBackup seeded; and refuses a directory in
// use.
func TestInspect(t *testing.T) {
	ctx := testContext(t)
	missing := filepath.Join(t.TempDir(), "nothing")
	in, err := Inspect(ctx, testConfig(missing), nil)
	if err != nil || !in.Empty() || in.NodeID != "" {
		t.Fatalf("Inspect(missing dir) = %+v, %v; want empty", in, err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("Inspect created %s", missing)
	}

	cfg := testConfig(t.TempDir())
	l := mustOpen(t, cfg)
	for i := 0; i < 70; i++ { // past one chunk
		mustAppend(t, l, newEntry(i))
	}
	if _, err := Inspect(ctx, cfg, nil); err == nil {
		t.Error("Inspect of a directory in use by a running ledger succeeded")
	}
	var backup bytes.Buffer
	if _, _, err := l.Backup(ctx, &backup, Stale); err != nil {
		t.Fatal(err)
	}
	id, addr := l.ID(), l.Addr()
	size, root := sizeRoot(t, l)
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	before := listDir(t, cfg.Dir)
	var e Entry
	in, err = Inspect(ctx, cfg, func(v *View) error {
		var err error
		e, err = v.Entry(64)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Server{{ID: id, Addr: addr, Voter: true}}
	if in.NodeID != id || !in.RaftState || !slices.Equal(in.Servers, want) || in.Size != size || in.Root.String() != root || in.Empty() || !in.HasServer(id) {
		t.Errorf("Inspect(closed ledger) = %+v; want node %s, servers %+v, size %d, root %s", in, id, want, size, root)
	}
	if e.ID != newEntry(64).ID {
		t.Errorf("Inspect's view read entry 64 = %s, want %s", e.ID, newEntry(64).ID)
	}
	if after := listDir(t, cfg.Dir); !slices.Equal(after, before) {
		t.Errorf("Inspect changed the directory's entries: %v, then %v", before, after)
	}
	again := mustOpen(t, cfg)
	if s, r := sizeRoot(t, again); s != size || r != root {
		t.Errorf("reopened after Inspect: size %d root %s, want %d %s", s, r, size, root)
	}

	restored := t.TempDir()
	if _, _, err := RestoreBackup(ctx, restored, &backup); err != nil {
		t.Fatal(err)
	}
	in, err = Inspect(ctx, testConfig(restored), nil)
	if err != nil || in.RaftState || in.NodeID != "" || len(in.Servers) != 0 || in.Size != size || in.Empty() {
		t.Errorf("Inspect(restored) = %+v, %v; want a state of %d entries and no Raft state", in, err, size)
	}
}

// listDir lists the names in dir.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	top, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range top {
		out = append(out, e.Name())
	}
	return out
}
