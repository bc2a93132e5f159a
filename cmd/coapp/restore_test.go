package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/client"
)

// TestDisasterRecovery backs up a federation of three node processes,
// keeps the federation's key file and the founder's signing key apart as
// docs/operations.md says, destroys the three nodes and their
// directories, and brings the federation back with coapp restore and
// coapp node: a node bootstrapped on the backup, two that join it. The
// restored log holds the backup's root at the backup's size on every
// node, the same people's right of access finds the same records, and
// the founding member publishes through the restored nodes. On the way,
// a restore without the key file, and with another federation's, is
// refused and leaves nothing behind.
func TestDisasterRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("runs six node processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n0, token := bootstrapProc(t, "n0")
	waitFor(t, "n0 ready", 30*time.Second, func() error { return readyz(n0.url()) })
	admin := client.New(n0.url(), token)
	zero := 0.0
	if _, err := admin.PutSchema(ctx, api.Schema{Type: "care", Version: 1, Fields: []api.Field{
		{Name: "hours", Kind: "decimal", Class: "attribute", Min: &zero, Required: true, Policy: api.Policy{Action: "keep"}},
	}}); err != nil {
		t.Fatal(err)
	}
	nodes := []*proc{n0}
	for _, id := range []string{"n1", "n2"} {
		p := newProc(t, id, "--join", n0.url(), "--token", token, "--keys", filepath.Join(n0.dir, "keys.json"))
		p.copyMemberKeys(n0)
		p.start()
		nodes = append(nodes, p)
	}
	for _, p := range nodes {
		waitFor(t, p.id+" ready", 30*time.Second, func() error { return readyz(p.url()) })
	}
	publish := func(via *proc, subjects ...string) {
		t.Helper()
		var recs []client.Record
		for _, s := range subjects {
			recs = append(recs, client.Record{ID: uuid.New(), Type: "care", Subject: s, Time: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC),
				Fields: map[string]json.RawMessage{"hours": json.RawMessage("2.5")}})
		}
		if _, err := client.New(via.url(), token).Publish(ctx, recs); err != nil {
			t.Fatalf("publish through %s: %v", via.id, err)
		}
	}
	people := []string{"anna@example.org", "bruno@example.org"}
	publish(nodes[0], people...)
	publish(nodes[1], people[0])
	publish(nodes[2], people[1], "carla@example.org")
	accessIDs := func(via *proc, subject string) []string {
		t.Helper()
		rep, err := client.New(via.url(), token).Access(ctx, subject)
		if err != nil {
			t.Fatalf("access to %s's records through %s: %v", subject, via.id, err)
		}
		var ids []string
		for _, r := range rep.Records {
			if r.Unreadable || r.Erased {
				t.Errorf("%s's record %s through %s: unreadable %v, erased %v", subject, r.ID, via.id, r.Unreadable, r.Erased)
			}
			ids = append(ids, r.ID.String())
		}
		slices.Sort(ids)
		return ids
	}
	before := map[string][]string{}
	for _, s := range people {
		before[s] = accessIDs(n0, s)
		if len(before[s]) == 0 {
			t.Fatalf("%s has no records before the backup: the test proves nothing", s)
		}
	}

	// The backup, and the secrets kept apart from it.
	t.Setenv("COAPP_URL", n0.url())
	t.Setenv("COAPP_TOKEN", token)
	backup := filepath.Join(t.TempDir(), "ledger.backup")
	if out, err := runCLI(t, "backup", "--out", backup); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	orig, err := admin.Ledger(ctx, "linearizable")
	if err != nil {
		t.Fatal(err)
	}
	safe := t.TempDir()
	copyTree(t, filepath.Join(n0.dir, "keys.json"), filepath.Join(safe, "keys.json"))
	copyTree(t, filepath.Join(n0.dir, "members"), filepath.Join(safe, "members"))

	// The disaster.
	for _, p := range nodes {
		p.kill()
		if err := os.RemoveAll(p.dir); err != nil {
			t.Fatal(err)
		}
	}

	r0 := newProc(t, "r0", "--bootstrap")
	// Refused restores leave nothing behind.
	out, err := runCLI(t, "restore", "--dir", r0.dir, backup)
	if exitCode(err) != exitUsage || !strings.Contains(out+err.Error(), "--keys is required") {
		t.Errorf("restore without --keys: exit %d, %v\n%s", exitCode(err), err, out)
	}
	otherKeys := filepath.Join(t.TempDir(), "keys.json")
	if out, err := runCLI(t, "keys", "init", "--out", otherKeys); err != nil {
		t.Fatalf("keys init: %v\n%s", err, out)
	}
	out, err = runCLI(t, "restore", "--dir", r0.dir, "--keys", otherKeys, backup)
	if exitCode(err) != exitFailed || !strings.Contains(out+err.Error(), `is not the key file of federation "Fault Federation"`) {
		t.Errorf("restore with another federation's key file: exit %d, %v\n%s", exitCode(err), err, out)
	}
	if _, err := os.Stat(r0.dir); !os.IsNotExist(err) {
		t.Fatalf("refused restores left %s behind", r0.dir)
	}

	out, err = runCLI(t, "restore", "--dir", r0.dir, "--keys", filepath.Join(safe, "keys.json"), "--members", filepath.Join(safe, "members"), backup)
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	for _, want := range []string{
		fmt.Sprintf("restored %d entries, root %s", orig.Size, orig.Root),
		"matches the fingerprint the backup records",
		"member signing keys: founder",
		"start it with: coapp node --bootstrap --dir " + r0.dir,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("restore printed\n%s\nwant %q", out, want)
		}
	}
	r0.start()
	waitFor(t, "r0 ready", 30*time.Second, func() error { return readyz(r0.url()) })
	restored := []*proc{r0}
	for _, id := range []string{"r1", "r2"} {
		p := newProc(t, id, "--join", r0.url(), "--token", token, "--keys", filepath.Join(safe, "keys.json"))
		p.copyMemberKeys(r0)
		p.start()
		restored = append(restored, p)
	}
	for _, p := range restored {
		waitFor(t, p.id+" ready", 30*time.Second, func() error { return readyz(p.url()) })
	}
	if log := r0.log(); !strings.Contains(log, "admin token: none written here") {
		t.Errorf("the restored node's start names an admin token file; its output:\n%s", log)
	}

	// The founding member publishes through each restored node.
	for _, p := range restored {
		publish(p, people[0])
	}
	// Every node: the backup's root at the backup's size, one root at one
	// size, and the same records for the same people.
	var size uint64
	var root string
	waitFor(t, "the restored nodes converge", 30*time.Second, func() error {
		size, root = 0, ""
		for _, p := range restored {
			li, err := client.New(p.url(), token).Ledger(ctx, "stale")
			if err != nil {
				return err
			}
			if root != "" && (li.Size != size || li.Root.String() != root) {
				return fmt.Errorf("%s at size %d root %s, another at %d %s", p.id, li.Size, li.Root, size, root)
			}
			size, root = li.Size, li.Root.String()
		}
		return nil
	})
	for _, p := range restored {
		cp, err := client.New(p.url(), token).ConsistencyProof(ctx, orig.Size, size, "stale")
		if err != nil || cp.FromRoot != orig.Root || cp.Verify() != nil {
			t.Errorf("%s: root at the backup's size %d = %+v, %v; the backup's %s", p.id, orig.Size, cp, err, orig.Root)
		}
		for _, s := range people {
			got := accessIDs(p, s)
			want := before[s]
			if s == people[0] {
				if len(got) != len(want)+len(restored) {
					t.Errorf("%s: %s has %d records, want the %d from before and %d published since", p.id, s, len(got), len(want), len(restored))
				}
				got = slices.DeleteFunc(got, func(id string) bool { return !slices.Contains(want, id) })
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: %s's records %v, before the disaster %v", p.id, s, got, want)
			}
		}
	}
	t.Logf("restored %d entries; the three restored nodes at size %d, root %s", orig.Size, size, root)
}

// TestNodeRefusals: `coapp node` with flags that cannot work with its
// data directory exits with a message saying why, before it writes
// anything: the directory is not made, or stays as it was.
func TestNodeRefusals(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node process")
	}
	t.Setenv("COAPP_HTTP", "127.0.0.1:0")
	t.Setenv("COAPP_RAFT", "127.0.0.1:0")
	n0, token := bootstrapProc(t, "n0")
	waitFor(t, "n0 ready", 30*time.Second, func() error { return readyz(n0.url()) })
	other, _ := bootstrapProc(t, "other")
	other.kill()
	before := listTree(t, other.dir)

	fresh := filepath.Join(t.TempDir(), "fresh")
	for _, tc := range []struct {
		args []string
		code int
		text string
		dir  string
	}{
		{[]string{"--bootstrap"}, exitUsage, "--federation: required to bootstrap a new federation", fresh},
		{nil, exitUsage, "--join: the node belongs to no federation", fresh},
		{[]string{"--join", n0.url(), "--token", token}, exitFailed, "keys.json is not there", fresh},
		{[]string{"--join", n0.url(), "--token", token}, exitUsage, "it holds a cluster of its own, whose only server is this node", other.dir},
		{[]string{"--bootstrap", "--federation", "Another"}, exitUsage, `holds the ledger of federation "Fault Federation", not "Another"`, other.dir},
	} {
		out, err := runCLI(t, append([]string{"node", "--dir", tc.dir}, tc.args...)...)
		if exitCode(err) != tc.code || err == nil || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("coapp node --dir %s %v: exit %d, %v\n%s\nwant exit %d saying %q", filepath.Base(tc.dir), tc.args, exitCode(err), err, out, tc.code, tc.text)
		}
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("refused starts made %s", fresh)
	}
	if after := listTree(t, other.dir); !slices.Equal(after, before) {
		t.Errorf("refused starts changed %s:\n%v\nthen\n%v", other.dir, before, after)
	}
}

// listTree lists the paths of the regular files under dir outside the
// Badger stores, each with its size.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() && (rel == "raft" || rel == "state") {
			out = append(out, rel+"/")
			return filepath.SkipDir
		}
		if !d.IsDir() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			out = append(out, fmt.Sprintf("%s %d %x", rel, len(b), b[:min(len(b), 16)]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// copyTree copies a file, or a directory of files, to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	fi, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		copyTree(t, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
	}
}
