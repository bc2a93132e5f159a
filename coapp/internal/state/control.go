package state

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/consent"
	"coapp.coop/ledger/entry"
)

// The federation's control entries: genesis, nodes, tokens, schemas,
// purposes, member keys and their rotations.

func (t *step) genesis(e entry.Entry) error {
	var g format.Genesis
	if err := json.Unmarshal(e.Payload, &g); err != nil {
		return api.Invalid("genesis", "malformed: %v", err)
	}
	if t.s.genesis != nil {
		return api.Invalid("genesis", "the federation has one already")
	}
	if t.dry {
		return nil
	}
	s := t.s
	s.genesis = &g
	s.gov.members[g.Founder] = true
	for _, m := range g.Members {
		s.gov.members[m] = true
	}
	if g.Rules != nil {
		s.gov.rules = g.Rules.WithDefaults()
	}
	for _, m := range sortedKeys(g.MemberKeys) {
		if pub := g.MemberKeys[m]; len(pub) == ed25519.PublicKeySize {
			s.setMemberKey(m, ed25519.PublicKey(pub), e.Index)
		}
	}
	return nil
}

func (t *step) node(e entry.Entry) error {
	var n api.NodeInfo
	if err := json.Unmarshal(e.Payload, &n); err != nil || n.ID == "" {
		return api.Invalid("node", "a node's id and addresses")
	}
	if t.dry {
		return nil
	}
	if n.Removed {
		delete(t.s.nodes, n.ID)
	} else {
		t.s.nodes[n.ID] = n
	}
	return nil
}

func (t *step) token(e entry.Entry) error {
	var op format.TokenOp
	if err := json.Unmarshal(e.Payload, &op); err != nil {
		return api.Invalid("token", "malformed")
	}
	switch op.Op {
	case "create":
		if len(op.Hash) != sha256.Size {
			return api.Invalid("token.hash", "a SHA-256 hash")
		}
		if t.dry {
			return nil
		}
		var h [sha256.Size]byte
		copy(h[:], op.Hash)
		t.s.tokens[op.ID] = tokenRec{hash: h, member: op.Member, admin: op.Admin}
	case "revoke":
		if t.dry {
			return nil
		}
		delete(t.s.tokens, op.ID)
	default:
		return api.Invalid("token.op", "create or revoke")
	}
	return nil
}

func (t *step) schema(e entry.Entry) error {
	var sc api.Schema
	if err := json.Unmarshal(e.Payload, &sc); err != nil {
		return api.Invalid("schema", "malformed")
	}
	if err := t.s.checkSchemaVersion(&sc); err != nil {
		return err
	}
	if t.dry {
		return nil
	}
	t.s.schemas[sc.Type] = append(t.s.schemas[sc.Type], sc)
	return nil
}

// checkSchemaVersion refuses a schema version that is not the next one of
// its type.
func (s *State) checkSchemaVersion(sc *api.Schema) error {
	if want := len(s.schemas[sc.Type]) + 1; sc.Version != want {
		return &api.Error{Err: api.ErrConflict, Field: "version",
			Reason: fmt.Sprintf("the next version of the schema of %s is %d, not %d", sc.Type, want, sc.Version)}
	}
	return nil
}

func (t *step) memberKey(e entry.Entry) error {
	var k format.MemberKey
	if err := json.Unmarshal(e.Payload, &k); err != nil || k.Member != e.Author || len(k.PublicKey) != ed25519.PublicKeySize {
		return api.Invalid("public_key", "a member's own Ed25519 public key")
	}
	if _, known := t.key(k.Member); known {
		return api.Invalid("public_key", "member %s has a key: it rotates it, signed with the old one", k.Member)
	}
	if t.dry {
		t.keys[k.Member] = ed25519.PublicKey(k.PublicKey)
		return nil
	}
	t.s.setMemberKey(k.Member, ed25519.PublicKey(k.PublicKey), e.Index)
	return nil
}

func (t *step) purpose(e entry.Entry) error {
	var p consent.Purpose
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		return api.Invalid("purpose", "malformed")
	}
	if t.dry {
		return t.s.consents.Vocabulary().Check(p)
	}
	return t.s.consents.Vocabulary().Define(p)
}

// setMemberKey records a member's key from index on.
func (s *State) setMemberKey(member string, pub ed25519.PublicKey, index uint64) {
	s.memberKeys[member] = pub
	s.keyHistory[member] = append(s.keyHistory[member], api.KeyAt{From: index, PublicKey: pub})
}

// keyRotation replaces a member's key, the entry signed with the current
// one.
func (t *step) keyRotation(e entry.Entry) error {
	var kr format.KeyRotation
	signer, err := t.decodeSigned(e, &kr)
	if err != nil {
		return err
	}
	if err := t.checkKeyRotation(signer, &kr); err != nil {
		return err
	}
	if !kr.At.Equal(e.Time) {
		return api.Invalid("at", "the rotation's time is the entry's")
	}
	if t.dry {
		t.keys[kr.Member] = ed25519.PublicKey(kr.PublicKey)
		return nil
	}
	t.s.setMemberKey(kr.Member, ed25519.PublicKey(kr.PublicKey), e.Index)
	return nil
}

func (t *step) checkKeyRotation(signer string, kr *format.KeyRotation) error {
	if kr.Member != signer {
		return fmt.Errorf("%w: a member rotates only its own key", api.ErrForbidden)
	}
	if len(kr.PublicKey) != ed25519.PublicKeySize {
		return api.Invalid("public_key", "an Ed25519 public key")
	}
	if cur, ok := t.key(signer); ok && cur.Equal(ed25519.PublicKey(kr.PublicKey)) {
		return api.Invalid("public_key", "already the member's key")
	}
	return nil
}

// decodeSigned decodes and verifies a member's signed entry under the
// signer's current key; the body is decoded into body strictly.
func (t *step) decodeSigned(e entry.Entry, body any) (string, error) {
	var sb api.SignedBody
	if err := api.DecodeStored(e.Payload, &sb); err != nil {
		return "", err
	}
	if sb.Signer != e.Author {
		return "", fmt.Errorf("%w: signed by %s, written by %s", api.ErrBadSignature, sb.Signer, e.Author)
	}
	pub, ok := t.key(sb.Signer)
	if !ok || !ed25519.Verify(pub, format.SigningContext(e.Kind, sb.Body), sb.Sig) {
		return "", fmt.Errorf("%w: %s", api.ErrBadSignature, sb.Signer)
	}
	if err := api.DecodeStored(sb.Body, body); err != nil {
		return "", err
	}
	return sb.Signer, nil
}

// Queries of the control plane.

// Authenticate checks a bearer token against the state, in constant time.
// The Caller it returns carries the token.
func (s *State) Authenticate(token string) (api.Caller, bool) {
	id, secret, ok := format.SplitToken(token)
	if !ok {
		return api.Caller{}, false
	}
	s.mu.RLock()
	rec, found := s.tokens[id]
	s.mu.RUnlock()
	h := sha256.Sum256([]byte(secret))
	if !found || subtle.ConstantTimeCompare(h[:], rec.hash[:]) != 1 {
		return api.Caller{}, false
	}
	return api.Caller{Member: rec.member, Admin: rec.admin, Token: token}, true
}

// HasToken reports whether a token of that id exists.
func (s *State) HasToken(id string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.tokens[id]
	return ok
}

// Node returns a node's announced addresses.
func (s *State) Node(id string) (api.NodeInfo, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n, ok := s.nodes[id]
	return n, ok
}

// Federation returns the genesis, once applied.
func (s *State) Federation() (format.Genesis, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.genesis == nil {
		return format.Genesis{}, false
	}
	return *s.genesis, true
}

// Schema returns a version of a type's schema, the latest for version 0.
func (s *State) Schema(typ string, version int) (api.Schema, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	versions := s.schemas[typ]
	if version == 0 {
		version = len(versions)
	}
	if version < 1 || version > len(versions) {
		return api.Schema{}, false
	}
	return versions[version-1], true
}

// SchemaVersions returns every version of a type's schema, from 1.
func (s *State) SchemaVersions(typ string) []api.Schema {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]api.Schema(nil), s.schemas[typ]...)
}

// Schemas returns the latest version of every schema, by type.
func (s *State) Schemas() []api.Schema {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]api.Schema, 0, len(s.schemas))
	for _, typ := range sortedKeys(s.schemas) {
		versions := s.schemas[typ]
		out = append(out, versions[len(versions)-1])
	}
	return out
}

// CheckSchema reports whether sc would be applied as the next version of
// its type.
func (s *State) CheckSchema(sc *api.Schema) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.checkSchemaVersion(sc)
}

// MemberKey returns a member's current public key.
func (s *State) MemberKey(member string) (ed25519.PublicKey, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.memberKeys[member]
	return k, ok
}

// MemberKeyAt returns the key a member signed with at a ledger index.
func (s *State) MemberKeyAt(member string, index uint64) (ed25519.PublicKey, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var key ed25519.PublicKey
	for _, k := range s.keyHistory[member] {
		if k.From > index {
			break
		}
		key = k.PublicKey
	}
	return key, key != nil
}

// MemberKeyHistory returns every key a member had, from which index.
func (s *State) MemberKeyHistory(member string) []api.KeyAt {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]api.KeyAt(nil), s.keyHistory[member]...)
}
