package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"coapp.coop/internal/fsscan"
)

// Regression tests, one per defect of the erasure found in review: each
// failed on the code before the purger was rebuilt.

// secret returns a value to look for on disk.
func secret(tag string) []byte {
	return []byte(fmt.Sprintf("WRAPPED-%s-%d-MUST-VANISH", tag, time.Now().UnixNano()))
}

// assertGone fails when any of values is in a file under dir, and when
// kept (if not nil) is not: the scan can fail.
func assertGone(t *testing.T, who, dir string, kept []byte, values ...[]byte) {
	t.Helper()
	needles := append([][]byte(nil), values...)
	if kept != nil {
		needles = append(needles, kept)
	}
	found, err := fsscan.Scan(dir, needles...)
	if err != nil {
		t.Fatal(err)
	}
	sawKept := false
	for _, m := range found {
		if kept != nil && bytes.Equal(m.Needle, kept) {
			sawKept = true
			continue
		}
		t.Errorf("%s: destroyed bytes %q still in %s", who, m.Needle, m.Path)
	}
	if kept != nil && !sawKept {
		t.Errorf("%s: the key kept is not on disk: the scan proves nothing", who)
	}
}

func waitVerified(t *testing.T, l *Ledger, index uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.WaitPurged(ctx, index); err != nil {
		t.Fatalf("%s: purge of %d: %v (status %+v)", l.ID(), index, err, l.PurgeStatus())
	}
}

// Defect 1: Destroy("k") dropped every key starting with "k". A warm
// replica (the key's hash cached) and a restarted one then decided a
// later requirement on "k0" differently, and their roots diverged.
func TestDestroyIsExact(t *testing.T) {
	nodes := startCluster(t, 2, nil)
	leader := leaderOf(t, nodes)
	ctx := testContext(t)
	k0 := secret("k0")
	if _, err := leader.AppendWithKeys(ctx, []KeyRequirement{NewKey([]byte("k"), secret("k")), NewKey([]byte("k0"), k0)}, newEntry(0)); err != nil {
		t.Fatal(err)
	}
	index, err := leader.Destroy(ctx, []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		waitVerified(t, n, index)
	}
	// Restart the follower: its cache is empty, it reads from disk.
	var follower *Ledger
	for _, n := range nodes {
		if n != leader {
			follower = n
		}
	}
	cfg := follower.cfg
	cfg.BindAddr = follower.Addr()
	if err := follower.Close(ctx); err != nil {
		t.Fatal(err)
	}
	back := mustOpen(t, cfg)
	nodes = []*Ledger{leader, back}
	// Two nodes: the restart may have moved the leadership.
	waitFor(t, "the append on k0 after destroying k", 10*time.Second, func() error {
		_, err := leaderOf(t, nodes).AppendWithKeys(ctx, []KeyRequirement{ExistingKey([]byte("k0"), k0)}, newEntry(1))
		if err != nil && !errors.Is(err, ErrNotLeader) {
			t.Fatalf("a requirement on k0 after destroying k: %v", err)
		}
		return err
	})
	waitConverged(t, nodes, 2)
	for _, n := range nodes {
		mustRead(t, n, Stale, func(v *View) error {
			if got, err := v.Key([]byte("k0")); err != nil || !bytes.Equal(got, k0) {
				t.Errorf("%s: k0 = %q, %v; want it kept", n.ID(), got, err)
			}
			if _, err := v.Key([]byte("k")); !errors.Is(err, ErrKeyDestroyed) {
				t.Errorf("%s: k = %v, want destroyed", n.ID(), err)
			}
			return nil
		})
	}
}

// Defect 2: the Raft logs that carried a key, compacted normally before it
// was destroyed (the usual case), stayed in the Raft store's tables.
func TestDestroyReachesLogsCompactedBefore(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MemTableSize, cfg.BlockCacheSize = 4<<20, 4<<20
	cfg.MaxBatchBytes, cfg.MaxEntryBytes = 64<<10, 16<<10
	cfg.SnapshotThreshold, cfg.TrailingLogs, cfg.SnapshotInterval = 64, 80, time.Hour
	l := mustOpen(t, cfg)
	ctx := testContext(t)
	value, kept := secret("old"), secret("kept")
	if _, err := l.AppendWithKeys(ctx, []KeyRequirement{NewKey([]byte("s/old"), value), NewKey([]byte("s/kept"), kept)}, newEntry(0)); err != nil {
		t.Fatal(err)
	}
	// Enough logs that the key's log goes down the Raft store's levels
	// (memtables flushed, tables compacted into deeper levels), then a
	// compaction of the Raft log deletes it: its tombstone lands in a
	// memtable, its bytes stay in a deep table.
	filler := bytes.Repeat([]byte{'x'}, 15<<10)
	for i := 1; i <= 4000; i++ {
		e := newEntry(i)
		e.Payload = filler
		e.Payload = append(append([]byte(nil), filler...), byte(i), byte(i>>8))
		mustAppend(t, l, e)
	}
	if err := l.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if first, _ := l.logs.FirstIndex(); first <= 3 {
		t.Fatalf("first log %d: the key's log was not compacted; the test proves nothing", first)
	}
	if found, _ := fsscan.Scan(filepath.Join(cfg.Dir, "raft"), value); len(found) == 0 {
		t.Fatal("the compacted log's bytes are not in the Raft store's files: the test proves nothing")
	}
	index, err := l.Destroy(ctx, []byte("s/old"))
	if err != nil {
		t.Fatal(err)
	}
	waitVerified(t, l, index)
	assertGone(t, l.ID(), cfg.Dir, kept, value)
}

// Defect 3: a follower that caught up by InstallSnapshot never purged: Raft
// kept its old log (the store was not monotonic) and its older snapshot,
// both with the key, and WaitPurged hung.
func TestDestroyOnFollowerThatInstallsSnapshot(t *testing.T) {
	tune := func(c *Config) { c.SnapshotThreshold, c.TrailingLogs, c.SnapshotInterval = 20, 25, time.Hour }
	nodes := startCluster(t, 3, tune)
	leader := leaderOf(t, nodes)
	ctx := testContext(t)
	value, kept := secret("down"), secret("stay")
	if _, err := leader.AppendWithKeys(ctx, []KeyRequirement{NewKey([]byte("s/down"), value), NewKey([]byte("s/stay"), kept)}, newEntry(0)); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 30; i++ {
		mustAppend(t, leader, newEntry(i))
	}
	waitConverged(t, nodes, 30)
	var down *Ledger
	for _, n := range nodes {
		if n != leader {
			down = n
			break
		}
	}
	if err := down.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := down.cfg
	cfg.BindAddr = down.Addr()
	if err := down.Close(ctx); err != nil {
		t.Fatal(err)
	}
	index, err := leader.Destroy(ctx, []byte("s/down"))
	if err != nil {
		t.Fatal(err)
	}
	// The leader moves on well past its trailing logs: the node that was
	// down comes back to a snapshot install.
	for i := 30; i < 120; i++ {
		mustAppend(t, leader, newEntry(i))
	}
	if err := leader.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if found, _ := fsscan.Scan(cfg.Dir, value); len(found) == 0 {
		t.Fatal("the key is not on the down node's disk: the test proves nothing")
	}
	back := mustOpen(t, cfg)
	waitVerified(t, back, index)
	assertGone(t, "the node that was down", cfg.Dir, kept, value)
	if st := back.PurgeStatus(); st.Destroyed < index || st.Verified < index || st.Pending != 0 {
		t.Errorf("status %+v", st)
	}
}

// Defect 4: commands of 1 MiB or more went to the Raft store's value log,
// whose head file no collection rewrites; key values above 1 KiB to the
// state's. Both are refused now, so that every copy stays in tables.
func TestKeyMaterialStaysInline(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxBatchBytes, cfg.MemTableSize = 1<<20, 256<<20
	if _, err := Open(testContext(t), cfg); err == nil {
		t.Fatal("a 1 MiB command size was accepted")
	}
	l := mustOpen(t, testConfig(t.TempDir()))
	big := bytes.Repeat([]byte{1}, 1001)
	if _, err := l.AppendWithKeys(testContext(t), []KeyRequirement{NewKey([]byte("s/big"), big)}, newEntry(0)); err == nil {
		t.Fatal("a key value of 1001 bytes was accepted")
	}
}

// Defect 5: the purge was a flag the next DeleteRange consumed, and a purge
// that failed (a configuration change not yet committed, a snapshot Raft
// could not take yet) was not tried again: WaitPurged hung. It is retried
// on a timer now; and a node that stops before purging purges when it
// starts again.
func TestPurgeRetried(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.PurgeRetry = 50 * time.Millisecond
	fails := 3
	purgeFault = func() error {
		if fails > 0 {
			fails--
			return errors.New("injected: raft cannot snapshot now")
		}
		return nil
	}
	defer func() { purgeFault = nil }()
	l := mustOpen(t, cfg)
	ctx := testContext(t)
	value := secret("retry")
	if _, err := l.AppendWithKeys(ctx, []KeyRequirement{NewKey([]byte("s/retry"), value)}, newEntry(0)); err != nil {
		t.Fatal(err)
	}
	index, err := l.Destroy(ctx, []byte("s/retry"))
	if err != nil {
		t.Fatal(err)
	}
	waitVerified(t, l, index)
	if fails != 0 {
		t.Fatalf("%d injected failures left: the purge was not tried again", fails)
	}
	assertGone(t, l.ID(), cfg.Dir, nil, value)
}

func TestPurgeResumesAfterRestart(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.PurgeRetry = 100 * time.Millisecond
	l, err := Open(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	value := secret("resume")
	if _, err := l.AppendWithKeys(ctx, []KeyRequirement{NewKey([]byte("s/resume"), value)}, newEntry(0)); err != nil {
		t.Fatal(err)
	}
	index, err := l.Destroy(ctx, []byte("s/resume"))
	if err != nil {
		t.Fatal(err)
	}
	waitVerified(t, l, index)
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// As if the node had stopped before its purge: its record says
	// nothing was purged.
	if err := os.Remove(filepath.Join(cfg.Dir, purgedFile)); err != nil {
		t.Fatal(err)
	}
	back := mustOpen(t, cfg)
	waitVerified(t, back, index)
	assertGone(t, back.ID(), cfg.Dir, nil, value)
}

// Defect 6: Persist was not isolated from a Restore: a snapshot taken
// before a Restore streamed an empty body under a valid digest.
func TestSnapshotHoldsTheStateUntilReleased(t *testing.T) {
	l := mustOpen(t, testConfig(t.TempDir()))
	for i := 0; i < 10; i++ {
		mustAppend(t, l, newEntry(i))
	}
	snap, err := l.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if l.fsm.restoreMu.TryLock() {
		l.fsm.restoreMu.Unlock()
		t.Fatal("a restore could replace the state while a snapshot is being written")
	}
	var buf bytes.Buffer
	if err := writeSnapshot(&buf, snap.(*fsmSnapshot).txn, snap.(*fsmSnapshot).m); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	snap.Release() // idempotent
	if !l.fsm.restoreMu.TryLock() {
		t.Fatal("the snapshot's lock outlived its Release")
	}
	l.fsm.restoreMu.Unlock()
	if buf.Len() < 10*50 {
		t.Fatalf("a snapshot of 10 entries is %d bytes", buf.Len())
	}
}

// A snapshot cut short by a crash leaves snapshots/*.tmp, which Raft never
// reads nor removes: Open removes it.
func TestUnfinishedSnapshotRemoved(t *testing.T) {
	cfg := testConfig(t.TempDir())
	l := mustOpen(t, cfg)
	mustAppend(t, l, newEntry(0))
	if err := l.Close(testContext(t)); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(cfg.Dir, "snapshots", "2-9-123.tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	value := secret("tmp")
	if err := os.WriteFile(filepath.Join(tmp, "state.bin"), value, 0o600); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, cfg)
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the unfinished snapshot is still there: %v", err)
	}
}

// One AppendWithKeys naming one absent key twice (with two values) kept
// the last: it is refused, and nothing is written.
func TestKeyNamedTwiceRefused(t *testing.T) {
	l := mustOpen(t, testConfig(t.TempDir()))
	ctx := testContext(t)
	_, err := l.AppendWithKeys(ctx, []KeyRequirement{NewKey([]byte("s/x"), []byte("one")), NewKey([]byte("s/x"), []byte("two"))}, newEntry(0))
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Field != "keys[1]" {
		t.Fatalf("a key named twice: %v, want invalid keys[1]", err)
	}
	mustRead(t, l, Stale, func(v *View) error {
		if v.Size() != 0 {
			t.Errorf("size %d after a refused append", v.Size())
		}
		if _, err := v.Key([]byte("s/x")); !errors.Is(err, ErrNotFound) {
			t.Errorf("the key was created: %v", err)
		}
		return nil
	})
}

// Retrying an Append with an explicit ID and a zero Time was refused as a
// conflict (each attempt got the clock's time): it is the same entry.
func TestRetryWithoutTime(t *testing.T) {
	l := mustOpen(t, testConfig(t.TempDir()))
	ctx := testContext(t)
	e := newEntry(0)
	e.Time = time.Time{}
	first, err := l.Append(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	again, err := l.Append(ctx, e)
	if err != nil {
		t.Fatalf("the retry: %v", err)
	}
	if !again[0].Duplicate || again[0].Index != first[0].Index || again[0].Leaf != first[0].Leaf {
		t.Fatalf("the retry's receipt %+v, want the first's %+v, as a duplicate", again[0], first[0])
	}
	other := e
	other.Payload = []byte("other content")
	var ce *ConflictError
	if _, err := l.Append(ctx, other); !errors.As(err, &ce) {
		t.Fatalf("other content under the same id: %v, want a conflict", err)
	}
}

// TestPurgeGathersErasures: erasures committed within PurgeDelay of each
// other are purged by one round, and each is verified.
func TestPurgeGathersErasures(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.PurgeDelay = 2 * time.Second
	l := mustOpen(t, cfg)
	ctx := testContext(t)
	var values [][]byte
	for i := range 5 {
		name := []byte(fmt.Sprintf("s/gather-%d", i))
		v := secret(string(name))
		values = append(values, v)
		if _, err := l.AppendWithKeys(ctx, []KeyRequirement{NewKey(name, v)}, newEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	var last uint64
	for i := range 5 {
		index, err := l.Destroy(ctx, []byte(fmt.Sprintf("s/gather-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		last = index
	}
	waitVerified(t, l, last)
	if st := l.PurgeStatus(); st.Rounds != 1 || st.Verified < last {
		t.Fatalf("five erasures within PurgeDelay: %d rounds, verified through %d (want 1 round, through %d)", st.Rounds, st.Verified, last)
	}
	assertGone(t, l.ID(), cfg.Dir, nil, values...)
}
