package coapp

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"

	"coapp.coop/ledger"
	"coapp.coop/ledger/merkle"
	"coapp.coop/pseudonym"
)

// Signed records. Every batch of records a member publishes is signed with
// the member's Ed25519 key, on the node that received it and holds that
// key: one signature over the Merkle leaf hashes of the batch's record
// entries, written as an entry of its own (KindBatch) just before them, in
// the same append. Every replica verifies it when applying, under the key
// the member had at that index, and refuses (leaves inert, skipped by
// exports, aggregates, shares and the right of access) any record of a
// federation founded with signed records that no valid batch signature of
// its author covers.
//
// The node that received the records also pseudonymises and seals them:
// on a follower, only sealed, signed entries travel to the leader (POST
// /v1/records/signed), never a raw identifier.

// ErrRefused is returned for a record id the ledger holds with a record
// every replica refused (no valid signature of its member covered it): it
// stays in the log, inert, and the id cannot be used again.
var ErrRefused = errors.New("coapp: record refused by every replica")

// KindBatch is the ledger kind of a member's signature over the records
// that follow it.
const KindBatch = "coapp.batch/v1"

// batchFormat starts a batch payload:
//
//	1 | uvarint n | n leaf hashes (32 bytes each) | Ed25519 signature (64)
const batchFormat byte = 1

var batchNamespace = uuid.MustParse("0b8c6f6e-2f4d-4a53-8d2e-91b1f3c7a6d5")

// batchMessage is what a member signs: the kind's context, the author and
// the leaf hashes of its records, in order.
func batchMessage(author string, leaves []merkle.Hash) []byte {
	b := make([]byte, 0, 32+len(author)+len(leaves)*merkle.Size)
	b = append(b, "coapp/v1/"+KindBatch+"|"...)
	b = binary.AppendUvarint(b, uint64(len(author)))
	b = append(b, author...)
	for _, h := range leaves {
		b = append(b, h[:]...)
	}
	return b
}

// signBatch signs entries as author and returns the batch entry that goes
// before them. It is deterministic, so that a retry makes the same entry.
func signBatch(key ed25519.PrivateKey, author string, entries []ledger.Entry) ledger.Entry {
	leaves := make([]merkle.Hash, len(entries))
	var latest time.Time
	for i := range entries {
		leaves[i] = entries[i].LeafHash()
		if entries[i].Time.After(latest) {
			latest = entries[i].Time
		}
	}
	sig := ed25519.Sign(key, batchMessage(author, leaves))
	return batchEntry(author, latest, leaves, sig)
}

// signBatchHere signs entries as signBatch does, and remembers the
// signature as verified: this node made it with the member's key.
func (n *Node) signBatchHere(key ed25519.PrivateKey, author string, entries []ledger.Entry) ledger.Entry {
	e := signBatch(key, author, entries)
	leaves, sig, _ := decodeBatch(e.Payload)
	n.view.sigs.add(sigKey(key.Public().(ed25519.PublicKey), batchMessage(author, leaves), sig))
	return e
}

func batchEntry(author string, at time.Time, leaves []merkle.Hash, sig []byte) ledger.Entry {
	p := make([]byte, 0, 1+binary.MaxVarintLen32+len(leaves)*merkle.Size+ed25519.SignatureSize)
	p = append(p, batchFormat)
	p = binary.AppendUvarint(p, uint64(len(leaves)))
	for _, h := range leaves {
		p = append(p, h[:]...)
	}
	p = append(p, sig...)
	return ledger.Entry{ID: uuid.NewSHA1(batchNamespace, p), Kind: KindBatch, Author: author, Time: at, Payload: p}
}

// decodeBatch reads a batch payload.
func decodeBatch(p []byte) (leaves []merkle.Hash, sig []byte, err error) {
	bad := errors.New("coapp: malformed batch signature")
	if len(p) == 0 || p[0] != batchFormat {
		return nil, nil, bad
	}
	n, k := binary.Uvarint(p[1:])
	if k <= 0 || n == 0 || n > uint64(len(p))/merkle.Size {
		return nil, nil, bad
	}
	rest := p[1+k:]
	if uint64(len(rest)) != n*merkle.Size+ed25519.SignatureSize {
		return nil, nil, bad
	}
	leaves = make([]merkle.Hash, n)
	for i := range leaves {
		copy(leaves[i][:], rest[i*merkle.Size:])
	}
	return leaves, rest[n*merkle.Size:], nil
}

// verifiedSigs remembers batch signatures this node made or verified, so
// that it checks each once: the leader verifies a batch before appending
// it, and its view, applying the same bytes under the same key a moment
// later, finds it here (as Bitcoin Core's signature cache spares a block
// the checks its transactions passed in the mempool). Followers' views,
// which saw none of them, verify every one. An entry is keyed by the
// SHA-256 of the public key, the message and the signature, and used once.
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

// verifyBatch checks a batch signature, or finds it checked already.
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

// pendingBatch is the batch signature the view verified last, waiting for
// the records it covers, which follow it.
type pendingBatch struct {
	author string
	leaves map[merkle.Hash]bool
}

// applyBatch verifies a batch signature under its author's current key
// and makes it the pending one.
func (v *view) applyBatch(e ledger.Entry) error {
	leaves, sig, err := decodeBatch(e.Payload)
	if err != nil {
		return err
	}
	pub, ok := v.memberKeys[e.Author]
	if !ok {
		return fmt.Errorf("%w: member %s has no key", ErrBadSignature, e.Author)
	}
	if !v.sigs.verify(pub, batchMessage(e.Author, leaves), sig, true) {
		return fmt.Errorf("%w: records of %s", ErrBadSignature, e.Author)
	}
	set := make(map[merkle.Hash]bool, len(leaves))
	for _, h := range leaves {
		set[h] = true
	}
	v.batch = &pendingBatch{author: e.Author, leaves: set}
	return nil
}

// checkRecord decides whether a record entry is covered by the pending
// batch signature, in a federation that requires one.
func (v *view) checkRecord(e ledger.Entry) error {
	if v.genesis == nil || !v.genesis.SignedRecords {
		return nil
	}
	if v.batch == nil || v.batch.author != e.Author {
		return fmt.Errorf("%w: record %s is not signed by %s", ErrBadSignature, e.ID, e.Author)
	}
	if h := e.LeafHash(); !v.batch.leaves[h] {
		return fmt.Errorf("%w: record %s is not what %s signed", ErrBadSignature, e.ID, e.Author)
	} else {
		delete(v.batch.leaves, h)
	}
	return nil
}

// refusedRecords returns the indexes of the record entries every replica
// refused, as of now; nil when none were.
func (v *view) refusedRecords() map[uint64]bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if len(v.badRecords) == 0 {
		return nil
	}
	out := make(map[uint64]bool, len(v.badRecords))
	for i := range v.badRecords {
		out[i] = true
	}
	return out
}

// hasRefusals reports whether the view refused any record entry.
func (v *view) hasRefusals() bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.badRecords) > 0
}

// recordRefusal returns why the record at index was refused, or nil.
func (v *view) recordRefusal(index uint64) error {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.badRecords[index]
}

// sealedBatch is the body of POST /v1/records/signed: a member's records
// pseudonymised, sealed and signed on the node that received them, with
// the key requirements they were sealed under, for the leader to append.
type sealedBatch struct {
	Records   []sealedRecord `json:"records"`
	Signature []byte         `json:"signature"`
	Keys      []sealedKey    `json:"keys"`
	// PublicKey is the member's key, for its first signed entry.
	PublicKey []byte `json:"public_key,omitempty"`
}

type sealedRecord struct {
	ID      uuid.UUID `json:"id"`
	Time    time.Time `json:"time"`
	Payload []byte    `json:"payload"`
}

type sealedKey struct {
	Name   []byte `json:"name"`
	Create []byte `json:"create,omitempty"`
	Hash   []byte `json:"hash"`
}

// batchSubmission is a signed batch as the leader appends it.
type batchSubmission struct {
	records []ledger.Entry
	batch   ledger.Entry
	reqs    []ledger.KeyRequirement
	pub     ed25519.PublicKey
}

func (s *batchSubmission) wire() sealedBatch {
	out := sealedBatch{Records: make([]sealedRecord, len(s.records)), Keys: make([]sealedKey, len(s.reqs)), PublicKey: s.pub}
	for i, e := range s.records {
		out.Records[i] = sealedRecord{ID: e.ID, Time: e.Time, Payload: e.Payload}
	}
	for i, k := range s.reqs {
		out.Keys[i] = sealedKey{Name: k.Name, Create: k.Create, Hash: k.Hash[:]}
	}
	_, out.Signature, _ = decodeBatch(s.batch.Payload)
	return out
}

// submission rebuilds the entries of a sealed batch for member, and
// checks its shape: records of the binary format, one signature over them
// all (checkSealed checks the content).
func (b *sealedBatch) submission(member string) (batchSubmission, error) {
	var s batchSubmission
	if len(b.Records) == 0 {
		return s, invalid("records", "required: at least one record")
	}
	if len(b.Signature) != ed25519.SignatureSize {
		return s, invalid("signature", "an Ed25519 signature of %d bytes", ed25519.SignatureSize)
	}
	if b.PublicKey != nil && len(b.PublicKey) != ed25519.PublicKeySize {
		return s, invalid("public_key", "an Ed25519 public key of %d bytes", ed25519.PublicKeySize)
	}
	s.reqs = make([]ledger.KeyRequirement, len(b.Keys))
	for i, k := range b.Keys {
		if len(k.Hash) != len(s.reqs[i].Hash) || len(k.Name) == 0 {
			return s, invalid(fmt.Sprintf("keys[%d]", i), "a key name and a SHA-256 hash")
		}
		s.reqs[i] = ledger.KeyRequirement{Name: k.Name, Create: k.Create}
		copy(s.reqs[i].Hash[:], k.Hash)
	}
	s.records = make([]ledger.Entry, len(b.Records))
	leaves := make([]merkle.Hash, len(b.Records))
	var latest time.Time
	for i, r := range b.Records {
		at := fmt.Sprintf("records[%d]", i)
		if r.ID == uuid.Nil {
			return s, invalid(at+".id", "required")
		}
		if p, err := splitBinaryPayload(r.Payload); err != nil || len(p.box) == 0 {
			return s, invalid(at+".payload", "not a sealed record")
		}
		e := ledger.Entry{ID: r.ID, Kind: KindRecord, Author: member, Time: r.Time.UTC(), Payload: r.Payload}
		s.records[i], leaves[i] = e, e.LeafHash()
		if e.Time.After(latest) {
			latest = e.Time
		}
	}
	s.batch = batchEntry(member, latest, leaves, b.Signature)
	if b.PublicKey != nil {
		s.pub = ed25519.PublicKey(b.PublicKey)
	}
	return s, nil
}

// checkSealed checks, on the leader, a batch another node sealed, as far
// as the leader can: every key requirement names a record's subject, and
// no other; every subject is a pseudonym, never an identifier in clear;
// every record follows a registered schema version, at a time in range;
// every new data key unwraps under the federation's key; every box opens
// under its subject's key, to fields its schema keeps. So that no member
// writes into the log what an export could not read, or what erasure
// could not shred.
func (n *Node) checkSealed(ctx context.Context, s *batchSubmission) error {
	reqs := make(map[string]*ledger.KeyRequirement, len(s.reqs))
	for i := range s.reqs {
		name := string(s.reqs[i].Name)
		if reqs[name] != nil {
			return invalid(fmt.Sprintf("keys[%d]", i), "names a key twice")
		}
		reqs[name] = &s.reqs[i]
	}
	dks := make(map[string]pseudonym.Secret, len(reqs))
	for i, e := range s.records {
		at := fmt.Sprintf("records[%d]", i)
		bp, err := splitBinaryPayload(e.Payload)
		if err != nil {
			return invalid(at+".payload", "not a sealed record")
		}
		if kv, _ := binary.Uvarint(bp.subject); kv == 0 {
			return invalid(at+".payload", "the subject is not a pseudonym")
		}
		sc, ok := n.view.schema(string(bp.typ), bp.version)
		if !ok || bp.version == 0 {
			return invalid(at+".payload", "no version %d of the schema of %q", bp.version, bp.typ)
		}
		if y := e.Time.Year(); y < 1900 || y > 2200 {
			return invalid(at+".time", "outside the years 1900 to 2200")
		}
		p := recordPayload{Type: string(bp.typ), Version: bp.version, Subject: bp.pseudonym(), Box: bp.box}
		name := string(subjectKeyName(p.Subject))
		dk, ok := dks[name]
		if !ok {
			req := reqs[name]
			if req == nil {
				return invalid(at+".payload", "sealed under a key the batch does not name")
			}
			wrapped := req.Create
			if wrapped == nil {
				if wrapped, err = n.storedKey(ctx, req); err != nil {
					return err
				}
			}
			if dk, err = n.cache.unwrap(n.keys, req.Name, wrapped); err != nil {
				return invalid(at+".keys", "a data key that does not unwrap under the federation's key")
			}
			dks[name] = dk
		}
		fields, err := openFields(dk, e, &p)
		if err != nil {
			return invalid(at+".payload", "a box that does not open under its subject's key")
		}
		for f := range fields {
			if fd := sc.field(f); fd == nil || fd.Policy.Action == "drop" {
				return invalid(at+".payload", "a field %q that its schema does not keep", f)
			}
		}
	}
	if len(dks) != len(reqs) {
		return invalid("keys", "names a key that no record is sealed under")
	}
	return nil
}

// checkBatchSignature verifies a batch signature under pub, member's key
// in this node's view (known) or the one its first batch brings. When it
// fails under a known key, the view may lag behind a key rotation written
// through another node: it catches up and checks once more.
func (n *Node) checkBatchSignature(ctx context.Context, member string, pub ed25519.PublicKey, known bool, leaves []merkle.Hash, sig []byte) error {
	msg := batchMessage(member, leaves)
	if n.view.sigs.verify(pub, msg, sig, false) {
		return nil
	}
	if known {
		n.awaitView(ctx)
		if cur, ok := n.view.memberKey(member); ok && !cur.Equal(pub) && n.view.sigs.verify(cur, msg, sig, false) {
			return nil
		}
	}
	return fmt.Errorf("%w: the records of %s", ErrBadSignature, member)
}

// storedKey reads the wrapped key a requirement names from the key store,
// as the requirement says it is.
func (n *Node) storedKey(ctx context.Context, req *ledger.KeyRequirement) ([]byte, error) {
	var w []byte
	err := n.ledger.Read(ctx, ledger.Stale, func(v *ledger.View) error {
		var err error
		w, err = v.Key(req.Name)
		return err
	})
	switch {
	case errors.Is(err, ledger.ErrKeyDestroyed):
		return nil, ErrErased
	case errors.Is(err, ledger.ErrNotFound):
		return nil, &ledger.KeyError{Name: req.Name, Err: ledger.ErrKeyConflict}
	case err != nil:
		return nil, err
	case sha256.Sum256(w) != req.Hash:
		return nil, &ledger.KeyError{Name: req.Name, Err: ledger.ErrKeyConflict}
	}
	return w, nil
}

// appendBatch appends a member's signed batch on the leader, after
// checking its signature as the replicas will. Publishers hold keyMu for
// reading, a key rotation for writing, so that no batch checked under a
// member's old key is applied after its new one.
func (n *Node) appendBatch(ctx context.Context, member string, s batchSubmission) ([]ledger.Receipt, error) {
	n.keyMu.RLock()
	pub, known := n.view.memberKey(member)
	if !known {
		// A member's first signed entry registers its key: one at a time.
		n.keyMu.RUnlock()
		n.signedMu.Lock()
		defer n.signedMu.Unlock()
		n.awaitView(ctx)
		n.keyMu.RLock()
		pub, known = n.view.memberKey(member)
	}
	defer n.keyMu.RUnlock()
	var entries []ledger.Entry
	if !known {
		if len(s.pub) != ed25519.PublicKeySize {
			return nil, invalid("public_key", "member %s has no key in the ledger yet: send its Ed25519 public key", member)
		}
		pub = s.pub
		entries = append(entries, systemEntry(KindMemberKey, member, time.Now().UTC(), memberKey{Member: member, PublicKey: pub}))
	}
	leaves, sig, err := decodeBatch(s.batch.Payload)
	if err != nil {
		return nil, err
	}
	if err := n.checkBatchSignature(ctx, member, pub, known, leaves, sig); err != nil {
		return nil, err
	}
	// A batch whose records the ledger holds already (a retry) stores
	// nothing new, not even its signature.
	if rs, all, err := n.stored(ctx, s.records); err != nil || all {
		return rs, err
	}
	head := len(entries) + 1
	entries = append(entries, s.batch)
	entries = append(entries, s.records...)
	start := time.Now()
	rs, err := n.ledger.AppendWithKeys(ctx, s.reqs, entries...)
	n.metrics.appendLatency(time.Since(start), err)
	if err != nil {
		return nil, err
	}
	// Acknowledge what the replicas accept: wait for this node's view to
	// apply the batch (under keyMu, so that no rotation overtakes it), and
	// answer why it refused it, if it did (a view that lagged behind a
	// key change when the signature was checked).
	batch := rs[head-1]
	if !batch.Duplicate {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := n.awaitApplied(wctx, batch.Index); err != nil {
			return nil, err
		}
		if err := n.view.rejection(batch.Index); err != nil {
			return nil, fmt.Errorf("%w: the records at %d to %d stay in the log, refused: publish them again under new ids", err, rs[head].Index, rs[len(rs)-1].Index)
		}
	}
	return rs[head:], nil
}

// stored returns the receipts of the records when the ledger holds them
// all already, and whether it does. A record id the ledger holds with other
// content is a conflict.
func (n *Node) stored(ctx context.Context, records []ledger.Entry) ([]ledger.Receipt, bool, error) {
	rs := make([]ledger.Receipt, len(records))
	all := true
	// While the replicas have refused no record (forged ones only), the
	// first record not found ends the check: the append dedupes the
	// rest. Otherwise every record is looked for, so that a batch that
	// mixes new records with refused ones is refused, not answered with
	// the refused records' receipts.
	every := n.view.hasRefusals()
	err := n.ledger.Read(ctx, ledger.Stale, func(v *ledger.View) error {
		for i := range records {
			e, rc, err := v.ByID(records[i].ID)
			switch {
			case errors.Is(err, ledger.ErrNotFound):
				all = false
				if every {
					continue
				}
				return nil
			case err != nil:
				return err
			case e.LeafHash() != records[i].LeafHash():
				return &ledger.ConflictError{ID: records[i].ID, Index: rc.Index}
			}
			if err := n.view.recordRefusal(rc.Index); err != nil {
				return fmt.Errorf("%w: record %s at %d (%v); publish it again under a new id", ErrRefused, records[i].ID, rc.Index, err)
			}
			rc.Duplicate = true
			rs[i] = rc
		}
		return nil
	})
	if err != nil || !all {
		return nil, false, err
	}
	return rs, true, nil
}

// submitBatch appends a signed batch: here on the leader, or through the
// leader's POST /v1/records/signed with the credentials of r.
func (n *Node) submitBatch(ctx context.Context, r *http.Request, member string, s batchSubmission) ([]ledger.Receipt, error) {
	if !n.needsLeader() {
		return n.appendBatch(ctx, member, s)
	}
	if r == nil {
		return nil, ledger.ErrNotLeader
	}
	var out publishResponse
	if err := n.callLeader(ctx, r, http.MethodPost, "/v1/records/signed", s.wire(), &out); err != nil {
		return nil, err
	}
	rs := make([]ledger.Receipt, len(out.Receipts))
	for i, rc := range out.Receipts {
		rs[i] = ledger.Receipt{ID: rc.ID, Index: rc.Index, Leaf: rc.Leaf}
	}
	return rs, nil
}

func (n *Node) handleSignedRecords(w http.ResponseWriter, r *http.Request, c caller) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if n.needsLeader() {
		return n.forward(w, r, body)
	}
	var b sealedBatch
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := decodeBody(r, &b); err != nil {
		return err
	}
	s, err := b.submission(c.member)
	if err != nil {
		return err
	}
	// The signature first (appendBatch finds it checked), then what is
	// sealed.
	pub, known := n.view.memberKey(c.member)
	if !known {
		pub = s.pub
	}
	leaves, sig, _ := decodeBatch(s.batch.Payload)
	if len(pub) != ed25519.PublicKeySize {
		return invalid("public_key", "member %s has no key in the ledger yet: send its Ed25519 public key", c.member)
	}
	if err := n.checkBatchSignature(r.Context(), c.member, pub, known, leaves, sig); err != nil {
		return err
	}
	if err := n.checkSealed(r.Context(), &s); err != nil {
		return err
	}
	rs, err := n.appendBatch(r.Context(), c.member, s)
	if err != nil {
		return err
	}
	out := publishResponse{Receipts: make([]Receipt, len(rs))}
	for i, rc := range rs {
		out.Receipts[i] = Receipt{ID: rc.ID, Index: rc.Index, Leaf: rc.Leaf}
	}
	return writeJSON(w, http.StatusOK, out)
}
