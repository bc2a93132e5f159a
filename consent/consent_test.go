package consent

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func subjectRecord(subject, controller string, purposes ...string) *Record {
	return &Record{
		ID: uuid.New(), SchemaVersion: SchemaVersion, Tier: TierSubject, Subject: subject, Controller: controller,
		Purposes: purposes, LegalBasis: "dpv:Consent", DataCategories: []string{"pd:Purchase"},
		Recipients: []string{"federation"}, Notice: Notice{URI: "https://coop-a.example/notice/v3", SHA256: Hash([]byte("notice v3"))},
		Language: "it", Jurisdiction: "IT", WithdrawalMethod: "https://coop-a.example/consent",
	}
}

func memberRecord(member, category string, purposes ...string) *Record {
	r := subjectRecord("", member, purposes...)
	r.Tier, r.DataCategories, r.Recipients = TierMember, []string{category}, []string{"federation"}
	return r
}

// chain holds an index and the last event bytes of each record, to make
// the next events.
type chain struct {
	t     testing.TB
	x     *Index
	next  uint64
	heads map[uuid.UUID][]byte
}

func newChain(t testing.TB) *chain {
	return &chain{t: t, x: NewIndex(NewVocabulary()), next: 10, heads: map[uuid.UUID][]byte{}}
}

func (c *chain) event(typ Status, rec uuid.UUID, at time.Time) *Event {
	e := &Event{Record: rec, Type: typ, At: at, By: "subject"}
	if h, ok := c.heads[rec]; ok {
		e.Prev = Hash(h)
	}
	return e
}

// apply validates, signs nothing (the index trusts its caller for
// signatures) and applies; it returns the error and the index used.
func (c *chain) apply(signer string, e *Event) (uint64, error) {
	if err := e.Validate(c.x.vocab); err != nil {
		return 0, err
	}
	b := mustJSON(c.t, e)
	c.next++
	if err := c.x.Apply(c.next, signer, e, b); err != nil {
		return 0, err
	}
	c.heads[e.Record] = b
	return c.next, nil
}

func (c *chain) give(rec *Record, from time.Time, until *time.Time) uint64 {
	c.t.Helper()
	e := c.event(Given, rec.ID, from)
	e.Consent, e.Validity = rec, &Validity{From: from, Until: until}
	i, err := c.apply(rec.Controller, e)
	if err != nil {
		c.t.Fatal(err)
	}
	return i
}

func ptr(t time.Time) *time.Time { return &t }

func TestLifecycleAndDecisions(t *testing.T) {
	c := newChain(t)
	anna := subjectRecord("ps1.1.anna", "coop-a", "dpv:ResearchAndDevelopment")
	gave := c.give(anna, t0, ptr(t0.AddDate(0, 6, 0)))

	// The broader purpose covers the narrower; another does not.
	if d := c.x.Allowed("ps1.1.anna", "dpv:AcademicResearch", t0.Add(time.Hour), Latest); !d.Allowed || d.Reason != Granted || d.Record != anna.ID || d.Event != gave {
		t.Fatalf("narrower purpose: %+v", d)
	}
	if d := c.x.Allowed("ps1.1.anna", "dpv:Marketing", t0.Add(time.Hour), Latest); d.Allowed || d.Reason != NoConsent {
		t.Fatalf("unrelated purpose: %+v", d)
	}
	if d := c.x.Allowed("ps1.1.anna", "dpv:Nope", t0, Latest); d.Allowed || d.Reason != UnknownPurpose {
		t.Fatalf("unknown purpose: %+v", d)
	}
	if d := c.x.Allowed("ps1.1.anna", "dpv:AcademicResearch", t0.Add(-time.Hour), Latest); d.Allowed || d.Reason != NotYetValid {
		t.Fatalf("before validity: %+v", d)
	}
	if d := c.x.Allowed("ps1.1.anna", "dpv:AcademicResearch", t0.AddDate(0, 7, 0), Latest); d.Allowed || d.Reason != Lapsed {
		t.Fatalf("after validity: %+v", d)
	}

	// Renewal extends it; withdrawal ends it at its index, not before.
	r := c.event(Renewed, anna.ID, t0.AddDate(0, 5, 0))
	r.Validity = &Validity{From: t0.AddDate(0, 5, 0), Duration: "P1Y"}
	renewed, err := c.apply("coop-a", r)
	if err != nil {
		t.Fatal(err)
	}
	if d := c.x.Allowed("ps1.1.anna", "dpv:AcademicResearch", t0.AddDate(0, 7, 0), Latest); !d.Allowed || d.Event != renewed {
		t.Fatalf("after renewal: %+v", d)
	}
	w := c.event(Withdrawn, anna.ID, t0.AddDate(0, 8, 0))
	withdrawn, err := c.apply("coop-a", w)
	if err != nil {
		t.Fatal(err)
	}
	at := t0.AddDate(0, 7, 0)
	if d := c.x.Allowed("ps1.1.anna", "dpv:AcademicResearch", at, Latest); d.Allowed || d.Reason != WasWithdrawn || d.Event != withdrawn {
		t.Fatalf("after withdrawal: %+v", d)
	}
	if d := c.x.Allowed("ps1.1.anna", "dpv:AcademicResearch", at, withdrawn-1); !d.Allowed || d.Event != renewed {
		t.Fatalf("as of the index before the withdrawal: %+v", d)
	}
	if d := c.x.Allowed("ps1.1.anna", "dpv:AcademicResearch", at, gave-1); d.Allowed || d.Reason != NoConsent {
		t.Fatalf("as of before the consent: %+v", d)
	}
	h, ok := c.x.Record(anna.ID)
	if !ok || len(h.Events) != 3 || h.Latest().Type != Withdrawn || h.Events[1].Hash != Hash(mustJSON(t, r)) {
		t.Fatalf("history %+v", h)
	}
	if hs := c.x.Subject("ps1.1.anna"); len(hs) != 1 || hs[0].Record.ID != anna.ID {
		t.Fatalf("subject histories %+v", hs)
	}
}

func TestTwoTiers(t *testing.T) {
	c := newChain(t)
	c.give(subjectRecord("ps1.1.bo", "coop-a", "dpv:CommercialResearch"), t0, nil)
	at := t0.Add(time.Hour)
	if d := c.x.Usable("ps1.1.bo", "coop-a", "pd:Purchase", "dpv:CommercialResearch", at, Latest); d.Allowed || d.Reason != NoConsent {
		t.Fatalf("without the member's agreement: %+v", d)
	}
	share := memberRecord("coop-a", "pd:Purchase", "dpv:ResearchAndDevelopment")
	c.give(share, t0, nil)
	if d := c.x.Usable("ps1.1.bo", "coop-a", "pd:Purchase", "dpv:CommercialResearch", at, Latest); !d.Allowed {
		t.Fatalf("both tiers: %+v", d)
	}
	if d := c.x.Usable("ps1.1.bo", "coop-a", "pd:Location", "dpv:CommercialResearch", at, Latest); d.Allowed {
		t.Fatalf("a category the member did not agree to share: %+v", d)
	}
	if d := c.x.Usable("ps1.1.bo", "coop-b", "pd:Purchase", "dpv:CommercialResearch", at, Latest); d.Allowed {
		t.Fatalf("another controller: %+v", d)
	}
	if _, err := c.apply("coop-a", c.event(Withdrawn, share.ID, at)); err != nil {
		t.Fatal(err)
	}
	if d := c.x.Usable("ps1.1.bo", "coop-a", "pd:Purchase", "dpv:CommercialResearch", at, Latest); d.Allowed || d.Reason != WasWithdrawn || d.Record != share.ID {
		t.Fatalf("after the member withdrew its agreement: %+v", d)
	}
	if hs := c.x.Member("coop-a"); len(hs) != 1 || hs[0].Record.ID != share.ID {
		t.Fatalf("member agreements %+v", hs)
	}
}

// TestRefused shows each kind of bad event refused with its typed error,
// and the index unchanged.
func TestRefused(t *testing.T) {
	c := newChain(t)
	rec := subjectRecord("ps1.1.cy", "coop-a", "dpv:Marketing")
	c.give(rec, t0, ptr(t0.AddDate(0, 1, 0)))
	gone := subjectRecord("ps1.1.cy", "coop-a", "dpv:ServiceProvision")
	c.give(gone, t0, nil)
	if _, err := c.apply("coop-a", c.event(Withdrawn, gone.ID, t0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	bad := func(mutate func(*Record)) *Event {
		r := *subjectRecord("ps1.1.cy", "coop-a", "dpv:Marketing")
		mutate(&r)
		return &Event{Record: r.ID, Type: Given, At: t0, By: "subject", Consent: &r, Validity: &Validity{From: t0}}
	}
	cases := []struct {
		name   string
		signer string
		event  *Event
		want   error
		field  string
	}{
		{"unknown purpose", "coop-a", bad(func(r *Record) { r.Purposes = []string{"dpv:Snooping"} }), ErrUnknownPurpose, "consent.purposes[0]"},
		{"malformed purpose", "coop-a", bad(func(r *Record) { r.Purposes = []string{"marketing"} }), ErrInvalid, "consent.purposes[0]"},
		{"no withdrawal method", "coop-a", bad(func(r *Record) { r.WithdrawalMethod = "" }), ErrInvalid, "consent.withdrawal_method"},
		{"notice without hash", "coop-a", bad(func(r *Record) { r.Notice.SHA256 = "abc" }), ErrInvalid, "consent.notice.sha256"},
		{"subject on a member agreement", "coop-a", bad(func(r *Record) { r.Tier = TierMember }), ErrInvalid, "consent.subject"},
		{"until before from", "coop-a", func() *Event {
			e := bad(func(*Record) {})
			e.Validity.Until = ptr(t0.Add(-time.Hour))
			return e
		}(), ErrInvalid, "validity.until"},
		{"bad duration", "coop-a", func() *Event {
			e := bad(func(*Record) {})
			e.Validity.Duration = "6 months"
			return e
		}(), ErrInvalid, "validity.duration"},
		{"given twice", "coop-a", func() *Event {
			e := bad(func(*Record) {})
			e.Record, e.Consent.ID = rec.ID, rec.ID
			return e
		}(), ErrExists, "record"},
		{"another member's subject", "coop-b", c.event(Withdrawn, rec.ID, t0.Add(time.Hour)), ErrForbidden, "record"},
		{"consent for another controller", "coop-b", bad(func(*Record) {}), ErrForbidden, "consent.controller"},
		{"withdrawing what is withdrawn", "coop-a", c.event(Withdrawn, gone.ID, t0.Add(2*time.Hour)), ErrWithdrawn, "record"},
		{"renewing what is withdrawn", "coop-a", func() *Event {
			e := c.event(Renewed, gone.ID, t0.Add(2*time.Hour))
			e.Validity = &Validity{From: t0.Add(2 * time.Hour)}
			return e
		}(), ErrWithdrawn, "record"},
		{"renewing an expired consent", "coop-a", func() *Event {
			e := c.event(Renewed, rec.ID, t0.AddDate(0, 2, 0))
			e.Validity = &Validity{From: t0.AddDate(0, 2, 0)}
			return e
		}(), ErrExpired, "record"},
		{"expiring what has not expired", "coop-a", c.event(Expired, rec.ID, t0.Add(time.Hour)), ErrInvalid, "type"},
		{"broken chain", "coop-a", func() *Event {
			e := c.event(Withdrawn, rec.ID, t0.Add(time.Hour))
			e.Prev = Hash([]byte("something else"))
			return e
		}(), ErrChain, "prev"},
		{"no such record", "coop-a", func() *Event {
			e := c.event(Withdrawn, uuid.New(), t0)
			e.Prev = Hash(nil)
			return e
		}(), ErrNotFound, "record"},
		{"event before the latest", "coop-a", c.event(Withdrawn, rec.ID, t0.Add(-time.Hour)), ErrInvalid, "at"},
	}
	before := fmt.Sprint(c.x.Subject("ps1.1.cy"))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.apply(tc.signer, tc.event)
			var ce *Error
			if !errors.Is(err, tc.want) || !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("got %v, want %v on %s", err, tc.want, tc.field)
			}
			if after := fmt.Sprint(c.x.Subject("ps1.1.cy")); after != before {
				t.Fatalf("the index changed:\n%s\n%s", before, after)
			}
		})
	}
}

func TestVocabulary(t *testing.T) {
	v := NewVocabulary()
	if err := v.Define(Purpose{ID: "coop:MarketStudy", Parent: "dpv:CommercialResearch", Label: "Joint market study"}); err != nil {
		t.Fatal(err)
	}
	if !v.Covers("dpv:ResearchAndDevelopment", "coop:MarketStudy") || v.Covers("coop:MarketStudy", "dpv:CommercialResearch") || v.Covers("dpv:Marketing", "coop:MarketStudy") {
		t.Fatal("hierarchy")
	}
	for _, p := range []Purpose{
		{ID: "coop:MarketStudy", Label: "again"},
		{ID: "MarketStudy", Label: "no prefix"},
		{ID: "coop:X", Parent: "coop:Missing", Label: "orphan"},
		{ID: "coop:Y", Label: ""},
	} {
		if err := v.Define(p); err == nil {
			t.Errorf("Define(%+v) accepted", p)
		}
	}
	parent := "coop:MarketStudy"
	for i := 0; ; i++ {
		id := fmt.Sprintf("coop:Deep%d", i)
		if err := v.Define(Purpose{ID: id, Parent: parent, Label: "deep"}); err != nil {
			if i < maxDepth-4 {
				t.Fatalf("depth %d refused: %v", i, err)
			}
			break
		}
		parent = id
	}
}

func TestAddDuration(t *testing.T) {
	for d, want := range map[string]time.Time{
		"P6M":       t0.AddDate(0, 6, 0),
		"P1Y2M10D":  t0.AddDate(1, 2, 10),
		"P2W":       t0.AddDate(0, 0, 14),
		"PT36H":     t0.Add(36 * time.Hour),
		"P1DT2H30M": t0.AddDate(0, 0, 1).Add(150 * time.Minute),
		"PT90S":     t0.Add(90 * time.Second),
	} {
		if got, err := AddDuration(t0, d); err != nil || !got.Equal(want) {
			t.Errorf("AddDuration(%s) = %v, %v; want %v", d, got, err, want)
		}
	}
	for _, d := range []string{"", "P", "PT", "6M", "P6", "P6X", "PT6D", "P1.5Y", "P99999999999Y", "P1MT"} {
		if _, err := AddDuration(t0, d); err == nil {
			t.Errorf("AddDuration(%q) accepted", d)
		}
	}
}

// TestIndexMatchesReplay is the property test: random event sequences,
// some refused, give the same decisions from the index, at every index and
// time, as a naive replay of the accepted events up to that index.
func TestIndexMatchesReplay(t *testing.T) {
	purposes := []string{"dpv:ResearchAndDevelopment", "dpv:AcademicResearch", "dpv:CommercialResearch", "dpv:Marketing", "dpv:DirectMarketing", "dpv:ServiceProvision"}
	subjects := []string{"ps.a", "ps.b", "ps.c"}
	for seed := uint64(0); seed < 40; seed++ {
		rng := rand.New(rand.NewPCG(seed, 1))
		c := newChain(t)
		type accepted struct {
			index uint64
			e     Event
		}
		var log []accepted
		var recs []*Record
		clock := t0
		for step := 0; step < 60; step++ {
			clock = clock.Add(time.Duration(rng.IntN(72)) * time.Hour)
			var e *Event
			if len(recs) == 0 || rng.IntN(3) == 0 {
				r := subjectRecord(subjects[rng.IntN(len(subjects))], "coop-a", purposes[rng.IntN(len(purposes))])
				if rng.IntN(4) == 0 {
					r.Purposes = append(r.Purposes, purposes[rng.IntN(len(purposes))])
				}
				e = c.event(Given, r.ID, clock)
				e.Consent = r
				e.Validity = &Validity{From: clock.Add(time.Duration(rng.IntN(48)-24) * time.Hour)}
				if rng.IntN(2) == 0 {
					e.Validity.Duration = fmt.Sprintf("P%dD", 1+rng.IntN(20))
				}
				recs = append(recs, r)
			} else {
				r := recs[rng.IntN(len(recs))]
				e = c.event([]Status{Renewed, Withdrawn, Expired, Revoked}[rng.IntN(4)], r.ID, clock)
				if e.Type == Renewed {
					e.Validity = &Validity{From: clock, Duration: fmt.Sprintf("P%dD", 1+rng.IntN(20))}
				}
			}
			i, err := c.apply("coop-a", e)
			if err == nil {
				log = append(log, accepted{i, *e})
			}
		}
		// The naive model: replay the accepted events up to asOf, each
		// record's state the latest event; decide over every record of the
		// subject whose purposes cover the one asked.
		naive := func(subject, purpose string, at time.Time, asOf uint64) bool {
			type st struct {
				rec      *Record
				status   Status
				from, to time.Time
			}
			states := map[uuid.UUID]*st{}
			for _, a := range log {
				if a.index > asOf {
					break
				}
				s := states[a.e.Record]
				if a.e.Type == Given {
					s = &st{rec: a.e.Consent}
					states[a.e.Record] = s
				}
				s.status = a.e.Type
				if a.e.Validity != nil {
					s.from, s.to = a.e.Validity.From, a.e.Validity.End()
				}
			}
			for _, s := range states {
				covers := false
				for _, p := range s.rec.Purposes {
					covers = covers || c.x.vocab.Covers(p, purpose)
				}
				if s.rec.Subject == subject && covers && (s.status == Given || s.status == Renewed) &&
					!at.Before(s.from) && (s.to.IsZero() || at.Before(s.to)) {
					return true
				}
			}
			return false
		}
		for probe := 0; probe < 300; probe++ {
			subject, purpose := subjects[rng.IntN(len(subjects))], purposes[rng.IntN(len(purposes))]
			at := t0.Add(time.Duration(rng.IntN(int(clock.Sub(t0)/time.Hour)+48)) * time.Hour)
			asOf := Latest
			if rng.IntN(2) == 0 {
				asOf = 10 + uint64(rng.IntN(70))
			}
			d := c.x.Allowed(subject, purpose, at, asOf)
			if want := naive(subject, purpose, at, asOf); d.Allowed != want {
				t.Fatalf("seed %d: Allowed(%s, %s, %s, %d) = %+v, naive replay says %v", seed, subject, purpose, at, asOf, d, want)
			}
		}
	}
}

func TestSignedRoundTrip(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	rec := subjectRecord("ps1.1.di", "coop-a", "dpv:Marketing")
	e := &Event{Record: rec.ID, Type: Given, At: t0, By: "subject", Consent: rec, Validity: &Validity{From: t0, Duration: "P6M"}}
	s, err := Sign(e, "coop-a", key)
	if err != nil {
		t.Fatal(err)
	}
	s2, e2, err := Decode(s.Encode(), NewVocabulary())
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Verify(pub); err != nil {
		t.Fatal(err)
	}
	if e2.Consent.Subject != rec.Subject || !e2.At.Equal(t0) {
		t.Fatalf("decoded %+v", e2)
	}
	otherPub, _, _ := ed25519.GenerateKey(nil)
	if err := s2.Verify(otherPub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("another key: %v", err)
	}
	s2.Event[len(s2.Event)-2] ^= 1
	if err := s2.Verify(pub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("altered event: %v", err)
	}
}

func BenchmarkAllowed(b *testing.B) {
	c := newChain(b)
	for i := 0; i < 10000; i++ {
		c.give(subjectRecord(fmt.Sprintf("ps1.1.s%d", i), "coop-a", "dpv:ResearchAndDevelopment"), t0, ptr(t0.AddDate(1, 0, 0)))
	}
	at := t0.AddDate(0, 3, 0)
	subjects := make([]string, 1024)
	for i := range subjects {
		subjects[i] = fmt.Sprintf("ps1.1.s%d", i*7)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if d := c.x.Allowed(subjects[i&1023], "dpv:AcademicResearch", at, Latest); !d.Allowed {
			b.Fatal(d)
		}
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
