package coapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/client"
	"coapp.coop/ledger"
)

func testCtx(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

func testLogger() *slog.Logger {
	if os.Getenv("COAPP_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fastLedger makes Raft elect and commit quickly on loopback, and keeps
// Badger's memory small.
func fastLedger(c *ledger.Config) {
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

// testLedger configures the ledger of every node a test starts; a
// benchmark that measures what a federation sees sets it to the defaults.
var testLedger = fastLedger

func nodeConfig(dir string) Config {
	return Config{
		Dir:      dir,
		HTTPAddr: "127.0.0.1:0",
		RaftAddr: "127.0.0.1:0",
		Logger:   testLogger(),
		Ledger:   testLedger,
	}
}

func mustStart(tb testing.TB, cfg Config) *Node {
	tb.Helper()
	n, err := Open(testCtx(tb), cfg)
	if err != nil {
		tb.Fatalf("Open(%s): %v", cfg.Dir, err)
	}
	tb.Cleanup(func() { _ = n.Close(context.Background()) })
	return n
}

// bootstrapNode starts a new federation and returns its node and admin
// token.
func bootstrapNode(tb testing.TB) (*Node, string) {
	tb.Helper()
	cfg := nodeConfig(tb.TempDir())
	cfg.Bootstrap, cfg.Federation, cfg.Member, cfg.NodeID = true, "Test Federation", "coop-a", "n0"
	n := mustStart(tb, cfg)
	raw, err := os.ReadFile(filepath.Join(cfg.Dir, AdminTokenFile))
	if err != nil {
		tb.Fatal(err)
	}
	token := strings.TrimSpace(string(raw))
	if _, err := client.New(n.URL(), token).PutSchema(testCtx(tb), purchaseSchema()); err != nil {
		tb.Fatalf("register the purchase schema: %v", err)
	}
	return n, token
}

func f64(x float64) *float64 { return &x }

// restart closes a node and starts it again on its directory and
// addresses, as a node restarts in a federation.
func restart(tb testing.TB, n *Node) *Node {
	tb.Helper()
	cfg := n.cfg
	cfg.HTTPAddr = n.httpLn.Addr().String()
	cfg.RaftAddr = n.Ledger().Addr()
	if err := n.Close(testCtx(tb)); err != nil {
		tb.Fatal(err)
	}
	return mustStart(tb, cfg)
}

// purchaseSchema is the schema of the test records: the subject is a
// member's e-mail, the shop an attribute, the amount a bounded decimal.
func purchaseSchema() Schema {
	return Schema{Type: "purchase", Version: 1, Fields: []Field{
		{Name: "amount", Kind: "decimal", Class: "attribute", Required: true, Min: f64(0), Max: f64(1e6), Policy: Policy{Action: "keep"}},
		{Name: "shop", Kind: "string", Class: "attribute", Policy: Policy{Action: "keep"}},
	}}
}

func waitUntil(tb testing.TB, what string, timeout time.Duration, cond func() error) {
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

func record(i int) client.Record {
	return client.Record{
		ID:      uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprintf("record-%d", i))),
		Type:    "purchase",
		Subject: fmt.Sprintf("member-%d", i%7),
		Time:    time.Date(2026, 11, 1, 10, 0, i, 0, time.UTC),
		Fields: map[string]json.RawMessage{
			"amount": json.RawMessage(fmt.Sprint(i * 10)),
			"shop":   json.RawMessage(`"Bologna centro"`),
		},
	}
}

func apiStatus(err error) int {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}
