package server

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/ledger"
)

func sha256Sum(b []byte) [sha256.Size]byte { return sha256.Sum256(b) }

// signBatchHere signs entries as format.SignBatch does, and remembers the
// signature as verified: this node made it with the member's key.
func (s *Service) signBatchHere(key ed25519.PrivateKey, author string, entries []ledger.Entry) ledger.Entry {
	e := format.SignBatch(key, author, entries)
	leaves, sig, _ := format.DecodeBatch(e.Payload)
	s.state.RememberSignature(key.Public().(ed25519.PublicKey), format.BatchMessage(author, leaves), sig)
	return e
}

// submitBatch appends a signed batch: here on the leader, or through the
// leader's POST /v1/records/signed with the caller's credentials.
func (s *Service) submitBatch(ctx context.Context, c api.Caller, sub batchSubmission) ([]ledger.Receipt, error) {
	if s.IsLeader() {
		return s.appendBatch(ctx, c.Member, sub)
	}
	l, err := s.leader(c)
	if err != nil {
		return nil, err
	}
	out, err := l.PublishSigned(ctx, sub.wire())
	if err != nil {
		return nil, err
	}
	rs := make([]ledger.Receipt, len(out))
	for i, rc := range out {
		rs[i] = ledger.Receipt{ID: rc.ID, Index: rc.Index, Leaf: rc.Leaf}
	}
	return rs, nil
}

// appendBatch appends a member's signed batch on the leader, after
// checking it as the replicas will. Publishers hold keyMu for reading, a
// key rotation for writing, so that no batch checked under a member's old
// key is applied after its new one.
func (s *Service) appendBatch(ctx context.Context, member string, sub batchSubmission) ([]ledger.Receipt, error) {
	s.keyMu.RLock()
	if _, known := s.state.MemberKey(member); !known {
		// A member's first signed entry registers its key: one at a time.
		s.keyMu.RUnlock()
		s.signedMu.Lock()
		defer s.signedMu.Unlock()
		s.AwaitView(ctx)
		s.keyMu.RLock()
	}
	defer s.keyMu.RUnlock()
	var entries []ledger.Entry
	register, pub, isNew, err := s.memberKeyEntry(member, sub.pub, time.Now().UTC())
	if err != nil {
		return nil, err
	}
	if isNew {
		entries = append(entries, register)
	}
	leaves, sig, err := format.DecodeBatch(sub.batch.Payload)
	if err != nil {
		return nil, err
	}
	if err := s.checkBatchSignature(ctx, member, pub, !isNew, leaves, sig); err != nil {
		return nil, err
	}
	// A batch whose records the ledger holds already (a retry) stores
	// nothing new, not even its signature.
	if rs, all, err := s.stored(ctx, sub.records); err != nil || all {
		return rs, err
	}
	head := len(entries) + 1
	entries = append(entries, sub.batch)
	entries = append(entries, sub.records...)
	if err := s.state.Check(applied(entries)...); err != nil {
		return nil, err
	}
	start := time.Now()
	rs, err := s.ledger.AppendWithKeys(ctx, sub.reqs, entries...)
	s.metrics.appendLatency(time.Since(start), err)
	if err != nil {
		return nil, err
	}
	// Acknowledge what the replicas accept: wait for this node's state to
	// apply the batch (under keyMu, so that no rotation overtakes it), and
	// answer why it refused it, if it did (a state that lagged behind a
	// key change when the signature was checked).
	if batch := rs[head-1]; !batch.Duplicate {
		if err := s.awaitApplied(ctx, batch.Index); err != nil {
			return nil, fmt.Errorf("%w: the records at %d to %d stay in the log, refused: publish them again under new ids", err, rs[head].Index, rs[len(rs)-1].Index)
		}
	}
	return rs[head:], nil
}

// stored returns the receipts of the records when the ledger holds them
// all already, and whether it does. A record id the ledger holds with other
// content is a conflict.
func (s *Service) stored(ctx context.Context, records []ledger.Entry) ([]ledger.Receipt, bool, error) {
	rs := make([]ledger.Receipt, len(records))
	all := true
	// While the replicas have refused no record (forged ones only), the
	// first record not found ends the check: the append dedupes the
	// rest. Otherwise every record is looked for, so that a batch that
	// mixes new records with refused ones is refused, not answered with
	// the refused records' receipts.
	every := s.state.HasRefusals()
	err := s.ledger.Read(ctx, ledger.Stale, func(v *ledger.View) error {
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
			if err := s.state.RecordRefusal(rc.Index); err != nil {
				return fmt.Errorf("%w: record %s at %d (%v); publish it again under a new id", api.ErrRefused, records[i].ID, rc.Index, err)
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

// SignAndAppend signs entries (records this node sealed, or, for a
// benchmark's floor, any record entries) as c.Member with key, and appends
// them as one batch, checked as the replicas will check it. It is what
// every publish ends with.
func (s *Service) SignAndAppend(ctx context.Context, c api.Caller, key ed25519.PrivateKey, entries []ledger.Entry, reqs []ledger.KeyRequirement) ([]ledger.Receipt, error) {
	rs, err := s.submitAlone(ctx, c, key, entries, reqs)
	return rs, Translate(err)
}

// applied returns the entries an append of entries gives the replicas to
// apply: a record repeated in one request (the same id and content; the
// ledger refuses the same id with other content) is stored, and applied,
// once.
func applied(entries []ledger.Entry) []ledger.Entry {
	seen := make(map[uuid.UUID]bool, len(entries))
	out := entries[:0:0]
	for _, e := range entries {
		if seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		out = append(out, e)
	}
	return out
}
