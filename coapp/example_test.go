package coapp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp"
	"coapp.coop/coapp/coapptest"
	"coapp.coop/consent"
)

// open starts a one-node federation of coop-a and coop-b in a temporary
// directory, with a purchase schema; done closes it and removes the
// directory.
func open() (n *coapp.Node, done func()) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "coapp-example-")
	if err != nil {
		log.Fatal(err)
	}
	n, err = coapp.Open(ctx, coapp.Config{
		Dir: dir, HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0",
		Bootstrap: true, Federation: "Emilia Food Coops", Member: "coop-a", FoundingMembers: []string{"coop-b"},
		Ledger: coapptest.FastLedger, // short Raft timeouts, for an example; leave it out in production
	})
	if err != nil {
		log.Fatal(err)
	}
	zero := 0.0
	err = n.PutSchema(ctx, "coop-a", coapp.Schema{Type: "purchase", Version: 1, Fields: []coapp.Field{
		{Name: "amount", Kind: "decimal", Class: "attribute", Required: true, Min: &zero, Policy: coapp.Policy{Action: "keep"}},
		{Name: "postcode", Kind: "postcode", Class: "quasi", Policy: coapp.Policy{Action: "generalise", Keep: 3}},
	}})
	if err != nil {
		log.Fatal(err)
	}
	return n, func() { n.Close(ctx); os.RemoveAll(dir) }
}

func purchase(subject, postcode string, amount float64) coapp.Record {
	return coapp.Record{
		ID: uuid.New(), Type: "purchase", Subject: subject, Time: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC),
		Fields: map[string]json.RawMessage{"amount": json.RawMessage(fmt.Sprint(amount)), "postcode": json.RawMessage(`"` + postcode + `"`)},
	}
}

func consentTo(subject, purpose string) coapp.ConsentRequest {
	return coapp.ConsentRequest{
		Subject: subject, Purposes: []string{purpose}, DataCategories: []string{"pd:Purchase"},
		Notice:       consent.Notice{URI: "https://coop-a.example/notice", SHA256: consent.Hash([]byte("notice"))},
		Jurisdiction: "IT", WithdrawalMethod: "https://coop-a.example/consent", Validity: consent.Validity{Duration: "P1Y"},
	}
}

// A member publishes a purchase: the person's identifier is pseudonymised
// and the postcode generalised on the node, before anything is stored.
func ExampleNode_Publish() {
	n, done := open()
	defer done()
	ctx := context.Background()
	receipts, err := n.Publish(ctx, "coop-a", []coapp.Record{purchase("anna@example.org", "40126", 12.5)})
	if err != nil {
		log.Fatal(err)
	}
	rep, err := n.Access(ctx, "coop-a", "anna@example.org")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("published at index", receipts[0].Index)
	fmt.Println("stored fields:", string(rep.Records[0].Fields["amount"]), string(rep.Records[0].Fields["postcode"]))
	fmt.Println("stored under a pseudonym:", strings.HasPrefix(string(rep.Pseudonyms[0]), "ps1."))
	// Output:
	// published at index 5
	// stored fields: 12.5 "401*"
	// stored under a pseudonym: true
}

// A person gives consent for a purpose, and withdraws it: each event has a
// receipt the person keeps, and the decision follows the latest event.
func ExampleNode_GiveConsent() {
	n, done := open()
	defer done()
	ctx := context.Background()
	given, err := n.GiveConsent(ctx, "coop-a", consentTo("anna@example.org", "dpv:ResearchAndDevelopment"))
	if err != nil {
		log.Fatal(err)
	}
	check := coapp.CheckRequest{Subject: "anna@example.org", Purpose: "dpv:ResearchAndDevelopment"}
	before, _ := n.CheckConsent("coop-a", check)
	withdrawn, err := n.ChangeConsent(ctx, "coop-a", given.Record, "withdraw", coapp.ConsentChange{})
	if err != nil {
		log.Fatal(err)
	}
	after, _ := n.CheckConsent("coop-a", check)
	pub, _ := n.MemberKey("coop-a")
	_, verr := withdrawn.Receipt.Verify(pub, nil)
	fmt.Println("allowed before:", before.Allowed, "after:", after.Allowed)
	fmt.Println("the withdrawal's receipt verifies offline:", verr == nil)
	// Output:
	// allowed before: true after: false
	// the withdrawal's receipt verifies offline: true
}

// The members vote, one member one vote: a proposal passes once more than
// half of them said yes.
func ExampleNode_CastVote() {
	n, done := open()
	defer done()
	ctx := context.Background()
	p, err := n.Propose(ctx, "coop-a", coapp.Proposal{Kind: coapp.ProposeAdmit, Member: "coop-c"})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range []string{"coop-a", "coop-b"} {
		if p, err = n.CastVote(ctx, m, p.ID, "yes"); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("after %s's yes: %s\n", m, p.Outcome)
	}
	fmt.Println("members:", n.Members())
	// Output:
	// after coop-a's yes: open
	// after coop-b's yes: passed
	// members: [coop-a coop-b coop-c]
}

// A dataset voted by the members is exported for a granted purpose: only
// people who consented, under the dataset's own pseudonyms, with an audit
// entry in the ledger before a byte leaves.
func ExampleNode_Export() {
	n, done := open()
	defer done()
	ctx := context.Background()
	const purpose = "dpv:ResearchAndDevelopment"
	if _, err := n.GiveConsent(ctx, "coop-a", consentTo("anna@example.org", purpose)); err != nil {
		log.Fatal(err)
	}
	share := consentTo("", purpose)
	share.Tier = consent.TierMember // coop-a agrees to share purchases
	if _, err := n.GiveConsent(ctx, "coop-a", share); err != nil {
		log.Fatal(err)
	}
	records := []coapp.Record{purchase("anna@example.org", "40126", 12.5), purchase("bruno@example.org", "40126", 7)}
	if _, err := n.Publish(ctx, "coop-a", records); err != nil {
		log.Fatal(err)
	}
	vote := func(p coapp.Proposal) {
		ps, err := n.Propose(ctx, "coop-a", p)
		if err != nil {
			log.Fatal(err)
		}
		for _, m := range []string{"coop-a", "coop-b"} {
			if _, err := n.CastVote(ctx, m, ps.ID, "yes"); err != nil {
				log.Fatal(err)
			}
		}
	}
	vote(coapp.Proposal{Kind: coapp.ProposeDataset, Dataset: &coapp.Dataset{
		Name: "spending", Purpose: purpose, Category: "pd:Purchase", K: 1,
		Types: []coapp.DatasetType{{Type: "purchase", Fields: []string{"amount"}}},
	}})
	vote(coapp.Proposal{Kind: coapp.ProposeGrant, Grant: &coapp.Grant{Dataset: "spending", Grantee: "coop-b", Purpose: purpose, Until: time.Now().Add(24 * time.Hour)}})
	var out bytes.Buffer
	audit, err := n.Export(ctx, "coop-b", coapp.ExportRequest{Dataset: "spending", Purpose: purpose}, &out)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d row, %d without consent, audit entry in the ledger: %v\n", audit.Rows, audit.NoConsent, audit.Index > 0)
	fmt.Println("no raw identifier in the export:", !strings.Contains(out.String(), "@"))
	// Output:
	// 1 row, 1 without consent, audit entry in the ledger: true
	// no raw identifier in the export: true
}
