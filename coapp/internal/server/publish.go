package server

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/coapp/internal/policy"
	"coapp.coop/ledger"
	"coapp.coop/ledger/merkle"
	"coapp.coop/pseudonym"
)

// Publish validates records and appends them for c.Member, atomically: on
// error nothing was written. Records whose ids the ledger already holds
// with the same content get their original receipts. The records are
// pseudonymised, sealed and signed with the member's key on this node;
// on a follower only the sealed, signed batch goes to the leader.
func (s *Service) Publish(ctx context.Context, c api.Caller, records []api.Record) ([]api.Receipt, error) {
	rs, err := s.publish(ctx, c, records)
	return rs, Translate(err)
}

func (s *Service) publish(ctx context.Context, c api.Caller, records []api.Record) ([]api.Receipt, error) {
	req := api.PublishRequest{Records: records}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	key, preps, err := s.prepareAll(ctx, c, records)
	if err != nil {
		return nil, err
	}
	// Seal each record under its subject's data key, and append with the
	// requirement that those keys are still the ones in the key store. A
	// key created meanwhile by another request conflicts: read it, retry.
	var rs []ledger.Receipt
	for attempt := 0; ; attempt++ {
		rs, err = s.sealAndAppend(ctx, c, key, preps)
		var ke *ledger.KeyError
		switch {
		case errors.As(err, &ke):
			// That remembered key was stale, or another writer created
			// it first: read it again.
			s.cache.forgetKey(ke.Name)
		case errors.Is(err, api.ErrKeyConflict):
			// The same, found by the leader: catch up with it, and read
			// the batch's keys again.
			s.forgetSubjects(preps)
			if cerr := s.CatchUp(ctx, c); cerr != nil {
				return nil, cerr
			}
		case errors.Is(err, api.ErrBadSignature):
			// The member rotated its key meanwhile: sign again with
			// the new one.
			next, kerr := s.signingKey(c.Member)
			if kerr != nil {
				return nil, kerr
			}
			if attempt < 3 && !next.Equal(key) {
				key = next
				continue
			}
		}
		if attempt < 3 && (errors.Is(err, ledger.ErrKeyConflict) || errors.Is(err, api.ErrKeyConflict)) {
			continue
		}
		break
	}
	if errors.Is(err, ledger.ErrKeyDestroyed) {
		return nil, api.ErrErased
	}
	if err != nil {
		return nil, err
	}
	return receipts(rs), nil
}

// prepareAll pseudonymises and transforms records for c.Member, and returns
// the member's signing key on this node.
func (s *Service) prepareAll(ctx context.Context, c api.Caller, records []api.Record) (ed25519.PrivateKey, []policy.Prepared, error) {
	follower := !s.IsLeader()
	if _, known := s.state.MemberKey(c.Member); !known && follower {
		// The member's key, or the schemas, may be in the ledger
		// already but not yet applied here.
		if err := s.CatchUp(ctx, c); err != nil {
			return nil, nil, err
		}
	}
	key, err := s.signingKey(c.Member)
	if err != nil {
		return nil, nil, err
	}
	preps := make([]policy.Prepared, len(records))
	tr := policy.NewTransformer(s.keys, c.Member)
	for i := range records {
		r := &records[i]
		at := fmt.Sprintf("records[%d]", i)
		sc, ok := s.state.Schema(r.Type, r.Version)
		if !ok && follower {
			// Registered through the leader a moment ago, perhaps.
			if err := s.CatchUp(ctx, c); err != nil {
				return nil, nil, err
			}
			sc, ok = s.state.Schema(r.Type, r.Version)
		}
		if !ok {
			if r.Version != 0 {
				return nil, nil, api.Invalid(at+".version", "no version %d of the schema of %s", r.Version, r.Type)
			}
			return nil, nil, api.Invalid(at+".type", "no schema is registered for %s", r.Type)
		}
		p, err := tr.Prepare(r, &sc)
		if err != nil {
			return nil, nil, api.Within(at, err)
		}
		preps[i] = p
	}
	return key, preps, nil
}

// Seal pseudonymises and seals records for c.Member as Publish does,
// without signing or appending them: the entries, and the requirements on
// the subjects' data keys that an append of them needs (new keys are
// created in it).
func (s *Service) Seal(ctx context.Context, c api.Caller, records []api.Record) ([]ledger.Entry, []ledger.KeyRequirement, error) {
	if err := (&api.PublishRequest{Records: records}).Validate(); err != nil {
		return nil, nil, err
	}
	_, preps, err := s.prepareAll(ctx, c, records)
	if err != nil {
		return nil, nil, err
	}
	subjects := make([]pseudonym.Pseudonym, len(preps))
	for i := range preps {
		subjects[i] = preps[i].Subject()
	}
	keys, reqs, _, err := s.subjectKeys(ctx, subjects)
	if err != nil {
		return nil, nil, err
	}
	entries := make([]ledger.Entry, len(preps))
	for i := range preps {
		if entries[i], err = preps[i].Seal(keys[preps[i].Subject()]); err != nil {
			return nil, nil, err
		}
	}
	return entries, reqs, nil
}

func receipts(rs []ledger.Receipt) []api.Receipt {
	out := make([]api.Receipt, len(rs))
	for i, rc := range rs {
		out[i] = api.Receipt{ID: rc.ID, Index: rc.Index, Leaf: rc.Leaf}
	}
	return out
}

// forgetSubjects drops the remembered data keys of the batch's subjects.
func (s *Service) forgetSubjects(preps []policy.Prepared) {
	ps := make([]pseudonym.Pseudonym, len(preps))
	for i := range preps {
		ps[i] = preps[i].Subject()
	}
	s.cache.forget(ps)
}

func (s *Service) sealAndAppend(ctx context.Context, c api.Caller, key ed25519.PrivateKey, preps []policy.Prepared) ([]ledger.Receipt, error) {
	subjects := make([]pseudonym.Pseudonym, len(preps))
	for i := range preps {
		subjects[i] = preps[i].Subject()
	}
	keys, reqs, created, err := s.subjectKeys(ctx, subjects)
	if err != nil {
		return nil, err
	}
	entries := make([]ledger.Entry, len(preps))
	seen := make(map[uuid.UUID]int, len(preps))
	for i := range preps {
		e, err := preps[i].Seal(keys[preps[i].Subject()])
		if err != nil {
			return nil, err
		}
		if j, dup := seen[e.ID]; dup && string(entries[j].Payload) != string(e.Payload) {
			return nil, api.Invalid(fmt.Sprintf("records[%d].id", i), "repeats records[%d].id with different content", j)
		}
		seen[e.ID] = i
		entries[i] = e
	}
	rs, err := s.submitRecords(ctx, c, key, entries, reqs)
	if err == nil {
		for p, k := range created {
			s.cache.rememberSubject(p, k)
		}
	}
	return rs, err
}

// batchSubmission is a signed batch as the leader appends it.
type batchSubmission struct {
	records []ledger.Entry
	batch   ledger.Entry
	reqs    []ledger.KeyRequirement
	pub     ed25519.PublicKey
}

func (b *batchSubmission) wire() api.SealedBatch {
	out := api.SealedBatch{Records: make([]api.SealedRecord, len(b.records)), Keys: make([]api.SealedKey, len(b.reqs)), PublicKey: b.pub}
	for i, e := range b.records {
		out.Records[i] = api.SealedRecord{ID: e.ID, Time: e.Time, Payload: e.Payload}
	}
	for i, k := range b.reqs {
		out.Keys[i] = api.SealedKey{Name: k.Name, Create: k.Create, Hash: k.Hash[:]}
	}
	_, out.Signature, _ = format.DecodeBatch(b.batch.Payload)
	return out
}

// submission rebuilds the entries of a sealed batch for member, and
// checks its shape: records of the binary format, one signature over them
// all (checkSealed checks the content).
func submission(b *api.SealedBatch, member string) (batchSubmission, error) {
	var s batchSubmission
	if len(b.Records) == 0 {
		return s, api.Invalid("records", "required: at least one record")
	}
	if len(b.Signature) != ed25519.SignatureSize {
		return s, api.Invalid("signature", "an Ed25519 signature of %d bytes", ed25519.SignatureSize)
	}
	if b.PublicKey != nil && len(b.PublicKey) != ed25519.PublicKeySize {
		return s, api.Invalid("public_key", "an Ed25519 public key of %d bytes", ed25519.PublicKeySize)
	}
	s.reqs = make([]ledger.KeyRequirement, len(b.Keys))
	for i, k := range b.Keys {
		if len(k.Hash) != len(s.reqs[i].Hash) || len(k.Name) == 0 {
			return s, api.Invalid(fmt.Sprintf("keys[%d]", i), "a key name and a SHA-256 hash")
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
			return s, api.Invalid(at+".id", "required")
		}
		if p, err := format.SplitBinaryPayload(r.Payload); err != nil || len(p.Box) == 0 {
			return s, api.Invalid(at+".payload", "not a sealed record")
		}
		e := ledger.Entry{ID: r.ID, Kind: format.KindRecord, Author: member, Time: r.Time.UTC(), Payload: r.Payload}
		s.records[i], leaves[i] = e, e.LeafHash()
		if e.Time.After(latest) {
			latest = e.Time
		}
	}
	s.batch = format.BatchEntry(member, latest, leaves, b.Signature)
	if b.PublicKey != nil {
		s.pub = ed25519.PublicKey(b.PublicKey)
	}
	return s, nil
}

// AppendSealed appends, on the leader, a batch another node sealed and
// signed for c.Member (POST /v1/records/signed): its signature first, then
// what is sealed, then the append.
func (s *Service) AppendSealed(ctx context.Context, c api.Caller, b api.SealedBatch) ([]api.Receipt, error) {
	if !s.IsLeader() {
		l, err := s.leader(c)
		if err != nil {
			return nil, err
		}
		rs, err := l.PublishSigned(ctx, b)
		return rs, err
	}
	sub, err := submission(&b, c.Member)
	if err != nil {
		return nil, err
	}
	pub, known := s.state.MemberKey(c.Member)
	if !known {
		pub = sub.pub
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, api.Invalid("public_key", "member %s has no key in the ledger yet: send its Ed25519 public key", c.Member)
	}
	leaves, sig, _ := format.DecodeBatch(sub.batch.Payload)
	if err := s.checkBatchSignature(ctx, c.Member, pub, known, leaves, sig); err != nil {
		return nil, err
	}
	if err := s.checkSealed(ctx, &sub); err != nil {
		return nil, err
	}
	rs, err := s.appendBatch(ctx, c.Member, sub)
	if err != nil {
		return nil, Translate(err)
	}
	return receipts(rs), nil
}

// checkSealed checks, on the leader, a batch another node sealed, as far
// as the leader can: every key requirement names a record's subject, and
// no other; every subject is a pseudonym, never an identifier in clear;
// every record follows a registered schema version, at a time in range;
// every new data key unwraps under the federation's key; every box opens
// under its subject's key, to fields its schema keeps. So that no member
// writes into the log what an export could not read, or what erasure
// could not shred.
func (s *Service) checkSealed(ctx context.Context, b *batchSubmission) error {
	reqs := make(map[string]*ledger.KeyRequirement, len(b.reqs))
	for i := range b.reqs {
		name := string(b.reqs[i].Name)
		if reqs[name] != nil {
			return api.Invalid(fmt.Sprintf("keys[%d]", i), "names a key twice")
		}
		reqs[name] = &b.reqs[i]
	}
	dks := make(map[string]pseudonym.Secret, len(reqs))
	for i, e := range b.records {
		at := fmt.Sprintf("records[%d]", i)
		bp, err := format.SplitBinaryPayload(e.Payload)
		if err != nil {
			return api.Invalid(at+".payload", "not a sealed record")
		}
		if !bp.IsPseudonym() {
			return api.Invalid(at+".payload", "the subject is not a pseudonym")
		}
		sc, ok := s.state.Schema(string(bp.Type), bp.Version)
		if !ok || bp.Version == 0 {
			return api.Invalid(at+".payload", "no version %d of the schema of %q", bp.Version, bp.Type)
		}
		if y := e.Time.Year(); y < 1900 || y > 2200 {
			return api.Invalid(at+".time", "outside the years 1900 to 2200")
		}
		p := format.RecordPayload{Type: string(bp.Type), Version: bp.Version, Subject: bp.Pseudonym(), Box: bp.Box}
		name := string(format.SubjectKeyName(p.Subject))
		dk, ok := dks[name]
		if !ok {
			req := reqs[name]
			if req == nil {
				return api.Invalid(at+".payload", "sealed under a key the batch does not name")
			}
			wrapped := req.Create
			if wrapped == nil {
				if wrapped, err = s.storedKey(ctx, req); err != nil {
					return err
				}
			}
			if dk, err = s.cache.unwrap(s.keys, req.Name, wrapped); err != nil {
				return api.Invalid(at+".keys", "a data key that does not unwrap under the federation's key")
			}
			dks[name] = dk
		}
		fields, err := format.OpenFields(dk, e, &p)
		if err != nil {
			return api.Invalid(at+".payload", "a box that does not open under its subject's key")
		}
		for f, raw := range fields {
			if f == format.ConsentSubjectField {
				// The subject's pseudonym in the member's domain, for a
				// record in the federation's: its consent is decided
				// under it. Absent from a record sealed before it was
				// written (such a record is never exported).
				if ps, ok := format.JSONString(raw); sc.SubjectDomain != "federation" || !ok || !isPseudonym(ps) {
					return api.Invalid(at+".payload", "a consent subject that is not the pseudonym of a record in the federation's domain")
				}
				continue
			}
			if fd := sc.Field(f); fd == nil || fd.Policy.Action == "drop" {
				return api.Invalid(at+".payload", "a field %q that its schema does not keep", f)
			}
		}
	}
	if len(dks) != len(reqs) {
		return api.Invalid("keys", "names a key that no record is sealed under")
	}
	return nil
}

// isPseudonym reports whether s is a pseudonym as package pseudonym makes
// them, in the form the binary payload stores.
func isPseudonym(s string) bool {
	p := pseudonym.Pseudonym(s)
	if _, err := p.KeyVersion(); err != nil {
		return false
	}
	bp := format.AppendPseudonym(nil, p)
	kv, _ := binary.Uvarint(bp)
	return kv != 0
}

// checkBatchSignature verifies a batch signature under pub, member's key
// in this node's state (known) or the one its first batch brings. When it
// fails under a known key, the state may lag behind a key rotation written
// through another node: it catches up and checks once more.
func (s *Service) checkBatchSignature(ctx context.Context, member string, pub ed25519.PublicKey, known bool, leaves []merkle.Hash, sig []byte) error {
	msg := format.BatchMessage(member, leaves)
	if s.state.VerifySignature(pub, msg, sig) {
		return nil
	}
	if known {
		s.AwaitView(ctx)
		if cur, ok := s.state.MemberKey(member); ok && !cur.Equal(pub) && s.state.VerifySignature(cur, msg, sig) {
			return nil
		}
	}
	return fmt.Errorf("%w: the records of %s", api.ErrBadSignature, member)
}

// storedKey reads the wrapped key a requirement names from the key store,
// as the requirement says it is.
func (s *Service) storedKey(ctx context.Context, req *ledger.KeyRequirement) ([]byte, error) {
	var w []byte
	err := s.ledger.Read(ctx, ledger.Stale, func(v *ledger.View) error {
		var err error
		w, err = v.Key(req.Name)
		return err
	})
	switch {
	case errors.Is(err, ledger.ErrKeyDestroyed):
		return nil, api.ErrErased
	case errors.Is(err, ledger.ErrNotFound):
		return nil, &ledger.KeyError{Name: req.Name, Err: ledger.ErrKeyConflict}
	case err != nil:
		return nil, err
	case sha256Sum(w) != req.Hash:
		return nil, &ledger.KeyError{Name: req.Name, Err: ledger.ErrKeyConflict}
	}
	return w, nil
}
