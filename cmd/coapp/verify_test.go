package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"coapp.coop/coapp"
	"coapp.coop/coapp/client"
	"coapp.coop/ledger/merkle"
)

// TestLedgerVerify: ledger verify trusts the first head it sees, then
// checks each later one against the head held with a consistency proof;
// a held head the node's history does not extend (a made-up root at a
// smaller size, or at the same size) is a fork: exit code 4, both heads
// printed, the held head kept.
func TestLedgerVerify(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := coapp.Open(ctx, coapp.Config{Dir: dir, NodeID: "n0", HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0",
		Bootstrap: true, Federation: "Verify"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	t.Setenv("COAPP_URL", n.URL())
	t.Setenv("COAPP_TOKEN_FILE", filepath.Join(dir, coapp.AdminTokenFile))
	t.Setenv("COAPP_HEAD", "")
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	headFile := filepath.Join(state, "coapp", "head.json") // the default

	readHeld := func() head {
		t.Helper()
		b, err := os.ReadFile(headFile)
		if err != nil {
			t.Fatal(err)
		}
		var h head
		if err := json.Unmarshal(b, &h); err != nil {
			t.Fatalf("%s: %v\n%s", headFile, err, b)
		}
		return h
	}
	token, err := os.ReadFile(filepath.Join(dir, coapp.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	ledgerInfo := func() (uint64, merkle.Hash) {
		info, err := client.New(n.URL(), strings.TrimSpace(string(token))).Ledger(ctx, "linearizable")
		if err != nil {
			t.Fatal(err)
		}
		return info.Size, info.Root
	}

	out, _, err := runSplit(t, "ledger", "verify")
	size, root := ledgerInfo()
	if err != nil || out != fmt.Sprintf("no head held yet: trusting size %d, root %s\n", size, root) {
		t.Fatalf("first run: %v\n%s", err, out)
	}
	if h := readHeld(); h.Size != size || h.Root != root || h.URL != n.URL() || time.Since(h.Time) > time.Hour {
		t.Errorf("head written: %+v", h)
	}
	if fi, err := os.Stat(headFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("head file mode: %v %v", fi.Mode(), err)
	}

	// The ledger grows (a token is an entry): the new head extends the
	// held one.
	for i := range 3 {
		if out, err := runCLI(t, "token", "create", "--member", fmt.Sprintf("m%d", i)); err != nil {
			t.Fatalf("token create: %v\n%s", err, out)
		}
	}
	out, _, err = runSplit(t, "ledger", "verify")
	size2, root2 := ledgerInfo()
	if err != nil || size2 <= size || out != fmt.Sprintf("verified: size %d, root %s, consistent with the head held at size %d\n", size2, root2, size) {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	if h := readHeld(); h.Size != size2 || h.Root != root2 {
		t.Errorf("head after the second run: %+v", h)
	}
	// Nothing new: the same head verifies again.
	if out, _, err = runSplit(t, "ledger", "verify"); err != nil || !strings.HasPrefix(out, fmt.Sprintf("verified: size %d,", size2)) {
		t.Fatalf("third run: %v\n%s", err, out)
	}

	// A head file with a made-up root, at a smaller size and at the same
	// size, given with --head and with $COAPP_HEAD: a fork.
	forged := filepath.Join(t.TempDir(), "forged.json")
	var madeUp merkle.Hash
	copy(madeUp[:], strings.Repeat("\x5a", merkle.Size))
	for _, c := range []struct {
		size uint64
		env  bool
	}{{size - 1, false}, {size2, true}} {
		writeHeadFile(t, forged, head{Size: c.size, Root: madeUp, URL: "http://elsewhere:7400", Time: time.Now().UTC()})
		before, _ := os.ReadFile(forged)
		args := []string{"ledger", "verify", "--head", forged}
		if c.env {
			t.Setenv("COAPP_HEAD", forged)
			args = args[:2]
		}
		out, _, err := runSplit(t, args...)
		t.Logf("made-up root at size %d:\n%scoapp: %v", c.size, out, err)
		if exitCode(err) != exitInconsistent || !strings.Contains(err.Error(), "the node serves a history inconsistent with the one verified before") {
			t.Errorf("made-up root at size %d: exit %d: %v", c.size, exitCode(err), err)
		}
		if !regexp.MustCompile(fmt.Sprintf(`(?m)^held: +size %d, root %s from http://elsewhere:7400`, c.size, madeUp)).MatchString(out) ||
			!regexp.MustCompile(fmt.Sprintf(`(?m)^served: +size %d, root %s`, size2, root2)).MatchString(out) {
			t.Errorf("made-up root at size %d: the heads are not both printed:\n%s", c.size, out)
		}
		if after, _ := os.ReadFile(forged); string(after) != string(before) {
			t.Errorf("a fork replaced the held head:\n%s", after)
		}
	}
	t.Setenv("COAPP_HEAD", "")

	// A head beyond the node's size: it is behind or lost entries; the
	// head is kept.
	writeHeadFile(t, forged, head{Size: size2 + 100, Root: madeUp})
	if _, _, err := runSplit(t, "ledger", "verify", "--head", forged); exitCode(err) != exitFailed || !strings.Contains(err.Error(), "fewer than the") {
		t.Errorf("a head beyond the node: exit %d: %v", exitCode(err), err)
	}
	// Not a head: refused before the node is asked.
	if err := os.WriteFile(forged, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runSplit(t, "ledger", "verify", "--head", forged); exitCode(err) != exitFailed || !strings.Contains(err.Error(), "does not hold a head") {
		t.Errorf("a file that holds no head: exit %d: %v", exitCode(err), err)
	}
	if _, _, err := runSplit(t, "ledger", "verify", "extra"); exitCode(err) != exitUsage {
		t.Errorf("ledger verify extra: %v, want a usage error", err)
	}
}

func writeHeadFile(t *testing.T, path string, h head) {
	t.Helper()
	if err := writeHead(path, h); err != nil {
		t.Fatal(err)
	}
}
