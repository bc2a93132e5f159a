package ledger_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/google/uuid"

	"coapp.coop/ledger"
	"coapp.coop/ledger/merkle"
)

func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "ledger-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// A single-node ledger; BindAddr ":0" picks a free port for Raft.
	l, err := ledger.Open(ctx, ledger.Config{Dir: dir, BindAddr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close(ctx)

	harvest := ledger.Entry{
		ID:      uuid.MustParse("0193a3c2-0000-7000-8000-000000000001"),
		Kind:    "coop.harvest/v1",
		Author:  "coop-a",
		Time:    time.Date(2026, 9, 14, 8, 0, 0, 0, time.UTC),
		Payload: []byte(`{"crop":"olives","kg":120}`),
	}
	delivery := ledger.Entry{
		ID:      uuid.MustParse("0193a3c2-0000-7000-8000-000000000002"),
		Kind:    "coop.delivery/v1",
		Author:  "coop-b",
		Time:    time.Date(2026, 9, 15, 9, 30, 0, 0, time.UTC),
		Payload: []byte(`{"crates":3}`),
	}
	receipts, err := l.Append(ctx, harvest, delivery)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("appended at", receipts[0].Index, "and", receipts[1].Index)

	// Appending the same entry again changes nothing.
	again, err := l.Append(ctx, harvest)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("retry: index", again[0].Index, "duplicate", again[0].Duplicate)

	// Prove the delivery is in the log, and check the proof with hashes only.
	err = l.Read(ctx, ledger.Linearizable, func(v *ledger.View) error {
		proof, err := v.InclusionProof(receipts[1].Index, v.Size())
		if err != nil {
			return err
		}
		fmt.Println("size", v.Size(), "proof verifies:",
			merkle.VerifyInclusion(receipts[1].Leaf, receipts[1].Index, v.Size(), proof, v.Root()) == nil)
		e, err := v.Entry(0)
		fmt.Printf("entry 0: %s by %s: %s\n", e.Kind, e.Author, e.Payload)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("verify:", l.Verify(ctx))
	// Output:
	// appended at 0 and 1
	// retry: index 0 duplicate true
	// size 2 proof verifies: true
	// entry 0: coop.harvest/v1 by coop-a: {"crop":"olives","kg":120}
	// verify: <nil>
}
