package coapp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"coapp.coop/coapp/client"
	"coapp.coop/coapp/internal/memberkey"
)

// joinNode starts a node that joins the federation through via.
func joinNode(tb testing.TB, id string, via *Node, token string, voter bool) *Node {
	tb.Helper()
	cfg := nodeConfig(tb.TempDir())
	cfg.NodeID, cfg.Join, cfg.JoinToken, cfg.NonVoter = id, via.URL(), token, !voter
	cfg.KeyFile = via.KeyFile() // the federation's key file, passed out of band
	// The tests publish as the founding member through every node: its
	// signing key, too, is copied out of band, as a member running
	// several nodes would.
	copyMemberKeys(tb, via.cfg.Dir, cfg.Dir)
	return mustStart(tb, cfg)
}

// copyMemberKeys copies the member signing keys of one node's directory
// into another's.
func copyMemberKeys(tb testing.TB, from, to string) {
	tb.Helper()
	files, _ := filepath.Glob(filepath.Join(from, memberkey.Dir, "*.key"))
	if err := os.MkdirAll(filepath.Join(to, memberkey.Dir), 0o700); err != nil {
		tb.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, memberkey.Dir, filepath.Base(f)), b, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
}

// converged waits until every node answers the same size and root.
func converged(tb testing.TB, token string, size uint64, nodes ...*Node) client.LedgerInfo {
	tb.Helper()
	var info client.LedgerInfo
	waitUntil(tb, fmt.Sprintf("all nodes at size %d", size), 20*time.Second, func() error {
		for i, n := range nodes {
			li, err := client.New(n.URL(), token).Ledger(context.Background(), "stale")
			if err != nil {
				return err
			}
			if li.Size != size {
				return fmt.Errorf("%s at %d", n.ID(), li.Size)
			}
			if i > 0 && li.Root != info.Root {
				tb.Fatalf("%s has root %s at size %d, %s has %s", n.ID(), li.Root, size, nodes[0].ID(), info.Root)
			}
			info = li
		}
		return nil
	})
	return info
}

func TestFederationOfThree(t *testing.T) {
	n0, token := bootstrapNode(t)
	n1 := joinNode(t, "n1", n0, token, true)
	n2 := joinNode(t, "n2", n1, token, true) // joins through a follower
	ctx := testCtx(t)

	// Writes through any node reach the leader.
	var recs []client.Record
	for i, n := range []*Node{n0, n1, n2} {
		r := record(i)
		recs = append(recs, r)
		if _, err := client.New(n.URL(), token).Publish(ctx, []client.Record{r}); err != nil {
			t.Fatalf("publish through %s: %v", n.ID(), err)
		}
	}
	// Genesis, n0, token, schema, n1, n2: 6 entries, then 3 records,
	// each after its batch signature.
	converged(t, token, 12, n0, n1, n2)

	// Leader-level reads on a follower are answered by the leader.
	info, err := client.New(n2.URL(), token).Record(ctx, recs[0].ID, "linearizable")
	if err != nil || info.ID != recs[0].ID {
		t.Errorf("linearizable read through a follower: %+v, %v", info, err)
	}

	cl, err := client.New(n1.URL(), token).Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Federation != "Test Federation" || cl.Leader != "n0" || len(cl.Nodes) != 3 {
		t.Fatalf("Cluster = %+v", cl)
	}
	for _, ns := range cl.Nodes {
		if ns.State == "unreachable" || ns.Suffrage != "voter" || ns.HTTPAddr == "" || ns.Size != 12 {
			t.Errorf("node %+v", ns)
		}
	}

	// Remove n2: the others go on without it.
	if err := client.New(n1.URL(), token).RemoveNode(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if _, err := client.New(n1.URL(), token).Publish(ctx, []client.Record{record(10)}); err != nil {
		t.Fatal(err)
	}
	converged(t, token, 15, n0, n1)
	cl, _ = client.New(n0.URL(), token).Cluster(ctx)
	if len(cl.Nodes) != 2 {
		t.Errorf("after removal the cluster has %d nodes", len(cl.Nodes))
	}
	if err := client.New(n0.URL(), token).RemoveNode(ctx, "n2"); apiStatus(err) != http.StatusNotFound {
		t.Errorf("removing n2 twice: %v, want 404", err)
	}
}

func TestNonVoterPromoted(t *testing.T) {
	n0, token := bootstrapNode(t)
	r := joinNode(t, "replica", n0, token, false)
	ctx := testCtx(t)
	if _, err := client.New(r.URL(), token).Publish(ctx, []client.Record{record(1)}); err != nil {
		t.Fatal(err)
	}
	converged(t, token, 7, n0, r)
	st, err := client.New(r.URL(), token).Status(ctx)
	if err != nil || st.Suffrage != "nonvoter" {
		t.Fatalf("replica status = %+v, %v; want a nonvoter", st, err)
	}
	if _, err := client.New(r.URL(), token).PromoteNode(ctx, "replica"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "replica promoted", 10*time.Second, func() error {
		st, err := client.New(r.URL(), token).Status(ctx)
		if err != nil || st.Suffrage != "voter" {
			return fmt.Errorf("%+v, %v", st, err)
		}
		return nil
	})
}

func TestJoinRefusals(t *testing.T) {
	n0, token := bootstrapNode(t)
	member, err := client.New(n0.URL(), token).CreateToken(testCtx(t), "coop-b", false)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"no token": "", "member token": member.Token} {
		cfg := nodeConfig(t.TempDir())
		cfg.NodeID, cfg.Join, cfg.JoinToken = "intruder", n0.URL(), tok
		if n, err := Open(testCtx(t), cfg); err == nil {
			_ = n.Close(context.Background())
			t.Errorf("%s: join succeeded", name)
		}
	}
	cfg := nodeConfig(t.TempDir())
	if n, err := Open(testCtx(t), cfg); err == nil {
		_ = n.Close(context.Background())
		t.Error("a node neither bootstrapping nor joining started")
	}
}

// TestLeaderLeaves removes the leader itself: it steps down, the others
// elect a new leader and keep writing.
func TestLeaderLeaves(t *testing.T) {
	n0, token := bootstrapNode(t)
	n1 := joinNode(t, "n1", n0, token, true)
	n2 := joinNode(t, "n2", n0, token, true)
	ctx := testCtx(t)
	if err := client.New(n0.URL(), token).RemoveNode(ctx, "n0"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a new leader among n1, n2", 20*time.Second, func() error {
		_, err := client.New(n1.URL(), token).Publish(ctx, []client.Record{record(1)})
		return err
	})
	info := converged(t, token, 9, n1, n2)
	cl, err := client.New(n2.URL(), token).Cluster(ctx)
	if err != nil || len(cl.Nodes) != 2 || cl.Leader == "n0" {
		t.Errorf("cluster after the leader left: %+v, %v (ledger %+v)", cl, err, info)
	}
}

// TestFollowerAnswersBadTokensItself checks that a follower does not pass
// requests without a well-formed token on to the leader.
func TestFollowerAnswersBadTokensItself(t *testing.T) {
	n0, token := bootstrapNode(t)
	n1 := joinNode(t, "n1", n0, token, true)
	before := n0.svc.Metrics().Requests()
	for _, tok := range []string{"", "garbage"} {
		c := client.New(n1.URL(), tok)
		c.Retries = 1
		if _, err := c.Publish(testCtx(t), []client.Record{record(1)}); apiStatus(err) != http.StatusUnauthorized {
			t.Errorf("token %q on a follower: %v, want 401", tok, err)
		}
	}
	if after := n0.svc.Metrics().Requests(); after != before {
		t.Errorf("the leader received %d requests for malformed tokens", after-before)
	}
}

// TestRotateKeyOnNodeWithoutIt: a member asking a node that does not hold
// its signing key to rotate it gets 403 saying where to send it, and the
// node writes nothing: no key file, no ledger entry.
func TestRotateKeyOnNodeWithoutIt(t *testing.T) {
	n0, token := bootstrapNode(t)
	cfg := nodeConfig(t.TempDir())
	cfg.NodeID, cfg.Join, cfg.JoinToken = "n1", n0.URL(), token
	cfg.KeyFile = n0.KeyFile() // the federation's key file, not the member's signing key
	n1 := mustStart(t, cfg)
	ctx := testCtx(t)
	c := client.New(n1.URL(), token)
	// coop-a's first signed batch registers its key in the ledger: on n0.
	if _, err := client.New(n0.URL(), token).Publish(ctx, []client.Record{record(1)}); err != nil {
		t.Fatal(err)
	}
	n1.svc.AwaitView(ctx)
	size := func() uint64 {
		st, err := n0.Ledger().Status()
		if err != nil {
			t.Fatal(err)
		}
		return st.Size
	}
	before := size()
	_, err := c.RotateKey(ctx, "coop-a")
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusForbidden || !strings.Contains(ce.Message, "node that holds its key") {
		t.Fatalf("rotate on a node without the key: %v, want 403 naming the node that holds it", err)
	}
	if files, _ := filepath.Glob(filepath.Join(cfg.Dir, memberkey.Dir, "*")); len(files) != 0 {
		t.Errorf("the refused rotation left files: %v", files)
	}
	time.Sleep(200 * time.Millisecond) // a wrongly started rotation would have committed by now
	if after := size(); after != before {
		t.Errorf("the refused rotation wrote %d entries", after-before)
	}
}
