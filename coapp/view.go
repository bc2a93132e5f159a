package coapp

import (
	"container/heap"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"coapp.coop/consent"
	"coapp.coop/ledger"
)

// Ledger kinds of the federation's own entries.
const (
	KindGenesis = "coapp.genesis/v1"
	KindNode    = "coapp.node/v1"
	KindToken   = "coapp.token/v1"
)

// genesis founds a federation.
type genesis struct {
	Federation string `json:"federation"`
	Founder    string `json:"founder"`
	// Members are the founding members besides the founder; Rules the
	// governance rules (defaults when absent).
	Members []string `json:"members,omitempty"`
	Rules   *Rules   `json:"rules,omitempty"`
	// MemberKeys are founding members' Ed25519 public keys: the founder's,
	// made by the bootstrapping node, and those given at bootstrap. A
	// member without one registers its key with its first signed entry.
	MemberKeys map[string][]byte `json:"member_keys,omitempty"`
	// SignedRecords makes every replica refuse records that no batch
	// signature of their author covers (see KindBatch). Federations
	// founded before batch signatures lack it, and keep accepting
	// unsigned records.
	SignedRecords bool `json:"signed_records,omitempty"`
}

// NodeInfo describes a node of the federation: its Raft and HTTP
// addresses, as announced when it was bootstrapped or joined.
type NodeInfo struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	Voter    bool   `json:"voter"`
	Removed  bool   `json:"removed,omitempty"`
}

// tokenOp creates or revokes an API token. Only the SHA-256 of the token's
// secret is ever written.
type tokenOp struct {
	Op     string `json:"op"` // "create" or "revoke"
	ID     string `json:"id"`
	Hash   []byte `json:"hash,omitempty"`
	Member string `json:"member,omitempty"`
	Admin  bool   `json:"admin,omitempty"`
}

type tokenRec struct {
	hash   [sha256.Size]byte
	member string
	admin  bool
}

// view is the federation's state as this node has applied it: genesis,
// nodes, tokens. A goroutine follows the ledger into it. Every replica
// builds the same view at the same index.
type view struct {
	mu      sync.RWMutex
	genesis *genesis
	nodes   map[string]NodeInfo
	tokens  map[string]tokenRec
	schemas map[string][]Schema // by type, versions in order from 1
	next    uint64              // the next ledger index to apply

	consents   *consent.Index
	memberKeys map[string]ed25519.PublicKey // the current key
	keyHistory map[string][]keyAt
	// rejected remembers why recent signed entries were refused on
	// apply, by index, for the writer waiting on them.
	rejected map[uint64]error
	// batch is the batch signature applied last, for the records that
	// follow it; badRecords the record entries refused, by index, for
	// good (only forged or damaged entries: the leader checks every
	// batch before appending it).
	batch      *pendingBatch
	badRecords map[uint64]error
	sigs       verifiedSigs

	// waiters wait for the view to apply an index, each woken once it
	// has (waitFor): a heap, so that an entry applied wakes only those
	// waiting for it, not every writer in flight.
	waitMu  sync.Mutex
	waiters waitHeap

	gov *governance
}

func newView() *view {
	return &view{
		nodes: map[string]NodeInfo{}, tokens: map[string]tokenRec{}, schemas: map[string][]Schema{},
		consents: consent.NewIndex(consent.NewVocabulary()), memberKeys: map[string]ed25519.PublicKey{}, keyHistory: map[string][]keyAt{},
		rejected: map[uint64]error{}, badRecords: map[uint64]error{}, gov: newGovernance(),
	}
}

// follow applies the ledger to the view until ctx ends.
func (v *view) follow(ctx context.Context, l *ledger.Ledger, onErr func(error)) {
	for e, err := range l.Follow(ctx, 0, KindRecord, KindBatch, KindGenesis, KindNode, KindToken, KindSchema, KindMemberKey, KindPurpose, consent.Kind, KindProposal, KindVote, KindExport, KindKeyRotation) {
		if err != nil {
			if ctx.Err() == nil {
				onErr(err)
			}
			return
		}
		v.apply(e)
	}
}

func (v *view) apply(e ledger.Entry) {
	v.applyEntry(e)
	v.waitMu.Lock()
	for len(v.waiters) > 0 && v.waiters[0].index <= e.Index {
		close(heap.Pop(&v.waiters).(waiter).ch)
	}
	v.waitMu.Unlock()
}

// waitFor returns a channel closed once the view has applied index, or nil
// when it has already.
func (v *view) waitFor(index uint64) <-chan struct{} {
	v.waitMu.Lock()
	defer v.waitMu.Unlock()
	if v.applied() > index {
		return nil
	}
	ch := make(chan struct{})
	heap.Push(&v.waiters, waiter{index: index, ch: ch})
	return ch
}

// waiter waits for the view to apply index.
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

func (v *view) applyEntry(e ledger.Entry) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.next = e.Index + 1
	if e.Kind != KindRecord && e.Kind != KindBatch {
		v.batch = nil // a batch's records follow it in one append
	}
	switch e.Kind {
	case KindRecord:
		if err := v.checkRecord(e); err != nil {
			v.badRecords[e.Index] = err
		}
	case KindBatch:
		v.batch = nil
		if err := v.applyBatch(e); err != nil {
			v.reject(e.Index, err)
		}
	case KindGenesis:
		var g genesis
		if json.Unmarshal(e.Payload, &g) == nil && v.genesis == nil {
			v.genesis = &g
			v.gov.members[g.Founder] = true
			for _, m := range g.Members {
				v.gov.members[m] = true
			}
			if g.Rules != nil {
				v.gov.rules = g.Rules.withDefaults()
			}
			for _, m := range sortedKeys(g.MemberKeys) {
				if pub := g.MemberKeys[m]; len(pub) == ed25519.PublicKeySize {
					v.setMemberKey(m, ed25519.PublicKey(pub), e.Index)
				}
			}
		}
	case KindNode:
		var n NodeInfo
		if json.Unmarshal(e.Payload, &n) == nil && n.ID != "" {
			if n.Removed {
				delete(v.nodes, n.ID)
			} else {
				v.nodes[n.ID] = n
			}
		}
	case KindSchema:
		var s Schema
		if json.Unmarshal(e.Payload, &s) == nil && s.Version == len(v.schemas[s.Type])+1 {
			v.schemas[s.Type] = append(v.schemas[s.Type], s)
		}
	case KindMemberKey:
		var k memberKey
		if json.Unmarshal(e.Payload, &k) == nil && k.Member == e.Author && len(k.PublicKey) == ed25519.PublicKeySize {
			if _, known := v.memberKeys[k.Member]; !known {
				v.setMemberKey(k.Member, ed25519.PublicKey(k.PublicKey), e.Index)
			}
		}
	case KindPurpose:
		var p consent.Purpose
		if json.Unmarshal(e.Payload, &p) == nil {
			_ = v.consents.Vocabulary().Define(p) // refused alike by every replica
		}
	case consent.Kind, KindProposal, KindVote, KindExport, KindKeyRotation:
		var err error
		switch e.Kind {
		case consent.Kind:
			err = v.applyConsent(e)
		case KindProposal:
			err = v.applyProposal(e)
		case KindVote:
			err = v.applyVote(e)
		case KindExport:
			err = v.applyExport(e)
		case KindKeyRotation:
			err = v.applyKeyRotation(e)
		}
		if err != nil {
			v.reject(e.Index, err)
		}
	case KindToken:
		var op tokenOp
		if json.Unmarshal(e.Payload, &op) != nil {
			return
		}
		switch op.Op {
		case "create":
			if len(op.Hash) == sha256.Size {
				var h [sha256.Size]byte
				copy(h[:], op.Hash)
				v.tokens[op.ID] = tokenRec{hash: h, member: op.Member, admin: op.Admin}
			}
		case "revoke":
			delete(v.tokens, op.ID)
		}
	}
}

// caller is who a request acts for.
type caller struct {
	member string
	admin  bool
}

// authenticate checks a token against the view, in constant time.
func (v *view) authenticate(token string) (caller, bool) {
	id, secret, ok := splitToken(token)
	if !ok {
		return caller{}, false
	}
	v.mu.RLock()
	rec, found := v.tokens[id]
	v.mu.RUnlock()
	h := sha256.Sum256([]byte(secret))
	if !found || subtle.ConstantTimeCompare(h[:], rec.hash[:]) != 1 {
		return caller{}, false
	}
	return caller{member: rec.member, admin: rec.admin}, true
}

func (v *view) node(id string) (NodeInfo, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	n, ok := v.nodes[id]
	return n, ok
}

func (v *view) federation() (genesis, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.genesis == nil {
		return genesis{}, false
	}
	return *v.genesis, true
}

// schema returns a version of a type's schema, the latest for version 0.
func (v *view) schema(typ string, version int) (Schema, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	versions := v.schemas[typ]
	if version == 0 {
		version = len(versions)
	}
	if version < 1 || version > len(versions) {
		return Schema{}, false
	}
	return versions[version-1], true
}

// allSchemas returns the latest version of every schema, by type.
func (v *view) allSchemas() []Schema {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]Schema, 0, len(v.schemas))
	for _, versions := range v.schemas {
		out = append(out, versions[len(versions)-1])
	}
	return out
}

func (v *view) hasToken(id string) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	_, ok := v.tokens[id]
	return ok
}

func (v *view) applied() uint64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.next
}

// applyConsent applies a consent event: decoded, its signature verified
// under the author's registered key, and accepted by the index; or
// refused, the same way on every replica.
func (v *view) applyConsent(e ledger.Entry) error {
	s, ev, err := consent.Decode(e.Payload, v.consents.Vocabulary())
	if err != nil {
		return err
	}
	if s.Signer != e.Author {
		return &consent.Error{Err: consent.ErrForbidden, Field: "signer", Reason: "not the entry's author"}
	}
	pub, ok := v.memberKeys[s.Signer]
	if !ok {
		return &consent.Error{Err: consent.ErrBadSignature, Field: "signer", Reason: "no key registered for " + s.Signer}
	}
	if err := s.Verify(pub); err != nil {
		return err
	}
	return v.consents.Apply(e.Index, s.Signer, &ev, s.Event)
}

// withVocabulary runs fn on the federation's purposes, under the view's
// lock.
func (v *view) withVocabulary(fn func(*consent.Vocabulary) error) error {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return fn(v.consents.Vocabulary())
}

func (v *view) checkConsent(signer string, e *consent.Event) error {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.consents.Check(signer, e)
}

func (v *view) memberKey(member string) (ed25519.PublicKey, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	k, ok := v.memberKeys[member]
	return k, ok
}

func (v *view) consentRecord(id uuid.UUID) (consent.History, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.consents.Record(id)
}

func (v *view) consentsOf(subject string) []consent.History {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.consents.Subject(subject)
}

// decide decides a use for member: with category, both tiers.
func (v *view) decide(subject, member, category, purpose string, at time.Time, asOf uint64) consent.Decision {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if category == "" {
		return v.consents.Allowed(subject, purpose, at, asOf)
	}
	return v.consents.Usable(subject, member, category, purpose, at, asOf)
}

// reject remembers why the signed entry at index was refused, for its
// writer; only the latest ones.
func (v *view) reject(index uint64, err error) {
	if len(v.rejected) >= 1024 {
		clear(v.rejected)
	}
	v.rejected[index] = err
}

// rejection returns why the signed entry at index was refused, or
// nil when it was applied.
func (v *view) rejection(index uint64) error {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.rejected[index]
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
