// Command energy-community: the households of a renewable energy community
// share their meter readings, with consent, to size a battery the
// community will own together. Nobody sees anyone's readings: the
// community asks for averages by neighbourhood and hour, which the node
// answers only for groups of at least five households, and a
// differentially private total whose privacy budget the ledger accounts.
//
//	go run ./examples/energy-community
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp"
	"coapp.coop/consent"
)

func main() {
	households := flag.Int("households", 40, "households in the community")
	flag.Parse()
	dir, err := os.MkdirTemp("", "coapp-energy-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, coapp.Config{Dir: dir, HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0"}, *households); err != nil {
		log.Fatal(err)
	}
}

// The community is one member, "sun-coop"; the grid operator's
// cooperative, "grid-coop", is a second member that studies the data.
// run tells the story on a node configured by cfg (its directory and
// addresses; the federation is founded here).
func run(ctx context.Context, w io.Writer, cfg coapp.Config, households int) error {
	say := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	cfg.Bootstrap, cfg.Federation, cfg.Member, cfg.FoundingMembers = true, "Valley Energy", "sun-coop", []string{"grid-coop"}
	n, err := coapp.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close(context.Background())

	// Readings: the household is the subject (pseudonymised), the street
	// a quasi-identifier cut to its district, the hour kept, kWh kept.
	err = n.PutSchema(ctx, "sun-coop", coapp.Schema{Type: "meter-reading", Version: 1, Fields: []coapp.Field{
		{Name: "district", Kind: "postcode", Class: "quasi", Policy: coapp.Policy{Action: "generalise", Keep: 2}},
		{Name: "hour", Kind: "integer", Class: "attribute", Min: f64(0), Max: f64(23), Required: true, Policy: coapp.Policy{Action: "keep"}},
		{Name: "kwh", Kind: "decimal", Class: "attribute", Min: f64(0), Max: f64(50), Required: true, Policy: coapp.Policy{Action: "keep"}},
	}})
	if err != nil {
		return err
	}
	terms := func(tier consent.Tier, subject string) coapp.ConsentRequest {
		return coapp.ConsentRequest{Tier: tier, Subject: subject, Purposes: []string{"dpv:ServiceOptimisation"},
			DataCategories: []string{"pd:EnergyConsumption"}, Jurisdiction: "EU", WithdrawalMethod: "ask the community's office",
			Notice:   consent.Notice{URI: "https://valley.example/battery-study", SHA256: consent.Hash([]byte("We size a shared battery from our readings."))},
			Validity: consent.Validity{Duration: "P1Y"}}
	}
	if _, err := n.GiveConsent(ctx, "sun-coop", terms(consent.TierMember, "")); err != nil {
		return err
	}
	consenting := 0
	var readings []coapp.Record
	for h := 0; h < households; h++ {
		meter := fmt.Sprintf("IT001E%08d", 4711+h) // the meter's point-of-delivery code: an identifier
		if h%8 != 7 {                              // one household in eight declines
			if _, err := n.GiveConsent(ctx, "sun-coop", terms(consent.TierSubject, meter)); err != nil {
				return err
			}
			consenting++
		}
		district := []string{"10121", "10135", "20144"}[h%3]
		if h == 0 {
			district = "30100" // a lone farmhouse: five readings, one household
		}
		for hour := 17; hour <= 21; hour++ {
			kwh := 0.4 + float64((h*7+hour*3)%10)/10
			readings = append(readings, coapp.Record{
				ID: uuid.NewSHA1(uuid.NameSpaceURL, []byte(fmt.Sprintf("%s/%d", meter, hour))), Type: "meter-reading", Subject: meter,
				Time: time.Date(2026, 11, 20, hour, 0, 0, 0, time.UTC),
				Fields: map[string]json.RawMessage{"district": json.RawMessage(`"` + district + `"`),
					"hour": json.RawMessage(fmt.Sprint(hour)), "kwh": json.RawMessage(fmt.Sprintf("%.1f", kwh))},
			})
		}
	}
	for i := 0; i < len(readings); i += 100 {
		if _, err := n.Publish(ctx, "sun-coop", readings[i:min(i+100, len(readings))]); err != nil {
			return err
		}
	}
	say("%d households, %d of them consenting, published %d evening readings.", households, consenting, len(readings))

	// The dataset and the grant, voted by both members.
	ds := coapp.Dataset{Name: "evening-load", Description: "Evening consumption, by district and hour",
		Purpose: "dpv:ServiceOptimisation", Category: "pd:EnergyConsumption", K: 5, DPBudget: 1,
		Types: []coapp.DatasetType{{Type: "meter-reading", Fields: []string{"district", "hour", "kwh"}}}}
	grant := coapp.Grant{Dataset: "evening-load", Grantee: "grid-coop", Purpose: "dpv:ServiceOptimisation", Until: time.Now().Add(90 * 24 * time.Hour)}
	for _, p := range []coapp.Proposal{{Kind: coapp.ProposeDataset, Dataset: &ds}, {Kind: coapp.ProposeGrant, Grant: &grant}} {
		ps, err := n.Propose(ctx, "sun-coop", p)
		if err != nil {
			return err
		}
		for _, m := range []string{"sun-coop", "grid-coop"} {
			if ps, err = n.CastVote(ctx, m, ps.ID, "yes"); err != nil {
				return err
			}
		}
		say("The %s proposal %s.", p.Kind, ps.Outcome)
	}

	// Average evening load by district: a district with fewer than five
	// households is not released, however many readings it has.
	mean, err := n.Aggregate(ctx, "grid-coop", "evening-load", coapp.AggregateRequest{
		Purpose: "dpv:ServiceOptimisation", GroupBy: []string{"district"}, Op: "mean", Field: "kwh"})
	if err != nil {
		return err
	}
	for _, g := range mean.Groups {
		say("  district %s: %3.0f readings, mean %.2f kWh per household-hour", unquote(g.Key["district"]), g.Count, g.Value)
	}
	say("  %d district(s) withheld: fewer than %d households.", mean.Suppressed, ds.K)

	// Peak hour: the sum by hour, exact.
	sum, err := n.Aggregate(ctx, "grid-coop", "evening-load", coapp.AggregateRequest{
		Purpose: "dpv:ServiceOptimisation", GroupBy: []string{"hour"}, Op: "sum", Field: "kwh"})
	if err != nil {
		return err
	}
	peak := sum.Groups[0]
	for _, g := range sum.Groups {
		if g.Value > peak.Value {
			peak = g
		}
	}
	say("Peak hour %s:00: %.1f kWh across the consenting households; a battery of about %.0f kWh covers it.", unquote(peak.Key["hour"]), peak.Value, peak.Value*1.2)

	// A differentially private total, each household counted once, values
	// clipped to [0, 2] kWh: epsilon 0.5 of the budget of 1.
	dp, err := n.Aggregate(ctx, "grid-coop", "evening-load", coapp.AggregateRequest{
		Purpose: "dpv:ServiceOptimisation", Op: "count", DP: &coapp.DPParams{Epsilon: 0.5}})
	if err != nil {
		return err
	}
	say("A differentially private count of consenting households: about %.0f (epsilon 0.5; %.1f of the budget left).", dp.Groups[0].Count, dp.BudgetLeft)
	_, err = n.Aggregate(ctx, "grid-coop", "evening-load", coapp.AggregateRequest{
		Purpose: "dpv:ServiceOptimisation", Op: "count", DP: &coapp.DPParams{Epsilon: 0.8}})
	say("Asking again with epsilon 0.8 is refused, the budget would be overspent: %v", err != nil)
	audit, err := n.Audit("evening-load")
	if err != nil {
		return err
	}
	say("The audit trail holds %d queries, visible to every member.", len(audit))
	return nil
}

func f64(x float64) *float64 { return &x }

func unquote(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}
