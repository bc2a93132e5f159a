package state

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"sync"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/ledger/entry"
	"coapp.coop/ledger/merkle"
)

// pendingBatch is the batch signature applied last, waiting for the
// records it covers, which follow it.
type pendingBatch struct {
	author string
	leaves map[merkle.Hash]bool
}

// batchSignature verifies a batch signature under its author's current
// key and makes it the pending one.
func (t *step) batchSignature(e entry.Entry) error {
	leaves, sig, err := format.DecodeBatch(e.Payload)
	if err != nil {
		return err
	}
	pub, ok := t.key(e.Author)
	if !ok {
		return fmt.Errorf("%w: member %s has no key", api.ErrBadSignature, e.Author)
	}
	// A dry step verifies and remembers the signature; the apply that
	// follows finds it verified, once.
	if !t.s.sigs.verify(pub, format.BatchMessage(e.Author, leaves), sig, !t.dry) {
		return fmt.Errorf("%w: records of %s", api.ErrBadSignature, e.Author)
	}
	set := make(map[merkle.Hash]bool, len(leaves))
	for _, h := range leaves {
		set[h] = true
	}
	t.batch = &pendingBatch{author: e.Author, leaves: set}
	return nil
}

// record decides whether a record entry is covered by the pending batch
// signature, in a federation that requires one.
func (t *step) record(e entry.Entry) error {
	if g := t.s.genesis; g == nil || !g.SignedRecords {
		return nil
	}
	if t.batch == nil || t.batch.author != e.Author {
		return fmt.Errorf("%w: record %s is not signed by %s", api.ErrBadSignature, e.ID, e.Author)
	}
	h := e.LeafHash()
	if !t.batch.leaves[h] {
		return fmt.Errorf("%w: record %s is not what %s signed", api.ErrBadSignature, e.ID, e.Author)
	}
	delete(t.batch.leaves, h)
	return nil
}

// RememberSignature records a batch signature as verified: the node made
// it with the member's key, so its apply need not verify it again.
func (s *State) RememberSignature(pub ed25519.PublicKey, msg, sig []byte) {
	s.sigs.add(sigKey(pub, msg, sig))
}

// VerifySignature checks a batch signature under pub, or finds it
// checked already, and remembers it for the apply that follows.
func (s *State) VerifySignature(pub ed25519.PublicKey, msg, sig []byte) bool {
	return s.sigs.verify(pub, msg, sig, false)
}

// RefusedRecords returns the indexes of the record entries every replica
// refused, as of now; nil when none were.
func (s *State) RefusedRecords() map[uint64]bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.badRecords) == 0 {
		return nil
	}
	out := make(map[uint64]bool, len(s.badRecords))
	for i := range s.badRecords {
		out[i] = true
	}
	return out
}

// HasRefusals reports whether any record entry was refused.
func (s *State) HasRefusals() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.badRecords) > 0
}

// RecordRefusal returns why the record at index was refused, or nil.
func (s *State) RecordRefusal(index uint64) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.badRecords[index]
}

// verifiedSigs remembers batch signatures this node made or verified, so
// that it checks each once: the leader verifies a batch before appending
// it, and its state, applying the same bytes under the same key a moment
// later, finds it here (as Bitcoin Core's signature cache spares a block
// the checks its transactions passed in the mempool). Followers, which saw
// none of them, verify every one. An entry is keyed by the SHA-256 of the
// public key, the message and the signature, and used once.
type verifiedSigs struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]struct{}
}

const verifiedSigsMax = 4096

func sigKey(pub ed25519.PublicKey, msg, sig []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write(pub)
	h.Write(sig)
	h.Write(msg)
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

func (c *verifiedSigs) add(k [sha256.Size]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= verifiedSigsMax {
		c.m = map[[sha256.Size]byte]struct{}{}
	}
	c.m[k] = struct{}{}
}

// take reports whether k was verified, and forgets it.
func (c *verifiedSigs) take(k [sha256.Size]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[k]
	delete(c.m, k)
	return ok
}

// has reports whether k was verified.
func (c *verifiedSigs) has(k [sha256.Size]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[k]
	return ok
}

// verify checks a signature, or finds it checked already: once (on
// apply) uses the memory up, otherwise a verified signature is
// remembered.
func (c *verifiedSigs) verify(pub ed25519.PublicKey, msg, sig []byte, once bool) bool {
	k := sigKey(pub, msg, sig)
	if once && c.take(k) || !once && c.has(k) {
		return true
	}
	if !ed25519.Verify(pub, msg, sig) {
		return false
	}
	if !once {
		c.add(k)
	}
	return true
}
