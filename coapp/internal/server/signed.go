package server

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/ledger"
)

// Signed governance writes: the node signs for the calling member with the
// member's key on this node, and appends on the leader.

// maxClockSkew bounds how far the time a member writes in a proposal,
// vote or audit entry may be from the receiving leader's clock, so that
// nobody back-dates a vote past a proposal's end or stretches a proposal's
// life.
const maxClockSkew = 2 * time.Minute

// signBody signs a governance body as member, with the member's key on
// this node; its public key is returned for the member's first signed
// entry.
func (s *Service) signBody(member, kind string, body any) (api.SignedBody, ed25519.PublicKey, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return api.SignedBody{}, nil, err
	}
	key, err := s.signingKey(member)
	if err != nil {
		return api.SignedBody{}, nil, err
	}
	pub := key.Public().(ed25519.PublicKey)
	return api.SignedBody{Body: b, Signer: member, Sig: ed25519.Sign(key, format.SigningContext(kind, b))}, pub, nil
}

// submitSigned signs a governance body as c.Member on this node, where the
// member's key is, and appends it on the leader: here, or through the
// leader's POST /v1/signed. It waits until this node's state applied the
// entry and returns its index, or why every replica refused it.
func (s *Service) submitSigned(ctx context.Context, c api.Caller, kind string, body any, at time.Time) (uint64, error) {
	sb, pub, err := s.signBody(c.Member, kind, body)
	if err != nil {
		return 0, err
	}
	sub := api.SignedSubmission{Kind: kind, Signed: sb, PublicKey: pub, At: at}
	if s.IsLeader() {
		return s.appendSigned(ctx, c.Member, sub)
	}
	l, err := s.leader(c)
	if err != nil {
		return 0, err
	}
	index, err := l.SubmitSigned(ctx, sub)
	if err != nil {
		return 0, err
	}
	if err := s.state.WaitApplied(ctx, index); err != nil {
		return 0, err
	}
	return index, nil
}

// SubmitSigned appends a member's signed governance entry on the leader
// (POST /v1/signed), after checking it as the replicas will, and waits
// until it is applied.
func (s *Service) SubmitSigned(ctx context.Context, c api.Caller, sub api.SignedSubmission) (uint64, error) {
	if !s.IsLeader() {
		l, err := s.leader(c)
		if err != nil {
			return 0, err
		}
		return l.SubmitSigned(ctx, sub)
	}
	index, err := s.appendSigned(ctx, c.Member, sub)
	return index, Translate(err)
}

func (s *Service) appendSigned(ctx context.Context, member string, sub api.SignedSubmission) (uint64, error) {
	switch sub.Kind {
	case format.KindProposal, format.KindVote, format.KindExport, format.KindKeyRotation:
	default:
		return 0, api.Invalid("kind", "a proposal, a vote, an export's audit or a key rotation")
	}
	if sub.Signed.Signer != member {
		return 0, fmt.Errorf("%w: a member submits only what it signed", api.ErrForbidden)
	}
	if !json.Valid(sub.Signed.Body) || len(sub.Signed.Body) > 64<<10 {
		return 0, api.Invalid("signed.body", "a JSON object of at most 64 KiB")
	}
	if d := time.Since(sub.At); d > maxClockSkew || d < -maxClockSkew {
		return 0, api.Invalid("at", "more than %v from this node's clock", maxClockSkew)
	}
	s.signedMu.Lock()
	defer s.signedMu.Unlock()
	if sub.Kind == format.KindKeyRotation {
		s.keyMu.Lock() // no batch is checked under the old key meanwhile
		defer s.keyMu.Unlock()
	}
	s.AwaitView(ctx)
	var entries []ledger.Entry
	register, _, isNew, err := s.memberKeyEntry(member, sub.PublicKey, sub.At)
	if err != nil {
		return 0, err
	}
	if isNew {
		entries = append(entries, register)
	}
	payload := format.EncodeSigned(&sub.Signed)
	entries = append(entries, ledger.Entry{ID: format.SignedID(payload), Kind: sub.Kind, Author: member, Time: sub.At, Payload: payload})
	return s.appendChecked(ctx, entries...)
}

// Propose puts a proposal to the members' vote, as c.Member. It returns the
// proposal as recorded.
func (s *Service) Propose(ctx context.Context, c api.Caller, p api.Proposal) (api.ProposalStatus, error) {
	ps, err := s.propose(ctx, c, p)
	return ps, Translate(err)
}

func (s *Service) propose(ctx context.Context, c api.Caller, p api.Proposal) (api.ProposalStatus, error) {
	if err := s.CatchUp(ctx, c); err != nil {
		return api.ProposalStatus{}, err
	}
	if p.ID == uuid.Nil {
		p.ID = uuid.Must(uuid.NewV7())
	}
	if p.At.IsZero() {
		p.At = time.Now().UTC()
	}
	if err := p.ValidateRequest(); err != nil {
		return api.ProposalStatus{}, err
	}
	s.AwaitView(ctx)
	if err := s.state.CheckProposal(c.Member, &p); err != nil {
		return api.ProposalStatus{}, err
	}
	if _, err := s.submitSigned(ctx, c, format.KindProposal, p, p.At); err != nil {
		return api.ProposalStatus{}, err
	}
	ps, _ := s.state.Proposal(p.ID)
	return ps, nil
}

// Vote records c.Member's vote on a proposal and returns the proposal
// after it (passed, when this vote decided it).
func (s *Service) Vote(ctx context.Context, c api.Caller, id uuid.UUID, choice string) (api.ProposalStatus, error) {
	ps, err := s.vote(ctx, c, id, choice)
	return ps, Translate(err)
}

func (s *Service) vote(ctx context.Context, c api.Caller, id uuid.UUID, choice string) (api.ProposalStatus, error) {
	if err := s.CatchUp(ctx, c); err != nil {
		return api.ProposalStatus{}, err
	}
	vt := api.Vote{Proposal: id, Choice: choice, At: time.Now().UTC()}
	s.AwaitView(ctx)
	if err := s.state.CheckVote(c.Member, &vt); err != nil {
		return api.ProposalStatus{}, err
	}
	if _, err := s.submitSigned(ctx, c, format.KindVote, vt, vt.At); err != nil {
		return api.ProposalStatus{}, err
	}
	ps, _ := s.state.Proposal(id)
	return ps, nil
}
