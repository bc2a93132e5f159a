package ledger

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, what string, timeout time.Duration, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("%s: not after %v: %v", what, timeout, err)
}

// startCluster starts n nodes over loopback TCP: the first bootstraps, the
// others join as voters through it.
func startCluster(tb testing.TB, n int, tune func(*Config)) []*Ledger {
	tb.Helper()
	nodes := make([]*Ledger, n)
	for i := range nodes {
		cfg := testConfig(tb.TempDir())
		cfg.NodeID = fmt.Sprintf("n%d", i)
		cfg.Join = i > 0
		if tune != nil {
			tune(&cfg)
		}
		nodes[i] = mustOpen(tb, cfg)
		if i > 0 {
			if err := nodes[0].AddVoter(testContext(tb), cfg.NodeID, nodes[i].Addr()); err != nil {
				tb.Fatalf("AddVoter(%s): %v", cfg.NodeID, err)
			}
		}
	}
	return nodes
}

func leaderOf(tb testing.TB, nodes []*Ledger) *Ledger {
	tb.Helper()
	var leader *Ledger
	waitFor(tb, "a leader", 10*time.Second, func() error {
		for _, n := range nodes {
			if n.closed.Load() {
				continue
			}
			if st, err := n.Status(); err == nil && st.State == "Leader" {
				leader = n
				return nil
			}
		}
		return errors.New("none")
	})
	return leader
}

// waitConverged waits until every open node has applied size entries and
// checks that they all have the same root.
func waitConverged(tb testing.TB, nodes []*Ledger, size uint64) string {
	tb.Helper()
	var root string
	waitFor(tb, fmt.Sprintf("every node at size %d with one root", size), 15*time.Second, func() error {
		root = ""
		for _, n := range nodes {
			if n.closed.Load() {
				continue
			}
			var s uint64
			var r string
			if err := n.Read(context.Background(), Stale, func(v *View) error {
				s, r = v.Size(), v.Root().String()
				return nil
			}); err != nil {
				return err
			}
			if s != size {
				return fmt.Errorf("%s at size %d", n.ID(), s)
			}
			if root != "" && r != root {
				tb.Fatalf("%s has root %s at size %d, another node %s", n.ID(), r, size, root)
			}
			root = r
		}
		return nil
	})
	return root
}

func TestReplicationAndReadLevels(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	leader := leaderOf(t, nodes)
	for i := 0; i < 50; i++ {
		mustAppend(t, leader, newEntry(i))
	}
	root := waitConverged(t, nodes, 50)

	var follower *Ledger
	for _, n := range nodes {
		if n != leader {
			follower = n
		}
	}
	// A follower refuses writes and leader-level reads, naming the leader.
	_, err := follower.Append(testContext(t), newEntry(99))
	var nle *NotLeaderError
	if !errors.As(err, &nle) || nle.LeaderID != leader.ID() || nle.LeaderAddr != leader.Addr() {
		t.Errorf("Append on a follower = %v, want *NotLeaderError naming %s", err, leader.ID())
	}
	for _, c := range []Consistency{Leader, Linearizable} {
		if err := follower.Read(testContext(t), c, func(*View) error { return nil }); !errors.Is(err, ErrNotLeader) {
			t.Errorf("follower Read(%v) = %v, want ErrNotLeader", c, err)
		}
	}
	// Stale reads serve the replica's state; linearizable reads on the leader
	// see every acknowledged write.
	mustRead(t, follower, Stale, func(v *View) error {
		if v.Root().String() != root {
			t.Errorf("follower stale root = %s, want %s", v.Root(), root)
		}
		return nil
	})
	rs := mustAppend(t, leader, newEntry(50))
	mustRead(t, leader, Linearizable, func(v *View) error {
		if _, err := v.Entry(rs[0].Index); err != nil {
			t.Errorf("linearizable read misses an acknowledged write: %v", err)
		}
		return nil
	})
	st, err := leader.Status()
	if err != nil || len(st.Servers) != 3 {
		t.Fatalf("Status() = %+v, %v; want 3 servers", st, err)
	}
}

// TestLeaderFailover kills the leader of three and checks that the two left
// elect a new one, keep every acknowledged entry, and go on.
func TestLeaderFailover(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	leader := leaderOf(t, nodes)
	for i := 0; i < 20; i++ {
		mustAppend(t, leader, newEntry(i))
	}
	waitConverged(t, nodes, 20)
	if err := leader.Close(testContext(t)); err != nil {
		t.Fatal(err)
	}
	next := leaderOf(t, nodes)
	if next == leader {
		t.Fatal("closed node still leads")
	}
	var rs []Receipt
	waitFor(t, "an append on the new leader", 10*time.Second, func() error {
		var err error
		rs, err = next.Append(context.Background(), newEntry(20), newEntry(3))
		return err
	})
	if rs[0].Index != 20 || !rs[1].Duplicate || rs[1].Index != 3 {
		t.Errorf("receipts on the new leader = %+v", rs)
	}
	waitConverged(t, nodes, 21)
}

// TestLaggingFollowerGetsSnapshot compacts the leader's Raft log, then adds
// a node: it must catch up through an InstallSnapshot over TCP and reach the
// same root.
func TestLaggingFollowerGetsSnapshot(t *testing.T) {
	tune := func(c *Config) {
		c.SnapshotThreshold = 20
		c.TrailingLogs = 25
		c.SnapshotInterval = time.Hour // snapshots only when asked
	}
	nodes := startCluster(t, 1, tune)
	leader := nodes[0]
	for i := 0; i < 200; i++ {
		mustAppend(t, leader, newEntry(i))
	}
	if err := leader.Snapshot(testContext(t)); err != nil {
		t.Fatal(err)
	}
	first, err := leader.logs.FirstIndex()
	if err != nil || first <= 1 {
		t.Fatalf("Raft log first index after snapshot = %d, %v; want compaction", first, err)
	}
	cfg := testConfig(t.TempDir())
	cfg.NodeID, cfg.Join = "late", true
	tune(&cfg)
	late := mustOpen(t, cfg)
	if err := leader.AddVoter(testContext(t), "late", late.Addr()); err != nil {
		t.Fatal(err)
	}
	for i := 200; i < 210; i++ {
		mustAppend(t, leader, newEntry(i))
	}
	waitConverged(t, []*Ledger{leader, late}, 210)
	if f, _ := late.logs.FirstIndex(); f <= 1 {
		t.Errorf("late node's Raft log starts at %d: it replayed the log instead of installing a snapshot", f)
	}
}
