package coapp

import (
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"

	"coapp.coop/coapp/client"
	"coapp.coop/ledger"
)

// kindsFrom counts the ledger's entries by kind from index from on.
func kindsFrom(t *testing.T, n *Node, from uint64) (map[string]int, uint64) {
	t.Helper()
	kinds := map[string]int{}
	var size uint64
	err := n.Ledger().Read(testCtx(t), ledger.Stale, func(v *ledger.View) error {
		size = v.Size()
		for e, err := range v.Entries(from, size) {
			if err != nil {
				return err
			}
			kinds[e.Kind]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return kinds, size
}

// TestConcurrentPublishesGathered publishes many one-record requests at
// once through the leader and a follower of a three-node federation: they
// are signed in fewer batches than requests, every request gets the
// receipts of its own records, and every replica accepts every record.
func TestConcurrentPublishesGathered(t *testing.T) {
	n0, token := bootstrapNode(t)
	n1 := joinNode(t, "n1", n0, token, true)
	n2 := joinNode(t, "n2", n0, token, true)
	ctx := testCtx(t)
	_, before := kindsFrom(t, n0, 0)
	const perNode, workers = 96, 32
	var wg sync.WaitGroup
	errs := make(chan error, 2*perNode)
	for _, via := range []*Node{n0, n1} {
		c := client.New(via.URL(), token)
		next := make(chan int, perNode)
		for i := range perNode {
			next <- i
		}
		close(next)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					r := record(i)
					r.ID = uuid.New()
					// A new person per request: two requests creating a
					// key for the same new person conflict, and one of
					// them goes alone (TestGatherTake).
					r.Subject = fmt.Sprintf("person-%d@%s", i, via.ledger.ID())
					rs, err := c.Publish(ctx, []client.Record{r})
					switch {
					case err != nil:
						errs <- fmt.Errorf("through %s: %w", via.ledger.ID(), err)
					case len(rs) != 1 || rs[0].ID != r.ID:
						errs <- fmt.Errorf("through %s: receipts %+v for record %s", via.ledger.ID(), rs, r.ID)
					default:
						got, err := c.Record(ctx, r.ID, "")
						if err != nil || got.Index != rs[0].Index {
							errs <- fmt.Errorf("record %s: %+v, %v; receipt index %d", r.ID, got, err, rs[0].Index)
						}
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	kinds, after := kindsFrom(t, n0, before)
	if kinds[KindRecord] != 2*perNode {
		t.Fatalf("%d records in the ledger, want %d", kinds[KindRecord], 2*perNode)
	}
	if kinds[KindBatch] >= 2*perNode {
		t.Errorf("%d batch signatures for %d requests: none gathered", kinds[KindBatch], 2*perNode)
	}
	t.Logf("%d requests signed in %d batches", 2*perNode, kinds[KindBatch])
	for _, n := range []*Node{n0, n1} {
		_, _, fallbacks := n.svc.Metrics().SignedBatches()
		if fallbacks != 0 {
			t.Errorf("%s: %d requests went alone after their gathered batch failed", n.ledger.ID(), fallbacks)
		}
	}
	for _, n := range []*Node{n0, n1, n2} {
		if err := n.state.WaitApplied(ctx, after-1); err != nil {
			t.Fatal(err)
		}
		if bad := n.state.RefusedRecords(); len(bad) != 0 {
			t.Errorf("%s refused %d gathered records", n.ledger.ID(), len(bad))
		}
	}
}
