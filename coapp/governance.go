package coapp

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/google/uuid"

	"coapp.coop/consent"
	"coapp.coop/ledger"
)

// Governance: the members decide, one member one vote. A member proposes
// (admitting or removing a member, creating a dataset, granting access to
// one); members vote; a proposal passes once more than Majority of all
// members voted yes and at least Quorum of them voted at all, and fails
// once it no longer can, or when its lifetime ends. Proposals and votes
// are signed by the member (the same Ed25519 keys as consent events) and
// every replica verifies and tallies them as it applies them, so every
// replica knows the same outcome at the same index.

// Ledger kinds of governance entries.
const (
	KindProposal = "coapp.proposal/v1"
	KindVote     = "coapp.vote/v1"
)

// Errors of governance.
var (
	// ErrNotMember is returned when someone who is not a member of the
	// federation proposes or votes.
	ErrNotMember = errors.New("coapp: not a member of the federation")
	// ErrVoted is returned for a member's second vote on a proposal.
	ErrVoted = errors.New("coapp: already voted on this proposal")
	// ErrClosed is returned for a vote on a proposal that passed, failed
	// or outlived its lifetime.
	ErrClosed = errors.New("coapp: proposal closed")
	// ErrBadSignature is returned for an entry whose signature does not
	// verify under the member's key.
	ErrBadSignature = errors.New("coapp: bad signature")
)

// Rules are the federation's governance rules, fixed at genesis.
type Rules struct {
	// Majority is the fraction of all members whose yes passes a proposal
	// (more than it). Default 0.5.
	Majority float64 `json:"majority"`
	// Quorum is the fraction of all members who must have voted. Default
	// 0.5.
	Quorum float64 `json:"quorum"`
	// Lifetime is how long a proposal is open, as an ISO 8601 duration.
	// Default P14D.
	Lifetime string `json:"lifetime"`
	// Committees hold delegated powers: a proposal of a kind a committee
	// may decide, put to that committee, is voted by its members alone,
	// under the same majority and quorum, counted over the committee.
	Committees []Committee `json:"committees,omitempty"`
}

// Committee is a group of members with delegated powers: the proposal
// kinds it decides ("dataset", "grant").
type Committee struct {
	Name    string   `json:"name"`
	Members []string `json:"members"`
	Powers  []string `json:"powers"`
}

// committee returns the committee of that name.
func (r *Rules) committee(name string) (*Committee, bool) {
	for i := range r.Committees {
		if r.Committees[i].Name == name {
			return &r.Committees[i], true
		}
	}
	return nil, false
}

func (r Rules) withDefaults() Rules {
	if r.Majority == 0 {
		r.Majority = 0.5
	}
	if r.Quorum == 0 {
		r.Quorum = 0.5
	}
	if r.Lifetime == "" {
		r.Lifetime = "P14D"
	}
	return r
}

func (r Rules) validate() error {
	if r.Majority < 0.5 || r.Majority >= 1 || math.IsNaN(r.Majority) {
		return invalid("rules.majority", "from 0.5 to below 1")
	}
	if r.Quorum <= 0 || r.Quorum > 1 || math.IsNaN(r.Quorum) {
		return invalid("rules.quorum", "above 0, at most 1")
	}
	if end, err := consent.AddDuration(time.Unix(0, 0), r.Lifetime); err != nil || !end.After(time.Unix(0, 0)) {
		return invalid("rules.lifetime", "a positive ISO 8601 duration, such as P14D")
	}
	names := map[string]bool{}
	for i, c := range r.Committees {
		at := fmt.Sprintf("rules.committees[%d]", i)
		if !memberPattern.MatchString(c.Name) || names[c.Name] {
			return invalid(at+".name", "a new name of [a-z0-9._-]")
		}
		names[c.Name] = true
		if len(c.Members) == 0 {
			return invalid(at+".members", "at least one member")
		}
		for j, p := range c.Powers {
			if p != ProposeDataset && p != ProposeGrant {
				return invalid(fmt.Sprintf("%s.powers[%d]", at, j), "dataset or grant: admitting and removing members is for all members")
			}
		}
	}
	return nil
}

// Proposal kinds.
const (
	ProposeAdmit   = "admit-member"
	ProposeRemove  = "remove-member"
	ProposeDataset = "dataset"
	ProposeGrant   = "grant"
)

// Proposal is what a member puts to the vote: one of Member (to admit or
// remove), Dataset or Grant, by Kind.
type Proposal struct {
	ID      uuid.UUID `json:"id"`
	Kind    string    `json:"kind"`
	Member  string    `json:"member,omitempty"`
	Dataset *Dataset  `json:"dataset,omitempty"`
	Grant   *Grant    `json:"grant,omitempty"`
	// Committee, when set, puts the proposal to that committee of the
	// rules, which must hold the power to decide its kind.
	Committee string `json:"committee,omitempty"`
	// At is when it was proposed; it closes at At plus the rules'
	// lifetime.
	At time.Time `json:"at"`
}

// Vote is a member's vote on a proposal: "yes", "no" or "abstain".
type Vote struct {
	Proposal uuid.UUID `json:"proposal"`
	Choice   string    `json:"choice"`
	At       time.Time `json:"at"`
}

// signedBody is a member's signed governance entry: the body's bytes, the
// member and its Ed25519 signature over a context naming the kind.
type signedBody struct {
	Body   json.RawMessage `json:"body"`
	Signer string          `json:"signer"`
	Sig    []byte          `json:"sig"`
}

// encode writes the entry with the body's bytes exactly as signed
// (encoding/json would compact and re-escape them, and the signature would
// no longer verify).
func (s *signedBody) encode() []byte {
	b := make([]byte, 0, len(s.Body)+len(s.Signer)+128)
	b = append(b, `{"body":`...)
	b = append(b, s.Body...)
	b = append(b, `,"signer":`...)
	b = append(b, quoteJSON(s.Signer)...)
	b = append(b, `,"sig":"`...)
	b = base64.StdEncoding.AppendEncode(b, s.Sig)
	return append(b, `"}`...)
}

// maxClockSkew bounds how far the time a member writes in a proposal,
// vote or audit entry may be from the receiving leader's clock, so that
// nobody back-dates a vote past a proposal's end or stretches a proposal's
// life.
const maxClockSkew = 2 * time.Minute

func signingContext(kind string, body []byte) []byte {
	return append([]byte("coapp/v1/"+kind+"|"), body...)
}

var memberPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// validate checks a proposal's shape; what it proposes is checked against
// the federation's state by the view.
func (p *Proposal) validate() error {
	if p.ID == uuid.Nil {
		return invalid("id", "required")
	}
	if p.At.IsZero() {
		return invalid("at", "required")
	}
	switch p.Kind {
	case ProposeAdmit, ProposeRemove:
		if !memberPattern.MatchString(p.Member) {
			return invalid("member", "a member id: 1 to 64 characters of [a-z0-9._-]")
		}
		if p.Dataset != nil || p.Grant != nil {
			return invalid("kind", "a member proposal carries only the member")
		}
	case ProposeDataset:
		if p.Dataset == nil || p.Member != "" || p.Grant != nil {
			return invalid("dataset", "required, alone, for a dataset proposal")
		}
		return p.Dataset.validate()
	case ProposeGrant:
		if p.Grant == nil || p.Member != "" || p.Dataset != nil {
			return invalid("grant", "required, alone, for a grant proposal")
		}
		return p.Grant.validate()
	default:
		return invalid("kind", "admit-member, remove-member, dataset or grant")
	}
	return nil
}

// ProposalStatus is a proposal with its votes and outcome.
type ProposalStatus struct {
	Proposal
	Proposer string            `json:"proposer"`
	Index    uint64            `json:"index"`
	Closes   time.Time         `json:"closes"`
	Votes    map[string]string `json:"votes"`
	// Outcome is "open", "passed" or "failed"; an open proposal past
	// Closes can take no more votes and did not pass.
	Outcome  string `json:"outcome"`
	Decided  uint64 `json:"decided,omitempty"`  // the index of the deciding vote
	Electors int    `json:"electors,omitempty"` // members when it was decided
}

// governance is the part of the view that governance entries build.
type governance struct {
	rules     Rules
	members   map[string]bool
	proposals map[uuid.UUID]*ProposalStatus
	order     []uuid.UUID
	datasets  map[string]*DatasetInfo
	grants    []GrantInfo
	exports   []ExportAudit
	spent     map[string]float64 // epsilon, by dataset and purpose
}

func newGovernance() *governance {
	return &governance{
		rules: Rules{}.withDefaults(), members: map[string]bool{},
		proposals: map[uuid.UUID]*ProposalStatus{}, datasets: map[string]*DatasetInfo{}, spent: map[string]float64{},
	}
}

// decodeSigned decodes and verifies a signed governance entry under the
// signer's registered key; the body is decoded into v strictly.
func (v *view) decodeSigned(e ledger.Entry, v2 any) (string, error) {
	var s signedBody
	if err := strictJSON(e.Payload, &s); err != nil {
		return "", err
	}
	if s.Signer != e.Author {
		return "", fmt.Errorf("%w: signed by %s, written by %s", ErrBadSignature, s.Signer, e.Author)
	}
	pub, ok := v.memberKeys[s.Signer]
	if !ok || !ed25519.Verify(pub, signingContext(e.Kind, s.Body), s.Sig) {
		return "", fmt.Errorf("%w: %s", ErrBadSignature, s.Signer)
	}
	if err := strictJSON(s.Body, v2); err != nil {
		return "", err
	}
	return s.Signer, nil
}

// applyProposal records a proposal, or refuses it.
func (v *view) applyProposal(e ledger.Entry) error {
	var p Proposal
	signer, err := v.decodeSigned(e, &p)
	if err != nil {
		return err
	}
	if !p.At.Equal(e.Time) {
		return invalid("at", "the proposal's time is the entry's")
	}
	if err := v.checkProposal(signer, &p); err != nil {
		return err
	}
	closes, _ := consent.AddDuration(p.At, v.gov.rules.Lifetime)
	ps := &ProposalStatus{Proposal: p, Proposer: signer, Index: e.Index, Closes: closes, Votes: map[string]string{}, Outcome: "open"}
	v.gov.proposals[p.ID] = ps
	v.gov.order = append(v.gov.order, p.ID)
	return nil
}

// checkProposal says whether member may propose p now.
func (v *view) checkProposal(member string, p *Proposal) error {
	g := v.gov
	if !g.members[member] {
		return fmt.Errorf("%w: %s", ErrNotMember, member)
	}
	if err := p.validate(); err != nil {
		return err
	}
	if p.Committee != "" {
		c, ok := g.rules.committee(p.Committee)
		switch {
		case !ok:
			return invalid("committee", "no committee %s in the rules", p.Committee)
		case !slices.Contains(c.Powers, p.Kind):
			return invalid("committee", "committee %s cannot decide a %s proposal", p.Committee, p.Kind)
		case !slices.Contains(c.Members, member):
			return fmt.Errorf("%w: %s is not on committee %s", ErrNotMember, member, p.Committee)
		}
	}
	if _, dup := g.proposals[p.ID]; dup {
		return invalid("id", "a proposal with this id exists")
	}
	switch p.Kind {
	case ProposeAdmit:
		if g.members[p.Member] {
			return invalid("member", "%s is already a member", p.Member)
		}
	case ProposeRemove:
		if !g.members[p.Member] {
			return invalid("member", "%s is not a member", p.Member)
		}
	case ProposeDataset:
		if _, exists := g.datasets[p.Dataset.Name]; exists {
			return invalid("dataset.name", "dataset %s exists", p.Dataset.Name)
		}
		for _, other := range g.proposals {
			if other.Kind == ProposeDataset && other.Outcome == "open" && other.Dataset.Name == p.Dataset.Name && p.At.Before(other.Closes) {
				return invalid("dataset.name", "proposal %s for dataset %s is open", other.ID, p.Dataset.Name)
			}
		}
		if err := v.checkDataset(p.Dataset); err != nil {
			return err
		}
	case ProposeGrant:
		ds, ok := g.datasets[p.Grant.Dataset]
		if !ok {
			return invalid("grant.dataset", "no dataset %s", p.Grant.Dataset)
		}
		if !v.consents.Vocabulary().Covers(ds.Purpose, p.Grant.Purpose) {
			return invalid("grant.purpose", "the dataset is for %s", ds.Purpose)
		}
		if !p.Grant.Until.After(p.At) {
			return invalid("grant.until", "must be after the proposal")
		}
	}
	return nil
}

// applyVote records a vote, and decides its proposal when the vote makes
// the outcome certain.
func (v *view) applyVote(e ledger.Entry) error {
	var vt Vote
	signer, err := v.decodeSigned(e, &vt)
	if err != nil {
		return err
	}
	if !vt.At.Equal(e.Time) {
		return invalid("at", "the vote's time is the entry's")
	}
	ps, err := v.checkVote(signer, &vt)
	if err != nil {
		return err
	}
	ps.Votes[signer] = vt.Choice
	v.tally(ps, e.Index)
	return nil
}

func (v *view) checkVote(member string, vt *Vote) (*ProposalStatus, error) {
	g := v.gov
	if !g.members[member] {
		return nil, fmt.Errorf("%w: %s", ErrNotMember, member)
	}
	if vt.Choice != "yes" && vt.Choice != "no" && vt.Choice != "abstain" {
		return nil, invalid("choice", "yes, no or abstain")
	}
	ps, ok := g.proposals[vt.Proposal]
	if !ok {
		return nil, fmt.Errorf("%w: proposal %s", ErrNotFound, vt.Proposal)
	}
	if ps.Outcome != "open" {
		return nil, fmt.Errorf("%w: it %s", ErrClosed, ps.Outcome)
	}
	if !vt.At.Before(ps.Closes) {
		return nil, fmt.Errorf("%w: its lifetime ended at %s", ErrClosed, ps.Closes.Format(time.RFC3339))
	}
	if _, voted := ps.Votes[member]; voted {
		return nil, ErrVoted
	}
	if ps.Committee != "" {
		if c, ok := g.rules.committee(ps.Committee); !ok || !slices.Contains(c.Members, member) {
			return nil, fmt.Errorf("%w: %s is not on committee %s", ErrNotMember, member, ps.Committee)
		}
	}
	return ps, nil
}

// tally decides a proposal once its outcome is certain, and carries it
// out when it passed.
func (v *view) tally(ps *ProposalStatus, index uint64) {
	g := v.gov
	n := 0
	yes, cast := 0, 0
	electorate := g.members
	if ps.Committee != "" {
		// The committee's members who are still members of the federation.
		electorate = map[string]bool{}
		if c, ok := g.rules.committee(ps.Committee); ok {
			for _, m := range c.Members {
				if g.members[m] {
					electorate[m] = true
				}
			}
		}
	}
	for m := range electorate {
		n++
		if c, ok := ps.Votes[m]; ok {
			cast++
			if c == "yes" {
				yes++
			}
		}
	}
	need := int(math.Floor(g.rules.Majority*float64(n))) + 1 // more than Majority of all members
	quorum := int(math.Ceil(g.rules.Quorum * float64(n)))
	switch {
	case yes >= need && cast >= quorum && ps.Kind == ProposeDataset && g.datasets[ps.Dataset.Name] != nil:
		// Another proposal created a dataset of that name meanwhile: it
		// is not replaced.
		ps.Outcome, ps.Decided, ps.Electors = "failed", index, n
	case yes >= need && cast >= quorum:
		ps.Outcome, ps.Decided, ps.Electors = "passed", index, n
		v.carryOut(ps, index)
	case yes+(n-cast) < need:
		ps.Outcome, ps.Decided, ps.Electors = "failed", index, n
	}
}

// carryOut makes a passed proposal so.
func (v *view) carryOut(ps *ProposalStatus, index uint64) {
	g := v.gov
	switch ps.Kind {
	case ProposeAdmit:
		g.members[ps.Member] = true
	case ProposeRemove:
		delete(g.members, ps.Member)
		// Its tokens stop working on every replica.
		for id, tok := range v.tokens {
			if tok.member == ps.Member {
				delete(v.tokens, id)
			}
		}
		// A member that leaves keeps no access to the datasets.
		kept := g.grants[:0]
		for _, gr := range g.grants {
			if gr.Grantee != ps.Member {
				kept = append(kept, gr)
			}
		}
		g.grants = kept
	case ProposeDataset:
		d := *ps.Dataset
		g.datasets[d.Name] = &DatasetInfo{Dataset: d, Proposal: ps.ID, Created: index}
	case ProposeGrant:
		g.grants = append(g.grants, GrantInfo{Grant: *ps.Grant, Proposal: ps.ID, Index: index})
	}
	if ps.Kind == ProposeAdmit || ps.Kind == ProposeRemove {
		// The electorate changed: open proposals are tallied again, in
		// the order they were made (a removal can decide one whose votes
		// are all in).
		for _, id := range g.order {
			if other := g.proposals[id]; other.Outcome == "open" {
				v.tally(other, index)
			}
		}
	}
}

// view accessors for governance, under the view's lock.

func (v *view) members() []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]string, 0, len(v.gov.members))
	for m := range v.gov.members {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

func (v *view) proposal(id uuid.UUID) (ProposalStatus, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	ps, ok := v.gov.proposals[id]
	if !ok {
		return ProposalStatus{}, false
	}
	return ps.copy(), true
}

func (ps *ProposalStatus) copy() ProposalStatus {
	c := *ps
	c.Votes = make(map[string]string, len(ps.Votes))
	for k, x := range ps.Votes {
		c.Votes[k] = x
	}
	return c
}

func (v *view) proposals() []ProposalStatus {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]ProposalStatus, 0, len(v.gov.order))
	for _, id := range v.gov.order {
		out = append(out, v.gov.proposals[id].copy())
	}
	return out
}

// Signed governance writes: the node signs for the calling member with the
// member's key on this node, and appends on the leader.

// signBody signs a governance body as member, with the member's key on
// this node; pub is returned for the member's first signed entry.
func (n *Node) signBody(member, kind string, body any) (signedBody, ed25519.PublicKey, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return signedBody{}, nil, err
	}
	key, err := n.signingKey(member)
	if err != nil {
		return signedBody{}, nil, err
	}
	pub := key.Public().(ed25519.PublicKey)
	return signedBody{Body: b, Signer: member, Sig: ed25519.Sign(key, signingContext(kind, b))}, pub, nil
}

// signingKey returns member's signing key on this node: the one the
// ledger knows for member, or a new one for a member without a key yet.
func (n *Node) signingKey(member string) (ed25519.PrivateKey, error) {
	known, ok := n.view.memberKey(member)
	key, err := n.signers.load(member, !ok)
	if errors.Is(err, errNoMemberKey) || err == nil && ok && !known.Equal(key.Public().(ed25519.PublicKey)) {
		return nil, fmt.Errorf("%w: member %s signs on the node that holds its key, not this one", ErrForbidden, member)
	}
	return key, err
}

// submitSigned signs a governance body as member on this node, where the
// member's key is, and appends it on the leader: here, or through the
// leader's POST /v1/signed with the credentials of r (a follower without a
// request answers ledger.ErrNotLeader). It waits until this node's view
// applied the entry and returns its index, or why every replica refused it.
func (n *Node) submitSigned(ctx context.Context, r *http.Request, member, kind string, body any, at time.Time) (uint64, error) {
	s, pub, err := n.signBody(member, kind, body)
	if err != nil {
		return 0, err
	}
	sub := signedSubmission{Kind: kind, Signed: s, PublicKey: pub, At: at}
	if !n.needsLeader() {
		return n.appendSigned(ctx, member, sub)
	}
	if r == nil {
		return 0, ledger.ErrNotLeader
	}
	var out struct {
		Index uint64 `json:"index"`
	}
	if err := n.callLeader(ctx, r, http.MethodPost, "/v1/signed", sub, &out); err != nil {
		return 0, err
	}
	if err := n.awaitApplied(ctx, out.Index); err != nil {
		return 0, err
	}
	return out.Index, nil
}

// signedSubmission is the body of POST /v1/signed: a governance entry
// signed by the calling member, with its public key for its first one.
type signedSubmission struct {
	Kind      string     `json:"kind"`
	Signed    signedBody `json:"signed"`
	PublicKey []byte     `json:"public_key,omitempty"`
	At        time.Time  `json:"at"`
}

// appendSigned appends a member's signed governance entry on the leader,
// after checking it as the replicas will, and waits until it is applied.
func (n *Node) appendSigned(ctx context.Context, member string, sub signedSubmission) (uint64, error) {
	switch sub.Kind {
	case KindProposal, KindVote, KindExport, KindKeyRotation:
	default:
		return 0, invalid("kind", "a proposal, a vote, an export's audit or a key rotation")
	}
	if sub.Signed.Signer != member {
		return 0, fmt.Errorf("%w: a member submits only what it signed", ErrForbidden)
	}
	n.signedMu.Lock()
	defer n.signedMu.Unlock()
	if sub.Kind == KindKeyRotation {
		n.keyMu.Lock() // no batch is checked under the old key meanwhile
		defer n.keyMu.Unlock()
	}
	n.awaitView(ctx)
	var entries []ledger.Entry
	pub, known := n.view.memberKey(member)
	if !known {
		if len(sub.PublicKey) != ed25519.PublicKeySize {
			return 0, invalid("public_key", "member %s has no key in the ledger yet: send its Ed25519 public key", member)
		}
		pub = ed25519.PublicKey(sub.PublicKey)
		entries = append(entries, systemEntry(KindMemberKey, member, sub.At, memberKey{Member: member, PublicKey: pub}))
	}
	if !ed25519.Verify(pub, signingContext(sub.Kind, sub.Signed.Body), sub.Signed.Sig) {
		return 0, fmt.Errorf("%w: %s", ErrBadSignature, member)
	}
	if !json.Valid(sub.Signed.Body) || len(sub.Signed.Body) > 64<<10 {
		return 0, invalid("signed.body", "a JSON object of at most 64 KiB")
	}
	if d := time.Since(sub.At); d > maxClockSkew || d < -maxClockSkew {
		return 0, invalid("at", "more than %v from this node's clock", maxClockSkew)
	}
	if err := n.view.precheck(member, sub.Kind, sub.Signed.Body, sub.At); err != nil {
		return 0, err
	}
	payload := sub.Signed.encode()
	entries = append(entries, ledger.Entry{ID: uuid.NewSHA1(consentNamespace, payload), Kind: sub.Kind, Author: member, Time: sub.At, Payload: payload})
	rs, err := n.ledger.Append(ctx, entries...)
	if err != nil {
		return 0, err
	}
	index := rs[len(rs)-1].Index
	if rs[len(rs)-1].Duplicate {
		return index, nil
	}
	// Wait for the view even if the caller goes: the locks held order
	// signed entries (and a key rotation before the batches after it) by
	// their application, not only their append.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := n.awaitApplied(wctx, index); err != nil {
		return 0, err
	}
	if err := n.view.rejection(index); err != nil {
		return 0, err
	}
	return index, nil
}

// precheck checks a governance body as the view will apply it.
func (v *view) precheck(member, kind string, body []byte, at time.Time) error {
	v.mu.RLock()
	defer v.mu.RUnlock()
	switch kind {
	case KindProposal:
		var p Proposal
		if err := strictJSON(body, &p); err != nil {
			return err
		}
		if !p.At.Equal(at) {
			return invalid("at", "the proposal's time is the entry's")
		}
		return v.checkProposal(member, &p)
	case KindVote:
		var vt Vote
		if err := strictJSON(body, &vt); err != nil {
			return err
		}
		if !vt.At.Equal(at) {
			return invalid("at", "the vote's time is the entry's")
		}
		_, err := v.checkVote(member, &vt)
		return err
	case KindKeyRotation:
		var kr keyRotation
		if err := strictJSON(body, &kr); err != nil {
			return err
		}
		if !kr.At.Equal(at) {
			return invalid("at", "the rotation's time is the entry's")
		}
		return v.checkKeyRotation(member, &kr)
	default:
		var a ExportAudit
		if err := strictJSON(body, &a); err != nil {
			return err
		}
		if err := v.checkAudit(member, &a, at); err != nil {
			return err
		}
		if a.Epsilon != 0 {
			d, ok := v.gov.datasets[a.Dataset]
			if !ok || !(a.Epsilon > 0) || v.gov.spent[a.Dataset+"\x00"+a.Purpose]+a.Epsilon > d.DPBudget+1e-12 {
				return fmt.Errorf("%w: %s for %s", ErrBudgetSpent, a.Dataset, a.Purpose)
			}
		}
		return nil
	}
}

// callLeader sends a JSON request to the leader's API with the
// credentials of r, and decodes its answer into out.
func (n *Node) callLeader(ctx context.Context, r *http.Request, method, uri string, in, out any) error {
	st, err := n.ledger.Status()
	if err != nil {
		return err
	}
	leader, ok := n.view.node(st.LeaderID)
	if st.LeaderID == "" || !ok || leader.HTTPAddr == "" {
		return ledger.ErrNoLeader
	}
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, leader.HTTPAddr+uri, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", r.Header.Get("Authorization"))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(forwardedHeader, n.ledger.ID())
	resp, err := n.peer.Do(req)
	if err != nil {
		return ledger.ErrNoLeader
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return decodeAPIError(resp)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Propose puts a proposal to the members' vote, as member. It returns the
// proposal as recorded. It runs on the leader; the HTTP API runs it on any
// node.
func (n *Node) Propose(ctx context.Context, member string, p Proposal) (ProposalStatus, error) {
	return n.propose(ctx, nil, member, p)
}

func (n *Node) propose(ctx context.Context, r *http.Request, member string, p Proposal) (ProposalStatus, error) {
	if p.ID == uuid.Nil {
		p.ID = uuid.Must(uuid.NewV7())
	}
	if p.At.IsZero() {
		p.At = time.Now().UTC()
	}
	n.awaitView(ctx)
	if err := n.view.withLock(func() error { return n.view.checkProposal(member, &p) }); err != nil {
		return ProposalStatus{}, err
	}
	if _, err := n.submitSigned(ctx, r, member, KindProposal, p, p.At); err != nil {
		return ProposalStatus{}, err
	}
	ps, _ := n.view.proposal(p.ID)
	return ps, nil
}

// CastVote records member's vote on a proposal and returns the proposal
// after it (passed, when this vote decided it). It runs on the leader.
func (n *Node) CastVote(ctx context.Context, member string, id uuid.UUID, choice string) (ProposalStatus, error) {
	return n.castVote(ctx, nil, member, id, choice)
}

func (n *Node) castVote(ctx context.Context, r *http.Request, member string, id uuid.UUID, choice string) (ProposalStatus, error) {
	vt := Vote{Proposal: id, Choice: choice, At: time.Now().UTC()}
	n.awaitView(ctx)
	if err := n.view.withLock(func() error { _, err := n.view.checkVote(member, &vt); return err }); err != nil {
		return ProposalStatus{}, err
	}
	if _, err := n.submitSigned(ctx, r, member, KindVote, vt, vt.At); err != nil {
		return ProposalStatus{}, err
	}
	ps, _ := n.view.proposal(id)
	return ps, nil
}

// withLock runs fn under the view's read lock.
func (v *view) withLock(fn func() error) error {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return fn()
}
