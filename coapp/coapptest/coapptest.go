package coapptest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"coapp.coop/coapp"
	"coapp.coop/coapp/api"
	"coapp.coop/coapp/client"
	"coapp.coop/coapp/internal/memberkey"
	"coapp.coop/ledger"
)

// Options configures a test federation. Zero fields take the defaults in
// their comments.
type Options struct {
	// Federation is the federation's name. Default: "Test Federation".
	Federation string
	// Founder is the founding member. Default: "coop-a".
	Founder string
	// Members are founding members besides the founder; Rules the
	// governance rules (the defaults when zero).
	Members []string
	Rules   api.Rules
	// Schemas are registered once the federation is up.
	Schemas []api.Schema
	// Logger receives every node's logs. Default: discard, or stderr at
	// debug level when the environment sets COAPP_TEST_LOG.
	Logger *slog.Logger
	// Config, when set, adjusts each node's configuration before it opens.
	Config func(i int, c *coapp.Config)
}

func (o *Options) setDefaults() {
	if o.Federation == "" {
		o.Federation = "Test Federation"
	}
	if o.Founder == "" {
		o.Founder = "coop-a"
	}
	if o.Logger == nil && os.Getenv("COAPP_TEST_LOG") != "" {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}

// FastLedger makes Raft elect and commit quickly on loopback, and keeps
// Badger's memory small: for tests, never for a federation on a network.
func FastLedger(c *ledger.Config) {
	c.HeartbeatTimeout = 150 * time.Millisecond
	c.ElectionTimeout = 150 * time.Millisecond
	c.LeaderLeaseTimeout = 75 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.MemTableSize = 16 << 20
	c.BlockCacheSize = 8 << 20
	c.MaxBatchBytes = 256 << 10
	c.MaxEntryBytes = 64 << 10
	c.PurgeDelay = 100 * time.Millisecond
}

// Config returns the configuration of a test node in a new temporary
// directory: loopback on free ports, FastLedger.
func Config(tb testing.TB) coapp.Config {
	tb.Helper()
	return coapp.Config{
		Dir:      tb.TempDir(),
		HTTPAddr: "127.0.0.1:0",
		RaftAddr: "127.0.0.1:0",
		Ledger:   FastLedger,
	}
}

// Federation is a federation of in-process nodes started by a test.
type Federation struct {
	tb    testing.TB
	opts  Options
	mu    sync.Mutex
	nodes []*member
	// Token is the founder's admin token.
	Token string
}

// member is one node: its configuration, and the node while it runs.
type member struct {
	cfg  coapp.Config
	node *coapp.Node
}

// StartFederation starts n nodes (at least 1): the first bootstraps the
// federation, the others join it as voters. It returns once every node is
// ready, and registers a cleanup that closes them, after checking that
// every running replica has one Merkle root at one index.
func StartFederation(tb testing.TB, n int, opts Options) *Federation {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("coapptest: a federation of %d nodes", n)
	}
	opts.setDefaults()
	f := &Federation{tb: tb, opts: opts}
	ctx := testContext(tb)
	first := Config(tb)
	first.NodeID, first.Bootstrap, first.Federation, first.Member = "n0", true, opts.Federation, opts.Founder
	first.FoundingMembers, first.Rules, first.Logger = opts.Members, opts.Rules, opts.Logger
	if opts.Config != nil {
		opts.Config(0, &first)
	}
	f.start(ctx, first)
	raw, err := os.ReadFile(filepath.Join(first.Dir, coapp.AdminTokenFile))
	if err != nil {
		tb.Fatalf("coapptest: %v", err)
	}
	f.Token = strings.TrimSpace(string(raw))
	for i := 1; i < n; i++ {
		cfg := Config(tb)
		cfg.NodeID, cfg.Join, cfg.JoinToken, cfg.Logger = fmt.Sprintf("n%d", i), f.nodes[0].node.URL(), f.Token, opts.Logger
		cfg.KeyFile = f.nodes[0].node.KeyFile() // the federation's key file, passed out of band
		copyMemberKeys(tb, first.Dir, cfg.Dir)
		if opts.Config != nil {
			opts.Config(i, &cfg)
		}
		f.start(ctx, cfg)
	}
	for i := range f.nodes {
		f.waitReady(ctx, i)
	}
	admin := f.Client(0)
	for _, s := range opts.Schemas {
		if _, err := admin.PutSchema(ctx, s); err != nil {
			tb.Fatalf("coapptest: register schema %s: %v", s.Type, err)
		}
	}
	tb.Cleanup(f.close)
	return f
}

// NewNode starts a one-node federation, ready to use: an embedder's unit
// test gets a node in a few hundred milliseconds.
func NewNode(tb testing.TB, opts Options) *Federation {
	tb.Helper()
	return StartFederation(tb, 1, opts)
}

func testContext(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

// start opens a node and adds it to the federation.
func (f *Federation) start(ctx context.Context, cfg coapp.Config) {
	f.tb.Helper()
	n, err := coapp.Open(ctx, cfg)
	if err != nil {
		f.tb.Fatalf("coapptest: open node %s: %v", cfg.NodeID, err)
	}
	f.mu.Lock()
	f.nodes = append(f.nodes, &member{cfg: bound(cfg, n), node: n})
	f.mu.Unlock()
}

// bound is cfg with the addresses the node bound, for a restart.
func bound(cfg coapp.Config, n *coapp.Node) coapp.Config {
	cfg.HTTPAddr = strings.TrimPrefix(strings.TrimPrefix(n.URL(), "http://"), "https://")
	cfg.RaftAddr = n.Ledger().Addr()
	cfg.NodeID = n.ID()
	return cfg
}

// Len returns the number of nodes, running or not.
func (f *Federation) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.nodes)
}

// Node returns node i, or nil while it is killed.
func (f *Federation) Node(i int) *coapp.Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nodes[i].node
}

// Client returns a client of node i, authenticated with the founder's
// admin token.
func (f *Federation) Client(i int) *client.Client { return f.ClientAs(i, f.Token) }

// ClientAs returns a client of node i, authenticated with token.
func (f *Federation) ClientAs(i int, token string) *client.Client {
	f.mu.Lock()
	defer f.mu.Unlock()
	return client.New("http://"+f.nodes[i].cfg.HTTPAddr, token)
}

// Member creates a token for member and returns a client of node i that
// uses it.
func (f *Federation) Member(i int, member string) *client.Client {
	f.tb.Helper()
	tok, err := f.Client(i).CreateToken(testContext(f.tb), member, false)
	if err != nil {
		f.tb.Fatalf("coapptest: token for %s: %v", member, err)
	}
	return f.ClientAs(i, tok.Token)
}

// Leader returns the index of the node that leads, waiting for one.
func (f *Federation) Leader() int {
	f.tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i := range f.Len() {
			if n := f.Node(i); n != nil && n.Ledger().IsLeader() {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.tb.Fatal("coapptest: no leader after 10s")
	return -1
}

// Kill stops node i: it leaves the federation's quorum until Restart.
func (f *Federation) Kill(i int) {
	f.tb.Helper()
	f.mu.Lock()
	n := f.nodes[i].node
	f.nodes[i].node = nil
	f.mu.Unlock()
	if n == nil {
		f.tb.Fatalf("coapptest: node %d is not running", i)
	}
	if err := n.Close(context.Background()); err != nil {
		f.tb.Logf("coapptest: close node %d: %v", i, err)
	}
}

// Restart starts node i again, on its directory and addresses, and waits
// until it is ready.
func (f *Federation) Restart(i int) {
	f.tb.Helper()
	f.mu.Lock()
	m := f.nodes[i]
	f.mu.Unlock()
	if m.node != nil {
		f.tb.Fatalf("coapptest: node %d is running", i)
	}
	ctx := testContext(f.tb)
	n, err := coapp.Open(ctx, m.cfg)
	if err != nil {
		f.tb.Fatalf("coapptest: restart node %d: %v", i, err)
	}
	f.mu.Lock()
	m.node = n
	f.mu.Unlock()
	f.waitReady(ctx, i)
}

// waitReady waits until node i answers /readyz.
func (f *Federation) waitReady(ctx context.Context, i int) {
	f.tb.Helper()
	c := f.ClientAs(i, "")
	for !c.Ready(ctx) {
		select {
		case <-ctx.Done():
			f.tb.Fatalf("coapptest: node %d not ready: %v", i, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// CheckConverged waits until every running node has applied the same
// ledger, and fails the test unless they all hold one Merkle root at that
// index and their ledgers verify. It runs at cleanup too.
func (f *Federation) CheckConverged() {
	f.tb.Helper()
	if err := f.converged(20 * time.Second); err != nil {
		f.tb.Errorf("coapptest: %v", err)
	}
}

func (f *Federation) converged(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	for {
		if last = f.sameRoot(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the replicas did not converge within %v: %w", timeout, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// sameRoot compares every running node's size and root.
func (f *Federation) sameRoot(ctx context.Context) error {
	type view struct {
		id   string
		size uint64
		root []byte
	}
	var views []view
	for i := range f.Len() {
		n := f.Node(i)
		if n == nil {
			continue
		}
		var v view
		v.id = n.ID()
		err := n.Ledger().Read(ctx, ledger.Stale, func(lv *ledger.View) error {
			r := lv.Root()
			v.size, v.root = lv.Size(), r[:]
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %w", v.id, err)
		}
		views = append(views, v)
	}
	if len(views) == 0 {
		return nil
	}
	for _, v := range views[1:] {
		if v.size != views[0].size {
			return fmt.Errorf("%s has %d entries, %s %d", v.id, v.size, views[0].id, views[0].size)
		}
		if !bytes.Equal(v.root, views[0].root) {
			return fmt.Errorf("%s and %s differ at size %d: roots %x and %x", v.id, views[0].id, v.size, v.root, views[0].root)
		}
	}
	for i := range f.Len() {
		if n := f.Node(i); n != nil {
			if err := n.Ledger().Verify(ctx); err != nil {
				return fmt.Errorf("%s: %w", n.ID(), err)
			}
		}
	}
	return nil
}

// close checks the replicas, then closes every running node.
func (f *Federation) close() {
	if !f.tb.Failed() {
		if err := f.converged(20 * time.Second); err != nil {
			f.tb.Errorf("coapptest: at cleanup: %v", err)
		}
	}
	for i := range f.Len() {
		if n := f.Node(i); n != nil {
			_ = n.Close(context.Background())
		}
	}
}

// copyMemberKeys copies the member signing keys of one node's directory
// into another's.
func copyMemberKeys(tb testing.TB, from, to string) {
	tb.Helper()
	files, _ := filepath.Glob(filepath.Join(from, memberkey.Dir, "*.key"))
	if err := os.MkdirAll(filepath.Join(to, memberkey.Dir), 0o700); err != nil {
		tb.Fatal(err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, memberkey.Dir, filepath.Base(file)), b, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
}
