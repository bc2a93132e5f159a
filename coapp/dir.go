package coapp

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/ledger"
	"coapp.coop/pseudonym"
)

// What Open checks in Dir before it writes anything, and the federation
// key's fingerprint that lets it, and Restore, check a key file.

// ErrLedgerExists is returned, in a *DirError, by Open when Bootstrap or
// Join asks for what the ledger already in Dir cannot become (another
// federation, or a cluster of its own joining one), and by Restore when
// Dir already holds a ledger. Nothing is written.
var ErrLedgerExists = errors.New("coapp: the directory already holds a ledger")

// ErrNoKeyFile is returned, in a *KeyFileError, by Open and Restore when
// the federation's key file is missing: for a ledger that exists they
// never make a new one, which would give every person other pseudonyms.
var ErrNoKeyFile = errors.New("coapp: the federation's key file is missing")

// ErrKeyMismatch is returned, in a *KeyFileError, by Open and Restore when
// a key file's fingerprint is not the one the federation's genesis
// records: it is another federation's key, or a new one.
var ErrKeyMismatch = errors.New("coapp: the key file is not the federation's")

// DirError says why Open or Restore refused a directory, and what to do.
type DirError struct {
	Dir    string
	Reason string
	Err    error // ErrLedgerExists
}

func (e *DirError) Error() string { return fmt.Sprintf("coapp: %s: %s", e.Dir, e.Reason) }

// Unwrap returns the sentinel.
func (e *DirError) Unwrap() error { return e.Err }

// KeyFileError names the key file a ledger needs and the one it got.
type KeyFileError struct {
	// Path is the key file looked for, or read.
	Path string
	// Federation is the name in the ledger's genesis, when known.
	Federation string
	// Want is the fingerprint the genesis records (see KeyFingerprint);
	// empty when it records none. Got is the key file's; empty when the
	// file is missing.
	Want, Got string
	// Err is ErrNoKeyFile or ErrKeyMismatch.
	Err error
}

func (e *KeyFileError) Error() string {
	fed := "the federation"
	if e.Federation != "" {
		fed = fmt.Sprintf("federation %q", e.Federation)
	}
	if errors.Is(e.Err, ErrKeyMismatch) {
		return fmt.Sprintf("coapp: %s is not the key file of %s: its fingerprint is %s, the ledger records %s; "+
			"find the federation's key file (another node's, or your backup of it)", e.Path, fed, shortPrint(e.Got), shortPrint(e.Want))
	}
	want := ""
	if e.Want != "" {
		want = ", fingerprint " + shortPrint(e.Want)
	}
	return fmt.Sprintf("coapp: the ledger of %s needs its key file%s, and %s is not there: copy the federation's key file "+
		"from another node or from your backup of it, and name it with Config.KeyFile (coapp node --keys); "+
		"a new key would give every person other pseudonyms", fed, want, e.Path)
}

// Unwrap returns the sentinel.
func (e *KeyFileError) Unwrap() error { return e.Err }

// shortPrint shortens a fingerprint for a message.
func shortPrint(fp string) string {
	if fp == "" {
		return "none"
	}
	if len(fp) > 18 {
		return fp[:18] + "…"
	}
	return fp
}

// fingerprintDomain is the pseudonym domain of the fingerprint's derived
// value: no member's nor dataset's.
const fingerprintDomain = pseudonym.Domain("coapp:key-fingerprint")

// KeyFingerprint returns the fingerprint of the federation key file at
// path (opened with passphrase when sealed): "VERSION:HEX", the key's
// current version and the SHA-256 of a value derived from its secret (a
// pseudonym in a domain of its own). It reveals nothing of the secret.
// A federation's genesis records its fingerprint, so that Open and
// Restore refuse another key file.
func KeyFingerprint(path string, passphrase []byte) (string, error) {
	k, err := pseudonym.ReadKeyFile(path, passphrase)
	if err != nil {
		return "", fmt.Errorf("coapp: key file: %w", err)
	}
	return fingerprint(k, k.Current())
}

func fingerprint(k *pseudonym.Keyring, version uint32) (string, error) {
	p, err := k.PseudonymAt(version, fingerprintDomain, "coapp")
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte("coapp/v1/key-fingerprint|" + string(p)))
	return strconv.FormatUint(uint64(version), 10) + ":" + hex.EncodeToString(sum[:]), nil
}

// checkFingerprint compares a keyring with the fingerprint a genesis
// records, under the version it names; it returns the keyring's own
// fingerprint (of that version when it holds it).
func checkFingerprint(k *pseudonym.Keyring, want string) (got string, ok bool) {
	version := k.Current()
	if v, _, found := strings.Cut(want, ":"); found {
		if n, err := strconv.ParseUint(v, 10, 32); err == nil && n > 0 {
			version = uint32(n)
		}
	}
	got, err := fingerprint(k, version)
	if err != nil { // the keyring lacks that version
		got, _ = fingerprint(k, k.Current())
		return got, false
	}
	return got, subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// dirPlan is what Open found in Dir, read before it writes anything.
type dirPlan struct {
	in      ledger.Inspection
	genesis *format.Genesis // the state's genesis, when it holds one
	newKeys bool            // a new federation: the key file is made
	checked bool            // the key file was checked against the genesis
}

// readGenesis reads the genesis at the head of a view, or nil.
func readGenesis(v *ledger.View) (*format.Genesis, error) {
	if v.Size() == 0 {
		return nil, nil
	}
	e, err := v.Entry(0)
	if err != nil || e.Kind != format.KindGenesis {
		return nil, err
	}
	var g format.Genesis
	if err := json.Unmarshal(e.Payload, &g); err != nil {
		return nil, fmt.Errorf("coapp: the ledger's genesis: %w", err)
	}
	return &g, nil
}

// checkDir reads what Dir holds, without writing anything, and refuses a
// configuration that cannot work with it: Join in a directory that holds
// a cluster of its own, Bootstrap of another federation than the one it
// holds, a missing key file or one that is not the federation's. It
// loads the key file, or makes a new key in memory for a new federation.
func (n *Node) checkDir(ctx context.Context, lc ledger.Config) (*dirPlan, error) {
	cfg := &n.cfg
	p := &dirPlan{}
	var err error
	p.in, err = ledger.Inspect(ctx, lc, func(v *ledger.View) error {
		g, gerr := readGenesis(v)
		p.genesis = g
		return gerr
	})
	if err != nil {
		return nil, fmt.Errorf("coapp: read %s: %w", cfg.Dir, err)
	}
	in, g := p.in, p.genesis
	if cfg.NodeID != "" && in.NodeID != "" && cfg.NodeID != in.NodeID {
		return nil, api.Invalid("node_id", "%q differs from %q, the id of the node whose directory %s is", cfg.NodeID, in.NodeID, cfg.Dir)
	}
	id := in.NodeID
	if id == "" {
		id = cfg.NodeID
	}
	holds := "no federation (a bootstrap that did not finish)"
	if g != nil {
		holds = fmt.Sprintf("federation %q", g.Federation)
	}
	ownCluster := in.RaftState && len(in.Servers) == 1 && in.Servers[0].ID == id
	refuse := func(format string, args ...any) error {
		return &DirError{Dir: cfg.Dir, Reason: fmt.Sprintf(format, args...), Err: ErrLedgerExists}
	}
	switch {
	case cfg.Bootstrap && g != nil && cfg.Federation != "" && cfg.Federation != g.Federation:
		return nil, refuse("it holds the ledger of federation %q, not %q: bootstrap a new federation in an empty directory, "+
			"or leave Federation empty (coapp node without --federation) to reopen %q", g.Federation, cfg.Federation, g.Federation)
	case cfg.Bootstrap && g == nil && cfg.Federation == "":
		return nil, api.Invalid("federation", "required to bootstrap a new federation")
	case cfg.Join != "" && ownCluster:
		return nil, refuse("it holds a cluster of its own, whose only server is this node, with %s: it cannot join another; "+
			"join with an empty directory, or start without Join (coapp node without --join) to reopen it", holds)
	case !cfg.Bootstrap && cfg.Join == "" && in.Empty():
		return nil, api.Invalid("join", "the node belongs to no federation: bootstrap one (Bootstrap and Federation) or join one (Join and JoinToken)")
	case !cfg.Bootstrap && cfg.Join == "" && !in.RaftState:
		return nil, api.Invalid("bootstrap", "%s holds a ledger restored from a backup and no cluster yet: start it with Bootstrap "+
			"to found a new cluster on it (coapp node --bootstrap), or join one with Join", cfg.Dir)
	}
	if err := n.loadKeys(p); err != nil {
		return nil, err
	}
	return p, nil
}

// loadKeys reads the federation's key file and checks it against the
// genesis in Dir; for a new federation without a key file it makes a new
// key, which start writes once nothing else can fail first.
func (n *Node) loadKeys(p *dirPlan) error {
	path := n.KeyFile()
	k, err := pseudonym.ReadKeyFile(path, n.cfg.KeyPassphrase)
	switch {
	case err == nil:
		n.keys = k
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("coapp: key file %s: %w", path, err)
	case n.cfg.Bootstrap && n.cfg.KeyFile == "" && p.in.Empty():
		secret, err := pseudonym.NewSecret()
		if err != nil {
			return err
		}
		if n.keys, err = pseudonym.NewKeyring(1, secret); err != nil {
			return err
		}
		p.newKeys = true
		return nil
	default:
		ke := &KeyFileError{Path: path, Err: ErrNoKeyFile}
		if g := p.genesis; g != nil {
			ke.Federation, ke.Want = g.Federation, g.KeyFingerprint
		}
		return ke
	}
	if g := p.genesis; g != nil {
		if err := n.checkKey(g); err != nil {
			return err
		}
		p.checked = true
	}
	return nil
}

// checkKey checks the node's key against a genesis's fingerprint.
func (n *Node) checkKey(g *format.Genesis) error {
	if g.KeyFingerprint == "" {
		n.logger.Warn("the federation's genesis records no key fingerprint (it was founded before coapp recorded one): the key file cannot be checked",
			"federation", g.Federation, "key_file", n.KeyFile())
		return nil
	}
	if got, ok := checkFingerprint(n.keys, g.KeyFingerprint); !ok {
		return &KeyFileError{Path: n.KeyFile(), Federation: g.Federation, Want: g.KeyFingerprint, Got: got, Err: ErrKeyMismatch}
	}
	return nil
}

// checkJoinedKey checks the key file against the genesis of the
// federation a node joined, once the genesis reached it: a node joining
// with an empty directory could not check it before.
func (n *Node) checkJoinedKey(ctx context.Context) error {
	if ch := n.state.WaitFor(0); ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("coapp: the federation's genesis did not reach this node, to check its key file: %w", ctx.Err())
		}
	}
	g, ok := n.state.Federation()
	if !ok {
		return nil // the ledger does not start with a genesis: nothing to check
	}
	if err := n.checkKey(&g); err != nil {
		return fmt.Errorf("%w (this node joined the cluster before it could check: remove it, coapp cluster remove %s)", err, n.ledger.ID())
	}
	return nil
}

// writeNewKeys writes the key file of a new federation.
func (n *Node) writeNewKeys() error {
	path := n.KeyFile()
	if err := os.MkdirAll(n.cfg.Dir, 0o700); err != nil {
		return err
	}
	if err := pseudonym.WriteKeyFile(path, n.keys, n.cfg.KeyPassphrase); err != nil {
		return err
	}
	n.logger.Info("created the federation's key file; copy it to every node that joins, and keep a copy with your backups", "key_file", path)
	return nil
}
