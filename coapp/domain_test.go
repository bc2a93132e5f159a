package coapp

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"coapp.coop/coapp/client"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/consent"
)

// TestFederationDomainExport exports a dataset of two types, one whose
// schema pseudonymises the subject in the member's domain and one in the
// federation's, published by two members (one record through a follower,
// which seals it there), and checks each record's inclusion. The rule: a
// record is released when its person consented to the member that
// published it, whatever the domain of its subject; a consent to one
// member never releases another member's record about the same person,
// although under the federation's domain both carry one pseudonym.
func TestFederationDomainExport(t *testing.T) {
	n, cl, tokens := smallFederation(t, Rules{}, []string{"coop-b"})
	ctx := testCtx(t)
	a, b := cl["coop-a"], cl["coop-b"]
	linked := basketSchema()
	linked.Type, linked.SubjectDomain = "linked-basket", "federation"
	if _, err := a.PutSchema(ctx, linked); err != nil {
		t.Fatal(err)
	}
	const purpose = "dpv:ResearchAndDevelopment"
	for _, c := range []*client.Client{a, b} {
		share := consentRequest("", purpose)
		share.Tier = consent.TierMember
		if _, err := c.GiveConsent(ctx, share); err != nil {
			t.Fatal(err)
		}
	}
	// anna consents to coop-a, dario to coop-b; carol consents to coop-a
	// and withdraws; bob never consents.
	for _, g := range []struct {
		c       *client.Client
		subject string
	}{{a, "anna@coop.example"}, {a, "carol@coop.example"}, {b, "dario@coop.example"}} {
		if _, err := g.c.GiveConsent(ctx, consentRequest(g.subject, purpose)); err != nil {
			t.Fatal(err)
		}
	}
	carol, err := a.Consents(ctx, "carol@coop.example")
	if err != nil || len(carol.Consents) != 1 {
		t.Fatalf("carol's consents: %+v, %v", carol, err)
	}
	if _, err := a.ChangeConsent(ctx, carol.Consents[0].Record.ID, "withdraw", ConsentChange{}); err != nil {
		t.Fatal(err)
	}

	// Each record's amount names it.
	rec := func(typ, subject string, amount int) client.Record {
		r := basket(subject, "40100", amount)
		r.Type = typ
		return r
	}
	publish := func(c *client.Client, recs ...client.Record) {
		t.Helper()
		if _, err := c.Publish(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	publish(a,
		rec("basket", "anna@coop.example", 1), rec("linked-basket", "Anna@Coop.example ", 2), // consented to coop-a
		rec("basket", "bob@coop.example", 3), rec("linked-basket", "bob@coop.example", 4), // no consent
		rec("linked-basket", "carol@coop.example", 5)) // withdrawn
	publish(b,
		rec("linked-basket", "anna@coop.example", 6), // anna consented to coop-a, not to coop-b
		rec("linked-basket", "dario@coop.example", 7), rec("basket", "dario@coop.example", 8))
	// Through a follower, which seals and signs there and sends the batch
	// to the leader, which checks the sealed consent subject.
	f := joinNode(t, "n1", n, tokens["coop-a"], false)
	publish(client.New(f.URL(), tokens["coop-a"]), rec("linked-basket", "anna@coop.example", 9))

	ds := Dataset{Name: "linked", Purpose: purpose, Category: "pd:Purchase", K: 1,
		Types: []DatasetType{{Type: "basket", Fields: []string{"amount"}}, {Type: "linked-basket", Fields: []string{"amount"}}}}
	passes(t, ctx, Proposal{Kind: ProposeDataset, Dataset: &ds}, a, a, b)
	passes(t, ctx, Proposal{Kind: ProposeGrant, Grant: &Grant{Dataset: "linked", Grantee: "coop-a", Purpose: purpose, Until: time.Now().Add(time.Hour)}}, a, a, b)

	var out bytes.Buffer
	res, err := a.Export(ctx, "linked", ExportRequest{Purpose: purpose}, &out)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{} // amount: member
	for _, l := range parseExport(t, out.Bytes()) {
		got[string(l.Fields["amount"])] = l.Member
		if _, leaked := l.Fields[format.ConsentSubjectField]; leaked || len(l.Fields) != 1 {
			t.Errorf("row %+v carries more than the dataset's fields", l)
		}
	}
	want := map[string]string{"1": "coop-a", "2": "coop-a", "7": "coop-b", "8": "coop-b", "9": "coop-a"}
	for amount, member := range want {
		if got[amount] != member {
			t.Errorf("record %s (of %s) not exported", amount, member)
		}
	}
	for _, amount := range []string{"3", "4", "5", "6"} {
		if m, ok := got[amount]; ok {
			t.Errorf("record %s (of %s) exported without its person's consent to its member", amount, m)
		}
	}
	if len(got) != len(want) || res.Rows != len(want) {
		t.Errorf("exported %v (%d rows), want %v", got, res.Rows, want)
	}
	audits, err := a.Audit(ctx, "linked")
	if err != nil || len(audits) != 1 || audits[0].Rows != 5 || audits[0].NoConsent != 4 || audits[0].Erased != 0 || audits[0].Unreadable != 0 {
		t.Fatalf("audit %+v, %v; want 5 rows, 4 without consent", audits, err)
	}

	// The exports that held a person's data, as their member asks.
	for _, q := range []struct {
		c       *client.Client
		subject string
		want    int
	}{{a, "anna@coop.example", 1}, {a, "bob@coop.example", 0}, {a, "carol@coop.example", 0}, {b, "dario@coop.example", 1}, {b, "anna@coop.example", 0}} {
		if as, err := q.c.SubjectExports(ctx, q.subject); err != nil || len(as) != q.want {
			t.Errorf("exports holding %s: %+v, %v; want %d", q.subject, as, err, q.want)
		}
	}
	// The right of access shows the record's fields, not the sealed
	// consent subject.
	rep, err := a.Access(ctx, "anna@coop.example")
	if err != nil {
		t.Fatal(err)
	}
	var amounts []string
	for _, r := range rep.Records {
		amounts = append(amounts, string(r.Fields["amount"]))
		if _, leaked := r.Fields[format.ConsentSubjectField]; leaked {
			t.Errorf("access shows the sealed consent subject: %+v", r.Fields)
		}
	}
	slices.Sort(amounts)
	if !slices.Equal(amounts, []string{"1", "2", "9"}) {
		t.Errorf("anna's records as coop-a sees them: %v", amounts)
	}
}
