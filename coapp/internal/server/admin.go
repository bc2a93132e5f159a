package server

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/consent"
)

// The federation's administration: schemas, purposes and tokens, written
// on the leader by an admin.

// PutSchema registers a schema, or the next version of one, as c.Member
// (an admin's): its version must be one above the latest (1 for a new
// type), or it fails with api.ErrConflict.
func (s *Service) PutSchema(ctx context.Context, c api.Caller, sc api.Schema) (api.Schema, error) {
	out, err := s.putSchema(ctx, c, sc)
	return out, Translate(err)
}

func (s *Service) putSchema(ctx context.Context, c api.Caller, sc api.Schema) (api.Schema, error) {
	if err := sc.Validate(); err != nil {
		return api.Schema{}, err
	}
	if !s.IsLeader() {
		l, err := s.leader(c)
		if err != nil {
			return api.Schema{}, err
		}
		out, err := l.PutSchema(ctx, sc)
		if err == nil {
			err = s.waitFor(ctx, func() bool { _, ok := s.state.Schema(sc.Type, sc.Version); return ok })
		}
		return out, err
	}
	s.AwaitView(ctx)
	if _, err := s.appendChecked(ctx, SystemEntry(format.KindSchema, c.Member, time.Now().UTC(), sc)); err != nil {
		return api.Schema{}, err
	}
	return sc, nil
}

// waitFor waits, briefly, until this node's state shows what a write on
// the leader did.
func (s *Service) waitFor(ctx context.Context, done func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for !done() {
		select {
		case <-ctx.Done():
			return nil // written on the leader; this node follows later
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// DefinePurpose adds a federation purpose to the vocabulary (an admin's).
func (s *Service) DefinePurpose(ctx context.Context, c api.Caller, p consent.Purpose) error {
	return Translate(s.definePurpose(ctx, c, p))
}

func (s *Service) definePurpose(ctx context.Context, c api.Caller, p consent.Purpose) error {
	if err := s.state.WithVocabulary(func(v *consent.Vocabulary) error { return v.Check(p) }); err != nil {
		return err
	}
	if !s.IsLeader() {
		l, err := s.leader(c)
		if err != nil {
			return err
		}
		return l.DefinePurpose(ctx, p)
	}
	_, err := s.appendChecked(ctx, SystemEntry(format.KindPurpose, c.Member, time.Now().UTC(), p))
	return err
}

// Purposes lists the federation's purposes.
func (s *Service) Purposes() []consent.Purpose {
	var ps []consent.Purpose
	_ = s.state.WithVocabulary(func(v *consent.Vocabulary) error {
		ps = v.Purposes()
		return nil
	})
	return ps
}

// NewToken makes a token for member and the entry that records it, by
// c.Member.
func NewToken(member string, admin bool) (string, format.TokenOp, error) {
	var id [8]byte
	var secret [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", format.TokenOp{}, err
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", format.TokenOp{}, err
	}
	token, op := format.NewToken(id, secret, member, admin)
	return token, op, nil
}

// CreateToken creates a token for a member (an admin's act). The token is
// shown once: the ledger keeps only its hash.
func (s *Service) CreateToken(ctx context.Context, c api.Caller, req api.TokenRequest) (api.TokenResponse, error) {
	out, err := s.createToken(ctx, c, req)
	return out, Translate(err)
}

func (s *Service) createToken(ctx context.Context, c api.Caller, req api.TokenRequest) (api.TokenResponse, error) {
	if err := req.Validate(); err != nil {
		return api.TokenResponse{}, err
	}
	if !s.IsLeader() {
		l, err := s.leader(c)
		if err != nil {
			return api.TokenResponse{}, err
		}
		out, err := l.CreateToken(ctx, req.Member, req.Admin)
		if err == nil {
			_ = s.waitFor(ctx, func() bool { return s.state.HasToken(out.ID) })
		}
		return out, err
	}
	token, op, err := NewToken(req.Member, req.Admin)
	if err != nil {
		return api.TokenResponse{}, err
	}
	if _, err := s.appendChecked(ctx, SystemEntry(format.KindToken, c.Member, time.Now().UTC(), op)); err != nil {
		return api.TokenResponse{}, err
	}
	return api.TokenResponse{ID: op.ID, Token: token, Member: req.Member, Admin: req.Admin}, nil
}

// RevokeToken revokes a token by its id (an admin's act).
func (s *Service) RevokeToken(ctx context.Context, c api.Caller, id string) error {
	return Translate(s.revokeToken(ctx, c, id))
}

func (s *Service) revokeToken(ctx context.Context, c api.Caller, id string) error {
	if !format.ValidTokenID(id) {
		return api.Invalid("id", "a token id: 16 lower-case hex digits")
	}
	if !s.IsLeader() {
		l, err := s.leader(c)
		if err != nil {
			return err
		}
		if err := l.RevokeToken(ctx, id); err != nil {
			return err
		}
		return s.waitFor(ctx, func() bool { return !s.state.HasToken(id) })
	}
	if !s.state.HasToken(id) {
		return fmt.Errorf("%w: token %s", api.ErrNotFound, id)
	}
	_, err := s.appendChecked(ctx, SystemEntry(format.KindToken, c.Member, time.Now().UTC(), format.TokenOp{Op: "revoke", ID: id}))
	return err
}
