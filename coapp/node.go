package coapp

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"coapp.coop/internal/logging"
	"coapp.coop/ledger"
	"coapp.coop/pseudonym"
)

// Config configures a Node. Zero fields take the defaults in their comments.
type Config struct {
	// Dir holds the node's ledger (see package ledger) and, on the node
	// that bootstrapped the federation, admin.token. Required.
	Dir string

	// NodeID names the node in the cluster. Default: kept in Dir/node-id,
	// or chosen on first start.
	NodeID string

	// HTTPAddr is the client API's listen address. Default: 127.0.0.1:7400.
	// HTTPAdvertise is the URL host:port other nodes use to reach it.
	// Default: the address bound.
	HTTPAddr, HTTPAdvertise string

	// RaftAddr is the Raft listen address. Default: 127.0.0.1:7401.
	// RaftAdvertise is the address other nodes dial. Default: bound.
	RaftAddr, RaftAdvertise string

	// Bootstrap starts a new federation named Federation, whose founding
	// member is Member (default "founder"). Its admin token is written to
	// Dir/admin.token. Ignored when Dir already holds a ledger.
	Bootstrap  bool
	Federation string
	Member     string
	// FoundingMembers are members from the start besides Member, and
	// Rules the federation's governance rules (defaults when zero); both
	// for Bootstrap.
	FoundingMembers []string
	Rules           Rules
	// FoundingKeys are founding members' (and the founder's) Ed25519
	// public keys, written into the genesis; each member keeps its private
	// key in a key file on its node (see CreateMemberKey). The founder's
	// key also goes into the genesis when the bootstrapping node holds it
	// already. A member without a key in the genesis registers one with
	// its first signed entry, on the node where it signs.
	FoundingKeys map[string]ed25519.PublicKey

	// Join is the URL of any node's HTTP API, to join its federation on
	// first start, authenticated by JoinToken (an admin token). NonVoter
	// joins as a read replica that does not vote.
	Join      string
	JoinToken string
	NonVoter  bool

	// KeyFile holds the federation secret (see package pseudonym), which
	// pseudonymises subjects and identifying fields before anything is
	// stored; KeyPassphrase opens it when it is sealed. Default:
	// Dir/keys.json. A bootstrapping node without one creates it; every
	// other node of the federation needs a copy, passed out of band.
	KeyFile       string
	KeyPassphrase []byte

	// MemberKeyPassphrase, when set, seals the members' signing keys this
	// node keeps in Dir/members/ (Argon2id, then XChaCha20-Poly1305).
	// Default: unsealed, mode 0600.
	MemberKeyPassphrase []byte

	// TLS, when set, makes both the Raft transport and the HTTP API mutual
	// TLS.
	TLS TLSFiles

	// MaxBodyBytes bounds a request body. Default: 4 MiB.
	MaxBodyBytes int64

	// Logger receives the node's logs. Default: discard.
	Logger *slog.Logger

	// Ledger, when set, adjusts the ledger's configuration (timeouts,
	// memory) before it opens.
	Ledger func(*ledger.Config)
}

// Node is a federation node: a replicated ledger, the federation's view of
// it, and the HTTP API. It is what an app embeds and what `coapp node` runs.
type Node struct {
	cfg    Config
	logger *slog.Logger
	ledger *ledger.Ledger
	view   *view
	keys   *pseudonym.Keyring
	cache  keyCache

	signers  signers      // members' signing keys on this node
	coalesce coalescer    // requests waiting to be signed together
	signedMu sync.Mutex   // orders signed entries (consents, governance) between their check and their append, on the leader
	keyMu    sync.RWMutex // held for reading by batches between their check and their append, for writing by key rotations

	httpServer *http.Server
	httpLn     net.Listener
	httpURL    string       // this node's advertised API base URL
	peer       *http.Client // to other nodes, with the node's TLS
	metrics    *metrics

	caughtUp atomic.Bool // set once /readyz has seen the node caught up

	life   context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// DefaultKeyFile is the key file's name in Dir when Config.KeyFile is
// empty.
const DefaultKeyFile = "keys.json"

// loadKeys reads the federation's key file, or creates one for a new
// federation.
func (n *Node) loadKeys() error {
	path := n.KeyFile()
	k, err := pseudonym.ReadKeyFile(path, n.cfg.KeyPassphrase)
	switch {
	case err == nil:
		n.keys = k
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("coapp: key file: %w", err)
	case !n.cfg.Bootstrap || n.cfg.KeyFile != "":
		return invalid("keys", "the federation's key file is needed (%s not found): copy it from a node of the federation", path)
	}
	secret, err := pseudonym.NewSecret()
	if err != nil {
		return err
	}
	if n.keys, err = pseudonym.NewKeyring(1, secret); err != nil {
		return err
	}
	if err := os.MkdirAll(n.cfg.Dir, 0o700); err != nil {
		return err
	}
	if err := pseudonym.WriteKeyFile(path, n.keys, n.cfg.KeyPassphrase); err != nil {
		return err
	}
	n.logger.Info("created the federation's key file; copy it to every node that joins", "key_file", path)
	return nil
}

// CreateMemberKey makes a member's Ed25519 signing key in the key file a
// node reads from dir (dir/members/, sealed with passphrase unless it is
// empty) and returns its public key, for FoundingKeys or to check. It
// refuses to replace an existing key file.
func CreateMemberKey(dir, member string, passphrase []byte) (ed25519.PublicKey, error) {
	s := signers{dir: dir, passphrase: passphrase, keys: map[string]ed25519.PrivateKey{}}
	if _, err := os.Stat(s.path(member)); err == nil {
		return nil, fmt.Errorf("coapp: %s already holds a key for %s", s.path(member), member)
	}
	k, err := s.key(member)
	if err != nil {
		return nil, err
	}
	return k.Public().(ed25519.PublicKey), nil
}

// AdminTokenFile is where a bootstrapping node writes the founding
// member's admin token, mode 0600.
const AdminTokenFile = "admin.token"

// Open starts a node: it opens the ledger, bootstraps or joins the
// federation on first start, and serves the HTTP API. ctx bounds start-up.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Dir == "" {
		return nil, invalid("dir", "required")
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:7400"
	}
	if cfg.RaftAddr == "" {
		cfg.RaftAddr = "127.0.0.1:7401"
	}
	if cfg.Member == "" {
		cfg.Member = "founder"
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 4 << 20
	}
	if cfg.Bootstrap && cfg.Join != "" {
		return nil, invalid("join", "cannot both bootstrap and join")
	}
	n := &Node{cfg: cfg, logger: logging.Discard(cfg.Logger), view: newView(), metrics: newMetrics()}
	n.signers = signers{dir: cfg.Dir, passphrase: cfg.MemberKeyPassphrase, keys: map[string]ed25519.PrivateKey{}}
	if err := n.start(ctx); err != nil {
		_ = n.Close(context.Background())
		return nil, err
	}
	return n, nil
}

func (n *Node) start(ctx context.Context) error {
	cfg := &n.cfg
	// Exports cut short by a crash leave scratch files (decrypted rows,
	// under dataset pseudonyms): remove them.
	if old, err := filepath.Glob(filepath.Join(cfg.Dir, "export-scratch-*.tmp")); err == nil {
		for _, f := range old {
			_ = os.Remove(f)
		}
	}
	serverTLS, clientTLS, err := cfg.TLS.tlsConfigs()
	if err != nil {
		return err
	}
	if err := n.loadKeys(); err != nil {
		return err
	}
	n.peer = &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: clientTLS, MaxIdleConnsPerHost: 64},
	}

	// Listen first, so that the advertised addresses are known when the
	// node announces itself.
	if n.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return fmt.Errorf("coapp: http listener on %s: %w", cfg.HTTPAddr, err)
	}
	advertise := cfg.HTTPAdvertise
	if advertise == "" {
		advertise = n.httpLn.Addr().String()
	}
	scheme := "http"
	if serverTLS != nil {
		scheme = "https"
		n.httpLn = tls.NewListener(n.httpLn, serverTLS)
	}
	n.httpURL = scheme + "://" + advertise

	lc := ledger.Config{
		Dir:           cfg.Dir,
		NodeID:        cfg.NodeID,
		BindAddr:      cfg.RaftAddr,
		AdvertiseAddr: cfg.RaftAdvertise,
		Join:          !cfg.Bootstrap,
		Logger:        n.logger,
	}
	if serverTLS != nil {
		stream, err := newTLSStream(cfg.RaftAddr, cfg.RaftAdvertise, serverTLS, clientTLS)
		if err != nil {
			return err
		}
		lc.StreamLayer = stream
	}
	if cfg.Ledger != nil {
		cfg.Ledger(&lc)
	}
	if n.ledger, err = ledger.Open(ctx, lc); err != nil {
		return err
	}
	n.logger = n.logger.With("node", n.ledger.ID())

	fctx, cancel := context.WithCancel(context.Background())
	n.life, n.cancel = fctx, cancel
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.view.follow(fctx, n.ledger, func(err error) {
			n.logger.Error("following the ledger stopped", "err", err)
		})
	}()

	n.httpServer = &http.Server{
		Handler:           n.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slogErrorLog(n.logger),
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.httpServer.Serve(n.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.logger.Error("http server stopped", "err", err)
		}
	}()

	st, err := n.ledger.Status()
	if err != nil {
		return err
	}
	switch {
	case cfg.Bootstrap:
		err = n.bootstrap(ctx)
	case len(st.Servers) == 0 && cfg.Join != "":
		err = n.join(ctx)
	case len(st.Servers) == 0:
		err = invalid("join", "the node belongs to no federation: bootstrap one or join one")
	}
	if err != nil {
		return err
	}
	// Serve tokens written before Open returns (the admin token, on a
	// bootstrap) from the first request.
	n.awaitView(ctx)
	return nil
}

// bootstrap writes the genesis, this node's address and the founder's admin
// token, unless the ledger already holds a federation.
func (n *Node) bootstrap(ctx context.Context) error {
	// A restart reads its own state: it may not lead any more.
	size := uint64(0)
	if err := n.ledger.Read(ctx, ledger.Stale, func(v *ledger.View) error {
		size = v.Size()
		return nil
	}); err != nil {
		return err
	}
	if size > 0 {
		n.logger.Info("federation already bootstrapped; reopened")
		if st, err := n.ledger.Status(); err == nil && st.State == "Leader" {
			return n.announce(ctx)
		}
		return nil
	}
	if n.cfg.Federation == "" {
		return invalid("federation", "required to bootstrap a new federation")
	}
	rules := n.cfg.Rules.withDefaults()
	if err := rules.validate(); err != nil {
		return err
	}
	for i, m := range n.cfg.FoundingMembers {
		if !memberPattern.MatchString(m) {
			return invalid(fmt.Sprintf("founding_members[%d]", i), "a member id: 1 to 64 characters of [a-z0-9._-]")
		}
	}
	for i, c := range rules.Committees {
		for j, m := range c.Members {
			if m != n.cfg.Member && !slices.Contains(n.cfg.FoundingMembers, m) {
				return invalid(fmt.Sprintf("rules.committees[%d].members[%d]", i, j), "%s is not a founding member", m)
			}
		}
	}
	memberKeys := map[string][]byte{}
	for m, pub := range n.cfg.FoundingKeys {
		if len(pub) != ed25519.PublicKeySize || (m != n.cfg.Member && !slices.Contains(n.cfg.FoundingMembers, m)) {
			return invalid("founding_keys."+m, "an Ed25519 public key of a founding member")
		}
		memberKeys[m] = pub
	}
	// The founder's key goes into the genesis: the one this node holds
	// (made with CreateMemberKey, coapp keys member), or a new one.
	if _, given := memberKeys[n.cfg.Member]; !given {
		founderKey, err := n.signers.key(n.cfg.Member)
		if err != nil {
			return err
		}
		memberKeys[n.cfg.Member] = founderKey.Public().(ed25519.PublicKey)
	}
	token, op, err := newToken(n.cfg.Member, true)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	entries := []ledger.Entry{
		systemEntry(KindGenesis, n.cfg.Member, now, genesis{Federation: n.cfg.Federation, Founder: n.cfg.Member, Members: n.cfg.FoundingMembers, Rules: &rules, MemberKeys: memberKeys, SignedRecords: true}),
		systemEntry(KindNode, n.cfg.Member, now, n.selfInfo(true)),
		systemEntry(KindToken, n.cfg.Member, now, op),
	}
	if _, err := n.ledger.Append(ctx, entries...); err != nil {
		return err
	}
	path := filepath.Join(n.cfg.Dir, AdminTokenFile)
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("coapp: write admin token: %w", err)
	}
	n.logger.Info("bootstrapped federation", "federation", n.cfg.Federation, "admin_token_file", path)
	return nil
}

// announce records this node's addresses in the ledger when the view does
// not hold them as they are now: after a restore from backup (a new node
// id) or a restart on other addresses. It runs on the bootstrapping node,
// which leads.
func (n *Node) announce(ctx context.Context) error {
	st, err := n.ledger.Status()
	if err != nil {
		return err
	}
	// Let the view catch up with the ledger first.
	for n.view.applied() < st.Size && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	self := n.selfInfo(true)
	if known, ok := n.view.node(self.ID); ok && known == self {
		return nil
	}
	_, err = n.ledger.Append(ctx, systemEntry(KindNode, n.cfg.Member, time.Now().UTC(), self))
	return err
}

func (n *Node) selfInfo(voter bool) NodeInfo {
	return NodeInfo{ID: n.ledger.ID(), RaftAddr: n.ledger.Addr(), HTTPAddr: n.httpURL, Voter: voter}
}

// systemEntry makes a ledger entry for one of the federation's own
// operations; its id is random, as the operation is not retried by id.
func systemEntry(kind, author string, t time.Time, payload any) ledger.Entry {
	b, err := json.Marshal(payload)
	if err != nil {
		panic(err) // only our own types, which always marshal
	}
	return ledger.Entry{ID: uuid.Must(uuid.NewV7()), Kind: kind, Author: author, Time: t, Payload: b}
}

// joinRequest is the body of POST /v1/cluster/join.
type joinRequest struct {
	NodeInfo
}

// join asks the federation at cfg.Join to add this node, retrying until it
// succeeds or ctx ends.
func (n *Node) join(ctx context.Context) error {
	body, _ := json.Marshal(joinRequest{n.selfInfo(!n.cfg.NonVoter)})
	for attempt := 0; ; attempt++ {
		err := n.postJSON(ctx, n.cfg.Join+"/v1/cluster/join", n.cfg.JoinToken, body)
		if err == nil {
			n.logger.Info("joined federation", "via", n.cfg.Join)
			return nil
		}
		var apiErr *apiError
		if errors.As(err, &apiErr) && apiErr.status < 500 {
			return fmt.Errorf("coapp: join through %s: %w", n.cfg.Join, err)
		}
		n.logger.Warn("join failed; retrying", "via", n.cfg.Join, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("coapp: join through %s: %w (last error: %v)", n.cfg.Join, ctx.Err(), err)
		case <-time.After(backoff(attempt)):
		}
	}
}

func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt, 5)
	return d
}

// postJSON posts body to url with a bearer token, for node-to-node calls.
func (n *Node) postJSON(ctx context.Context, url, token string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := n.peer.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return nil
	}
	return decodeAPIError(resp)
}

// KeyFile returns the path of the federation key file the node uses.
func (n *Node) KeyFile() string {
	if n.cfg.KeyFile != "" {
		return n.cfg.KeyFile
	}
	return filepath.Join(n.cfg.Dir, DefaultKeyFile)
}

// Ledger returns the node's ledger.
func (n *Node) Ledger() *ledger.Ledger { return n.ledger }

// URL returns the base URL of the node's HTTP API.
func (n *Node) URL() string { return n.httpURL }

// ID returns the node's id.
func (n *Node) ID() string { return n.ledger.ID() }

// Close stops the HTTP API (letting requests in flight finish, within ctx),
// then the ledger. It is safe to call more than once.
func (n *Node) Close(ctx context.Context) error {
	n.closeOnce.Do(func() {
		var errs []error
		if n.httpServer != nil {
			errs = append(errs, n.httpServer.Shutdown(ctx))
		} else if n.httpLn != nil {
			errs = append(errs, n.httpLn.Close())
		}
		if n.cancel != nil {
			n.cancel()
		}
		if n.ledger != nil {
			errs = append(errs, n.ledger.Close(ctx))
		}
		n.wg.Wait()
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}
