// Command quickstart tells the whole coapp story in one process, on the
// embedded default (a one-node federation on a local directory, no server
// to install):
//
//  1. a federation of three cooperatives: one founds it, the others are
//     admitted by vote (one member, one vote);
//
//  2. an exchange schema says what each field is and what happens to it
//     before storage;
//
//  3. people give consent (and one withdraws it), each getting a receipt
//     that verifies offline;
//
//  4. the cooperatives publish their exchanges: subjects pseudonymised,
//     fields generalised and sealed, nothing identifying stored;
//
//  5. a dataset is proposed and voted, access granted by vote, and the
//     dataset exported to a file: only consented people, dataset-scoped
//     pseudonyms, small groups suppressed, an audit entry for every export;
//
//  6. each cooperative's share of the dataset, and the ledger verified.
//
//     go run ./examples/quickstart            # in a fresh temporary directory
//     go run ./examples/quickstart -dir data  # keep the node's data in ./data
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp"
	"coapp.coop/consent"
	"coapp.coop/ledger"
)

func main() {
	dir := flag.String("dir", "", "directory for the node (default: a new temporary directory, removed at exit)")
	flag.Parse()
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "coapp-quickstart-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, coapp.Config{Dir: *dir, HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0"}); err != nil {
		log.Fatal(err)
	}
}

// The three cooperatives, and the people who buy from them.
var coops = []string{"coop-a", "coop-b", "coop-c"}

func person(coop string, i int) string { return fmt.Sprintf("member-%d@%s.example", i, coop) }

// run tells the story on a node configured by cfg (its directory and
// addresses; the federation is founded here, or found there already).
func run(ctx context.Context, w io.Writer, cfg coapp.Config) error {
	dir := cfg.Dir
	say := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }

	// A node on the embedded default. Ports 0: any free ones.
	cfg.Bootstrap, cfg.Federation, cfg.Member = true, "Emilia Food Coops", "coop-a"
	n, err := coapp.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close(context.Background())
	if len(n.Members()) == 3 {
		say("The federation exists already in %s: run without -dir for a fresh story.", dir)
		return verify(ctx, w, n)
	}

	// 1. Members, admitted by vote.
	say("1. coop-a founds the federation; coop-b and coop-c are admitted by vote.")
	for i, newcomer := range coops[1:] {
		p, err := n.Propose(ctx, "coop-a", coapp.Proposal{Kind: coapp.ProposeAdmit, Member: newcomer})
		if err != nil {
			return err
		}
		for _, voter := range coops[:i+1] {
			if p, err = n.CastVote(ctx, voter, p.ID, "yes"); err != nil {
				return err
			}
		}
		say("   admit %s: %s (yes: %d, members: %d)", newcomer, p.Outcome, len(p.Votes), i+1)
	}

	// 2. An exchange schema.
	schema := coapp.Schema{Type: "purchase", Version: 1, Fields: []coapp.Field{
		{Name: "postcode", Kind: "postcode", Class: "quasi", Policy: coapp.Policy{Action: "generalise", Keep: 3}},
		{Name: "product", Kind: "enum", Class: "attribute", Values: []string{"bread", "cheese", "olive-oil"}, Required: true, Policy: coapp.Policy{Action: "keep"}},
		{Name: "amount", Kind: "decimal", Class: "attribute", Min: f64(0), Required: true, Policy: coapp.Policy{Action: "keep"}},
	}}
	if err := n.PutSchema(ctx, "coop-a", schema); err != nil {
		return err
	}
	say("2. Schema purchase/1: postcode cut to 3 characters, product and amount kept.")

	// 3. Consent: each cooperative agrees to share purchases for research,
	// and asks its members; three of four say yes.
	notice := consent.Notice{URI: "https://coops.example/notice/market-study", SHA256: consent.Hash([]byte("We study what our members buy, together."))}
	ask := func(coop string, tier consent.Tier, subject string) (coapp.ConsentReceipt, error) {
		return n.GiveConsent(ctx, coop, coapp.ConsentRequest{
			Tier: tier, Subject: subject, Purposes: []string{"dpv:ResearchAndDevelopment"},
			DataCategories: []string{"pd:Purchase"}, Notice: notice, Jurisdiction: "IT",
			WithdrawalMethod: "https://coops.example/consent", Validity: consent.Validity{Duration: "P1Y"},
		})
	}
	var receipt coapp.ConsentReceipt
	for _, coop := range coops {
		if _, err := ask(coop, consent.TierMember, ""); err != nil {
			return err
		}
		for i := 0; i < 3; i++ {
			rc, err := ask(coop, consent.TierSubject, person(coop, i))
			if err != nil {
				return err
			}
			if coop == "coop-b" && i == 0 {
				receipt = rc
			}
		}
	}
	say("3. 3 cooperatives agree to share purchases for research; 9 of their 12 members consent.")
	withdrawn, err := n.ChangeConsent(ctx, "coop-b", receipt.Record, "withdraw", coapp.ConsentChange{})
	if err != nil {
		return err
	}
	pub, _ := n.MemberKey("coop-b")
	_, errGiven := receipt.Receipt.Verify(pub, nil)
	_, errWithdrawn := withdrawn.Receipt.Verify(pub, nil)
	say("   %s withdraws; both receipts verify offline with coop-b's public key: %v, %v",
		person("coop-b", 0), errGiven == nil, errWithdrawn == nil)

	// 4. Exchanges: every member of every cooperative buys something.
	products := []string{"bread", "cheese", "olive-oil"}
	total := 0
	for c, coop := range coops {
		var recs []coapp.Record
		for i := 0; i < 4; i++ {
			postcode := fmt.Sprintf("4012%d", c)
			if coop == "coop-a" && i == 2 {
				postcode = "90121" // the only one in 901*: a group under k, suppressed
			}
			recs = append(recs, coapp.Record{
				ID: uuid.NewSHA1(uuid.NameSpaceURL, []byte(fmt.Sprintf("%s/%d", coop, i))), Type: "purchase",
				Subject: person(coop, i), Time: time.Date(2026, 11, 2+i, 10, 0, 0, 0, time.UTC),
				Fields: map[string]json.RawMessage{
					"postcode": json.RawMessage(`"` + postcode + `"`), "product": json.RawMessage(`"` + products[(c+i)%3] + `"`),
					"amount": json.RawMessage(fmt.Sprintf("%d.50", 3+i)),
				},
			})
		}
		if _, err := n.Publish(ctx, coop, recs); err != nil {
			return err
		}
		total += len(recs)
	}
	say("4. %d purchases published; the ledger holds pseudonyms and sealed fields, never an e-mail address.", total)

	// 5. A dataset, by vote; a grant, by vote; an export.
	ds := coapp.Dataset{
		Name: "market-study", Description: "What our members buy", Purpose: "dpv:CommercialResearch",
		Category: "pd:Purchase", K: 2, Types: []coapp.DatasetType{{Type: "purchase", Fields: []string{"postcode", "product", "amount"}}},
	}
	grant := coapp.Grant{Dataset: "market-study", Grantee: "coop-c", Purpose: "dpv:CommercialResearch", Until: time.Now().Add(30 * 24 * time.Hour)}
	for _, p := range []coapp.Proposal{{Kind: coapp.ProposeDataset, Dataset: &ds}, {Kind: coapp.ProposeGrant, Grant: &grant}} {
		ps, err := n.Propose(ctx, "coop-b", p)
		if err != nil {
			return err
		}
		for _, voter := range coops[:2] {
			if ps, err = n.CastVote(ctx, voter, ps.ID, "yes"); err != nil {
				return err
			}
		}
		say("5. %s proposal: %s (yes: %d, members: 3).", p.Kind, ps.Outcome, len(ps.Votes))
	}
	file := filepath.Join(dir, "market-study.jsonl")
	var out bytes.Buffer
	audit, err := n.Export(ctx, "coop-c", coapp.ExportRequest{Dataset: "market-study", Purpose: "dpv:CommercialResearch"}, &out)
	if err != nil {
		return err
	}
	if err := os.WriteFile(file, out.Bytes(), 0o600); err != nil {
		return err
	}
	say("   coop-c exports market-study to %s: %d rows, %d suppressed (groups under k=2), %d without consent.",
		filepath.Base(file), audit.Rows, audit.Suppressed, audit.NoConsent)
	say("   first row: %s", strings.SplitN(out.String(), "\n", 2)[0])
	say("   audit entry %d records who, what, as of which index, and sha256 %s…", audit.Index, audit.SHA256[:16])
	_, err = n.Export(ctx, "coop-a", coapp.ExportRequest{Dataset: "market-study", Purpose: "dpv:CommercialResearch"}, io.Discard)
	say("   coop-a, without a grant, is refused: %v", errors.Is(err, coapp.ErrForbidden))

	// 6. Shares, and the ledger verified.
	sh, err := n.Shares(ctx, "market-study", time.Time{}, time.Time{})
	if err != nil {
		return err
	}
	for _, s := range sh.Shares {
		say("6. %s contributed %d records (%.0f%%) about %d people.", s.Member, s.Records, 100*s.RecordShare, s.Subjects)
	}
	return verify(ctx, w, n)
}

func verify(ctx context.Context, w io.Writer, n *coapp.Node) error {
	if err := n.Ledger().Verify(ctx); err != nil {
		return err
	}
	return n.Ledger().Read(ctx, ledger.Linearizable, func(v *ledger.View) error {
		fmt.Fprintf(w, "The ledger holds %d entries, root %s…: every leaf and the tree re-verified; the ledger is intact.\n", v.Size(), v.Root().String()[:16])
		return nil
	})
}

func f64(x float64) *float64 { return &x }
