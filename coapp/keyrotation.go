package coapp

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"os"
	"time"

	"coapp.coop/ledger"
)

// KindKeyRotation replaces a member's Ed25519 key: the new public key,
// signed with the key it replaces, so that only the holder of the current
// key can rotate it. Entries a member signed before the rotation keep
// verifying under the key in force at their index.
const KindKeyRotation = "coapp.member-key-rotation/v1"

// keyRotation is the body of a KindKeyRotation entry.
type keyRotation struct {
	Member    string    `json:"member"`
	PublicKey []byte    `json:"public_key"`
	At        time.Time `json:"at"`
}

// keyAt is a member's key from a ledger index on.
type keyAt struct {
	From      uint64            `json:"from"`
	PublicKey ed25519.PublicKey `json:"public_key"`
}

// setMemberKey records a member's key from index on.
func (v *view) setMemberKey(member string, pub ed25519.PublicKey, index uint64) {
	v.memberKeys[member] = pub
	v.keyHistory[member] = append(v.keyHistory[member], keyAt{From: index, PublicKey: pub})
}

// applyKeyRotation replaces a member's key, the entry signed with the
// current one.
func (v *view) applyKeyRotation(e ledger.Entry) error {
	var kr keyRotation
	signer, err := v.decodeSigned(e, &kr)
	if err != nil {
		return err
	}
	if err := v.checkKeyRotation(signer, &kr); err != nil {
		return err
	}
	if !kr.At.Equal(e.Time) {
		return invalid("at", "the rotation's time is the entry's")
	}
	v.setMemberKey(kr.Member, ed25519.PublicKey(kr.PublicKey), e.Index)
	return nil
}

func (v *view) checkKeyRotation(signer string, kr *keyRotation) error {
	if kr.Member != signer {
		return fmt.Errorf("%w: a member rotates only its own key", ErrForbidden)
	}
	if len(kr.PublicKey) != ed25519.PublicKeySize {
		return invalid("public_key", "an Ed25519 public key")
	}
	if cur, ok := v.memberKeys[signer]; ok && cur.Equal(ed25519.PublicKey(kr.PublicKey)) {
		return invalid("public_key", "already the member's key")
	}
	return nil
}

// memberKeyAt returns the key a member signed with at a ledger index.
func (v *view) memberKeyAt(member string, index uint64) (ed25519.PublicKey, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var key ed25519.PublicKey
	for _, k := range v.keyHistory[member] {
		if k.From > index {
			break
		}
		key = k.PublicKey
	}
	return key, key != nil
}

func (v *view) memberKeyHistory(member string) []keyAt {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return append([]keyAt(nil), v.keyHistory[member]...)
}

// RotateMemberKey replaces member's signing key with a new one, on the
// node that holds the current one: the new key is written beside it
// (<key>.next), the rotation signed with the current key is appended, and
// the new key then replaces the old file. It returns the new public key.
// It runs on the leader; the HTTP API runs it on any node.
func (n *Node) RotateMemberKey(ctx context.Context, member string) (ed25519.PublicKey, error) {
	return n.rotateMemberKey(ctx, nil, member)
}

func (n *Node) rotateMemberKey(ctx context.Context, r *http.Request, member string) (ed25519.PublicKey, error) {
	if _, ok := n.view.memberKey(member); !ok {
		return nil, invalid("member", "%s has no key in the ledger yet: it gets one with its first signed entry", member)
	}
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	path := n.signers.path(member)
	next := path + ".next"
	data, err := n.signers.encode(member, priv)
	if err != nil {
		return nil, err
	}
	// Created exclusively: a file left by a rotation cut short may hold
	// the key the ledger now has, and is never overwritten here.
	if err := writeFileSync(next, data); err != nil {
		return nil, fmt.Errorf("coapp: %s (from an unfinished rotation? if the ledger holds its public key, move it over %s; else remove it): %w", next, path, err)
	}
	at := time.Now().UTC()
	if _, err := n.submitSigned(ctx, r, member, KindKeyRotation, keyRotation{Member: member, PublicKey: pub, At: at}, at); err != nil {
		if cur, ok := n.view.memberKey(member); !ok || !cur.Equal(pub) {
			_ = os.Remove(next) // the rotation did not happen
			return nil, err
		}
		// It happened after all (the answer was lost): keep the new key.
	}
	if err := n.signers.replace(member, next, priv); err != nil {
		return nil, fmt.Errorf("coapp: the ledger holds %s's new key, but it is still in %s: %w", member, next, err)
	}
	n.logger.Info("member key rotated", "member", member)
	return pub, nil
}

// MemberKeysInfo is the answer of GET /v1/members/{id}/key: the member's
// current key and every key it had, from which index.
type MemberKeysInfo struct {
	Member    string  `json:"member"`
	PublicKey []byte  `json:"public_key"`
	Keys      []keyAt `json:"keys"`
}

func (n *Node) handleRotateKey(w http.ResponseWriter, r *http.Request, c caller) error {
	if r.PathValue("id") != c.member {
		return fmt.Errorf("%w: a member rotates only its own key", ErrForbidden)
	}
	if err := n.catchUp(r); err != nil {
		return err
	}
	pub, err := n.rotateMemberKey(r.Context(), r, c.member)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, MemberKeysInfo{Member: c.member, PublicKey: pub, Keys: n.view.memberKeyHistory(c.member)})
}
