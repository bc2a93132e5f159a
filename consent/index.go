package consent

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"sort"
	"time"

	"github.com/google/uuid"
)

// Latest asks a decision of the index as it stands, rather than as of an
// earlier ledger index.
const Latest uint64 = math.MaxUint64

// Reason explains a Decision.
type Reason uint8

// The reasons of a decision.
const (
	// NoConsent: no record of the subject covers the purpose.
	NoConsent Reason = iota
	// Granted: a record covers the purpose and holds at that time.
	Granted
	// NotYetValid: the covering consent starts later.
	NotYetValid
	// Lapsed: the covering consent's validity ended (or an expired event
	// was recorded).
	Lapsed
	// WasWithdrawn: the covering consent was withdrawn.
	WasWithdrawn
	// WasRevoked: the covering consent was revoked by its controller.
	WasRevoked
	// UnknownPurpose: the purpose is not in the vocabulary.
	UnknownPurpose
)

var reasonNames = [...]string{"no-consent", "granted", "not-yet-valid", "expired", "withdrawn", "revoked", "unknown-purpose"}

// String names the reason as the API writes it.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// MarshalText writes the reason's name.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads a reason's name.
func (r *Reason) UnmarshalText(b []byte) error {
	for i, name := range reasonNames {
		if name == string(b) {
			*r = Reason(i)
			return nil
		}
	}
	return fail(ErrInvalid, "reason", "unknown reason %q", b)
}

// Decision answers whether data may be used for a purpose, and why: the
// record and the ledger index of the event it rests on (zero when no
// record covers the purpose).
type Decision struct {
	Allowed bool      `json:"allowed"`
	Reason  Reason    `json:"reason"`
	Record  uuid.UUID `json:"record,omitzero"`
	Event   uint64    `json:"event,omitzero"`
}

// eventState is a record's state after one event.
type eventState struct {
	index    uint64
	status   Status
	at       time.Time
	from     time.Time
	until    time.Time // zero: open-ended
	hash     [sha256.Size]byte
	validity *Validity
}

// recordState is a record and its events, in ledger order.
type recordState struct {
	rec    *Record
	events []eventState
}

// asOf returns the record's state after its last event at or before index,
// or nil when it had none yet.
func (r *recordState) asOf(index uint64) *eventState {
	n := len(r.events)
	if r.events[n-1].index <= index {
		return &r.events[n-1]
	}
	i := sort.Search(n, func(i int) bool { return r.events[i].index > index })
	if i == 0 {
		return nil
	}
	return &r.events[i-1]
}

// decide says what one state allows at time t.
func (s *eventState) decide(t time.Time) Reason {
	switch s.status {
	case Withdrawn:
		return WasWithdrawn
	case Revoked:
		return WasRevoked
	case Expired:
		return Lapsed
	}
	if t.Before(s.from) {
		return NotYetValid
	}
	if !s.until.IsZero() && !t.Before(s.until) {
		return Lapsed
	}
	return Granted
}

type slotKey struct {
	tier     Tier
	who      string // subject pseudonym, or member
	category string // member tier only
	purpose  uint16
}

// Index is the consent state of a federation: every record and its events,
// and for each subject (or member and category) and purpose the records
// that name it. It is fed events in ledger order (Apply), so every replica
// that applied the same entries decides the same, and it answers as of any
// earlier index too. It is not safe for concurrent use: guard it.
type Index struct {
	vocab   *Vocabulary
	records map[uuid.UUID]*recordState
	slots   map[slotKey][]*recordState
	last    uint64
}

// NewIndex returns an empty index over vocab.
func NewIndex(vocab *Vocabulary) *Index {
	return &Index{vocab: vocab, records: map[uuid.UUID]*recordState{}, slots: map[slotKey][]*recordState{}}
}

// Vocabulary returns the index's purposes.
func (x *Index) Vocabulary() *Vocabulary { return x.vocab }

// Check says whether an event, signed by member signer, may follow the
// history of its record; the error is an *Error wrapping ErrNotFound,
// ErrExists, ErrForbidden, ErrChain, ErrWithdrawn, ErrExpired or
// ErrInvalid. The event must have passed Event.Validate.
func (x *Index) Check(signer string, e *Event) error {
	if e.Type == Given {
		if _, dup := x.records[e.Record]; dup {
			return fail(ErrExists, "record", "%s", e.Record)
		}
		if signer != e.Consent.Controller {
			return fail(ErrForbidden, "consent.controller", "%s cannot give consent to %s", signer, e.Consent.Controller)
		}
		return nil
	}
	r, ok := x.records[e.Record]
	if !ok {
		return fail(ErrNotFound, "record", "%s", e.Record)
	}
	if signer != r.rec.Controller {
		return fail(ErrForbidden, "record", "the record's controller is another member")
	}
	last := &r.events[len(r.events)-1]
	if e.Prev != hex.EncodeToString(last.hash[:]) {
		return fail(ErrChain, "prev", "the record's latest event is %x", last.hash[:8])
	}
	if e.At.Before(last.at) {
		return fail(ErrInvalid, "at", "before the record's latest event")
	}
	switch last.status {
	case Withdrawn, Revoked:
		return fail(ErrWithdrawn, "record", "%s at %s", last.status, last.at.Format(time.RFC3339))
	case Expired:
		if e.Type != Withdrawn && e.Type != Revoked {
			return fail(ErrExpired, "record", "expired at %s: give a new consent", last.at.Format(time.RFC3339))
		}
	}
	lapsed := !last.until.IsZero() && !e.At.Before(last.until)
	switch e.Type {
	case Renewed:
		if lapsed {
			return fail(ErrExpired, "record", "expired at %s: give a new consent", last.until.Format(time.RFC3339))
		}
	case Expired:
		if !lapsed {
			return fail(ErrInvalid, "type", "the consent has not reached the end of its validity")
		}
	}
	return nil
}

// Apply checks an event (see Check) and, when it may follow, records it at
// ledger index; eventBytes are the event's bytes as signed, whose hash the
// next event must name. Indexes must grow. On error nothing changes.
func (x *Index) Apply(index uint64, signer string, e *Event, eventBytes []byte) error {
	if index <= x.last && x.last != 0 {
		return fail(ErrInvalid, "index", "events must be applied in ledger order")
	}
	if err := x.Check(signer, e); err != nil {
		return err
	}
	st := eventState{index: index, status: e.Type, at: e.At.UTC(), hash: sha256.Sum256(eventBytes)}
	var r *recordState
	if e.Type == Given {
		rec := *e.Consent
		r = &recordState{rec: &rec}
		x.records[e.Record] = r
		for _, key := range x.keys(&rec) {
			x.slots[key] = append(x.slots[key], r)
		}
	} else {
		r = x.records[e.Record]
		prev := r.events[len(r.events)-1]
		st.from, st.until, st.validity = prev.from, prev.until, prev.validity
	}
	if e.Validity != nil {
		v := *e.Validity
		st.from, st.until, st.validity = v.From.UTC(), v.End(), &v
	}
	r.events = append(r.events, st)
	x.last = index
	return nil
}

// keys returns the slots a record belongs to.
func (x *Index) keys(rec *Record) []slotKey {
	var out []slotKey
	for _, p := range rec.Purposes {
		id := x.vocab.ids[p]
		if rec.Tier == TierSubject {
			out = append(out, slotKey{tier: TierSubject, who: rec.Subject, purpose: id})
			continue
		}
		for _, c := range rec.DataCategories {
			out = append(out, slotKey{tier: TierMember, who: rec.Controller, category: c, purpose: id})
		}
	}
	return out
}

// Allowed decides whether subject's data may be used for purpose at time
// t, as of ledger index asOf (Latest for now): some record of the subject
// names the purpose or a broader one and, after its last event at or
// before asOf, holds at t. It does not allocate.
func (x *Index) Allowed(subject, purpose string, t time.Time, asOf uint64) Decision {
	return x.decide(TierSubject, subject, "", "", purpose, t, asOf)
}

// Shared decides whether member agreed to share category into the
// federation for purpose at time t, as of asOf.
func (x *Index) Shared(member, category, purpose string, t time.Time, asOf uint64) Decision {
	return x.decide(TierMember, member, category, "", purpose, t, asOf)
}

// Usable decides both tiers: subject consented to member (the controller)
// for purpose, and member agreed to share category for it. The decision
// returned is the first that refuses, or the subject's grant.
func (x *Index) Usable(subject, member, category, purpose string, t time.Time, asOf uint64) Decision {
	d := x.decide(TierSubject, subject, "", member, purpose, t, asOf)
	if !d.Allowed {
		return d
	}
	if s := x.Shared(member, category, purpose, t, asOf); !s.Allowed {
		return s
	}
	return d
}

// rank orders refusals: the one that best explains a refusal wins.
var rank = [...]int{NoConsent: 0, NotYetValid: 2, Lapsed: 3, WasRevoked: 4, WasWithdrawn: 5}

func (x *Index) decide(tier Tier, who, category, controller, purpose string, t time.Time, asOf uint64) Decision {
	id, ok := x.vocab.ids[purpose]
	if !ok {
		return Decision{Reason: UnknownPurpose}
	}
	best := Decision{Reason: NoConsent}
	for _, a := range x.vocab.ancestors[id] {
		for _, r := range x.slots[slotKey{tier: tier, who: who, category: category, purpose: a}] {
			if controller != "" && r.rec.Controller != controller {
				continue
			}
			st := r.asOf(asOf)
			if st == nil {
				continue
			}
			reason := st.decide(t)
			if reason == Granted {
				return Decision{Allowed: true, Reason: Granted, Record: r.rec.ID, Event: st.index}
			}
			if rank[reason] > rank[best.Reason] || (rank[reason] == rank[best.Reason] && st.index > best.Event) {
				best = Decision{Reason: reason, Record: r.rec.ID, Event: st.index}
			}
		}
	}
	return best
}

// History is a consent record with its events, as the index holds them.
type History struct {
	Record Record      `json:"record"`
	Events []EventInfo `json:"events"`
}

// EventInfo is one event of a History: its status, time, ledger index,
// validity after it, and hash (what the next event's Prev names).
type EventInfo struct {
	Type     Status    `json:"type"`
	At       time.Time `json:"at"`
	Index    uint64    `json:"index"`
	Validity *Validity `json:"validity,omitempty"`
	Hash     string    `json:"hash"`
}

// Latest returns the record's latest event.
func (h *History) Latest() EventInfo { return h.Events[len(h.Events)-1] }

// Record returns one record's history.
func (x *Index) Record(id uuid.UUID) (History, bool) {
	r, ok := x.records[id]
	if !ok {
		return History{}, false
	}
	return r.history(), true
}

func (r *recordState) history() History {
	h := History{Record: *r.rec, Events: make([]EventInfo, len(r.events))}
	for i, e := range r.events {
		h.Events[i] = EventInfo{Type: e.status, At: e.at, Index: e.index, Validity: e.validity, Hash: hex.EncodeToString(e.hash[:])}
	}
	return h
}

// Subject returns the histories of every record of subject (a pseudonym),
// oldest first.
func (x *Index) Subject(subject string) []History {
	seen := map[uuid.UUID]bool{}
	var out []History
	for i := range x.vocab.purposes {
		for _, r := range x.slots[slotKey{tier: TierSubject, who: subject, purpose: uint16(i)}] {
			if !seen[r.rec.ID] {
				seen[r.rec.ID] = true
				out = append(out, r.history())
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Events[0].Index < out[j].Events[0].Index })
	return out
}

// Member returns the histories of a member's agreements (TierMember),
// oldest first.
func (x *Index) Member(member string) []History {
	var out []History
	for _, r := range x.records {
		if r.rec.Tier == TierMember && r.rec.Controller == member {
			out = append(out, r.history())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Events[0].Index < out[j].Events[0].Index })
	return out
}
