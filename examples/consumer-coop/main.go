// Command consumer-coop: two consumer cooperatives pool their members'
// purchases for a joint market study their members consented to. One
// person withdraws and is absent from the next export; another asks to be
// erased, and from then on no replica can read their purchases, which
// every export skips, while the ledger still verifies.
//
//	go run ./examples/consumer-coop
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp"
	"coapp.coop/consent"
	"coapp.coop/pseudonym"
)

func main() {
	dir, err := os.MkdirTemp("", "coapp-consumer-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, coapp.Config{Dir: dir, HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0"}); err != nil {
		log.Fatal(err)
	}
}

var shops = map[string][]string{"north-coop": {"Nord 1", "Nord 2"}, "south-coop": {"Sud 1"}}

// run tells the story on a node configured by cfg (its directory and
// addresses; the federation is founded here).
func run(ctx context.Context, w io.Writer, cfg coapp.Config) error {
	say := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	cfg.Bootstrap, cfg.Federation, cfg.Member, cfg.FoundingMembers = true, "Consumer Coops", "north-coop", []string{"south-coop"}
	n, err := coapp.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close(context.Background())

	// Purchases: the loyalty card number is the subject (pseudonymised);
	// the customer's e-mail is dropped before storage, the postcode cut to
	// its first two characters.
	err = n.PutSchema(ctx, "north-coop", coapp.Schema{Type: "purchase", Version: 1, Fields: []coapp.Field{
		{Name: "email", Kind: "string", Class: "direct", Policy: coapp.Policy{Action: "drop"}},
		{Name: "postcode", Kind: "postcode", Class: "quasi", Policy: coapp.Policy{Action: "generalise", Keep: 2}},
		{Name: "category", Kind: "enum", Class: "attribute", Values: []string{"fresh", "dry", "household"}, Required: true, Policy: coapp.Policy{Action: "keep"}},
		{Name: "shop", Kind: "string", Class: "attribute", Policy: coapp.Policy{Action: "keep"}},
		{Name: "euros", Kind: "decimal", Class: "attribute", Min: f64(0), Required: true, Policy: coapp.Policy{Action: "keep"}},
	}})
	if err != nil {
		return err
	}
	terms := func(tier consent.Tier, card string) coapp.ConsentRequest {
		return coapp.ConsentRequest{Tier: tier, Subject: card, Purposes: []string{"dpv:CommercialResearch"},
			DataCategories: []string{"pd:Purchase"}, Recipients: []string{"federation"}, Jurisdiction: "IT",
			WithdrawalMethod: "the app's privacy page, or any till", Validity: consent.Validity{Duration: "P2Y"},
			Notice: consent.Notice{URI: "https://coops.example/market-study", SHA256: consent.Hash([]byte("A joint study of what we buy."))}}
	}
	consents := map[string]uuid.UUID{}
	for coop, ss := range shops {
		if _, err := n.GiveConsent(ctx, coop, terms(consent.TierMember, "")); err != nil {
			return err
		}
		var recs []coapp.Record
		for i := 0; i < 6; i++ {
			card := fmt.Sprintf("%s-card-%04d", coop[:5], 1000+i)
			if i < 5 { // one person in six did not consent
				rc, err := n.GiveConsent(ctx, coop, terms(consent.TierSubject, card))
				if err != nil {
					return err
				}
				consents[card] = rc.Record
			}
			for j, cat := range []string{"fresh", "dry"} {
				recs = append(recs, coapp.Record{
					ID: uuid.NewSHA1(uuid.NameSpaceURL, []byte(fmt.Sprintf("%s/%d", card, j))), Type: "purchase", Subject: card,
					Time: time.Date(2026, 11, 10+j, 18, 0, 0, 0, time.UTC),
					Fields: map[string]json.RawMessage{"email": json.RawMessage(fmt.Sprintf(`"%s@mail.example"`, card)),
						"postcode": json.RawMessage(`"40137"`), "category": json.RawMessage(`"` + cat + `"`),
						"shop": json.RawMessage(`"` + ss[i%len(ss)] + `"`), "euros": json.RawMessage(fmt.Sprintf("%d.90", 12+i*3+j))},
				})
			}
		}
		if _, err := n.Publish(ctx, coop, recs); err != nil {
			return err
		}
	}
	say("north-coop and south-coop published 24 purchases of 12 card holders; 10 consented to the study.")

	ds := coapp.Dataset{Name: "basket-study", Description: "What our members buy, across both cooperatives",
		Purpose: "dpv:CommercialResearch", Category: "pd:Purchase", K: 3,
		Types: []coapp.DatasetType{{Type: "purchase", Fields: []string{"postcode", "category", "shop", "euros"}}}}
	grant := coapp.Grant{Dataset: "basket-study", Grantee: "south-coop", Purpose: "dpv:CommercialResearch", Until: time.Now().Add(30 * 24 * time.Hour)}
	for _, p := range []coapp.Proposal{{Kind: coapp.ProposeDataset, Dataset: &ds}, {Kind: coapp.ProposeGrant, Grant: &grant}} {
		ps, err := n.Propose(ctx, "north-coop", p)
		if err != nil {
			return err
		}
		for _, m := range []string{"north-coop", "south-coop"} {
			if ps, err = n.CastVote(ctx, m, ps.ID, "yes"); err != nil {
				return err
			}
		}
	}
	say("Both cooperatives voted the basket-study dataset and south-coop's access to it.")

	export := func(label string) (string, coapp.ExportAudit, error) {
		var out bytes.Buffer
		a, err := n.Export(ctx, "south-coop", coapp.ExportRequest{Dataset: "basket-study", Purpose: "dpv:CommercialResearch", Format: "csv"}, &out)
		if err == nil {
			say("%s: %d rows (%d without consent, %d erased, %d in groups under k), audit entry %d.",
				label, a.Rows, a.NoConsent, a.Erased, a.Suppressed, a.Index)
		}
		return out.String(), a, err
	}
	first, _, err := export("Export 1")
	if err != nil {
		return err
	}
	say("  %s", strings.SplitN(first, "\n", 2)[0])

	// A person withdraws: absent from the next export.
	leaver := "north-card-1000"
	if _, err := n.ChangeConsent(ctx, "north-coop", consents[leaver], "withdraw", coapp.ConsentChange{}); err != nil {
		return err
	}
	held, err := n.ExportsOf(ctx, "north-coop", leaver)
	if err != nil {
		return err
	}
	second, _, err := export("Export 2, after " + leaver + " withdrew")
	if err != nil {
		return err
	}
	say("  %s's data was in %d export(s) before withdrawing; their rows: %d in export 1, %d in export 2.",
		leaver, len(held), rowsOf(n, leaver, "north-coop", first), rowsOf(n, leaver, "north-coop", second))

	// A person is erased: their key is destroyed on every replica.
	gone := "south-card-1002"
	if _, _, err := n.Erase(ctx, "south-coop", gone); err != nil {
		return err
	}
	third, _, err := export("Export 3, after " + gone + " was erased")
	if err != nil {
		return err
	}
	access, err := n.Access(ctx, "south-coop", gone)
	if err != nil {
		return err
	}
	erased := 0
	for _, r := range access.Records {
		if r.Erased {
			erased++
		}
	}
	say("  %s: %d records still in the log, %d of them unreadable; their rows: %d in export 2, %d in export 3.",
		gone, len(access.Records), erased, rowsOf(n, gone, "south-coop", second), rowsOf(n, gone, "south-coop", third))
	if err := n.Ledger().Verify(ctx); err != nil {
		return err
	}
	say("The ledger still verifies: erasure destroyed a key, not the log.")
	return nil
}

// rowsOf counts a person's rows in a CSV export, by their pseudonym in the
// dataset's domain (what a cooperative can compute for its own member).
func rowsOf(n *coapp.Node, card, coop, csv string) int {
	ks, err := pseudonym.ReadKeyFile(n.KeyFile(), nil)
	if err != nil {
		return -1
	}
	ledgerP, _ := ks.Pseudonym(pseudonym.MemberDomain(coop), card)
	dsP, _ := ks.Pseudonym(pseudonym.DatasetDomain("basket-study"), string(ledgerP))
	return strings.Count(csv, string(dsP)+",")
}

func f64(x float64) *float64 { return &x }
