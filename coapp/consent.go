package coapp

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"

	"coapp.coop/consent"
	"coapp.coop/ledger"
	"coapp.coop/pseudonym"
)

// Ledger kinds of consent's entries. Consent events themselves are
// consent.Kind.
const (
	// KindMemberKey registers a member's Ed25519 public key, with which
	// every replica verifies what the member signs. The first key of a
	// member is the one that counts.
	KindMemberKey = "coapp.member-key/v1"
	// KindPurpose defines a federation purpose beyond DPV's built-in ones.
	KindPurpose = "coapp.purpose/v1"
)

// memberKey is the payload of KindMemberKey.
type memberKey struct {
	Member    string `json:"member"`
	PublicKey []byte `json:"public_key"`
}

// Member signing keys. A node signs consent events for a member only when
// one of that member's tokens asks, with the member's Ed25519 key, which
// lives in Dir/members/ on the node where the member first signed (mode
// 0600). Its public key goes into the ledger with the member's first
// signed event; every replica verifies every event under it.

const memberKeyDir = "members"

type signers struct {
	mu         sync.Mutex
	dir        string
	passphrase []byte // seals the key files when set
	keys       map[string]ed25519.PrivateKey
}

// memberKeyFormat names a member key file sealed with a passphrase:
// {"format":"coapp-member-key/v1","member":"…","sealed":{…}}; an unsealed
// one holds the base64 of the key's seed.
const memberKeyFormat = "coapp-member-key/v1"

type memberKeyFile struct {
	Format string                   `json:"format"`
	Member string                   `json:"member"`
	Sealed *pseudonym.PassphraseBox `json:"sealed"`
}

// path is where member's key file is.
func (s *signers) path(member string) string {
	return filepath.Join(s.dir, memberKeyDir, hex.EncodeToString([]byte(member))+".key")
}

// encode returns a key file's contents: sealed when the node has a
// passphrase.
func (s *signers) encode(member string, key ed25519.PrivateKey) ([]byte, error) {
	seed := base64.StdEncoding.EncodeToString(key.Seed())
	if len(s.passphrase) == 0 {
		return []byte(seed + "\n"), nil
	}
	box, err := pseudonym.SealWithPassphrase(key.Seed(), s.passphrase, []byte(memberKeyFormat+"|"+member))
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(memberKeyFile{Format: memberKeyFormat, Member: member, Sealed: box}, "", "  ")
	return append(b, '\n'), err
}

// decode reads a key file's contents.
func (s *signers) decode(member, path string, b []byte) (ed25519.PrivateKey, error) {
	var seed []byte
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		var f memberKeyFile
		if err := json.Unmarshal(t, &f); err != nil || f.Format != memberKeyFormat || f.Member != member || f.Sealed == nil {
			return nil, fmt.Errorf("coapp: member key file %s is damaged", path)
		}
		plain, err := f.Sealed.Open(s.passphrase, []byte(memberKeyFormat+"|"+member))
		if err != nil {
			return nil, fmt.Errorf("coapp: member key file %s: %w", path, err)
		}
		seed = plain
	} else {
		var err error
		if seed, err = base64.StdEncoding.DecodeString(string(t)); err != nil {
			return nil, fmt.Errorf("coapp: member key file %s is damaged", path)
		}
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("coapp: member key file %s is damaged", path)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// replace makes the key in file next member's key, in place of the old.
func (s *signers) replace(member, next string, key ed25519.PrivateKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[member] = key
	return os.Rename(next, s.path(member))
}

// key returns member's signing key on this node, creating it when absent.
func (s *signers) key(member string) (ed25519.PrivateKey, error) {
	return s.load(member, true)
}

// errNoMemberKey is load's answer for a member without a key file here.
var errNoMemberKey = errors.New("coapp: no signing key for this member on this node")

// load returns member's signing key on this node; when there is none, a
// new one if create, else errNoMemberKey.
func (s *signers) load(member string, create bool) (ed25519.PrivateKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[member]; ok {
		return k, nil
	}
	path := s.path(member)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, err := s.decode(member, path, b)
		if err != nil {
			return nil, err
		}
		s.keys[member] = k
		return k, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	case !create:
		return nil, errNoMemberKey
	}
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	data, err := s.encode(member, k)
	if err != nil {
		return nil, err
	}
	if err := writeFileSync(path, data); err != nil {
		return nil, err
	}
	s.keys[member] = k
	return k, nil
}

// writeFileSync writes a new file, mode 0600, durably.
func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ConsentRequest gives a consent: a subject's to the calling member
// (Tier "subject", the default), or the member's own agreement to share
// data categories into the federation (Tier "member", no Subject). Subject
// is the raw identifier: the node pseudonymises it in the member's domain,
// as it does records' subjects, and never stores or logs it.
type ConsentRequest struct {
	ID               uuid.UUID        `json:"id,omitempty"`
	Tier             consent.Tier     `json:"tier,omitempty"`
	Subject          string           `json:"subject,omitempty"`
	Purposes         []string         `json:"purposes"`
	LegalBasis       string           `json:"legal_basis,omitempty"`
	DataCategories   []string         `json:"data_categories"`
	Recipients       []string         `json:"recipients,omitempty"`
	Notice           consent.Notice   `json:"notice"`
	Language         string           `json:"language,omitempty"`
	Jurisdiction     string           `json:"jurisdiction"`
	WithdrawalMethod string           `json:"withdrawal_method"`
	Retention        string           `json:"retention,omitempty"`
	Validity         consent.Validity `json:"validity"`
	// At is when the person gave it (default: now); By who recorded it
	// (default: "subject", or the member for its own agreement).
	At time.Time `json:"at,omitempty"`
	By string    `json:"by,omitempty"`
}

// ConsentChange renews, withdraws, revokes or expires a consent record.
// Validity is required to renew.
type ConsentChange struct {
	Validity *consent.Validity `json:"validity,omitempty"`
	At       time.Time         `json:"at,omitempty"`
	By       string            `json:"by,omitempty"`
}

// ConsentReceipt is the answer to every consent event: the receipt the
// person keeps (with the event, and its Kantara v1.1 view).
type ConsentReceipt struct {
	Record  uuid.UUID       `json:"record"`
	Receipt consent.Receipt `json:"receipt"`
}

// signedEvent is the body of POST /v1/consents/events: an event signed by
// the calling member, with its public key when the ledger has none yet.
type signedEvent struct {
	Payload   []byte `json:"payload"`
	PublicKey []byte `json:"public_key,omitempty"`
}

// consentActions maps the path's action to the event type.
var consentActions = map[string]consent.Status{
	"renew": consent.Renewed, "withdraw": consent.Withdrawn, "revoke": consent.Revoked, "expire": consent.Expired,
}

func (n *Node) subjectPseudonym(member, subject string) (string, error) {
	if subject == "" {
		return "", invalid("subject", "required")
	}
	if len(subject) > maxSubjectLen {
		return "", invalid("subject", "at most %d bytes", maxSubjectLen)
	}
	p, err := n.keys.Pseudonym(pseudonym.MemberDomain(member), subject)
	if err != nil {
		return "", invalid("subject", "cannot be pseudonymised: %v", err)
	}
	return string(p), nil
}

// giveEvent makes the given event of a request, for member.
func (n *Node) giveEvent(member string, req *ConsentRequest) (*consent.Event, error) {
	rec := &consent.Record{
		ID: req.ID, SchemaVersion: consent.SchemaVersion, Tier: req.Tier, Controller: member,
		Purposes: req.Purposes, LegalBasis: req.LegalBasis, DataCategories: req.DataCategories,
		Recipients: req.Recipients, Notice: req.Notice, Language: req.Language, Jurisdiction: req.Jurisdiction,
		WithdrawalMethod: req.WithdrawalMethod, Retention: req.Retention,
	}
	if rec.ID == uuid.Nil {
		rec.ID = uuid.Must(uuid.NewV7())
	}
	if rec.Tier == "" {
		rec.Tier = consent.TierSubject
	}
	if rec.LegalBasis == "" {
		rec.LegalBasis = "dpv:Consent"
	}
	by := req.By
	switch rec.Tier {
	case consent.TierSubject:
		p, err := n.subjectPseudonym(member, req.Subject)
		if err != nil {
			return nil, err
		}
		rec.Subject = p
		if by == "" {
			by = "subject"
		}
	case consent.TierMember:
		if req.Subject != "" {
			return nil, invalid("subject", "a member's agreement has no subject")
		}
		if by == "" {
			by = member
		}
	}
	at := req.At
	if at.IsZero() {
		at = time.Now().UTC()
	}
	v := req.Validity
	if v.From.IsZero() {
		v.From = at
	}
	return &consent.Event{Record: rec.ID, Type: consent.Given, At: at.UTC(), By: by, Validity: &v, Consent: rec}, nil
}

// changeEvent makes a renew, withdraw, revoke or expire event, linked to
// the record's latest event as this node knows it.
func (n *Node) changeEvent(id uuid.UUID, action string, req *ConsentChange) (*consent.Event, error) {
	typ, ok := consentActions[action]
	if !ok {
		return nil, invalid("action", "renew, withdraw, revoke or expire")
	}
	h, ok := n.view.consentRecord(id)
	if !ok {
		return nil, &consent.Error{Err: consent.ErrNotFound, Field: "record", Reason: id.String()}
	}
	at := req.At
	if at.IsZero() {
		at = time.Now().UTC()
	}
	by := req.By
	if by == "" {
		by = "subject"
		if typ == consent.Revoked || typ == consent.Expired || h.Record.Tier == consent.TierMember {
			by = h.Record.Controller
		}
	}
	e := &consent.Event{Record: id, Type: typ, At: at.UTC(), By: by, Prev: h.Latest().Hash, Validity: req.Validity}
	if typ == consent.Renewed && e.Validity != nil && e.Validity.From.IsZero() {
		v := *e.Validity
		v.From = e.At
		e.Validity = &v
	}
	return e, nil
}

// signEvent validates an event against this node's view and signs it as
// member, with the member's key on this node.
func (n *Node) signEvent(member string, e *consent.Event) (signedEvent, error) {
	if err := n.view.withVocabulary(e.Validate); err != nil {
		return signedEvent{}, err
	}
	if err := n.view.checkConsent(member, e); err != nil {
		return signedEvent{}, err
	}
	key, err := n.signingKey(member)
	if errors.Is(err, ErrForbidden) {
		return signedEvent{}, &consent.Error{Err: consent.ErrForbidden, Field: "member",
			Reason: "member " + member + " signs on the node that holds its key, not this one"}
	}
	if err != nil {
		return signedEvent{}, err
	}
	pub := key.Public().(ed25519.PublicKey)
	s, err := consent.Sign(e, member, key)
	if err != nil {
		return signedEvent{}, err
	}
	return signedEvent{Payload: s.Encode(), PublicKey: pub}, nil
}

// GiveConsent records a consent given to member (or member's own
// agreement to share, for Tier "member"), signed with member's key, and
// returns its receipt. It runs on the leader (ledger.ErrNotLeader
// elsewhere; the HTTP API forwards).
func (n *Node) GiveConsent(ctx context.Context, member string, req ConsentRequest) (ConsentReceipt, error) {
	e, err := n.giveEvent(member, &req)
	if err != nil {
		return ConsentReceipt{}, err
	}
	return n.signAndSubmit(ctx, member, e)
}

// ChangeConsent renews, withdraws, revokes or expires (action) a consent
// record of member's, and returns the event's receipt. It runs on the
// leader.
func (n *Node) ChangeConsent(ctx context.Context, member string, id uuid.UUID, action string, req ConsentChange) (ConsentReceipt, error) {
	e, err := n.changeEvent(id, action, &req)
	if err != nil {
		return ConsentReceipt{}, err
	}
	return n.signAndSubmit(ctx, member, e)
}

func (n *Node) signAndSubmit(ctx context.Context, member string, e *consent.Event) (ConsentReceipt, error) {
	if n.needsLeader() {
		return ConsentReceipt{}, ledger.ErrNotLeader
	}
	n.awaitView(ctx)
	s, err := n.signEvent(member, e)
	if err != nil {
		return ConsentReceipt{}, err
	}
	return n.submitEvent(ctx, member, s)
}

// submitEvent appends an event signed by member, on the leader, and waits
// until this node's view applied it. An event that another one overtook
// (ErrChain), or that the replicas refused, is an error: the entry stays
// in the log, inert, refused alike by every replica.
func (n *Node) submitEvent(ctx context.Context, member string, sub signedEvent) (ConsentReceipt, error) {
	n.signedMu.Lock()
	defer n.signedMu.Unlock()
	n.awaitView(ctx)
	var s consent.Signed
	var e consent.Event
	err := n.view.withVocabulary(func(v *consent.Vocabulary) (err error) {
		s, e, err = consent.Decode(sub.Payload, v)
		return err
	})
	if err != nil {
		return ConsentReceipt{}, err
	}
	if s.Signer != member {
		return ConsentReceipt{}, &consent.Error{Err: consent.ErrForbidden, Field: "signer", Reason: "a member submits only what it signed"}
	}
	// The same signed event again (a retry) is the same entry: answer
	// with its receipt.
	entryID := uuid.NewSHA1(consentNamespace, sub.Payload)
	if rc, err := n.consentReceipt(ctx, entryID); err == nil {
		return rc, nil
	}
	var entries []ledger.Entry
	pub, known := n.view.memberKey(member)
	if !known {
		if len(sub.PublicKey) != ed25519.PublicKeySize {
			return ConsentReceipt{}, invalid("public_key", "member %s has no key in the ledger yet: send its Ed25519 public key", member)
		}
		pub = ed25519.PublicKey(sub.PublicKey)
		entries = append(entries, systemEntry(KindMemberKey, member, time.Now().UTC(), memberKey{Member: member, PublicKey: pub}))
	}
	if err := s.Verify(pub); err != nil {
		return ConsentReceipt{}, err
	}
	if err := n.view.checkConsent(member, &e); err != nil {
		return ConsentReceipt{}, err
	}
	entries = append(entries, ledger.Entry{ID: entryID, Kind: consent.Kind, Author: member, Time: e.At, Payload: sub.Payload})
	rs, err := n.ledger.Append(ctx, entries...)
	if err != nil {
		return ConsentReceipt{}, err
	}
	index := rs[len(rs)-1].Index
	if err := n.awaitApplied(ctx, index); err != nil {
		return ConsentReceipt{}, err
	}
	if err := n.view.rejection(index); err != nil {
		return ConsentReceipt{}, err
	}
	n.logger.Info("consent event", "member", member, "type", e.Type, "record", e.Record, "index", index)
	return n.consentReceipt(ctx, entryID)
}

var consentNamespace = uuid.MustParse("6f1d4d3e-5b7a-4c55-9f1e-3c0a7b2d8e41")

// awaitApplied waits until the view applied index.
func (n *Node) awaitApplied(ctx context.Context, index uint64) error {
	applied := n.view.waitFor(index)
	if applied == nil {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-applied:
		return nil
	}
}

// consentReceipt builds the receipt of the consent entry id, with its
// proof in the ledger as it is now.
func (n *Node) consentReceipt(ctx context.Context, id uuid.UUID) (ConsentReceipt, error) {
	var rc consent.Receipt
	err := n.ledger.Read(ctx, ledger.Stale, func(v *ledger.View) error {
		e, _, err := v.ByID(id)
		if err != nil {
			return err
		}
		if e.Kind != consent.Kind {
			return ErrNotFound
		}
		proof, err := v.InclusionProof(e.Index, v.Size())
		if err != nil {
			return err
		}
		rc = consent.NewReceipt(e, v.Size(), v.Root(), proof)
		return nil
	})
	if err != nil {
		return ConsentReceipt{}, err
	}
	s, e, err := consent.Decode(rc.Entry.Payload, nil)
	if err != nil {
		return ConsentReceipt{}, err
	}
	rc.Event = &e
	if h, ok := n.view.consentRecord(e.Record); ok {
		pub, _ := n.view.memberKeyAt(s.Signer, rc.Index)
		k := consent.Kantara(&h.Record, &e, rc.Entry.ID, pub)
		rc.Kantara = &k
	}
	return ConsentReceipt{Record: e.Record, Receipt: rc}, nil
}

// Consents returns the consent records of subject (a raw identifier,
// pseudonymised in member's domain) with their histories.
func (n *Node) Consents(member, subject string) ([]consent.History, error) {
	p, err := n.subjectPseudonym(member, subject)
	if err != nil {
		return nil, err
	}
	return n.view.consentsOf(p), nil
}

// CheckRequest asks whether a subject's data may be used for a purpose.
// With Category set, both tiers are decided: the subject's consent to the
// member, and the member's agreement to share that category. AsOf is a
// ledger index (default: the latest applied).
type CheckRequest struct {
	Subject  string    `json:"subject"`
	Purpose  string    `json:"purpose"`
	Category string    `json:"category,omitempty"`
	At       time.Time `json:"at,omitempty"`
	AsOf     uint64    `json:"as_of,omitempty"`
}

// CheckConsent decides a CheckRequest for member.
func (n *Node) CheckConsent(member string, req CheckRequest) (consent.Decision, error) {
	p, err := n.subjectPseudonym(member, req.Subject)
	if err != nil {
		return consent.Decision{}, err
	}
	err = n.view.withVocabulary(func(v *consent.Vocabulary) error {
		if _, ok := v.Lookup(req.Purpose); !ok {
			return &consent.Error{Err: consent.ErrUnknownPurpose, Field: "purpose", Reason: req.Purpose}
		}
		return nil
	})
	if err != nil {
		return consent.Decision{}, err
	}
	at := req.At
	if at.IsZero() {
		at = time.Now()
	}
	asOf := req.AsOf
	if asOf == 0 {
		asOf = consent.Latest
	}
	return n.view.decide(p, member, req.Category, req.Purpose, at, asOf), nil
}

// VerifyConsentReceipt checks a receipt with the public key the ledger
// holds for its author, and that the ledger still has the entry at its
// index; it returns the event.
func (n *Node) VerifyConsentReceipt(ctx context.Context, rc consent.Receipt) (consent.Event, error) {
	pub, ok := n.view.memberKeyAt(rc.Entry.Author, rc.Index)
	if !ok {
		return consent.Event{}, &consent.Error{Err: consent.ErrBadReceipt, Field: "entry.author", Reason: "no such member key"}
	}
	e, err := rc.Verify(pub, nil)
	if err != nil {
		return consent.Event{}, err
	}
	err = n.ledger.Read(ctx, ledger.Stale, func(v *ledger.View) error {
		if rc.Size > v.Size() {
			// Its root cannot be checked here: the proof alone would
			// verify against a root the receipt itself supplies.
			return &consent.Error{Err: consent.ErrBadReceipt, Field: "size",
				Reason: fmt.Sprintf("larger than this node's ledger (%d entries): not verifiable here", v.Size())}
		}
		root, err := v.RootAt(rc.Size)
		if err != nil {
			return err
		}
		if root != rc.Root {
			return &consent.Error{Err: consent.ErrBadReceipt, Field: "root", Reason: "not this ledger's root at that size"}
		}
		return nil
	})
	return e, err
}

// DefinePurpose adds a federation purpose to the vocabulary (admin).
func (n *Node) DefinePurpose(ctx context.Context, member string, p consent.Purpose) error {
	if err := n.view.withVocabulary(func(v *consent.Vocabulary) error { return v.Check(p) }); err != nil {
		return err
	}
	_, err := n.ledger.Append(ctx, systemEntry(KindPurpose, member, time.Now().UTC(), p))
	if err != nil {
		return err
	}
	n.awaitView(ctx)
	return nil
}

// HTTP handlers.

func (n *Node) handleGiveConsent(w http.ResponseWriter, r *http.Request, c caller) error {
	var req ConsentRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	e, err := n.giveEvent(c.member, &req)
	if err != nil {
		return err
	}
	return n.submitHTTP(w, r, c, e)
}

func (n *Node) handleChangeConsent(w http.ResponseWriter, r *http.Request, c caller) error {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return invalid("id", "not a UUID")
	}
	var req ConsentChange
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := n.catchUp(r); err != nil {
		return err
	}
	e, err := n.changeEvent(id, r.PathValue("action"), &req)
	if err != nil {
		return err
	}
	return n.submitHTTP(w, r, c, e)
}

// catchUp waits, on a follower, until this node's view has applied what
// the leader had applied when asked: a change must link to the latest
// event, which the caller may have just written through the leader.
func (n *Node) catchUp(r *http.Request) error {
	if !n.needsLeader() {
		return nil
	}
	st, err := n.ledger.Status()
	if err != nil {
		return err
	}
	leader, ok := n.view.node(st.LeaderID)
	if !ok || leader.HTTPAddr == "" {
		return errNoLeaderHTTP
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, leader.HTTPAddr+"/v1/status", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", r.Header.Get("Authorization"))
	req.Header.Set(forwardedHeader, n.ledger.ID())
	resp, err := n.peer.Do(req)
	if err != nil {
		return ledger.ErrNoLeader
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return decodeAPIError(resp)
	}
	var ls NodeStatus
	if err := json.NewDecoder(resp.Body).Decode(&ls); err != nil {
		return err
	}
	for n.view.applied() < ls.Size {
		select {
		case <-ctx.Done():
			return ledger.ErrNoLeader
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// submitHTTP signs an event on this node, where the member's key is, and
// submits it on the leader: here, or forwarded.
func (n *Node) submitHTTP(w http.ResponseWriter, r *http.Request, c caller, e *consent.Event) error {
	s, err := n.signEvent(c.member, e)
	if err != nil {
		return err
	}
	if n.needsLeader() {
		body, err := json.Marshal(s)
		if err != nil {
			return err
		}
		return n.forwardTo(w, r, http.MethodPost, "/v1/consents/events", body)
	}
	rc, err := n.submitEvent(r.Context(), c.member, s)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rc)
}

func (n *Node) handleSubmitEvent(w http.ResponseWriter, r *http.Request, c caller) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if n.needsLeader() {
		return n.forward(w, r, body)
	}
	var s signedEvent
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := decodeBody(r, &s); err != nil {
		return err
	}
	rc, err := n.submitEvent(r.Context(), c.member, s)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rc)
}

// subjectRequest names a subject by raw identifier, in a body.
type consentListRequest struct {
	Subject string `json:"subject"`
}

// ConsentList is the answer of POST /v1/consents/list.
type ConsentList struct {
	Subject  pseudonym.Pseudonym `json:"subject"`
	Consents []consent.History   `json:"consents"`
}

func (n *Node) handleListConsents(w http.ResponseWriter, r *http.Request, c caller) error {
	var req consentListRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := n.viewRead(r); err != nil {
		return err
	}
	hs, err := n.Consents(c.member, req.Subject)
	if err != nil {
		return err
	}
	p, _ := n.subjectPseudonym(c.member, req.Subject)
	if hs == nil {
		hs = []consent.History{}
	}
	return writeJSON(w, http.StatusOK, ConsentList{Subject: pseudonym.Pseudonym(p), Consents: hs})
}

func (n *Node) handleGetConsent(w http.ResponseWriter, r *http.Request, c caller) error {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return invalid("id", "not a UUID")
	}
	if err := n.viewRead(r); err != nil {
		return err
	}
	h, ok := n.view.consentRecord(id)
	if !ok {
		return ErrNotFound
	}
	if h.Record.Controller != c.member && !c.admin {
		return &consent.Error{Err: consent.ErrForbidden, Field: "id", Reason: "another member's consent record"}
	}
	return writeJSON(w, http.StatusOK, h)
}

func (n *Node) handleCheckConsent(w http.ResponseWriter, r *http.Request, c caller) error {
	var req CheckRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := n.viewRead(r); err != nil {
		return err
	}
	d, err := n.CheckConsent(c.member, req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, d)
}

// verifyRequest is the body of POST /v1/consents/verify.
type verifyRequest struct {
	Receipt consent.Receipt `json:"receipt"`
}

// VerifyResult is the answer of POST /v1/consents/verify.
type VerifyResult struct {
	Valid bool           `json:"valid"`
	Event *consent.Event `json:"event,omitempty"`
	Error string         `json:"error,omitempty"`
}

func (n *Node) handleVerifyConsent(w http.ResponseWriter, r *http.Request, _ caller) error {
	var req verifyRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := n.viewRead(r); err != nil {
		return err
	}
	e, err := n.VerifyConsentReceipt(r.Context(), req.Receipt)
	var ce *consent.Error
	switch {
	case errors.As(err, &ce):
		return writeJSON(w, http.StatusOK, VerifyResult{Error: ce.Error()})
	case err != nil:
		return err
	}
	return writeJSON(w, http.StatusOK, VerifyResult{Valid: true, Event: &e})
}

func (n *Node) handlePurposes(w http.ResponseWriter, _ *http.Request, _ caller) error {
	var ps []consent.Purpose
	_ = n.view.withVocabulary(func(v *consent.Vocabulary) error {
		ps = v.Purposes()
		return nil
	})
	return writeJSON(w, http.StatusOK, map[string]any{"purposes": ps})
}

func (n *Node) handleDefinePurpose(w http.ResponseWriter, r *http.Request, c caller) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if n.needsLeader() {
		return n.forward(w, r, body)
	}
	var p consent.Purpose
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := decodeBody(r, &p); err != nil {
		return err
	}
	if err := n.DefinePurpose(r.Context(), c.member, p); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

func (n *Node) handleMemberKey(w http.ResponseWriter, r *http.Request, _ caller) error {
	id := r.PathValue("id")
	pub, ok := n.view.memberKey(id)
	if !ok {
		return ErrNotFound
	}
	return writeJSON(w, http.StatusOK, MemberKeysInfo{Member: id, PublicKey: pub, Keys: n.view.memberKeyHistory(id)})
}
