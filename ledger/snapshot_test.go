package ledger

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// recordingHandler keeps the messages logged, for tests that check which
// path the code took.
type recordingHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Message)
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordingHandler) saw(msg string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.msgs {
		if m == msg {
			return true
		}
	}
	return false
}

func snapshotConfig(dir string) Config {
	cfg := testConfig(dir)
	cfg.SnapshotThreshold = 20
	cfg.TrailingLogs = 25
	cfg.SnapshotInterval = time.Hour
	return cfg
}

// fillAndSnapshot appends 100 entries, snapshots (compacting the Raft log),
// appends 10 more and closes. It returns the size and root at close.
func fillAndSnapshot(t *testing.T, cfg Config) (uint64, string) {
	t.Helper()
	l, err := Open(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		mustAppend(t, l, newEntry(i))
	}
	if err := l.Snapshot(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if first, _ := l.logs.FirstIndex(); first <= 1 {
		t.Fatalf("Raft log not compacted by the snapshot (first index %d)", first)
	}
	for i := 100; i < 110; i++ {
		mustAppend(t, l, newEntry(i))
	}
	size, root := sizeRoot(t, l)
	if err := l.Close(testContext(t)); err != nil {
		t.Fatal(err)
	}
	return size, root
}

func TestRestartAfterSnapshotKeepsLocalState(t *testing.T) {
	dir := t.TempDir()
	cfg := snapshotConfig(dir)
	size, root := fillAndSnapshot(t, cfg)
	rec := &recordingHandler{}
	cfg.Logger = slog.New(rec)
	l := mustOpen(t, cfg)
	if s, r := sizeRoot(t, l); s != size || r != root {
		t.Fatalf("after restart: size %d root %s, want %d %s", s, r, size, root)
	}
	if !rec.saw("ledger state already holds the snapshot; kept") {
		t.Error("restart copied the snapshot over a state that already held it")
	}
}

func TestRestoreFromSnapshotWhenStateLost(t *testing.T) {
	dir := t.TempDir()
	cfg := snapshotConfig(dir)
	size, root := fillAndSnapshot(t, cfg)
	// Lose the state database: the snapshot plus the Raft log after it
	// must rebuild every entry and the same root.
	if err := os.RemoveAll(filepath.Join(dir, "state")); err != nil {
		t.Fatal(err)
	}
	rec := &recordingHandler{}
	cfg.Logger = slog.New(rec)
	l := mustOpen(t, cfg)
	if s, r := sizeRoot(t, l); s != size || r != root {
		t.Fatalf("after restore: size %d root %s, want %d %s", s, r, size, root)
	}
	if !rec.saw("restoring ledger state from snapshot") {
		t.Error("the state was not restored from the snapshot")
	}
	mustRead(t, l, Stale, func(v *View) error {
		for i := 0; i < 110; i += 9 {
			e, err := v.Entry(uint64(i))
			if err != nil || !sameEntry(e, newEntry(i)) {
				t.Errorf("Entry(%d) after restore = %+v, %v", i, e, err)
			}
		}
		return nil
	})
}

func TestCorruptSnapshotRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := snapshotConfig(dir)
	fillAndSnapshot(t, cfg)
	files, err := filepath.Glob(filepath.Join(dir, "snapshots", "*", "state.bin"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no snapshot file: %v", err)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x20
	if err := os.WriteFile(files[0], data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "state")); err != nil {
		t.Fatal(err)
	}
	if l, err := Open(testContext(t), cfg); err == nil {
		_ = l.Close(context.Background())
		t.Fatal("Open restored from a damaged snapshot")
	}
}

// TestRestoreChecksStream feeds damaged snapshot streams to the FSM: each
// must be refused, and the state must refuse service until a good restore.
func TestRestoreChecksStream(t *testing.T) {
	l := mustOpen(t, testConfig(t.TempDir()))
	for i := 0; i < 40; i++ {
		mustAppend(t, l, newEntry(i))
	}
	var good bytes.Buffer
	snap, err := l.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := writeSnapshot(&good, snap.(*fsmSnapshot).txn, snap.(*fsmSnapshot).m); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	// A second, empty ledger receives the streams (its state holds nothing,
	// so every restore really loads).
	target := mustOpen(t, testConfig(t.TempDir()))
	g := good.Bytes()
	damaged := map[string][]byte{
		"byte flipped in a record": flip(g, len(g)/2),
		"byte flipped in meta":     flip(g, 12),
		"truncated":                g[:len(g)-40],
		"digest changed":           flip(g, len(g)-1),
		"not a snapshot":           []byte("hello, world, this is not a snapshot at all, not even close to one"),
	}
	for name, stream := range damaged {
		if err := target.fsm.Restore(nopCloser{bytes.NewReader(stream)}); err == nil {
			t.Errorf("%s: Restore accepted it", name)
		}
	}
	if err := target.Read(testContext(t), Stale, func(*View) error { return nil }); err == nil {
		t.Error("reads served after a failed restore")
	}
	if err := target.fsm.Restore(nopCloser{bytes.NewReader(g)}); err != nil {
		t.Fatalf("Restore(good stream): %v", err)
	}
	ws, wr := sizeRoot(t, l)
	if s, r := sizeRoot(t, target); s != ws || r != wr {
		t.Errorf("restored size %d root %s, want %d %s", s, r, ws, wr)
	}
}

func flip(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 0x01
	return out
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }
