package server

import (
	"errors"
	"testing"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/ledger"
	"coapp.coop/pseudonym"
)

func sealedRequest(t *testing.T, s *Service, records ...api.Record) *signReq {
	t.Helper()
	sr := &signReq{done: make(chan signResult, 1)}
	entries, reqs, err := s.Seal(testCtx(t), api.Caller{Member: "coop-a"}, records)
	if err != nil {
		t.Fatal(err)
	}
	sr.entries, sr.reqs = entries, reqs
	sr.bytes = payloadBytes(sr.entries)
	return sr
}

// TestGatheredBatch signs the records of three requests as one batch: one
// signature entry before all their records, each request handed the
// receipts of its own records, in order.
func TestGatheredBatch(t *testing.T) {
	s := newService(t)
	key, err := s.signingKey("coop-a")
	if err != nil {
		t.Fatal(err)
	}
	_, before := kindsFrom(t, s, 0)
	batch := []*signReq{
		sealedRequest(t, s, purchase("anna@example.org", 1), purchase("bruno@example.org", 2)),
		sealedRequest(t, s, purchase("carla@example.org", 3)),
		sealedRequest(t, s, purchase("dario@example.org", 4), purchase("elena@example.org", 5), purchase("fabio@example.org", 6)),
	}
	s.appendGathered(api.Caller{Member: "coop-a"}, key, batch)
	for i, sr := range batch {
		res := <-sr.done
		if res.err != nil || res.alone {
			t.Fatalf("request %d: %+v", i, res)
		}
		if len(res.receipts) != len(sr.entries) {
			t.Fatalf("request %d: %d receipts for %d records", i, len(res.receipts), len(sr.entries))
		}
		for j, rc := range res.receipts {
			if rc.ID != sr.entries[j].ID || rc.Leaf != sr.entries[j].LeafHash() {
				t.Fatalf("request %d, record %d: receipt %+v is not its record's", i, j, rc)
			}
		}
	}
	kinds, after := kindsFrom(t, s, before)
	if kinds[format.KindBatch] != 1 || kinds[format.KindRecord] != 6 || after-before != 7 {
		t.Fatalf("gathered batch wrote %v (%d entries), want one signature and 6 records", kinds, after-before)
	}
	if err := s.state.WaitApplied(testCtx(t), after-1); err != nil {
		t.Fatal(err)
	}
	if bad := s.state.RefusedRecords(); len(bad) != 0 {
		t.Fatalf("the view refused gathered records: %v", bad)
	}
	if batches, requests, fallbacks := s.metrics.SignedBatches(); batches != 1 || requests != 3 || fallbacks != 0 {
		t.Errorf("metrics count %d batches, %d requests, %d fallbacks; want 1, 3, 0", batches, requests, fallbacks)
	}
}

// TestGatheredBatchFailsAlone: when one request of a gathered batch cannot
// be written (an id the ledger holds with other content), the batch
// writes nothing and each request is told to go alone, where only the
// bad one fails.
func TestGatheredBatchFailsAlone(t *testing.T) {
	s := newService(t)
	key, err := s.signingKey("coop-a")
	if err != nil {
		t.Fatal(err)
	}
	first := purchase("anna@example.org", 1)
	if _, err := s.Publish(testCtx(t), api.Caller{Member: "coop-a"}, []api.Record{first}); err != nil {
		t.Fatal(err)
	}
	reused := purchase("anna@example.org", 2)
	reused.ID = first.ID // other content under the same id
	good, bad := sealedRequest(t, s, purchase("bruno@example.org", 3)), sealedRequest(t, s, reused)
	_, before := kindsFrom(t, s, 0)
	s.appendGathered(api.Caller{Member: "coop-a"}, key, []*signReq{good, bad})
	for i, sr := range []*signReq{good, bad} {
		if res := <-sr.done; !res.alone {
			t.Fatalf("request %d: %+v, want to go alone", i, res)
		}
	}
	if _, after := kindsFrom(t, s, 0); after != before {
		t.Fatalf("a failed gathered batch wrote %d entries", after-before)
	}
	if _, _, fallbacks := s.metrics.SignedBatches(); fallbacks != 2 {
		t.Errorf("metrics count %d fallbacks, want 2", fallbacks)
	}
	if _, err := s.submitAlone(testCtx(t), api.Caller{Member: "coop-a"}, key, good.entries, good.reqs); err != nil {
		t.Fatalf("the good request alone: %v", err)
	}
	var conflict *ledger.ConflictError
	if _, err := s.submitAlone(testCtx(t), api.Caller{Member: "coop-a"}, key, bad.entries, bad.reqs); !errors.As(err, &conflict) {
		t.Fatalf("the bad request alone: %v, want a *ledger.ConflictError", err)
	}
}

// TestRefusedRecordsNotAcknowledged: a request that carries a record the
// replicas refused (here appended past the node, unsigned) is refused
// with ErrRefused and writes nothing, alone or gathered behind another
// request's new records; the other request is written.
func TestRefusedRecordsNotAcknowledged(t *testing.T) {
	s := newService(t)
	ctx := testCtx(t)
	key, err := s.signingKey("coop-a")
	if err != nil {
		t.Fatal(err)
	}
	forged := sealedRequest(t, s, purchase("anna@example.org", 1))
	rs, err := s.ledger.AppendWithKeys(ctx, forged.reqs, forged.entries...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.state.WaitApplied(ctx, rs[0].Index); err != nil {
		t.Fatal(err)
	}
	if s.state.RecordRefusal(rs[0].Index) == nil {
		t.Fatal("the unsigned record was not refused")
	}
	retry := &signReq{entries: forged.entries, bytes: forged.bytes, done: make(chan signResult, 1)}
	_, before := kindsFrom(t, s, 0)

	// Alone, behind a new record of the same request.
	mixed := sealedRequest(t, s, purchase("bruno@example.org", 2))
	mixed.entries = append(mixed.entries, forged.entries...)
	if _, err := s.submitAlone(ctx, api.Caller{Member: "coop-a"}, key, mixed.entries, mixed.reqs); !errors.Is(err, api.ErrRefused) {
		t.Fatalf("a request mixing a new record with a refused one: %v, want ErrRefused", err)
	}
	if _, after := kindsFrom(t, s, 0); after != before {
		t.Fatalf("the refused request wrote %d entries", after-before)
	}

	// Gathered behind another request's new records.
	fresh := sealedRequest(t, s, purchase("carla@example.org", 3))
	s.appendGathered(api.Caller{Member: "coop-a"}, key, []*signReq{fresh, retry})
	for i, sr := range []*signReq{fresh, retry} {
		if res := <-sr.done; !res.alone {
			t.Fatalf("request %d: %+v, want to go alone", i, res)
		}
	}
	if _, after := kindsFrom(t, s, 0); after != before {
		t.Fatalf("a gathered batch holding a refused record wrote %d entries", after-before)
	}
	if _, err := s.submitAlone(ctx, api.Caller{Member: "coop-a"}, key, retry.entries, nil); !errors.Is(err, api.ErrRefused) {
		t.Fatalf("the refused record alone: %v, want ErrRefused", err)
	}
	if _, err := s.submitAlone(ctx, api.Caller{Member: "coop-a"}, key, fresh.entries, fresh.reqs); err != nil {
		t.Fatalf("the fresh request alone: %v", err)
	}
}

// TestGatheredBatchSharesAKey gathers two requests about the same new
// person, sealed under the same new data key: the batch requires the key
// once, creates it, and both records are written under it.
func TestGatheredBatchSharesAKey(t *testing.T) {
	s := newService(t)
	key, err := s.signingKey("coop-a")
	if err != nil {
		t.Fatal(err)
	}
	var reqs []*signReq
	for i := range 2 {
		r := purchase("dora@example.org", 10+i)
		_, preps, err := s.prepareAll(testCtx(t), api.Caller{Member: "coop-a"}, []api.Record{r})
		if err != nil {
			t.Fatal(err)
		}
		p := preps[0]
		keys, kr, created, err := s.subjectKeys(testCtx(t), []pseudonym.Pseudonym{p.Subject()})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			s.cache.rememberSubject(p.Subject(), created[p.Subject()]) // the second request finds it
		} else if kr[0].Create != nil {
			t.Fatal("the second request creates the key again")
		}
		e, err := p.Seal(keys[p.Subject()])
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, &signReq{entries: []ledger.Entry{e}, reqs: kr, bytes: payloadBytes([]ledger.Entry{e}), done: make(chan signResult, 1)})
	}
	s.appendGathered(api.Caller{Member: "coop-a"}, key, reqs)
	for i, sr := range reqs {
		if res := <-sr.done; res.err != nil || res.alone {
			t.Fatalf("request %d: %+v", i, res)
		}
	}
	if _, _, fallbacks := s.metrics.SignedBatches(); fallbacks != 0 {
		t.Errorf("%d requests went alone", fallbacks)
	}
}

// TestGatherTake keeps out of a batch a request that needs a data key the
// batch already requires with another value (two requests that each
// created a key for the same new person), and what does not fit.
func TestGatherTake(t *testing.T) {
	req := func(name string, hash byte, records int) *signReq {
		sr := &signReq{entries: make([]ledger.Entry, records), bytes: records * 100}
		sr.reqs = []ledger.KeyRequirement{{Name: []byte(name), Hash: [32]byte{hash}}}
		return sr
	}
	a, b, c, d := req("k1", 1, 1), req("k1", 2, 1), req("k1", 1, 1), req("k2", 1, coalesceMaxRecords)
	g := &coalesceGroup{pending: []*signReq{a, b, c, d}}
	got := g.take(1 << 20)
	if len(got) != 2 || got[0] != a || got[1] != c {
		t.Fatalf("took %d requests, want a and c", len(got))
	}
	if len(g.pending) != 2 || g.pending[0] != b || g.pending[1] != d {
		t.Fatalf("left %d pending, want b and d", len(g.pending))
	}
	if got := g.take(1 << 20); len(got) != 1 || got[0] != b {
		t.Fatal("the next batch does not start with b")
	}
	if got := g.take(1 << 20); len(got) != 1 || got[0] != d {
		t.Fatal("a full request does not go in a batch of its own")
	}
	if got := g.take(1 << 20); len(got) != 0 || len(g.pending) != 0 {
		t.Fatal("an empty group gave a batch")
	}
	// A request whose context ended while it waited is dropped.
	e, f := req("k3", 1, 1), req("k4", 1, 1)
	e.abandoned = true
	g.pending = []*signReq{e, f}
	if got := g.take(1 << 20); len(got) != 1 || got[0] != f || len(g.pending) != 0 {
		t.Fatalf("took %d requests, left %d: an abandoned request was kept", len(got), len(g.pending))
	}
}

// TestRepeatedRecordInOneRequest publishes the same record twice in one
// request: the ledger stores it once, and the leader's check, which sees
// what the replicas will apply, accepts it.
func TestRepeatedRecordInOneRequest(t *testing.T) {
	s := newService(t)
	r := purchase("anna@example.org", 5)
	rs, err := s.Publish(testCtx(t), api.Caller{Member: "coop-a"}, []api.Record{r, r})
	if err != nil {
		t.Fatalf("the same record twice in one request: %v", err)
	}
	if len(rs) != 2 || rs[0] != rs[1] {
		t.Fatalf("receipts %+v, want the same one twice", rs)
	}
}
