package state

import (
	"container/heap"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"sort"
	"sync"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/consent"
	"coapp.coop/ledger/entry"
)

// State is a federation's state as one replica has applied it.
type State struct {
	mu      sync.RWMutex
	genesis *format.Genesis
	nodes   map[string]api.NodeInfo
	tokens  map[string]tokenRec
	schemas map[string][]api.Schema // by type, versions in order from 1
	next    uint64                  // the next ledger index to apply

	consents   *consent.Index
	memberKeys map[string]ed25519.PublicKey // the current key
	keyHistory map[string][]api.KeyAt
	// rejected remembers why recent entries were refused on apply, by
	// index, for the writer waiting on them.
	rejected map[uint64]error
	// batch is the batch signature applied last, for the records that
	// follow it; badRecords the record entries refused, by index, for
	// good (only forged or damaged entries: the leader checks every
	// batch before appending it).
	batch      *pendingBatch
	badRecords map[uint64]error
	sigs       verifiedSigs

	// waiters wait for the state to apply an index, each woken once it
	// has: a heap, so that an entry applied wakes only those waiting for
	// it, not every writer in flight.
	waitMu  sync.Mutex
	waiters waitHeap

	gov governance
}

// New returns the state of an empty ledger.
func New() *State {
	return &State{
		nodes: map[string]api.NodeInfo{}, tokens: map[string]tokenRec{}, schemas: map[string][]api.Schema{},
		consents: consent.NewIndex(consent.NewVocabulary()), memberKeys: map[string]ed25519.PublicKey{}, keyHistory: map[string][]api.KeyAt{},
		rejected: map[uint64]error{}, badRecords: map[uint64]error{}, gov: newGovernance(),
	}
}

// step applies entries, or, when dry, only checks them: the same code
// decides both. A dry step keeps what its earlier entries would change
// that later ones of the same append depend on (a member's first key, a
// batch signature) to itself.
type step struct {
	s     *State
	dry   bool
	keys  map[string]ed25519.PublicKey // registered by earlier entries of a dry step
	batch *pendingBatch
}

// Apply applies the entry at e.Index, which must be the next one. It
// returns why the replicas refuse it, or nil; either way the state has
// moved past it, and the refusal is kept for Rejection (or RecordRefusal).
func (s *State) Apply(e entry.Entry) error {
	s.mu.Lock()
	err := s.applyLocked(e)
	s.mu.Unlock()
	s.waitMu.Lock()
	for len(s.waiters) > 0 && s.waiters[0].index <= e.Index {
		close(heap.Pop(&s.waiters).(waiter).ch)
	}
	s.waitMu.Unlock()
	return err
}

func (s *State) applyLocked(e entry.Entry) error {
	s.next = e.Index + 1
	if e.Kind != format.KindRecord && e.Kind != format.KindBatch {
		s.batch = nil // a batch's records follow it in one append
	}
	t := &step{s: s, batch: s.batch}
	err := t.entry(e)
	s.batch = t.batch
	switch {
	case err == nil:
	case e.Kind == format.KindRecord:
		s.badRecords[e.Index] = err
	default:
		s.reject(e.Index, err)
	}
	return err
}

// Check reports what Apply would refuse if entries were applied next, in
// order, without applying them: the first refusal, naming the entry when
// there are several. The leader calls it before it proposes them.
func (s *State) Check(entries ...entry.Entry) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := &step{s: s, dry: true, keys: map[string]ed25519.PublicKey{}}
	for i, e := range entries {
		if e.Kind != format.KindRecord && e.Kind != format.KindBatch {
			t.batch = nil
		}
		if err := t.entry(e); err != nil {
			if len(entries) > 1 {
				return fmt.Errorf("entry %d (%s): %w", i, e.Kind, err)
			}
			return err
		}
	}
	return nil
}

// entry dispatches an entry by kind.
func (t *step) entry(e entry.Entry) error {
	switch e.Kind {
	case format.KindRecord:
		return t.record(e)
	case format.KindBatch:
		t.batch = nil
		return t.batchSignature(e)
	case format.KindGenesis:
		return t.genesis(e)
	case format.KindNode:
		return t.node(e)
	case format.KindToken:
		return t.token(e)
	case format.KindSchema:
		return t.schema(e)
	case format.KindMemberKey:
		return t.memberKey(e)
	case format.KindPurpose:
		return t.purpose(e)
	case format.KindConsent:
		return t.consent(e)
	case format.KindProposal:
		return t.proposal(e)
	case format.KindVote:
		return t.vote(e)
	case format.KindExport:
		return t.export(e)
	case format.KindKeyRotation:
		return t.keyRotation(e)
	}
	return nil // a kind the federation does not follow
}

// key returns a member's current key, as earlier entries of this step
// leave it.
func (t *step) key(member string) (ed25519.PublicKey, bool) {
	if k, ok := t.keys[member]; ok {
		return k, true
	}
	k, ok := t.s.memberKeys[member]
	return k, ok
}

// reject remembers why the entry at index was refused, for its writer;
// only the latest ones.
func (s *State) reject(index uint64, err error) {
	if len(s.rejected) >= 1024 {
		clear(s.rejected)
	}
	s.rejected[index] = err
}

// Rejection returns why the entry at index was refused, or nil when it
// was applied (or is too old to be remembered).
func (s *State) Rejection(index uint64) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rejected[index]
}

// Applied returns the next index to apply: the number of entries applied.
func (s *State) Applied() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.next
}

// WaitFor returns a channel closed once the state has applied index, or
// nil when it has already.
func (s *State) WaitFor(index uint64) <-chan struct{} {
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	if s.Applied() > index {
		return nil
	}
	ch := make(chan struct{})
	heap.Push(&s.waiters, waiter{index: index, ch: ch})
	return ch
}

// WaitApplied waits until the state has applied index, or ctx ends.
func (s *State) WaitApplied(ctx context.Context, index uint64) error {
	ch := s.WaitFor(index)
	if ch == nil {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-ch:
		return nil
	}
}

// waiter waits for the state to apply index.
type waiter struct {
	index uint64
	ch    chan struct{}
}

// waitHeap is a min-heap of waiters by index (container/heap).
type waitHeap []waiter

func (h waitHeap) Len() int           { return len(h) }
func (h waitHeap) Less(i, j int) bool { return h[i].index < h[j].index }
func (h waitHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *waitHeap) Push(x any)        { *h = append(*h, x.(waiter)) }
func (h *waitHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = waiter{}
	*h = old[:len(old)-1]
	return w
}

// tokenRec is a token as the ledger holds it: the hash of its secret.
type tokenRec struct {
	hash   [sha256.Size]byte
	member string
	admin  bool
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
