package server

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"time"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/coapp/internal/memberkey"
)

// RotateMemberKey replaces c.Member's signing key with a new one, on the
// node that holds the current one: the new key is written beside it
// (<key>.next), the rotation signed with the current key is appended, and
// the new key then replaces the old file. It returns the member's keys.
func (s *Service) RotateMemberKey(ctx context.Context, c api.Caller, member string) (api.MemberKeysInfo, error) {
	info, err := s.rotateMemberKey(ctx, c, member)
	return info, Translate(err)
}

func (s *Service) rotateMemberKey(ctx context.Context, c api.Caller, member string) (api.MemberKeysInfo, error) {
	if member != c.Member {
		return api.MemberKeysInfo{}, fmt.Errorf("%w: a member rotates only its own key", api.ErrForbidden)
	}
	if err := s.CatchUp(ctx, c); err != nil {
		return api.MemberKeysInfo{}, err
	}
	if _, ok := s.state.MemberKey(member); !ok {
		return api.MemberKeysInfo{}, api.Invalid("member", "%s has no key in the ledger yet: it gets one with its first signed entry", member)
	}
	// The current key must be on this node: the rotation is signed with it.
	if _, err := s.signingKey(member); err != nil {
		return api.MemberKeysInfo{}, err
	}
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return api.MemberKeysInfo{}, err
	}
	path := s.signers.Path(member)
	next := path + ".next"
	data, err := s.signers.Encode(member, priv)
	if err != nil {
		return api.MemberKeysInfo{}, err
	}
	// Created exclusively: a file left by a rotation cut short may hold
	// the key the ledger now has, and is never overwritten here.
	if err := memberkey.WriteFileSync(next, data); err != nil {
		return api.MemberKeysInfo{}, fmt.Errorf("coapp: %s (from an unfinished rotation? if the ledger holds its public key, move it over %s; else remove it): %w", next, path, err)
	}
	at := time.Now().UTC()
	if _, err := s.submitSigned(ctx, c, format.KindKeyRotation, format.KeyRotation{Member: member, PublicKey: pub, At: at}, at); err != nil {
		if cur, ok := s.state.MemberKey(member); !ok || !cur.Equal(pub) {
			_ = os.Remove(next) // the rotation did not happen
			return api.MemberKeysInfo{}, err
		}
		// It happened after all (the answer was lost): keep the new key.
	}
	if err := s.signers.Replace(member, next, priv); err != nil {
		return api.MemberKeysInfo{}, fmt.Errorf("coapp: the ledger holds %s's new key, but it is still in %s: %w", member, next, err)
	}
	s.log.Info("member key rotated", "member", member)
	return api.MemberKeysInfo{Member: member, PublicKey: pub, Keys: s.state.MemberKeyHistory(member)}, nil
}

// MemberKeys returns a member's current key and every key it had.
func (s *Service) MemberKeys(member string) (api.MemberKeysInfo, error) {
	pub, ok := s.state.MemberKey(member)
	if !ok {
		return api.MemberKeysInfo{}, fmt.Errorf("%w: no key for member %s", api.ErrNotFound, member)
	}
	return api.MemberKeysInfo{Member: member, PublicKey: pub, Keys: s.state.MemberKeyHistory(member)}, nil
}
