package coapp

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"coapp.coop/coapp/client"
	"coapp.coop/consent"
)

// TestAggregates answers counts, sums and means by group, suppresses
// groups under k, and spends a differential-privacy budget that the ledger
// accounts for, refusing the query that would overspend it.
func TestAggregates(t *testing.T) {
	n, cl, _ := smallFederation(t, Rules{}, nil)
	ctx := testCtx(t)
	a := cl["coop-a"]
	share := consentRequest("", "dpv:ResearchAndDevelopment")
	share.Tier = consent.TierMember
	if _, err := a.GiveConsent(ctx, share); err != nil {
		t.Fatal(err)
	}
	// 401*: 5 people spending 10..14; 902*: 3 people spending 20, 21, 22;
	// 555*: one person (four records), under k.
	var recs []client.Record
	for i, pc := range []string{"40100", "40111", "40122", "40133", "40144", "90200", "90211", "90222", "55500"} {
		subject := fmt.Sprintf("household-%d", i)
		if _, err := a.GiveConsent(ctx, consentRequest(subject, "dpv:ResearchAndDevelopment")); err != nil {
			t.Fatal(err)
		}
		amount := 10 + i
		if i >= 5 {
			amount = 15 + i
		}
		recs = append(recs, basket(subject, pc, amount))
	}
	// The lone household at 555* buys three more times: four records, one
	// person, still under k=3.
	for i := 0; i < 3; i++ {
		recs = append(recs, basket("household-8", "55500", 5))
	}
	if _, err := a.Publish(ctx, recs); err != nil {
		t.Fatal(err)
	}
	ds := Dataset{Name: "battery", Purpose: "dpv:ResearchAndDevelopment", Category: "pd:Purchase", K: 3, DPBudget: 1,
		Types: []DatasetType{{Type: "basket", Fields: []string{"postcode", "amount"}}}}
	passes(t, ctx, Proposal{Kind: ProposeDataset, Dataset: &ds}, a, a)
	passes(t, ctx, Proposal{Kind: ProposeGrant, Grant: &Grant{Dataset: "battery", Grantee: "coop-a", Purpose: "dpv:ResearchAndDevelopment", Until: time.Now().Add(time.Hour)}}, a, a)

	exact := func(op, field string) client.AggregateResult {
		t.Helper()
		res, err := a.Aggregate(ctx, "battery", AggregateRequest{Purpose: "dpv:ResearchAndDevelopment", GroupBy: []string{"postcode"}, Op: op, Field: field})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Groups) != 2 || res.Suppressed != 1 {
			t.Fatalf("%s: groups %+v, suppressed %d; want 401* and 902*, 555* suppressed", op, res.Groups, res.Suppressed)
		}
		return res
	}
	if res := exact("count", ""); res.Groups[0].Count != 5 || res.Groups[1].Count != 3 || string(res.Groups[0].Key["postcode"]) != `"401*"` {
		t.Fatalf("counts %+v", res.Groups)
	}
	if res := exact("sum", "amount"); res.Groups[0].Value != 60 || res.Groups[1].Value != 63 {
		t.Fatalf("sums %+v", res.Groups)
	}
	if res := exact("mean", "amount"); res.Groups[0].Value != 12 || res.Groups[1].Value != 21 {
		t.Fatalf("means %+v", res.Groups)
	}

	// Differential privacy: 0.6 of a budget of 1, then 0.6 more is refused.
	dp := AggregateRequest{Purpose: "dpv:ResearchAndDevelopment", Op: "count", DP: &DPParams{Epsilon: 0.6}}
	res, err := a.Aggregate(ctx, "battery", dp)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Groups) != 1 || math.Abs(res.Groups[0].Count-9) > 40 || res.Groups[0].Count == 9 || math.Abs(res.BudgetLeft-0.4) > 1e-9 {
		t.Fatalf("a DP count of 9 records: %+v", res)
	}
	// A DP sum's count is noisy too (the exact count would leak).
	dpSum, err := a.Aggregate(ctx, "battery", AggregateRequest{Purpose: "dpv:ResearchAndDevelopment", Op: "sum", Field: "amount", DP: &DPParams{Epsilon: 0.3, Upper: 50}})
	if err != nil {
		t.Fatal(err)
	}
	if len(dpSum.Groups) == 1 && dpSum.Groups[0].Count == 9 {
		t.Fatalf("a DP sum released the exact count: %+v", dpSum)
	}
	size := ledgerSize(t, a)
	if _, err := a.Aggregate(ctx, "battery", dp); apiStatus(err) != http.StatusConflict {
		t.Fatalf("overspending the budget: %v", err)
	}
	if _, err := a.Aggregate(ctx, "battery", AggregateRequest{Purpose: "dpv:ResearchAndDevelopment", Op: "sum", Field: "amount", DP: &DPParams{Epsilon: 0.1}}); apiStatus(err) != http.StatusBadRequest {
		t.Fatalf("a DP sum without bounds: %v", err)
	}
	if got := ledgerSize(t, a); got != size {
		t.Fatalf("refused queries wrote %d entries", got-size)
	}
	// The budget is spent for this purpose, not for others a grant may name.
	if left := n.state.BudgetLeft("battery", "dpv:AcademicResearch"); left != 1 {
		t.Fatalf("another purpose's budget: %v", left)
	}
	audits, err := a.Audit(ctx, "battery")
	if err != nil || len(audits) != 5 || audits[3].Epsilon != 0.6 || audits[4].Epsilon != 0.3 {
		t.Fatalf("audit %+v, %v", audits, err)
	}
}

// TestConsentDecidedAtTheNodesClock: consents that lapsed yesterday are
// not exported, even when the latest entry is a record dated a month ago
// (entries' times are the caller's; consent is decided at the node's
// clock, which the audit records).
func TestConsentDecidedAtTheNodesClock(t *testing.T) {
	_, cl, _ := smallFederation(t, Rules{}, nil)
	ctx := testCtx(t)
	a := cl["coop-a"]
	share := consentRequest("", "dpv:ResearchAndDevelopment")
	share.Tier, share.Validity = consent.TierMember, consent.Validity{From: time.Now().AddDate(0, 0, -60)}
	if _, err := a.GiveConsent(ctx, share); err != nil {
		t.Fatal(err)
	}
	lapsed := consentRequest("household-1", "dpv:ResearchAndDevelopment")
	lapsed.Validity = consent.Validity{From: time.Now().AddDate(0, 0, -40), Duration: "P15D"} // lapsed 25 days ago
	if _, err := a.GiveConsent(ctx, lapsed); err != nil {
		t.Fatal(err)
	}
	ds := Dataset{Name: "d", Purpose: "dpv:ResearchAndDevelopment", Category: "pd:Purchase", K: 1,
		Types: []DatasetType{{Type: "basket", Fields: []string{"amount"}}}}
	passes(t, ctx, Proposal{Kind: ProposeDataset, Dataset: &ds}, a, a)
	passes(t, ctx, Proposal{Kind: ProposeGrant, Grant: &Grant{Dataset: "d", Grantee: "coop-a", Purpose: "dpv:ResearchAndDevelopment", Until: time.Now().Add(time.Hour)}}, a, a)
	old := basket("household-1", "40100", 5)
	old.Time = time.Now().AddDate(0, 0, -30) // the latest entry, dated a month ago
	if _, err := a.Publish(ctx, []client.Record{old}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := a.Export(ctx, "d", ExportRequest{Purpose: "dpv:ResearchAndDevelopment"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 0 || out.Len() != 0 {
		t.Fatalf("a lapsed consent exported: %d rows\n%s", res.Rows, out.String())
	}
	audits, err := a.Audit(ctx, "d")
	if err != nil || len(audits) != 1 || audits[0].NoConsent != 1 {
		t.Fatalf("audit %+v, %v", audits, err)
	}
}
