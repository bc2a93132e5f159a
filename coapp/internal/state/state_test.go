package state

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/consent"
	"coapp.coop/ledger/entry"
)

// The state machine alone, without Raft or Badger: entries made by hand,
// applied in order.

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// fed is a federation under construction: its state, the next index, and
// the members' private keys.
type fed struct {
	t    *testing.T
	s    *State
	next uint64
	keys map[string]ed25519.PrivateKey
}

func newFed(t *testing.T, rules api.Rules, members ...string) *fed {
	t.Helper()
	f := &fed{t: t, s: New(), keys: map[string]ed25519.PrivateKey{}}
	pubs := map[string][]byte{}
	for _, m := range members {
		_, k, _ := ed25519.GenerateKey(nil)
		f.keys[m] = k
		pubs[m] = k.Public().(ed25519.PublicKey)
	}
	g := format.Genesis{Federation: "Test", Founder: members[0], Members: members[1:], Rules: &rules, MemberKeys: pubs, SignedRecords: true}
	if err := f.apply(f.entry(format.KindGenesis, members[0], t0, g)); err != nil {
		t.Fatal(err)
	}
	return f
}

// entry makes an entry of the federation's own (JSON payload).
func (f *fed) entry(kind, author string, at time.Time, payload any) entry.Entry {
	b, err := json.Marshal(payload)
	if err != nil {
		f.t.Fatal(err)
	}
	return entry.Entry{ID: uuid.New(), Kind: kind, Author: author, Time: at, Payload: b}
}

// signed makes a member's signed entry of kind over body.
func (f *fed) signed(kind, member string, at time.Time, body any) entry.Entry {
	b, err := json.Marshal(body)
	if err != nil {
		f.t.Fatal(err)
	}
	key := f.keys[member]
	if key == nil { // a stranger, whose key the federation does not know
		_, key, _ = ed25519.GenerateKey(nil)
		f.keys[member] = key
	}
	sb := api.SignedBody{Body: b, Signer: member, Sig: ed25519.Sign(key, format.SigningContext(kind, b))}
	p := format.EncodeSigned(&sb)
	return entry.Entry{ID: format.SignedID(p), Kind: kind, Author: member, Time: at, Payload: p}
}

// apply applies e at the next index: Check first, which must agree with
// Apply about whether e is refused (but for a record, which Check takes
// only with its batch, as one append).
func (f *fed) apply(e entry.Entry) error {
	f.t.Helper()
	checked := f.s.Check(e)
	e.Index = f.next
	f.next++
	applied := f.s.Apply(e)
	if e.Kind != format.KindRecord && (checked == nil) != (applied == nil) {
		f.t.Fatalf("Check(%s) = %v, but Apply = %v", e.Kind, checked, applied)
	}
	return applied
}

func (f *fed) propose(member string, p api.Proposal) error {
	p.At = t0.Add(time.Duration(f.next) * time.Second)
	return f.apply(f.signed(format.KindProposal, member, p.At, p))
}

func (f *fed) vote(member string, id uuid.UUID, choice string) error {
	at := t0.Add(time.Duration(f.next) * time.Second)
	return f.apply(f.signed(format.KindVote, member, at, api.Vote{Proposal: id, Choice: choice, At: at}))
}

// TestTally admits a member by vote under the default rules (more than
// half of all members, a quorum of half): one yes of three members does
// not pass it, a second does; a third vote on a closed proposal is
// refused, and the new member then counts.
func TestTally(t *testing.T) {
	f := newFed(t, api.Rules{}, "coop-a", "coop-b", "coop-c")
	admit := api.Proposal{ID: uuid.New(), Kind: api.ProposeAdmit, Member: "coop-d"}
	if err := f.propose("coop-a", admit); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		member, choice string
		outcome        string
		err            error
	}{
		{"coop-a", "yes", "open", nil},
		{"coop-a", "yes", "open", api.ErrVoted},
		{"coop-x", "yes", "open", api.ErrBadSignature}, // a stranger: no key
		{"coop-b", "maybe", "open", api.ErrInvalid},
		{"coop-b", "yes", "passed", nil},
		{"coop-c", "no", "passed", api.ErrClosed},
	}
	for i, st := range steps {
		err := f.vote(st.member, admit.ID, st.choice)
		if !errors.Is(err, st.err) || (st.err == nil) != (err == nil) {
			t.Fatalf("step %d: vote(%s, %s) = %v, want %v", i, st.member, st.choice, err, st.err)
		}
		if ps, _ := f.s.Proposal(admit.ID); ps.Outcome != st.outcome {
			t.Fatalf("step %d: outcome %s, want %s", i, ps.Outcome, st.outcome)
		}
	}
	if !f.s.IsMember("coop-d") || len(f.s.Members()) != 4 {
		t.Fatalf("members %v, want coop-d admitted", f.s.Members())
	}
}

// TestTallyRules counts proposals under several rules: majority and
// quorum over all members, abstentions, and a no that makes passing
// impossible.
func TestTallyRules(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rules   api.Rules
		members int
		votes   []string
		want    string
	}{
		{"majority of 5 needs 3", api.Rules{}, 5, []string{"yes", "yes"}, "open"},
		{"3 of 5 pass", api.Rules{}, 5, []string{"yes", "yes", "yes"}, "passed"},
		{"3 no of 5 fail", api.Rules{}, 5, []string{"no", "no", "no"}, "failed"},
		{"abstentions count for quorum, not majority", api.Rules{}, 4, []string{"abstain", "yes", "yes"}, "open"},
		{"two abstentions of 4 make passing impossible", api.Rules{}, 4, []string{"abstain", "abstain"}, "failed"},
		{"two of three pass more than 66%", api.Rules{Majority: 0.66}, 3, []string{"yes", "yes"}, "passed"},
		{"two of three do not pass more than 70%", api.Rules{Majority: 0.7}, 3, []string{"yes", "yes"}, "open"},
		{"three of three pass more than 70%", api.Rules{Majority: 0.7}, 3, []string{"yes", "yes", "yes"}, "passed"},
		{"full quorum", api.Rules{Quorum: 1}, 3, []string{"yes", "yes"}, "open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			members := make([]string, tc.members)
			for i := range members {
				members[i] = fmt.Sprintf("coop-%d", i)
			}
			f := newFed(t, tc.rules.WithDefaults(), members...)
			p := api.Proposal{ID: uuid.New(), Kind: api.ProposeAdmit, Member: "newcomer"}
			if err := f.propose(members[0], p); err != nil {
				t.Fatal(err)
			}
			for i, choice := range tc.votes {
				if err := f.vote(members[i], p.ID, choice); err != nil {
					t.Fatal(err)
				}
			}
			if ps, _ := f.s.Proposal(p.ID); ps.Outcome != tc.want {
				t.Fatalf("outcome %s, want %s (votes %v)", ps.Outcome, tc.want, ps.Votes)
			}
		})
	}
}

// TestTokens creates, authenticates and revokes a token, and removes a
// member's tokens with the member.
func TestTokens(t *testing.T) {
	f := newFed(t, api.Rules{}, "coop-a", "coop-b")
	tok, op := format.NewToken([8]byte{1}, [32]byte{2}, "coop-b", false)
	if err := f.apply(f.entry(format.KindToken, "coop-a", t0, op)); err != nil {
		t.Fatal(err)
	}
	c, ok := f.s.Authenticate(tok)
	if !ok || c.Member != "coop-b" || c.Admin || c.Token != tok {
		t.Fatalf("Authenticate = %+v, %v", c, ok)
	}
	if _, ok := f.s.Authenticate(tok[:len(tok)-1] + "x"); ok {
		t.Fatal("a token with another secret authenticated")
	}
	bad := op
	bad.Hash = []byte{1, 2, 3}
	if err := f.apply(f.entry(format.KindToken, "coop-a", t0, bad)); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("a token with a short hash: %v, want ErrInvalid", err)
	}
	p := api.Proposal{ID: uuid.New(), Kind: api.ProposeRemove, Member: "coop-b"}
	if err := f.propose("coop-a", p); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"coop-a", "coop-b"} {
		if err := f.vote(m, p.ID, "yes"); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := f.s.Authenticate(tok); ok {
		t.Fatal("a removed member's token still authenticates")
	}
}

// TestSignedEntriesRefused refuses, alike in Check and Apply, signed
// entries that do not verify: another member's signature, a body changed
// after signing, a signer who is not the author.
func TestSignedEntriesRefused(t *testing.T) {
	f := newFed(t, api.Rules{}, "coop-a", "coop-b")
	p := api.Proposal{ID: uuid.New(), Kind: api.ProposeAdmit, Member: "coop-c", At: t0}
	good := f.signed(format.KindProposal, "coop-a", t0, p)
	forged := good
	forged.Author = "coop-b"
	changed := good
	changed.Payload = []byte(string(good.Payload[:len(good.Payload)-10]) + "AAAAAAAA\"}")
	stranger := f.signed(format.KindProposal, "coop-x", t0, p)
	for name, e := range map[string]entry.Entry{"another author": forged, "changed": changed, "a stranger": stranger} {
		if err := f.apply(e); err == nil {
			t.Errorf("%s: applied", name)
		}
	}
	if len(f.s.Proposals()) != 0 {
		t.Fatal("a refused proposal was recorded")
	}
	if err := f.apply(good); err != nil {
		t.Fatal(err)
	}
	if f.s.Rejection(f.next-1) != nil || len(f.s.Proposals()) != 1 {
		t.Fatal("the good proposal was not recorded")
	}
}

// TestRecordsNeedABatch refuses records no batch signature of their author
// covers, in Check as in Apply; a batch covers the records that follow it
// in the same append, once each.
func TestRecordsNeedABatch(t *testing.T) {
	f := newFed(t, api.Rules{}, "coop-a", "coop-b")
	rec := func(n int) entry.Entry {
		p := format.RecordPayload{Type: "purchase", Version: 1, Subject: "ps1.1.x", Box: []byte{byte(n)}}
		return entry.Entry{ID: uuid.New(), Kind: format.KindRecord, Author: "coop-a", Time: t0, Payload: p.Encode()}
	}
	r1, r2, r3 := rec(1), rec(2), rec(3)
	batch := format.SignBatch(f.keys["coop-a"], "coop-a", []entry.Entry{r1, r2})
	if err := f.s.Check(batch, r1, r2); err != nil {
		t.Fatalf("Check(batch, r1, r2) = %v", err)
	}
	if err := f.s.Check(batch, r1, r3); !errors.Is(err, api.ErrBadSignature) {
		t.Fatalf("Check(batch, r1, r3) = %v, want ErrBadSignature", err)
	}
	if err := f.s.Check(batch, r1, r1); !errors.Is(err, api.ErrBadSignature) {
		t.Fatalf("Check(batch, r1, r1) = %v, want ErrBadSignature", err)
	}
	if err := f.s.Check(r1); !errors.Is(err, api.ErrBadSignature) {
		t.Fatalf("Check(r1) = %v, want ErrBadSignature", err)
	}
	bOther := format.SignBatch(f.keys["coop-b"], "coop-a", []entry.Entry{r1})
	if err := f.s.Check(bOther, r1); !errors.Is(err, api.ErrBadSignature) {
		t.Fatalf("a batch signed with another member's key: %v, want ErrBadSignature", err)
	}
	for _, e := range []entry.Entry{batch, r1, r2} {
		if err := f.apply(e); err != nil {
			t.Fatal(err)
		}
	}
	err := f.apply(r3)
	at := f.next - 1
	if err == nil || f.s.RecordRefusal(at) == nil {
		t.Fatal("a record after its batch's records was accepted")
	}
	if got := f.s.RefusedRecords(); len(got) != 1 || !got[at] {
		t.Fatalf("refused %v, want only r3", got)
	}
}

// TestCheckDoesNotApply: a Check, however many entries it is given, leaves
// the state as it was.
func TestCheckDoesNotApply(t *testing.T) {
	f := newFed(t, api.Rules{}, "coop-a")
	_, newKey, _ := ed25519.GenerateKey(nil)
	reg := f.entry(format.KindMemberKey, "coop-b", t0, format.MemberKey{Member: "coop-b", PublicKey: newKey.Public().(ed25519.PublicKey)})
	schema := f.entry(format.KindSchema, "coop-a", t0, api.Schema{Type: "purchase", Version: 1})
	if err := f.s.Check(reg, schema); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.s.MemberKey("coop-b"); ok {
		t.Fatal("Check registered a key")
	}
	if _, ok := f.s.Schema("purchase", 0); ok {
		t.Fatal("Check registered a schema")
	}
	if f.s.Applied() != 1 {
		t.Fatalf("Applied = %d after Check, want 1", f.s.Applied())
	}
	// A second key for a member who has one is refused.
	if err := f.apply(reg); err != nil {
		t.Fatal(err)
	}
	_, other, _ := ed25519.GenerateKey(nil)
	again := f.entry(format.KindMemberKey, "coop-b", t0, format.MemberKey{Member: "coop-b", PublicKey: other.Public().(ed25519.PublicKey)})
	if err := f.apply(again); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("a second first key: %v, want ErrInvalid", err)
	}
	// A schema version that is not the next one conflicts.
	if err := f.apply(schema); err != nil {
		t.Fatal(err)
	}
	if err := f.apply(schema); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("schema version 1 again: %v, want ErrConflict", err)
	}
}

// passDataset creates a dataset and a grant to grantee by the votes of
// every member.
func (f *fed) passDataset(d api.Dataset, grantee string, members ...string) {
	f.t.Helper()
	for _, p := range []api.Proposal{
		{ID: uuid.New(), Kind: api.ProposeDataset, Dataset: &d},
		{ID: uuid.New(), Kind: api.ProposeGrant, Grant: &api.Grant{Dataset: d.Name, Grantee: grantee, Purpose: d.Purpose, Until: t0.Add(365 * 24 * time.Hour)}},
	} {
		if err := f.propose(members[0], p); err != nil {
			f.t.Fatal(err)
		}
		for _, m := range members {
			if err := f.vote(m, p.ID, "yes"); err != nil {
				f.t.Fatal(err)
			}
		}
		if ps, _ := f.s.Proposal(p.ID); ps.Outcome != "passed" {
			f.t.Fatalf("%s proposal: %s", p.Kind, ps.Outcome)
		}
	}
}

// TestPrivacyBudget spends a dataset's epsilon through audit entries: an
// entry that would spend more than is left is refused (Check and Apply
// alike), and spends nothing; so is one by a member without a grant.
func TestPrivacyBudget(t *testing.T) {
	f := newFed(t, api.Rules{}, "coop-a", "coop-b")
	schema := f.entry(format.KindSchema, "coop-a", t0, api.Schema{Type: "reading", Version: 1, Fields: []api.Field{
		{Name: "kwh", Kind: "decimal", Class: "attribute", Policy: api.Policy{Action: "keep"}}}})
	if err := f.apply(schema); err != nil {
		t.Fatal(err)
	}
	f.passDataset(api.Dataset{Name: "energy", Purpose: "dpv:ResearchAndDevelopment", Category: "pd:Consumption", K: 1, DPBudget: 1,
		Types: []api.DatasetType{{Type: "reading", Fields: []string{"kwh"}}}}, "coop-b", "coop-a", "coop-b")
	spend := func(member string, eps float64) error {
		at := t0.Add(time.Duration(f.next) * time.Second)
		a := api.ExportAudit{ID: uuid.New(), Member: member, Dataset: "energy", Purpose: "dpv:ResearchAndDevelopment", Format: "aggregate:count", At: at, Epsilon: eps}
		return f.apply(f.signed(format.KindExport, member, at, a))
	}
	for i, step := range []struct {
		member string
		eps    float64
		err    error
		left   float64
	}{
		{"coop-b", 0.6, nil, 0.4},
		{"coop-b", 0.5, api.ErrBudgetSpent, 0.4},
		{"coop-a", 0.1, api.ErrForbidden, 0.4}, // no grant
		{"coop-b", 0.4, nil, 0},
		{"coop-b", 0.01, api.ErrBudgetSpent, 0},
	} {
		err := spend(step.member, step.eps)
		if !errors.Is(err, step.err) || (step.err == nil) != (err == nil) {
			t.Fatalf("step %d: spend %v as %s = %v, want %v", i, step.eps, step.member, err, step.err)
		}
		if left := f.s.BudgetLeft("energy", "dpv:ResearchAndDevelopment"); left < step.left-1e-9 || left > step.left+1e-9 {
			t.Fatalf("step %d: %.3f left, want %.3f", i, left, step.left)
		}
	}
	if n := len(f.s.Exports()); n != 2 {
		t.Fatalf("%d audit entries recorded, want the 2 accepted", n)
	}
}

// TestConsentTiers decides a use on both tiers: the person's consent to
// the member is not enough without the member's agreement to share the
// category into the federation.
func TestConsentTiers(t *testing.T) {
	f := newFed(t, api.Rules{}, "coop-a")
	give := func(tier consent.Tier, subject string, at time.Time) {
		t.Helper()
		rec := &consent.Record{ID: uuid.New(), SchemaVersion: consent.SchemaVersion, Tier: tier, Controller: "coop-a", Subject: subject,
			Purposes: []string{"dpv:ResearchAndDevelopment"}, LegalBasis: "dpv:Consent", DataCategories: []string{"pd:Purchase"},
			Notice: consent.Notice{URI: "https://coop-a.example/n", SHA256: consent.Hash([]byte("n"))}, Jurisdiction: "IT", WithdrawalMethod: "https://coop-a.example/w"}
		ev := &consent.Event{Record: rec.ID, Type: consent.Given, At: at, By: "coop-a", Validity: &consent.Validity{From: at, Duration: "P1Y"}, Consent: rec}
		sg, err := consent.Sign(ev, "coop-a", f.keys["coop-a"])
		if err != nil {
			t.Fatal(err)
		}
		p := sg.Encode()
		if err := f.apply(entry.Entry{ID: format.SignedID(p), Kind: format.KindConsent, Author: "coop-a", Time: at, Payload: p}); err != nil {
			t.Fatal(err)
		}
	}
	const purpose = "dpv:ResearchAndDevelopment"
	decide := func() (person, both bool) {
		at := t0.Add(time.Hour)
		return f.s.Decide("ps1.1.anna", "coop-a", "", purpose, at, consent.Latest).Allowed,
			f.s.Decide("ps1.1.anna", "coop-a", "pd:Purchase", purpose, at, consent.Latest).Allowed
	}
	if person, both := decide(); person || both {
		t.Fatalf("before any consent: person %v, both tiers %v", person, both)
	}
	give(consent.TierSubject, "ps1.1.anna", t0)
	if person, both := decide(); !person || both {
		t.Fatalf("with the person's consent only: person %v, both tiers %v; want true, false", person, both)
	}
	give(consent.TierMember, "", t0)
	if person, both := decide(); !person || !both {
		t.Fatalf("with both tiers: person %v, both tiers %v", person, both)
	}
}
