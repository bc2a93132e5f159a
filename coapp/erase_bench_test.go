package coapp

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/client"
	"coapp.coop/ledger"
)

// BenchmarkPublishDuringErasures publishes with 256 concurrent clients,
// one record per request, through the leader of a three-node federation
// (Raft over loopback TCP, Badger on disk), for COAPP_BENCH_SECONDS
// (default 60) without erasures, then as long again with one person
// erased every second beside the load; it reports each run's p99 latency
// and records/s, and their ratio (p99_ratio: the target is at most 1.5).
// Run it with -benchtime 1x.
func BenchmarkPublishDuringErasures(b *testing.B) {
	// The ledger's defaults: a federation's memtables and purge delay.
	testLedger = func(c *ledger.Config) {
		if d, err := time.ParseDuration(os.Getenv("COAPP_PURGE_DELAY")); err == nil {
			c.PurgeDelay = d
		}
	}
	defer func() { testLedger = fastLedger }()
	n0, token := bootstrapNode(b)
	n1 := joinNode(b, "n1", n0, token, true)
	n2 := joinNode(b, "n2", n0, token, true)
	_ = n1
	_ = n2
	seconds := envInt("COAPP_BENCH_SECONDS", 60)
	c := client.New(n0.URL(), token)
	ctx := context.Background()
	// People to erase, each with a few records.
	const victims = 120
	for i := 0; i < victims; i += 20 {
		var recs []client.Record
		for j := i; j < i+20; j++ {
			r := record(j)
			r.ID, r.Subject = uuid.New(), fmt.Sprintf("victim-%d@example.org", j)
			again := r
			again.ID = uuid.New()
			recs = append(recs, r, again)
		}
		if _, err := c.Publish(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	run := func(erase bool) (p99 time.Duration, rate float64, erased int) {
		ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds)*time.Second)
		defer cancel()
		var mu sync.Mutex
		var lats []time.Duration
		var wg sync.WaitGroup
		for w := 0; w < 256; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cl := client.New(n0.URL(), token)
				var mine []time.Duration
				for i := 0; ctx.Err() == nil; i++ {
					r := record(i)
					r.ID = uuid.New()
					r.Subject = fmt.Sprintf("load-%d-%d@example.org", w, i%50)
					start := time.Now()
					if _, err := cl.Publish(ctx, []client.Record{r}); err != nil {
						if ctx.Err() == nil {
							b.Error(err)
						}
						break
					}
					mine = append(mine, time.Since(start))
				}
				mu.Lock()
				lats = append(lats, mine...)
				mu.Unlock()
			}()
		}
		if erase {
			tick := time.NewTicker(time.Second)
			for ctx.Err() == nil && erased < victims {
				select {
				case <-tick.C:
					if _, err := c.Erase(ctx, fmt.Sprintf("victim-%d@example.org", erased)); err != nil && ctx.Err() == nil {
						b.Error(err)
					}
					erased++
				case <-ctx.Done():
				}
			}
			tick.Stop()
		}
		wg.Wait()
		slices.Sort(lats)
		if len(lats) == 0 {
			b.Fatal("no request completed")
		}
		return lats[len(lats)*99/100], float64(len(lats)) / float64(seconds), erased
	}
	b.ResetTimer()
	for b.Loop() {
		basePbase, baseRate, _ := run(false)
		p99, rate, erased := run(true)
		b.ReportMetric(float64(basePbase.Microseconds())/1000, "p99_ms_plain")
		b.ReportMetric(float64(p99.Microseconds())/1000, "p99_ms_erasing")
		b.ReportMetric(float64(p99)/float64(basePbase), "p99_ratio")
		b.ReportMetric(baseRate, "records/s_plain")
		b.ReportMetric(rate, "records/s_erasing")
		b.ReportMetric(float64(erased), "erased")
	}
}

// envInt reads a positive integer from the environment, or def.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
