package server

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/coapp/internal/memberkey"
	"coapp.coop/coapp/internal/state"
	"coapp.coop/consent"
	"coapp.coop/ledger"
	"coapp.coop/pseudonym"
)

// Leader is the API of the federation's leader, as a follower reaches it
// for a caller. *client.Client serves it; every call authenticates with
// the caller's token and marks the request as handed on.
type Leader interface {
	PublishSigned(ctx context.Context, b api.SealedBatch) ([]api.Receipt, error)
	SubmitSigned(ctx context.Context, s api.SignedSubmission) (uint64, error)
	SubmitEvent(ctx context.Context, e api.SignedEvent) (api.ConsentReceipt, error)
	Status(ctx context.Context) (api.NodeStatus, error)
	PutSchema(ctx context.Context, s api.Schema) (api.Schema, error)
	DefinePurpose(ctx context.Context, p consent.Purpose) error
	CreateToken(ctx context.Context, member string, admin bool) (api.TokenResponse, error)
	RevokeToken(ctx context.Context, id string) error
	Access(ctx context.Context, subject string) (api.SubjectReport, error)
	EraseSubject(ctx context.Context, subject string) (api.EraseResponse, error)
	Join(ctx context.Context, n api.NodeInfo) (api.NodeInfo, error)
	RemoveNode(ctx context.Context, id string) error
	PromoteNode(ctx context.Context, id string) (api.NodeInfo, error)
	ErasureStatus(ctx context.Context, index uint64, local bool) (api.ErasureStatus, error)
}

// Dialer returns the API of the node at url (its base URL, such as
// "https://10.0.0.2:7400"), authenticated by token; member, when set, is
// the member an admin token acts for (a call of the Go API handed on with
// the node's forwarding token).
type Dialer func(url, token, member string) Leader

// Config configures a Service.
type Config struct {
	// Dir is the node's directory: member key files under members/,
	// export scratch files. Required.
	Dir string
	// URL is this node's advertised API base URL.
	URL string
	// MemberKeyPassphrase, when set, seals the member key files this node
	// keeps.
	MemberKeyPassphrase []byte
	// MaxBodyBytes bounds what a follower sends the leader in one request.
	MaxBodyBytes int64
	// ForwardToken is what the node presents to the leader for a call of
	// the Go API on a follower that carries no token of its own (an admin
	// token, acting on behalf of the call's member). Empty: such calls
	// fail on a follower with api.ErrNoLeader.
	ForwardToken string
	// Logger receives the use-cases' logs. Default: discard.
	Logger *slog.Logger
}

// Service runs a node's use-cases over its ledger and state.
type Service struct {
	cfg    Config
	log    *slog.Logger
	ledger *ledger.Ledger
	state  *state.State
	keys   *pseudonym.Keyring
	dial   Dialer

	cache    keyCache
	signers  *memberkey.Signers
	coalesce coalescer
	metrics  *Metrics
	signedMu sync.Mutex   // orders signed entries (consents, governance) between their check and their append, on the leader
	keyMu    sync.RWMutex // held for reading by batches between their check and their append, for writing by key rotations

	life    context.Context // ends when the node closes
	forward atomic.Pointer[string]
}

// SetForwardToken sets the token the node presents to the leader for a
// call of the Go API that carries none (see Config.ForwardToken).
func (s *Service) SetForwardToken(token string) { s.forward.Store(&token) }

func (s *Service) forwardToken() string {
	if t := s.forward.Load(); t != nil {
		return *t
	}
	return ""
}

// New returns the service of a node. life ends when the node closes: it
// bounds work no single request governs (a gathered batch).
func New(life context.Context, cfg Config, l *ledger.Ledger, st *state.State, keys *pseudonym.Keyring, dial Dialer) *Service {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		cfg: cfg, log: logger, ledger: l, state: st, keys: keys, dial: dial,
		signers: memberkey.New(cfg.Dir, cfg.MemberKeyPassphrase), metrics: NewMetrics(), life: life,
	}
	s.SetForwardToken(cfg.ForwardToken)
	return s
}

// State returns the federation's state as this node applied it.
func (s *Service) State() *state.State { return s.state }

// Ledger returns the node's ledger.
func (s *Service) Ledger() *ledger.Ledger { return s.ledger }

// Metrics returns the service's counters.
func (s *Service) Metrics() *Metrics { return s.metrics }

// Signers returns the member signing keys this node holds.
func (s *Service) Signers() *memberkey.Signers { return s.signers }

// Keys returns the federation's keyring.
func (s *Service) Keys() *pseudonym.Keyring { return s.keys }

// IsLeader reports whether this node leads: writes run here.
func (s *Service) IsLeader() bool { return s.ledger.IsLeader() }

// leader returns the leader's API for c: ErrNoLeader when no leader (or
// its address, or a token to present) is known.
func (s *Service) leader(c api.Caller) (Leader, error) {
	st, err := s.ledger.Status()
	if err != nil {
		return nil, err
	}
	info, ok := s.state.Node(st.LeaderID)
	if st.LeaderID == "" || !ok || info.HTTPAddr == "" {
		return nil, fmt.Errorf("%w: the leader's address is not known yet", api.ErrNoLeader)
	}
	if c.Token != "" {
		return s.dial(info.HTTPAddr, c.Token, ""), nil
	}
	forward := s.forwardToken()
	if forward == "" {
		return nil, fmt.Errorf("%w: this node is a follower, and has no token to present to the leader", api.ErrNoLeader)
	}
	return s.dial(info.HTTPAddr, forward, c.Member), nil
}

// CatchUp waits, on a follower, until this node's state has applied what
// the leader had applied when asked: a change must link to the latest
// event, which the caller may have just written through the leader.
func (s *Service) CatchUp(ctx context.Context, c api.Caller) error {
	if s.IsLeader() {
		return nil
	}
	l, err := s.leader(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := l.Status(ctx)
	if err != nil {
		return err
	}
	if st.Size == 0 {
		return nil
	}
	if err := s.state.WaitApplied(ctx, st.Size-1); err != nil {
		return fmt.Errorf("%w: catching up with the leader", api.ErrNoLeader)
	}
	return nil
}

// AwaitView waits, briefly, until the state has applied the whole ledger
// as this node has it, so that a token is usable (or revoked) on this node
// when a call returns.
func (s *Service) AwaitView(ctx context.Context) {
	st, err := s.ledger.Status()
	if err != nil || st.Size == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = s.state.WaitApplied(ctx, st.Size-1)
}

// awaitApplied waits until the state applied index, and returns why it
// refused the entry there, if it did. The wait outlives the caller (up to
// 30 s): locks held order signed entries by their application.
func (s *Service) awaitApplied(ctx context.Context, index uint64) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.state.WaitApplied(wctx, index); err != nil {
		return err
	}
	return s.state.Rejection(index)
}

// SystemEntry makes a ledger entry for one of the federation's own
// operations; its id is random, as the operation is not retried by id.
func SystemEntry(kind, author string, t time.Time, payload any) ledger.Entry {
	b, err := json.Marshal(payload)
	if err != nil {
		panic(err) // only our own types, which always marshal
	}
	return ledger.Entry{ID: uuid.Must(uuid.NewV7()), Kind: kind, Author: author, Time: t, Payload: b}
}

// appendChecked appends entries on the leader once the state says every
// replica will take them, and waits until this node's state applied the
// last one.
func (s *Service) appendChecked(ctx context.Context, entries ...ledger.Entry) (uint64, error) {
	if err := s.state.Check(entries...); err != nil {
		return 0, err
	}
	rs, err := s.ledger.Append(ctx, entries...)
	if err != nil {
		return 0, err
	}
	last := rs[len(rs)-1]
	if last.Duplicate {
		return last.Index, nil
	}
	return last.Index, s.awaitApplied(ctx, last.Index)
}

// memberKeyEntry is the entry that registers a member's first key, when the
// state has none for it yet; nil when it has.
func (s *Service) memberKeyEntry(member string, pub []byte, at time.Time) (ledger.Entry, ed25519.PublicKey, bool, error) {
	if known, ok := s.state.MemberKey(member); ok {
		return ledger.Entry{}, known, false, nil
	}
	if len(pub) != ed25519.PublicKeySize {
		return ledger.Entry{}, nil, false, api.Invalid("public_key", "member %s has no key in the ledger yet: send its Ed25519 public key", member)
	}
	return SystemEntry(format.KindMemberKey, member, at, format.MemberKey{Member: member, PublicKey: pub}), ed25519.PublicKey(pub), true, nil
}

// Translate maps the errors of the packages below (ledger, consent) to
// api's sentinels, keeping the cause: errors.Is matches both. Every
// use-case's error goes through it.
func Translate(err error) error {
	if err == nil {
		return nil
	}
	var ae *api.Error
	var ve *api.ValidationError
	if errors.As(err, &ae) || errors.As(err, &ve) {
		return err
	}
	var lve *ledger.ValidationError
	var ce *ledger.ConflictError
	var cse *consent.Error
	switch {
	case errors.As(err, &cse):
		return &api.Error{Err: consentSentinel(cse.Err), Field: cse.Field, Reason: cse.Reason, Cause: err}
	case errors.As(err, &lve):
		return &api.Error{Err: api.ErrInvalid, Field: lve.Field, Reason: lve.Reason, Cause: err}
	case errors.As(err, &ce):
		return &api.Error{Err: api.ErrConflict, Field: "id", Reason: fmt.Sprintf("record id %s is already used for a different record", ce.ID), Cause: err}
	case errors.Is(err, ledger.ErrTooLarge):
		return &api.Error{Err: api.ErrTooLarge, Field: "records", Reason: "the records are larger than the ledger accepts in one request", Cause: err}
	case errors.Is(err, ledger.ErrKeyConflict):
		return &api.Error{Err: api.ErrKeyConflict, Field: "keys", Reason: "seal again", Cause: err}
	case errors.Is(err, ledger.ErrKeyDestroyed):
		return &api.Error{Err: api.ErrErased, Reason: "nothing more is published about them", Cause: err}
	case errors.Is(err, ledger.ErrNotLeader), errors.Is(err, ledger.ErrNoLeader):
		return &api.Error{Err: api.ErrNoLeader, Reason: "retry", Cause: err}
	case errors.Is(err, ledger.ErrNotFound):
		return &api.Error{Err: api.ErrNotFound, Cause: err}
	case errors.Is(err, ledger.ErrOutOfRange):
		return &api.Error{Err: api.ErrOutOfRange, Reason: err.Error(), Cause: err}
	case errors.Is(err, ledger.ErrCorrupt):
		return &api.Error{Err: api.ErrCorrupt, Reason: "ask another node", Cause: err}
	case isNetError(err):
		return &api.Error{Err: api.ErrNoLeader, Reason: "the leader could not be reached", Cause: err}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		if !errors.Is(err, api.ErrTimeout) {
			return &api.Error{Err: api.ErrTimeout, Reason: "retry (record ids make it safe)", Cause: err}
		}
	}
	return err
}

// isNetError reports whether err is a failure to reach another node.
func isNetError(err error) bool {
	var ne net.Error
	var ue *url.Error
	return errors.As(err, &ne) && !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ue)
}

// consentSentinel maps consent's sentinels to api's.
func consentSentinel(err error) error {
	switch {
	case errors.Is(err, consent.ErrForbidden):
		return api.ErrForbidden
	case errors.Is(err, consent.ErrNotFound):
		return api.ErrNotFound
	case errors.Is(err, consent.ErrExists):
		return api.ErrConsentExists
	case errors.Is(err, consent.ErrChain):
		return api.ErrConsentChain
	case errors.Is(err, consent.ErrWithdrawn):
		return api.ErrWithdrawn
	case errors.Is(err, consent.ErrExpired):
		return api.ErrExpired
	case errors.Is(err, consent.ErrUnknownPurpose):
		return api.ErrUnknownPurpose
	case errors.Is(err, consent.ErrBadSignature):
		return api.ErrBadSignature
	case errors.Is(err, consent.ErrBadReceipt):
		return api.ErrBadReceipt
	}
	return api.ErrInvalid
}
