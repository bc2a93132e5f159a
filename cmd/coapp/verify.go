package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"coapp.coop/coapp/client"
	"coapp.coop/ledger/merkle"
)

// head is a ledger head verified before: the size and root of the tree a
// node served, where and when. It is kept in a file between runs of
// ledger verify.
type head struct {
	Size uint64      `json:"size"`
	Root merkle.Hash `json:"root"`
	URL  string      `json:"url"`
	Time time.Time   `json:"time"`
}

func (h head) String() string {
	s := fmt.Sprintf("size %d, root %s", h.Size, h.Root)
	if h.URL != "" {
		s += " from " + h.URL
	}
	if !h.Time.IsZero() {
		s += " at " + h.Time.Format(time.RFC3339)
	}
	return s
}

// defaultHeadFile is where ledger verify keeps its head without --head or
// $COAPP_HEAD: $XDG_STATE_HOME/coapp/head.json, or
// ~/.local/state/coapp/head.json.
func defaultHeadFile() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "coapp", "head.json"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", usageError{"no home directory to keep the head in: give --head FILE"}
	}
	return filepath.Join(home, ".local", "state", "coapp", "head.json"), nil
}

const verifyUsage = "ledger verify [--head FILE]"

// runLedgerVerify checks that the node's ledger extends the head verified
// before, with a consistency proof checked here with hashes alone, then
// keeps the node's head for the next run. A history that does not extend
// the held head is a fork: exit code 4, and the held head is kept.
func runLedgerVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("ledger verify", stderr)
	cf := addClientFlags(f)
	consistency := f.string("consistency", "", "stale, leader (default) or linearizable")
	headFile := f.string("head", "", "file holding the head verified before (default $XDG_STATE_HOME/coapp/head.json or ~/.local/state/coapp/head.json)")
	f.check(func() error { return checkConsistency(*consistency) })
	if err := f.parse(args, 0); err != nil {
		return err
	}
	if f.NArg() != 0 {
		return usageError{verifyUsage}
	}
	path := *headFile
	if path == "" {
		var err error
		if path, err = defaultHeadFile(); err != nil {
			return err
		}
	}
	held, err := readHead(path)
	if err != nil {
		return err
	}
	c, err := cf.client(ctx)
	if err != nil {
		return err
	}
	info, err := c.Ledger(ctx, *consistency)
	if err != nil {
		return err
	}
	served := head{Size: info.Size, Root: info.Root, URL: *cf.url, Time: time.Now().UTC()}
	if held == nil {
		if err := writeHead(path, served); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "no head held yet: trusting size %d, root %s\n", served.Size, served.Root)
		return nil
	}
	if err := checkExtends(ctx, c, *consistency, *held, served); err != nil {
		var ie inconsistentError
		if errors.As(err, &ie) || served.Size < held.Size {
			fmt.Fprintf(stdout, "held:   %s\nserved: %s\n", held, served)
		}
		return err
	}
	if err := writeHead(path, served); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "verified: size %d, root %s, consistent with the head held at size %d\n", served.Size, served.Root, held.Size)
	return nil
}

// inconsistent is the error of a fork.
func inconsistent(why string) error {
	return inconsistentError{"the node serves a history inconsistent with the one verified before: " + why}
}

// checkExtends checks that the tree the node serves extends the held one.
func checkExtends(ctx context.Context, c *client.Client, consistency string, held, served head) error {
	switch {
	case served.Size < held.Size:
		return fmt.Errorf("the node serves %d entries, fewer than the %d of the head held: it is behind (a stale read?) or lost entries; the head is kept", served.Size, held.Size)
	case held.Size == 0:
		if !held.Root.Equal(merkle.EmptyRoot()) {
			return inconsistent("the held head of size 0 has a root other than the empty tree's")
		}
		return nil
	case served.Size == held.Size:
		if !served.Root.Equal(held.Root) {
			return inconsistent(fmt.Sprintf("at size %d its root is %s, not the held %s", held.Size, served.Root, held.Root))
		}
		return nil
	}
	p, err := c.ConsistencyProof(ctx, held.Size, served.Size, consistency)
	if err != nil {
		return err
	}
	switch {
	case p.From != held.Size || p.To != served.Size:
		return fmt.Errorf("the node answered a consistency proof from %d to %d, asked for %d to %d", p.From, p.To, held.Size, served.Size)
	case !p.FromRoot.Equal(held.Root):
		return inconsistent(fmt.Sprintf("its tree of size %d has root %s, not the held %s", held.Size, p.FromRoot, held.Root))
	case !p.ToRoot.Equal(served.Root):
		return inconsistent(fmt.Sprintf("its proof ends at root %s, not the root %s it serves", p.ToRoot, served.Root))
	}
	if err := p.Verify(); err != nil {
		return inconsistent(fmt.Sprintf("the consistency proof from %d to %d does not verify: %v", held.Size, served.Size, err))
	}
	return nil
}

// readHead reads the held head; nil when the file does not exist.
func readHead(path string) (*head, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var h head
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("%s does not hold a head: %w", path, err)
	}
	return &h, nil
}

// writeHead replaces the head file atomically: a new file beside it,
// synced, renamed over it.
func writeHead(path string, h head) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// checkConsistency refuses a --consistency the API does not know.
func checkConsistency(c string) error {
	switch c {
	case "", "stale", "leader", "linearizable":
		return nil
	}
	return usageError{fmt.Sprintf("--consistency %q: want stale, leader or linearizable", c)}
}
