package coapp

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/client"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/coapp/internal/httpapi"
	"coapp.coop/coapp/internal/memberkey"
	"coapp.coop/coapp/internal/release"
	"coapp.coop/coapp/internal/server"
	"coapp.coop/coapp/internal/state"
	"coapp.coop/internal/logging"
	"coapp.coop/ledger"
	"coapp.coop/pseudonym"
)

// Config configures a Node. Zero fields take the defaults in their
// comments; DefaultConfig returns one with them filled in.
type Config struct {
	// Dir holds the node's ledger (see package ledger), its member key
	// files (members/) and, on the node that bootstrapped the federation,
	// admin.token. Required.
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
	// Dir/admin.token. When Dir already holds a ledger, Bootstrap reopens
	// it: a restart, or a directory seeded by Restore (a new cluster on
	// the backup's ledger, without a new token). Federation may then be
	// empty; a name other than the ledger's is refused (ErrLedgerExists).
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
	// first start, authenticated by JoinToken (an admin token). A node
	// that is a member already reopens its directory; one whose directory
	// holds a cluster of its own (it bootstrapped) is refused
	// (ErrLedgerExists). A directory seeded by Restore may join: the
	// federation's snapshot replaces its state. NonVoter
	// joins as a read replica that does not vote. A follower also
	// presents JoinToken to the leader for calls of the Go API (the
	// Node's methods), acting for the member they name.
	Join      string
	JoinToken string
	NonVoter  bool

	// KeyFile holds the federation secret (see package pseudonym), which
	// pseudonymises subjects and identifying fields before anything is
	// stored; KeyPassphrase opens it when it is sealed. Default:
	// Dir/keys.json. A node bootstrapping a new federation in an empty
	// directory without one creates it; every other node of the
	// federation needs a copy, passed out of band. A node whose directory
	// holds a ledger never creates one (ErrNoKeyFile), and refuses a key
	// file whose fingerprint is not the one the federation's genesis
	// records (ErrKeyMismatch; see KeyFingerprint).
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

	// ProbeAddr, when set, is the HOST:PORT of a second listener, plain
	// HTTP even when TLS is set, serving only GET /healthz, /readyz and
	// /metrics: for load balancers, orchestrators' probes and Prometheus,
	// which hold no client certificate. It answers anyone who reaches
	// it: bind it to loopback or a private network. Default: none.
	ProbeAddr string

	// Logger receives the node's logs. Default: discard.
	Logger *slog.Logger

	// Ledger, when set, adjusts the ledger's configuration (timeouts,
	// memory) before it opens.
	Ledger func(*ledger.Config)
}

// DefaultConfig returns the configuration of a node in dir with every
// default filled in: a one-voter federation's node on loopback, once
// Bootstrap and Federation are set.
func DefaultConfig(dir string) Config {
	c := Config{Dir: dir}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1:7400"
	}
	if c.RaftAddr == "" {
		c.RaftAddr = "127.0.0.1:7401"
	}
	if c.Member == "" {
		c.Member = "founder"
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 4 << 20
	}
}

// validate checks the configuration before anything is written. What
// depends on Dir's content (Federation, the key file, Join into a
// directory that holds a ledger) is checked by checkDir, also before.
func (c *Config) validate() error {
	switch {
	case c.Dir == "":
		return api.Invalid("dir", "required")
	case c.Bootstrap && c.Join != "":
		return api.Invalid("join", "cannot both bootstrap and join")
	case c.MaxBodyBytes < 0:
		return api.Invalid("max_body_bytes", "must not be negative")
	case c.Bootstrap && !api.ValidMember(c.Member):
		return api.Invalid("member", "a member id: 1 to 64 characters of [a-z0-9._-]")
	case c.Join != "" && !strings.HasPrefix(c.Join, "http://") && !strings.HasPrefix(c.Join, "https://"):
		return api.Invalid("join", "an http:// or https:// URL of a node's API")
	}
	if err := c.validateProbeAddr(); err != nil {
		return err
	}
	if c.Bootstrap {
		f := c.founding(api.NodeInfo{}, "")
		if f.Federation == "" {
			f.Federation = "-" // required for a new federation only: checkDir knows
		}
		if err := f.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// founding is what a new federation starts with.
func (c *Config) founding(self api.NodeInfo, keyFingerprint string) server.Founding {
	return server.Founding{
		Federation: c.Federation, Founder: c.Member, Members: c.FoundingMembers,
		Rules: c.Rules, Keys: c.FoundingKeys, Self: self, KeyFingerprint: keyFingerprint,
	}
}

// Node is a federation node: a replicated ledger, the federation's state
// as this node applies it, the use-cases, and the HTTP API. It is what an
// app embeds and what `coapp node` runs.
type Node struct {
	cfg    Config
	logger *slog.Logger
	ledger *ledger.Ledger
	state  *state.State
	svc    *server.Service
	keys   *pseudonym.Keyring

	httpServer *http.Server
	httpLn     net.Listener
	httpURL    string       // this node's advertised API base URL
	peer       *http.Client // to other nodes, with the node's TLS
	started    atomic.Bool  // Open finished: tokens written, state caught up
	tel        telemetry    // metrics registry and probe listener (metrics.go)

	life   context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// DefaultKeyFile is the key file's name in Dir when Config.KeyFile is
// empty.
const DefaultKeyFile = "keys.json"

// AdminTokenFile is where a bootstrapping node writes the founding
// member's admin token, mode 0600.
const AdminTokenFile = "admin.token"

// CreateMemberKey makes a member's Ed25519 signing key in the key file a
// node reads from dir (dir/members/, sealed with passphrase unless it is
// empty) and returns its public key, for FoundingKeys or to check. It
// refuses to replace an existing key file.
func CreateMemberKey(dir, member string, passphrase []byte) (ed25519.PublicKey, error) {
	return memberkey.New(dir, passphrase).Create(member)
}

// Open starts a node: it opens the ledger, bootstraps or joins the
// federation on first start, and serves the HTTP API. ctx bounds start-up.
//
// Before it writes anything, Open checks the configuration and what Dir
// holds (see Config.Bootstrap, Config.Join and Config.KeyFile): a
// refusal is a *api.ValidationError naming the field, a *DirError
// (ErrLedgerExists) or a *KeyFileError (ErrNoKeyFile, ErrKeyMismatch),
// and leaves Dir as it was. A node joining with an empty directory
// checks its key file once the federation's genesis reaches it, after
// it joined.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, logger: logging.Discard(cfg.Logger), state: state.New()}
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
	if old, err := filepath.Glob(filepath.Join(cfg.Dir, release.ScratchPattern)); err == nil {
		for _, f := range old {
			_ = os.Remove(f)
		}
	}
	serverTLS, clientTLS, err := cfg.TLS.tlsConfigs()
	if err != nil {
		return err
	}
	lc := ledger.Config{
		Dir:           cfg.Dir,
		NodeID:        cfg.NodeID,
		BindAddr:      cfg.RaftAddr,
		AdvertiseAddr: cfg.RaftAdvertise,
		Join:          !cfg.Bootstrap,
		Logger:        n.logger,
	}
	if cfg.Ledger != nil {
		cfg.Ledger(&lc)
	}
	plan, err := n.checkDir(ctx, lc)
	if err != nil {
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
	if err := n.listenProbe(); err != nil {
		return err
	}

	if serverTLS != nil && lc.StreamLayer == nil {
		stream, err := newTLSStream(lc.BindAddr, lc.AdvertiseAddr, serverTLS, clientTLS)
		if err != nil {
			return err
		}
		lc.StreamLayer = stream
	} else if lc.StreamLayer == nil {
		// The Raft address is bound after the ledger's files are made:
		// try it first, so that a busy port writes nothing.
		ln, err := net.Listen("tcp", lc.BindAddr)
		if err != nil {
			return fmt.Errorf("coapp: raft listener on %s: %w", lc.BindAddr, err)
		}
		_ = ln.Close()
	}
	if plan.newKeys {
		if err := n.writeNewKeys(); err != nil {
			return err
		}
	}
	if n.ledger, err = ledger.Open(ctx, lc); err != nil {
		return err
	}
	n.logger = n.logger.With("node", n.ledger.ID())

	n.life, n.cancel = context.WithCancel(context.Background())
	n.svc = server.New(n.life, server.Config{
		Dir: cfg.Dir, URL: n.httpURL, MemberKeyPassphrase: cfg.MemberKeyPassphrase, MaxBodyBytes: cfg.MaxBodyBytes,
		ForwardToken: n.forwardToken(), Logger: n.logger,
	}, n.ledger, n.state, n.keys, n.dial)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.follow()
	}()

	if err := n.newRegistry(); err != nil {
		return err
	}
	h := httpapi.New(n.svc, httpapi.Config{MaxBodyBytes: cfg.MaxBodyBytes, Transport: n.peer.Transport, Logger: n.logger, Metrics: n.tel.registry}, n.ready)
	n.httpServer = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(n.logger.Handler(), slog.LevelWarn),
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.httpServer.Serve(n.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.logger.Error("http server stopped", "err", err)
		}
	}()
	n.serveProbe(h.Probes())

	st, err := n.ledger.Status()
	if err != nil {
		return err
	}
	joining := false
	switch {
	case cfg.Bootstrap:
		err = n.bootstrap(ctx)
	case len(st.Servers) == 0 && cfg.Join != "":
		joining = true
		err = n.join(ctx)
	case len(st.Servers) == 0:
		err = api.Invalid("join", "the node belongs to no federation: bootstrap one or join one")
	}
	if err != nil {
		return err
	}
	// A node that joined with an empty directory, or whose state had
	// not yet applied the genesis, checks its key file now.
	if !plan.checked && !plan.newKeys && (joining || st.Size > 0) {
		if err := n.checkJoinedKey(ctx); err != nil {
			return err
		}
	}
	// Serve tokens written before Open returns (the admin token, on a
	// bootstrap) from the first request.
	n.svc.AwaitView(ctx)
	n.started.Store(true)
	return nil
}

// follow applies the ledger to the federation's state until the node
// closes.
func (n *Node) follow() {
	for e, err := range n.ledger.Follow(n.life, 0, format.Kinds...) {
		if err != nil {
			if n.life.Err() == nil {
				n.logger.Error("following the ledger stopped", "err", err)
			}
			return
		}
		if err := n.state.Apply(e); err != nil {
			n.logger.Debug("entry refused", "index", e.Index, "kind", e.Kind, "err", err)
		}
	}
}

// ready tells /readyz whether Open finished.
func (n *Node) ready() error {
	if !n.started.Load() {
		return errors.New("the node is starting")
	}
	return nil
}

// forwardToken is what a follower presents to the leader for calls of the
// Go API: the join token, or the admin token this node wrote.
func (n *Node) forwardToken() string {
	if n.cfg.JoinToken != "" {
		return n.cfg.JoinToken
	}
	b, err := os.ReadFile(filepath.Join(n.cfg.Dir, AdminTokenFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// dial returns the API of another node, with this node's TLS.
func (n *Node) dial(url, token, member string) server.Leader {
	opts := []client.Option{client.WithHTTPClient(n.peer), client.WithRetries(1)}
	if n.ledger != nil {
		opts = append(opts, client.WithHeader(api.HeaderForwardedBy, n.ledger.ID()))
	}
	if member != "" {
		opts = append(opts, client.WithHeader(httpapi.HeaderMember, member))
	}
	return client.New(url, token, opts...)
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
		if n.ledger.IsLeader() {
			return n.svc.Announce(ctx, n.cfg.Member, n.selfInfo(true))
		}
		return nil
	}
	fp, err := fingerprint(n.keys, n.keys.Current())
	if err != nil {
		return err
	}
	token, err := n.svc.Bootstrap(ctx, n.cfg.founding(n.selfInfo(true), fp))
	if err != nil {
		return err
	}
	path := filepath.Join(n.cfg.Dir, AdminTokenFile)
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("coapp: write admin token: %w", err)
	}
	n.svc.SetForwardToken(token)
	n.logger.Info("bootstrapped federation", "federation", n.cfg.Federation, "admin_token_file", path)
	return nil
}

func (n *Node) selfInfo(voter bool) api.NodeInfo {
	return api.NodeInfo{ID: n.ledger.ID(), RaftAddr: n.ledger.Addr(), HTTPAddr: n.httpURL, Voter: voter}
}

// join asks the federation at cfg.Join to add this node, retrying until it
// succeeds or ctx ends.
func (n *Node) join(ctx context.Context) error {
	c := client.New(n.cfg.Join, n.cfg.JoinToken, client.WithHTTPClient(n.peer), client.WithRetries(1))
	for attempt := 0; ; attempt++ {
		_, err := c.Join(ctx, n.selfInfo(!n.cfg.NonVoter))
		if err == nil {
			n.logger.Info("joined federation", "via", n.cfg.Join)
			return nil
		}
		var ce *client.Error
		if errors.As(err, &ce) && ce.Status < 500 {
			return fmt.Errorf("coapp: join through %s: %w", n.cfg.Join, err)
		}
		n.logger.Warn("join failed; retrying", "via", n.cfg.Join, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("coapp: join through %s: %w (last error: %v)", n.cfg.Join, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond << min(attempt, 5)):
		}
	}
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

// Routes lists the method and path of every route the HTTP API serves.
func Routes() []string { return httpapi.Routes() }

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
		errs = append(errs, n.closeProbe(ctx))
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
