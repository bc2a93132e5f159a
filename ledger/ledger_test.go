package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"coapp.coop/ledger/merkle"
)

func sameEntry(a, b Entry) bool {
	return a.ID == b.ID && a.Kind == b.Kind && a.Author == b.Author &&
		a.Time.Equal(b.Time) && bytes.Equal(a.Payload, b.Payload)
}

func TestAppendReadAndProve(t *testing.T) {
	l := mustOpen(t, testConfig(t.TempDir()))
	var want []Entry
	var receipts []Receipt
	for i := 0; i < 10; i++ {
		batch := []Entry{newEntry(3 * i), newEntry(3*i + 1), newEntry(3*i + 2)}
		receipts = append(receipts, mustAppend(t, l, batch...)...)
		want = append(want, batch...)
	}
	var tree merkle.Tree
	for i, r := range receipts {
		if r.Index != uint64(i) || r.ID != want[i].ID || r.Duplicate {
			t.Fatalf("receipt %d = %+v, want index %d id %s", i, r, i, want[i].ID)
		}
		tree.Append(r.Leaf, nil)
	}
	mustRead(t, l, Linearizable, func(v *View) error {
		if v.Size() != 30 {
			t.Errorf("Size() = %d, want 30", v.Size())
		}
		if v.Root() != tree.Root() {
			t.Errorf("Root() = %s, want %s (from the receipts' leaves)", v.Root(), tree.Root())
		}
		for i, w := range want {
			e, err := v.Entry(uint64(i))
			if err != nil || !sameEntry(e, w) || e.Index != uint64(i) {
				t.Errorf("Entry(%d) = %+v, %v; want %+v", i, e, err, w)
			}
			byID, rc, err := v.ByID(w.ID)
			if err != nil || !sameEntry(byID, w) || rc != receipts[i] {
				t.Errorf("ByID(%s) = %+v, %+v, %v", w.ID, byID, rc, err)
			}
		}
		n := 0
		for e, err := range v.Entries(5, 100) {
			if err != nil || !sameEntry(e, want[5+n]) {
				t.Fatalf("Entries(5, 100) item %d = %+v, %v", n, e, err)
			}
			n++
		}
		if n != 25 {
			t.Errorf("Entries(5, 100) yielded %d entries, want 25", n)
		}
		for size := uint64(1); size <= 30; size += 7 {
			root, err := v.RootAt(size)
			if err != nil {
				t.Fatal(err)
			}
			for index := uint64(0); index < size; index += 3 {
				proof, err := v.InclusionProof(index, size)
				if err != nil {
					t.Fatal(err)
				}
				if err := merkle.VerifyInclusion(receipts[index].Leaf, index, size, proof, root); err != nil {
					t.Errorf("inclusion of %d in %d: %v", index, size, err)
				}
			}
			proof, err := v.ConsistencyProof(size, 30)
			if err != nil {
				t.Fatal(err)
			}
			if err := merkle.VerifyConsistency(size, 30, root, v.Root(), proof); err != nil {
				t.Errorf("consistency %d -> 30: %v", size, err)
			}
		}
		return nil
	})
}

func TestReadErrors(t *testing.T) {
	l := mustOpen(t, testConfig(t.TempDir()))
	mustAppend(t, l, newEntry(1), newEntry(2))
	mustRead(t, l, Leader, func(v *View) error {
		if _, err := v.Entry(2); !errors.Is(err, ErrNotFound) {
			t.Errorf("Entry(2) of 2 = %v, want ErrNotFound", err)
		}
		if _, _, err := v.ByID(uuid.New()); !errors.Is(err, ErrNotFound) {
			t.Errorf("ByID(unknown) = %v, want ErrNotFound", err)
		}
		if _, err := v.RootAt(3); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("RootAt(3) of 2 = %v, want ErrOutOfRange", err)
		}
		if _, err := v.InclusionProof(0, 3); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("InclusionProof(0, 3) of 2 = %v, want ErrOutOfRange", err)
		}
		if _, err := v.InclusionProof(2, 2); !errors.Is(err, ErrInvalid) {
			t.Errorf("InclusionProof(2, 2) = %v, want ErrInvalid", err)
		}
		if _, err := v.ConsistencyProof(2, 1); !errors.Is(err, ErrInvalid) {
			t.Errorf("ConsistencyProof(2, 1) = %v, want ErrInvalid", err)
		}
		if _, err := v.ConsistencyProof(1, 3); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("ConsistencyProof(1, 3) of 2 = %v, want ErrOutOfRange", err)
		}
		return nil
	})
	if err := l.Read(testContext(t), Consistency(9), func(*View) error { return nil }); !errors.Is(err, ErrInvalid) {
		t.Errorf("Read(Consistency(9)) = %v, want ErrInvalid", err)
	}
	for _, s := range []string{"stale", "leader", "linearizable", ""} {
		if _, err := ParseConsistency(s); err != nil {
			t.Errorf("ParseConsistency(%q): %v", s, err)
		}
	}
	if _, err := ParseConsistency("strong"); !errors.Is(err, ErrInvalid) {
		t.Errorf(`ParseConsistency("strong") = %v, want ErrInvalid`, err)
	}
}

func TestIdempotentAppend(t *testing.T) {
	l := mustOpen(t, testConfig(t.TempDir()))
	first := mustAppend(t, l, newEntry(1), newEntry(2))
	_, root := sizeRoot(t, l)

	// The same entries again: the same receipts, nothing stored.
	again := mustAppend(t, l, newEntry(2), newEntry(1))
	if again[0].Index != first[1].Index || again[0].Leaf != first[1].Leaf || !again[0].Duplicate ||
		again[1].Index != first[0].Index || again[1].Leaf != first[0].Leaf || !again[1].Duplicate {
		t.Errorf("re-append receipts = %+v, want the originals %+v marked Duplicate", again, first)
	}
	if s, r := sizeRoot(t, l); s != 2 || r != root {
		t.Errorf("after re-appending: size %d root %s, want 2 %s", s, r, root)
	}
	// Within one call too, alongside a new entry.
	mixed := mustAppend(t, l, newEntry(3), newEntry(3), newEntry(1))
	if mixed[0].Index != 2 || mixed[1].Index != 2 || !mixed[1].Duplicate || mixed[2].Index != 0 {
		t.Errorf("mixed receipts = %+v", mixed)
	}
	size, _ := sizeRoot(t, l)
	if size != 3 {
		t.Fatalf("size after duplicates = %d, want 3", size)
	}

	// The same id with other content conflicts, and the whole call
	// (including its new entries) writes nothing.
	_, root = sizeRoot(t, l)
	changed := newEntry(1)
	changed.Payload = []byte("something else")
	_, err := l.Append(testContext(t), newEntry(4), changed)
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.ID != changed.ID || ce.Index != 0 || !errors.Is(err, ErrConflict) {
		t.Fatalf("Append(changed content) = %v, want *ConflictError for %s at 0", err, changed.ID)
	}
	if s, r := sizeRoot(t, l); s != 3 || r != root {
		t.Errorf("after a refused append: size %d root %s, want 3 %s", s, r, root)
	}
	// Within one call, the same id with two contents is invalid.
	_, err = l.Append(testContext(t), newEntry(5), changedEntry(5))
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("Append(same id twice, different content) = %v, want ErrInvalid", err)
	}
	if s, r := sizeRoot(t, l); s != 3 || r != root {
		t.Errorf("after a refused append: size %d root %s, want 3 %s", s, r, root)
	}
}

func changedEntry(i int) Entry {
	e := newEntry(i)
	e.Payload = append(e.Payload, '!')
	return e
}

func TestAppendValidation(t *testing.T) {
	cfg := testConfig(t.TempDir())
	l := mustOpen(t, cfg)
	mustAppend(t, l, newEntry(0))
	_, root := sizeRoot(t, l)
	with := func(f func(*Entry)) Entry { e := newEntry(99); f(&e); return e }
	tests := []struct {
		name  string
		e     Entry
		field string
		large bool
	}{
		{"empty kind", with(func(e *Entry) { e.Kind = "" }), "kind", false},
		{"kind with a space", with(func(e *Entry) { e.Kind = "a b" }), "kind", false},
		{"kind too long", with(func(e *Entry) { e.Kind = strings.Repeat("k", 65) }), "kind", false},
		{"empty author", with(func(e *Entry) { e.Author = "" }), "author", false},
		{"author not UTF-8", with(func(e *Entry) { e.Author = "\xff" }), "author", false},
		{"author too long", with(func(e *Entry) { e.Author = strings.Repeat("a", 257) }), "author", false},
		{"time before 1678", with(func(e *Entry) { e.Time = time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC) }), "time", false},
		{"payload too large", with(func(e *Entry) { e.Payload = make([]byte, cfg.MaxEntryBytes+1) }), "payload", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The bad entry sits second in the call: the good first one
			// must not be written either.
			_, err := l.Append(testContext(t), newEntry(50), tt.e)
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field || ve.Entry != 1 || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Append = %v, want *ValidationError on entry 1 field %s", err, tt.field)
			}
			if errors.Is(err, ErrTooLarge) != tt.large {
				t.Errorf("errors.Is(%v, ErrTooLarge) = %v, want %v", err, !tt.large, tt.large)
			}
			if s, r := sizeRoot(t, l); s != 1 || r != root {
				t.Errorf("after a refused append: size %d root %s, want 1 %s", s, r, root)
			}
		})
	}
	// A call larger than MaxBatchBytes as a whole.
	var big []Entry
	for i := 0; i*cfg.MaxEntryBytes/2 <= cfg.MaxBatchBytes; i++ {
		e := newEntry(1000 + i)
		e.Payload = make([]byte, cfg.MaxEntryBytes/2)
		big = append(big, e)
	}
	if _, err := l.Append(testContext(t), big...); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Append(%d bytes) = %v, want ErrTooLarge", cfg.MaxBatchBytes, err)
	}
	if rs, err := l.Append(testContext(t)); err != nil || rs != nil {
		t.Errorf("Append() = %v, %v; want nil, nil", rs, err)
	}
}

func TestAppendFillsIDAndTime(t *testing.T) {
	l := mustOpen(t, testConfig(t.TempDir()))
	before := time.Now()
	rs := mustAppend(t, l, Entry{Kind: "k", Author: "a"}, Entry{Kind: "k", Author: "a"})
	if rs[0].ID == uuid.Nil || rs[0].ID == rs[1].ID || rs[0].ID.Version() != 7 {
		t.Errorf("assigned ids %s, %s: want distinct UUIDv7", rs[0].ID, rs[1].ID)
	}
	mustRead(t, l, Stale, func(v *View) error {
		e, err := v.Entry(0)
		if err != nil || e.Time.Before(before.Add(-time.Second)) || e.Time.Location() != time.UTC {
			t.Errorf("Entry(0).Time = %v, %v; want about now, in UTC", e.Time, err)
		}
		return nil
	})
}

func TestConcurrentAppends(t *testing.T) {
	l := mustOpen(t, testConfig(t.TempDir()))
	const writers, each = 32, 40
	var wg sync.WaitGroup
	got := make([][]Receipt, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				n := w*each + i
				rs, err := l.Append(context.Background(), newEntry(n))
				if err != nil {
					t.Errorf("writer %d: Append: %v", w, err)
					return
				}
				got[w] = append(got[w], rs...)
			}
		}()
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for w := range got {
		var last int64 = -1
		for _, r := range got[w] {
			if seen[r.Index] {
				t.Fatalf("index %d acknowledged twice", r.Index)
			}
			seen[r.Index] = true
			if int64(r.Index) <= last {
				t.Errorf("writer %d: index %d after %d: one writer's appends out of order", w, r.Index, last)
			}
			last = int64(r.Index)
		}
	}
	if size, _ := sizeRoot(t, l); size != writers*each || len(seen) != writers*each {
		t.Errorf("size %d, %d distinct indexes; want %d", size, len(seen), writers*each)
	}
	st, err := l.Status()
	if err != nil {
		t.Fatal(err)
	}
	// Group commit: far fewer Raft entries than appends (a loose bound;
	// the benchmark measures the real effect).
	if st.CommitIndex >= writers*each {
		t.Logf("commit index %d for %d appends: no grouping happened", st.CommitIndex, writers*each)
	}
}

func TestFollow(t *testing.T) {
	l := mustOpen(t, testConfig(t.TempDir()))
	for i := 0; i < 300; i++ {
		mustAppend(t, l, newEntry(i))
	}
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	var got []Entry
	errc := make(chan error, 1)
	go func() {
		for e, err := range l.Follow(ctx, 100) {
			if err != nil {
				errc <- err
				return
			}
			got = append(got, e)
			if len(got) == 250 {
				cancel()
			}
		}
		errc <- nil
	}()
	// Entries appended while following arrive too.
	for i := 300; i < 350; i++ {
		mustAppend(t, l, newEntry(i))
	}
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow ended with %v, want context.Canceled", err)
	}
	if len(got) != 250 {
		t.Fatalf("Follow yielded %d entries, want 250", len(got))
	}
	for i, e := range got {
		if e.Index != uint64(100+i) || !sameEntry(e, newEntry(100+i)) {
			t.Fatalf("Follow item %d = index %d, want %d", i, e.Index, 100+i)
		}
	}
}

func TestFollowEndsOnClose(t *testing.T) {
	cfg := testConfig(t.TempDir())
	l, err := Open(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		for _, err := range l.Follow(context.Background(), 0) {
			if err != nil {
				errc <- err
				return
			}
		}
	}()
	mustAppend(t, l, newEntry(1))
	if err := l.Close(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("Follow after Close yielded %v, want ErrClosed", err)
	}
	if _, err := l.Append(testContext(t), newEntry(2)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if err := l.Read(testContext(t), Stale, func(*View) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close = %v, want ErrClosed", err)
	}
	if err := l.Close(testContext(t)); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestRestartKeepsEntriesAndRoot(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	l, err := Open(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	id := l.ID()
	for i := 0; i < 100; i++ {
		mustAppend(t, l, newEntry(i))
	}
	size, root := sizeRoot(t, l)
	if err := l.Close(testContext(t)); err != nil {
		t.Fatal(err)
	}
	// Reopen on another port: a sole voter's address may change.
	l = mustOpen(t, cfg)
	if l.ID() != id {
		t.Errorf("node id after restart = %s, want %s (kept in node-id)", l.ID(), id)
	}
	if s, r := sizeRoot(t, l); s != size || r != root {
		t.Fatalf("after restart: size %d root %s, want %d %s", s, r, size, root)
	}
	// Appends go on from where the log was.
	rs := mustAppend(t, l, newEntry(100), newEntry(5))
	if rs[0].Index != 100 || !rs[1].Duplicate || rs[1].Index != 5 {
		t.Errorf("receipts after restart = %+v", rs)
	}
}

func TestNodeIDMismatchRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.NodeID = "alpha"
	l, err := Open(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(testContext(t)); err != nil {
		t.Fatal(err)
	}
	cfg.NodeID = "beta"
	if _, err := Open(testContext(t), cfg); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "NodeID") {
		t.Errorf("Open with another NodeID = %v, want ErrInvalid about NodeID", err)
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		field string
		f     func(*Config)
	}{
		{"Config.Dir", func(c *Config) { c.Dir = "" }},
		{"Config.LeaderLeaseTimeout", func(c *Config) { c.LeaderLeaseTimeout = 2 * c.HeartbeatTimeout }},
		{"Config.TrailingLogs", func(c *Config) { c.SnapshotThreshold = 100; c.TrailingLogs = 50 }},
		{"Config.MaxAppendEntries", func(c *Config) { c.MaxAppendEntries = 5000 }},
		{"Config.MaxBatchBytes", func(c *Config) { c.MaxBatchBytes = 64 << 20 }},
		{"Config.MaxBatchBytes", func(c *Config) { c.MaxEntryBytes = 1 << 20; c.MaxBatchBytes = 1 << 10 }},
	}
	for _, tt := range tests {
		cfg := testConfig(t.TempDir())
		tt.f(&cfg)
		_, err := Open(testContext(t), cfg)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != tt.field {
			t.Errorf("Open with bad %s = %v, want *ValidationError on it", tt.field, err)
		}
	}
	d := DefaultConfig("x")
	if d.TrailingLogs != 10240 || d.SnapshotThreshold != 8192 || d.BindAddr != "127.0.0.1:7401" {
		t.Errorf("DefaultConfig = %+v", d)
	}
	if err := d.validate(); err != nil {
		t.Errorf("DefaultConfig does not validate: %v", err)
	}
}

func TestErrorsRead(t *testing.T) {
	tests := []struct {
		err  error
		is   []error
		text string
	}{
		{&NotLeaderError{LeaderID: "n2", LeaderAddr: "10.0.0.2:7401"}, []error{ErrNotLeader}, "not the leader (the leader is n2 at 10.0.0.2:7401)"},
		{&NotLeaderError{}, []error{ErrNotLeader, ErrNoLeader}, "ledger: no leader"},
		{&ValidationError{Entry: 2, Field: "kind", Reason: "empty"}, []error{ErrInvalid}, "ledger: entry 2: invalid kind: empty"},
		{&CorruptionError{Index: 7, Reason: "entry checksum mismatch"}, []error{ErrCorrupt}, "corrupt data at index 7"},
		{&ConflictError{ID: uuid.Nil, Index: 3}, []error{ErrConflict}, "at index 3"},
	}
	for _, tt := range tests {
		for _, target := range tt.is {
			if !errors.Is(tt.err, target) {
				t.Errorf("errors.Is(%v, %v) = false", tt.err, target)
			}
		}
		if !strings.Contains(tt.err.Error(), tt.text) {
			t.Errorf("%T.Error() = %q, want it to contain %q", tt.err, tt.err.Error(), tt.text)
		}
	}
	if errors.Is(&NotLeaderError{LeaderID: "n2"}, ErrNoLeader) {
		t.Error("a NotLeaderError naming a leader matches ErrNoLeader")
	}
	if fmt.Sprint(Linearizable) != "linearizable" || fmt.Sprint(Stale) != "stale" || fmt.Sprint(Leader) != "leader" {
		t.Error("Consistency.String")
	}
}

func TestFollowKinds(t *testing.T) {
	l := mustOpen(t, testConfig(t.TempDir()))
	other := newEntry(2)
	other.Kind = "other/v1"
	mustAppend(t, l, newEntry(1), other, newEntry(3))
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	var got []Entry
	for e, err := range l.Follow(ctx, 0, "other/v1") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
		if len(got) == 3 {
			break
		}
	}
	if got[0].Payload != nil || got[2].Payload != nil || !sameEntry(got[1], other) || got[0].Kind != "test.record/v1" || got[2].Index != 2 {
		t.Errorf("Follow with a kind filter yielded %+v", got)
	}
}

// TestApparentSize: a running ledger with the default memtables maps its
// files at less than 1 GiB in all (Badger's defaults made it 4.3 GiB of
// sparse files), so that copying a data directory does not read gigabytes
// of holes.
func TestApparentSize(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MemTableSize, cfg.BlockCacheSize = 0, 0 // the defaults
	l := mustOpen(t, cfg)
	if _, err := l.Append(testContext(t), newEntry(1)); err != nil {
		t.Fatal(err)
	}
	var total int64
	err := filepath.WalkDir(cfg.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if total >= 1<<30 {
		t.Fatalf("a running ledger's files add up to %d MiB (apparent): want under 1 GiB", total>>20)
	}
	t.Logf("apparent size while running: %d MiB", total>>20)
}
