package server

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/ledger"
)

// Coalescing signed batches. A member's app often sends many small
// requests at once; each would cost a signature on this node and a
// verification on every replica, which for one record per request is most
// of the work of publishing it. Requests of one member that arrive while
// its earlier batches are in flight are instead gathered and signed
// together, once, as one batch: one signature and one append for all of
// them. Each request stays atomic: a gathered batch is one ledger group,
// all written or none; when it fails, each request is signed and appended
// again on its own, so that each gets its own outcome (one request's
// conflicting id does not fail the others).

// coalesceMax bounds a gathered batch: its records and payload bytes
// (see also coalesceBytes). A request larger than that goes alone.
const (
	coalesceMaxRecords = 1024
	coalesceMaxBytes   = 256 << 10
	// coalesceInflight is how many gathered batches of one member are
	// appended at once; requests arriving while all are in flight wait
	// for the next.
	coalesceInflight = 4
	// coalesceTimeout bounds the append of a gathered batch, which no
	// single request's context governs.
	coalesceTimeout = 30 * time.Second
)

// coalesceKey identifies requests that may share a signature: the same
// member, signing key and credentials (a follower sends the batch to the
// leader with them).
type coalesceKey struct {
	member string
	pub    string
	token  string
	admin  bool
}

// coalescer holds the requests waiting to be signed, by key.
type coalescer struct {
	mu     sync.Mutex
	groups map[coalesceKey]*coalesceGroup
}

type coalesceGroup struct {
	pending []*signReq
	active  int // gathered batches in flight
}

// signReq is one request's sealed records, waiting for its receipts.
type signReq struct {
	entries []ledger.Entry
	reqs    []ledger.KeyRequirement
	bytes   int
	done    chan signResult // buffered: the signer never blocks
	// abandoned is set, under the coalescer's lock, when the request's
	// context ended while it waited: it is dropped, never appended.
	abandoned bool
}

type signResult struct {
	receipts []ledger.Receipt
	err      error
	alone    bool // the gathered batch failed: sign and append alone
}

// submitRecords signs a request's sealed records with key and appends them,
// gathered with other requests of the member when some are in flight.
func (s *Service) submitRecords(ctx context.Context, c api.Caller, key ed25519.PrivateKey, entries []ledger.Entry, reqs []ledger.KeyRequirement) ([]ledger.Receipt, error) {
	me := &signReq{entries: entries, reqs: reqs, bytes: payloadBytes(entries), done: make(chan signResult, 1)}
	if me.bytes > s.coalesceBytes() || len(entries) > coalesceMaxRecords {
		return s.submitAlone(ctx, c, key, entries, reqs)
	}
	k := coalesceKey{member: c.Member, pub: string(key.Public().(ed25519.PublicKey)), token: c.Token, admin: c.Admin}
	co := &s.coalesce
	co.mu.Lock()
	if co.groups == nil {
		co.groups = map[coalesceKey]*coalesceGroup{}
	}
	g := co.groups[k]
	if g == nil {
		g = &coalesceGroup{}
		co.groups[k] = g
	}
	g.pending = append(g.pending, me)
	if g.active < coalesceInflight {
		g.active++
		go s.signLoop(k, g, key)
	}
	co.mu.Unlock()
	select {
	case res := <-me.done:
		if res.alone {
			return s.submitAlone(ctx, c, key, entries, reqs)
		}
		return res.receipts, res.err
	case <-ctx.Done():
		co.mu.Lock()
		me.abandoned = true // unless a batch took it already: then its outcome is unknown
		co.mu.Unlock()
		return nil, ctx.Err()
	}
}

// submitAlone signs and appends one request's records.
func (s *Service) submitAlone(ctx context.Context, c api.Caller, key ed25519.PrivateKey, entries []ledger.Entry, reqs []ledger.KeyRequirement) ([]ledger.Receipt, error) {
	sub := batchSubmission{records: entries, batch: s.signBatchHere(key, c.Member, entries), reqs: reqs}
	if _, known := s.state.MemberKey(c.Member); !known {
		sub.pub = key.Public().(ed25519.PublicKey)
	}
	return s.submitBatch(ctx, c, sub)
}

// signLoop gathers the group's pending requests, signs them as one batch
// and appends it, until none is pending.
func (s *Service) signLoop(k coalesceKey, g *coalesceGroup, key ed25519.PrivateKey) {
	co := &s.coalesce
	c := api.Caller{Member: k.member, Admin: k.admin, Token: k.token}
	for {
		co.mu.Lock()
		batch := g.take(s.coalesceBytes())
		if len(batch) == 0 {
			g.active--
			if g.active == 0 && len(g.pending) == 0 {
				delete(co.groups, k)
			}
			co.mu.Unlock()
			return
		}
		co.mu.Unlock()
		s.appendGathered(c, key, batch)
	}
}

// take removes from the pending requests those that fit in one batch and
// need compatible keys (no data key required twice with different
// values), in order of arrival; the rest wait for the next batch.
func (g *coalesceGroup) take(maxBytes int) []*signReq {
	var out []*signReq
	var records, bytes int
	keys := map[string][sha256.Size]byte{}
	rest := g.pending[:0]
	for _, sr := range g.pending {
		if sr.abandoned {
			continue
		}
		fits := len(out) == 0 || records+len(sr.entries) <= coalesceMaxRecords && bytes+sr.bytes <= maxBytes
		if fits {
			for _, kr := range sr.reqs {
				if h, ok := keys[string(kr.Name)]; ok && h != kr.Hash {
					fits = false
					break
				}
			}
		}
		if !fits {
			rest = append(rest, sr)
			continue
		}
		for _, kr := range sr.reqs {
			keys[string(kr.Name)] = kr.Hash
		}
		out = append(out, sr)
		records += len(sr.entries)
		bytes += sr.bytes
	}
	clear(g.pending[len(rest):])
	g.pending = rest
	return out
}

// appendGathered signs the records of several requests as one batch,
// appends it, and hands each request its receipts; or, when the append
// fails, tells each to go alone.
func (s *Service) appendGathered(c api.Caller, key ed25519.PrivateKey, batch []*signReq) {
	var entries []ledger.Entry
	var reqs []ledger.KeyRequirement
	seen := map[string]int{}
	ids := map[uuid.UUID]bool{}
	for _, sr := range batch {
		for _, e := range sr.entries {
			ids[e.ID] = true
		}
		entries = append(entries, sr.entries...)
		for _, kr := range sr.reqs {
			// The same key twice (take saw to it that it has one value):
			// once, with its creation if either creates it.
			if i, ok := seen[string(kr.Name)]; ok {
				if reqs[i].Create == nil {
					reqs[i].Create = kr.Create
				}
				continue
			}
			seen[string(kr.Name)] = len(reqs)
			reqs = append(reqs, kr)
		}
	}
	ctx, cancel := context.WithTimeout(s.life, coalesceTimeout)
	defer cancel()
	if len(batch) == 1 {
		rs, err := s.submitAlone(ctx, c, key, entries, reqs)
		s.metrics.signedBatch(1, err != nil)
		batch[0].done <- signResult{receipts: rs, err: err}
		return
	}
	var rs []ledger.Receipt
	var err error
	if len(ids) != len(entries) {
		err = errRepeatedIDs // the same id in two requests: each alone decides
	} else {
		rs, err = s.submitAlone(ctx, c, key, entries, reqs)
	}
	if err == nil && len(rs) != len(entries) {
		err = errRepeatedIDs
	}
	if err != nil {
		s.log.Warn("a gathered batch failed; its requests are signed and appended alone", "requests", len(batch), "err", err)
	}
	s.metrics.signedBatch(len(batch), err != nil)
	at := 0
	for _, sr := range batch {
		if err != nil {
			sr.done <- signResult{alone: true}
			continue
		}
		sr.done <- signResult{receipts: rs[at : at+len(sr.entries) : at+len(sr.entries)]}
		at += len(sr.entries)
	}
}

// errRepeatedIDs fails a gathered batch in which two requests carry the
// same record id: each request alone gets its own outcome.
var errRepeatedIDs = errors.New("coapp: a record id in two gathered requests")

// coalesceBytes is the payload a gathered batch may carry: within the
// ledger's limit on one append, and the body limit of POST
// /v1/records/signed, through which a follower sends it to the leader.
func (s *Service) coalesceBytes() int {
	return int(min(coalesceMaxBytes, int64(s.ledger.MaxBatchBytes()/2), s.cfg.MaxBodyBytes))
}

func payloadBytes(entries []ledger.Entry) int {
	b := 0
	for i := range entries {
		b += len(entries[i].Payload) + 64
	}
	return b
}
