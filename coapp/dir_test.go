package coapp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/client"
	"coapp.coop/ledger"
)

// dirState describes a node's directory for a before/after comparison:
// its entries, the bytes of its small files, and its ledger as Inspect
// reads it (node id, cluster, size, root). "absent" when it does not
// exist.
func dirState(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return "absent"
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		line := e.Name()
		if !e.IsDir() {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		out = append(out, line)
	}
	sort.Strings(out)
	in, err := ledger.Inspect(testCtx(t), ledger.Config{Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s\nledger: node %q raft %v servers %+v size %d root %s", strings.Join(out, "\n"), in.NodeID, in.RaftState, in.Servers, in.Size, in.Root)
}

// TestOpenRefusesBeforeWriting: a configuration that cannot work is
// refused with a typed error naming what is wrong, before Open writes
// anything: the directory is not even made.
func TestOpenRefusesBeforeWriting(t *testing.T) {
	n0, token := bootstrapNode(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		set  func(c *Config)
		want error
		text string
	}{
		{"bootstrap without a federation", func(c *Config) { c.Bootstrap = true }, ErrInvalid, "invalid federation: required"},
		{"bootstrap and join", func(c *Config) { c.Bootstrap, c.Federation, c.Join = true, "F", n0.URL() }, ErrInvalid, "invalid join"},
		{"a bad founder", func(c *Config) { c.Bootstrap, c.Federation, c.Member = true, "F", "Coop A" }, ErrInvalid, "invalid member"},
		{"a bad founding member", func(c *Config) {
			c.Bootstrap, c.Federation, c.FoundingMembers = true, "F", []string{"ok", "Not OK"}
		}, ErrInvalid, "founding_members[1]"},
		{"a committee of strangers", func(c *Config) {
			c.Bootstrap, c.Federation = true, "F"
			c.Rules = Rules{Committees: []Committee{{Name: "x", Members: []string{"coop-z"}, Powers: []string{ProposeGrant}}}}
		}, ErrInvalid, "not a founding member"},
		{"neither bootstrap nor join", func(c *Config) {}, ErrInvalid, "belongs to no federation"},
		{"join without the key file", func(c *Config) { c.Join, c.JoinToken = n0.URL(), token }, ErrNoKeyFile, "keys.json is not there"},
		{"join a URL that is none", func(c *Config) { c.Join, c.JoinToken, c.KeyFile = "10.0.0.1:7400", token, n0.KeyFile() }, ErrInvalid, "invalid join"},
		{"bootstrap with a key file that is missing", func(c *Config) {
			c.Bootstrap, c.Federation, c.KeyFile = true, "F", filepath.Join(t.TempDir(), "keys.json")
		}, ErrNoKeyFile, "is not there"},
		{"bootstrap on a busy Raft port", func(c *Config) { c.Bootstrap, c.Federation, c.RaftAddr = true, "F", busy.Addr().String() }, nil, "raft listener"},
	} {
		cfg := nodeConfig(filepath.Join(t.TempDir(), "node"))
		tc.set(&cfg)
		n, err := Open(testCtx(t), cfg)
		if err == nil {
			_ = n.Close(context.Background())
			t.Errorf("%s: Open succeeded", tc.name)
			continue
		}
		if (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: Open = %v, want %v saying %q", tc.name, err, tc.want, tc.text)
		}
		if _, serr := os.Stat(cfg.Dir); !os.IsNotExist(serr) {
			entries, _ := os.ReadDir(cfg.Dir)
			t.Errorf("%s: Open made %s: %v", tc.name, cfg.Dir, entries)
		}
	}
}

// TestOpenRefusesWhatTheDirectoryCannotBecome: a directory that holds a
// ledger refuses Join when it is a cluster of its own (a federation's
// only node, or a bootstrap that did not finish), Bootstrap of another
// federation, a missing key file (never a new one) and another key file;
// each typed, naming the problem, and the directory left as it was. A
// restart with the same configuration reopens it.
func TestOpenRefusesWhatTheDirectoryCannotBecome(t *testing.T) {
	ctx := testCtx(t)
	other, _ := bootstrapNode(t) // another federation, to join
	n0, token := bootstrapNode(t)
	cfg := n0.cfg
	cfg.HTTPAddr, cfg.RaftAddr = "127.0.0.1:0", "127.0.0.1:0"
	if err := n0.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wrongKeys := filepath.Join(t.TempDir(), "keys.json")
	writeNewKeyFile(t, wrongKeys)

	// A bootstrap that did not finish: a cluster of its own, with the
	// key file, and no federation in its ledger.
	unfinished := nodeConfig(t.TempDir())
	l, err := ledger.Open(ctx, fastLedgerConfig(unfinished.Dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	writeNewKeyFile(t, filepath.Join(unfinished.Dir, DefaultKeyFile))

	keyFile := filepath.Join(cfg.Dir, DefaultKeyFile)
	for _, tc := range []struct {
		name string
		base Config
		set  func(c *Config)
		want error
		text string
		undo func()
	}{
		{"reopen with its key file gone", cfg, func(c *Config) {
			if err := os.Rename(keyFile, keyFile+".saved"); err != nil {
				t.Fatal(err)
			}
		}, ErrNoKeyFile, "keys.json is not there", func() {
			if err := os.Rename(keyFile+".saved", keyFile); err != nil {
				t.Fatal(err)
			}
		}},
		{"join from a federation's only node", cfg, func(c *Config) {
			c.Bootstrap, c.Join, c.JoinToken = false, other.URL(), token
		}, ErrLedgerExists, `a cluster of its own, whose only server is this node, with federation "Test Federation"`, nil},
		{"join from a bootstrap that did not finish", unfinished, func(c *Config) {
			c.Join, c.JoinToken = other.URL(), token
		}, ErrLedgerExists, "no federation (a bootstrap that did not finish)", nil},
		{"bootstrap another federation", cfg, func(c *Config) { c.Federation = "Another" }, ErrLedgerExists, `holds the ledger of federation "Test Federation", not "Another"`, nil},
		{"reopen without the key file", cfg, func(c *Config) { c.KeyFile = filepath.Join(t.TempDir(), "keys.json") }, ErrNoKeyFile, `the ledger of federation "Test Federation" needs its key file, fingerprint 1:`, nil},
		{"reopen with another key file", cfg, func(c *Config) { c.KeyFile = wrongKeys }, ErrKeyMismatch, `is not the key file of federation "Test Federation"`, nil},
		{"another node id", cfg, func(c *Config) { c.NodeID = "n9" }, ErrInvalid, `"n9" differs from "n0"`, nil},
	} {
		c := tc.base
		tc.set(&c)
		before := dirState(t, c.Dir)
		n, err := Open(ctx, c)
		if err == nil {
			_ = n.Close(context.Background())
			t.Errorf("%s: Open succeeded", tc.name)
			continue
		}
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: Open = %v\nwant %v saying %q", tc.name, err, tc.want, tc.text)
		}
		if after := dirState(t, c.Dir); after != before {
			t.Errorf("%s: the directory changed:\n%s\nthen\n%s", tc.name, before, after)
		}
		if tc.undo != nil {
			tc.undo()
		}
	}

	// The same configuration reopens the federation, and so does
	// Bootstrap without a name; no new admin token is written.
	tokenBefore, _ := os.ReadFile(filepath.Join(cfg.Dir, AdminTokenFile))
	n := mustStart(t, cfg)
	if _, err := client.New(n.URL(), token).Publish(ctx, []client.Record{record(1)}); err != nil {
		t.Fatalf("publish after a reopen: %v", err)
	}
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	unnamed := cfg
	unnamed.Federation = ""
	n = mustStart(t, unnamed)
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(filepath.Join(cfg.Dir, AdminTokenFile)); !bytes.Equal(after, tokenBefore) {
		t.Error("a reopen rewrote the admin token")
	}
	// The unfinished bootstrap finishes with Bootstrap and a name.
	unfinished.Bootstrap, unfinished.Federation = true, "Late"
	n = mustStart(t, unfinished)
	if g, ok := n.state.Federation(); !ok || g.Federation != "Late" {
		t.Errorf("the unfinished bootstrap, finished: genesis %+v, %v", g, ok)
	}
}

// TestRestartWithTheSameFlags: a node that joined restarts with its
// join configuration; a joined node whose key file is not the
// federation's is refused once the genesis reaches it, naming the
// command that removes it.
func TestRestartWithTheSameFlags(t *testing.T) {
	n0, token := bootstrapNode(t)
	n1 := joinNode(t, "n1", n0, token, true)
	n1 = restart(t, n1)
	if _, err := client.New(n1.URL(), token).Publish(testCtx(t), []client.Record{record(2)}); err != nil {
		t.Fatalf("publish through the restarted joiner: %v", err)
	}

	wrongKeys := filepath.Join(t.TempDir(), "keys.json")
	writeNewKeyFile(t, wrongKeys)
	cfg := nodeConfig(t.TempDir())
	cfg.NodeID, cfg.Join, cfg.JoinToken, cfg.KeyFile = "n2", n0.URL(), token, wrongKeys
	n, err := Open(testCtx(t), cfg)
	if err == nil {
		_ = n.Close(context.Background())
		t.Fatal("a node joined with another federation's key file")
	}
	if !errors.Is(err, ErrKeyMismatch) || !strings.Contains(err.Error(), "coapp cluster remove n2") {
		t.Errorf("join with another key file: %v, want ErrKeyMismatch naming the removal", err)
	}
}

// TestOldGenesisWithoutFingerprint: a federation founded before the key's
// fingerprint was recorded restores and reopens with any key file, and
// says that it cannot check it.
func TestOldGenesisWithoutFingerprint(t *testing.T) {
	ctx := testCtx(t)
	l, err := ledger.Open(ctx, fastLedgerConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(map[string]any{"federation": "Old", "founder": "coop-a", "signed_records": true})
	if _, err := l.Append(ctx, ledger.Entry{ID: uuid.New(), Kind: KindGenesis, Author: "coop-a", Time: time.Now().UTC(), Payload: payload}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, _, err := l.Backup(ctx, &buf, ledger.Stale); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(t.TempDir(), "keys.json")
	writeNewKeyFile(t, keys)
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	dir := t.TempDir()
	got, err := Restore(ctx, RestoreConfig{Dir: dir, KeyFile: keys, Logger: logger}, &buf)
	if err != nil || got.Federation != "Old" || got.KeyFingerprint != "" {
		t.Fatalf("Restore of an old federation = %+v, %v", got, err)
	}
	if !strings.Contains(logs.String(), "the key file cannot be checked") {
		t.Errorf("Restore did not say it could not check the key file; logs:\n%s", logs.String())
	}
	logs.Reset()
	cfg := nodeConfig(dir)
	cfg.Bootstrap, cfg.Logger = true, logger
	mustStart(t, cfg)
	if !strings.Contains(logs.String(), "the key file cannot be checked") {
		t.Errorf("Open did not say it could not check the key file; logs:\n%s", logs.String())
	}
}

// fastLedgerConfig is a one-node ledger's configuration in dir, as the
// tests' nodes have it.
func fastLedgerConfig(dir string) ledger.Config {
	c := ledger.Config{Dir: dir, BindAddr: "127.0.0.1:0"}
	testLedger(&c)
	return c
}
