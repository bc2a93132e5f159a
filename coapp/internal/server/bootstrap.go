package server

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"time"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/ledger"
)

// Founding is what a new federation starts with.
type Founding struct {
	Federation string
	// Founder is the founding member; Members the others, from the start.
	Founder string
	Members []string
	Rules   api.Rules
	// Keys are founding members' Ed25519 public keys, for the genesis. The
	// founder's key is made on this node when not given.
	Keys map[string]ed25519.PublicKey
	// Self is this node's addresses.
	Self api.NodeInfo
	// KeyFingerprint identifies the federation's key file, for the
	// genesis (format.Genesis.KeyFingerprint).
	KeyFingerprint string
}

// Validate checks a founding before anything is written.
func (f *Founding) Validate() error {
	if f.Federation == "" {
		return api.Invalid("federation", "required to bootstrap a new federation")
	}
	if !api.ValidMember(f.Founder) {
		return api.Invalid("member", "a member id: 1 to 64 characters of [a-z0-9._-]")
	}
	rules := f.Rules.WithDefaults()
	if err := rules.Validate(); err != nil {
		return err
	}
	for i, m := range f.Members {
		if !api.ValidMember(m) {
			return api.Invalid(fmt.Sprintf("founding_members[%d]", i), "a member id: 1 to 64 characters of [a-z0-9._-]")
		}
	}
	for i, c := range rules.Committees {
		for j, m := range c.Members {
			if m != f.Founder && !slices.Contains(f.Members, m) {
				return api.Invalid(fmt.Sprintf("rules.committees[%d].members[%d]", i, j), "%s is not a founding member", m)
			}
		}
	}
	for m, pub := range f.Keys {
		if len(pub) != ed25519.PublicKeySize || (m != f.Founder && !slices.Contains(f.Members, m)) {
			return api.Invalid("founding_keys."+m, "an Ed25519 public key of a founding member")
		}
	}
	return nil
}

// Bootstrap writes a new federation's genesis, this node's addresses and
// the founder's admin token, and returns the token (shown once). The
// ledger must be empty.
func (s *Service) Bootstrap(ctx context.Context, f Founding) (string, error) {
	if err := f.Validate(); err != nil {
		return "", err
	}
	rules := f.Rules.WithDefaults()
	memberKeys := map[string][]byte{}
	for m, pub := range f.Keys {
		memberKeys[m] = pub
	}
	// The founder's key goes into the genesis: the one this node holds
	// (made with CreateMemberKey, coapp keys member), or a new one.
	if _, given := memberKeys[f.Founder]; !given {
		founderKey, err := s.signers.Key(f.Founder)
		if err != nil {
			return "", err
		}
		memberKeys[f.Founder] = founderKey.Public().(ed25519.PublicKey)
	}
	token, op, err := NewToken(f.Founder, true)
	if err != nil {
		return "", err
	}
	now := time.Now().UTC()
	entries := []ledger.Entry{
		SystemEntry(format.KindGenesis, f.Founder, now, format.Genesis{Federation: f.Federation, Founder: f.Founder, Members: f.Members, Rules: &rules, MemberKeys: memberKeys, SignedRecords: true, KeyFingerprint: f.KeyFingerprint}),
		SystemEntry(format.KindNode, f.Founder, now, f.Self),
		SystemEntry(format.KindToken, f.Founder, now, op),
	}
	if _, err := s.appendChecked(ctx, entries...); err != nil {
		return "", Translate(err)
	}
	s.log.Info("bootstrapped federation", "federation", f.Federation)
	return token, nil
}

// Announce records this node's addresses in the ledger when the state does
// not hold them as they are now: after a restore from backup (a new node
// id) or a restart on other addresses. It runs on the leader, as member.
func (s *Service) Announce(ctx context.Context, member string, self api.NodeInfo) error {
	s.AwaitView(ctx)
	if known, ok := s.state.Node(self.ID); ok && known == self {
		return nil
	}
	_, err := s.appendChecked(ctx, SystemEntry(format.KindNode, member, time.Now().UTC(), self))
	return Translate(err)
}
