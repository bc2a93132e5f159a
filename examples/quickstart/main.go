// Command quickstart shows the coapp ledger at work on the embedded default:
// a one-node Raft cluster on a local directory, no server to install.
//
// Three cooperatives publish the records of their exchanges; the ledger
// gives each a receipt, proves that a record is in the log, proves that the
// log only grew, and re-verifies everything it holds.
//
//	go run ./examples/quickstart            # in a fresh temporary directory
//	go run ./examples/quickstart -dir data  # keep the ledger in ./data
//
// The cooperative platform (members, consent, pseudonyms, datasets, votes)
// builds on this ledger; this example grows with it.
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

	"coapp.coop/ledger"
	"coapp.coop/ledger/merkle"
)

func main() {
	dir := flag.String("dir", "", "directory for the ledger (default: a new temporary directory, removed at exit)")
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
	if err := run(ctx, os.Stdout, *dir); err != nil {
		log.Fatal(err)
	}
}

// exchange is what a cooperative publishes: the ledger stores it as an
// opaque payload.
type exchange struct {
	Coop   string  `json:"coop"`
	Type   string  `json:"type"`
	What   string  `json:"what"`
	Amount float64 `json:"amount"`
	Unit   string  `json:"unit"`
}

func run(ctx context.Context, w io.Writer, dir string) error {
	l, err := ledger.Open(ctx, ledger.Config{Dir: dir, BindAddr: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	defer l.Close(ctx)
	fmt.Fprintf(w, "Opened a one-node ledger in %s (node %s, Raft on %s).\n\n", dir, l.ID(), l.Addr())

	exchanges := []exchange{
		{"Olive Growers of Puglia", "harvest", "olives", 1200, "kg"},
		{"Bologna Consumer Coop", "purchase", "olive oil", 40, "litres"},
		{"Sunny Roofs Energy", "meter-reading", "solar output", 312.5, "kWh"},
		{"Olive Growers of Puglia", "delivery", "olive oil", 40, "litres"},
		{"Care Together", "care-hours", "home care", 6, "hours"},
	}
	var receipts []ledger.Receipt
	for i, x := range exchanges {
		payload, err := json.Marshal(x)
		if err != nil {
			return err
		}
		// A fixed id per record makes publishing idempotent: run it twice,
		// the log holds each record once.
		id := uuid.NewSHA1(uuid.NameSpaceURL, fmt.Appendf(nil, "coapp.coop/quickstart/%d", i))
		rs, err := l.Append(ctx, ledger.Entry{
			ID:      id,
			Kind:    "coop." + x.Type + "/v1",
			Author:  x.Coop,
			Time:    time.Date(2026, 9, 14+i, 9, 0, 0, 0, time.UTC),
			Payload: payload,
		})
		if err != nil {
			return err
		}
		receipts = append(receipts, rs[0])
		fmt.Fprintf(w, "%-26s published a %-13s -> entry %d, leaf %s…\n", x.Coop, x.Type, rs[0].Index, rs[0].Leaf.String()[:16])
	}

	again, err := l.Append(ctx, ledger.Entry{
		ID:      receipts[0].ID,
		Kind:    "coop.harvest/v1",
		Author:  exchanges[0].Coop,
		Time:    time.Date(2026, 9, 14, 9, 0, 0, 0, time.UTC),
		Payload: must(json.Marshal(exchanges[0])),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nPublishing the harvest again returns its receipt (entry %d, duplicate: %v): nothing is stored twice.\n", again[0].Index, again[0].Duplicate)

	err = l.Read(ctx, ledger.Linearizable, func(v *ledger.View) error {
		size, root := v.Size(), v.Root()
		fmt.Fprintf(w, "\nThe log holds %d entries; its Merkle root is %s.\n", size, root)

		// Anyone holding a receipt and the root can check that the record is
		// in the log, with hashes alone.
		r := receipts[2]
		proof, err := v.InclusionProof(r.Index, size)
		if err != nil {
			return err
		}
		ok := merkle.VerifyInclusion(r.Leaf, r.Index, size, proof, root) == nil
		fmt.Fprintf(w, "Inclusion proof for entry %d (%d hashes): verified=%v\n", r.Index, len(proof), ok)

		// An auditor who saw the log at 3 entries can check it only grew.
		old, err := v.RootAt(3)
		if err != nil {
			return err
		}
		cproof, err := v.ConsistencyProof(3, size)
		if err != nil {
			return err
		}
		ok = merkle.VerifyConsistency(3, size, old, root, cproof) == nil
		fmt.Fprintf(w, "Consistency proof from 3 to %d entries: verified=%v\n", size, ok)

		// A changed record no longer matches its leaf.
		tampered := merkle.VerifyInclusion(merkle.LeafHash([]byte("forged")), r.Index, size, proof, root)
		fmt.Fprintf(w, "A forged record against the same proof: rejected=%v\n", tampered != nil)
		return nil
	})
	if err != nil {
		return err
	}
	if err := l.Verify(ctx); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nVerify re-read every entry and rebuilt the tree: the ledger is intact.")
	return nil
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
