package server

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/memberkey"
)

// signingKey returns member's signing key on this node: the one the
// ledger knows for member, or a new one for a member without a key yet.
func (s *Service) signingKey(member string) (ed25519.PrivateKey, error) {
	known, ok := s.state.MemberKey(member)
	key, err := s.signers.Load(member, !ok)
	if errors.Is(err, memberkey.ErrNoKey) || err == nil && ok && !known.Equal(key.Public().(ed25519.PublicKey)) {
		return nil, &api.Error{Err: api.ErrForbidden, Field: "member",
			Reason: fmt.Sprintf("member %s signs on the node that holds its key, not this one: send the request to that node", member)}
	}
	return key, err
}
