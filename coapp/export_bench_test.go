package coapp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	rtmetrics "runtime/metrics"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/internal/format"
	"coapp.coop/consent"
	"coapp.coop/ledger"
)

// BenchmarkExport exports a dataset of COAPP_BENCH_EXPORT_RECORDS records
// (default 100,000; the dataset issue asks for 1,000,000) and reports
// records/s and the peak live heap during the export, against a plain scan
// of the same records (reading each entry and decoding its payload's head)
// as the floor:
//
//	COAPP_BENCH_EXPORT_RECORDS=1000000 go test ./coapp -run XXX -bench Export -benchtime 1x
func BenchmarkExport(b *testing.B) {
	records := 100000
	if s := os.Getenv("COAPP_BENCH_EXPORT_RECORDS"); s != "" {
		var err error
		if records, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	cfg := nodeConfig(b.TempDir())
	cfg.Bootstrap, cfg.Federation, cfg.Member, cfg.Logger = true, "bench", "coop-a", nil
	n, err := Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close(ctx)
	if err := n.PutSchema(ctx, "coop-a", basketSchema()); err != nil {
		b.Fatal(err)
	}
	give := func(subject string, tier consent.Tier) {
		req := consentRequest(subject, "dpv:ResearchAndDevelopment")
		req.Tier = tier
		if _, err := n.GiveConsent(ctx, "coop-a", req); err != nil {
			b.Fatal(err)
		}
	}
	give("", consent.TierMember)
	const people = 2000
	for i := 0; i < people; i++ {
		give(fmt.Sprintf("household-%d", i), consent.TierSubject)
	}
	start := time.Now()
	const batch = 100
	for i := 0; i < records; i += batch {
		recs := make([]Record, 0, batch)
		for j := i; j < min(i+batch, records); j++ {
			subject := fmt.Sprintf("household-%d", j%people)
			recs = append(recs, Record{ID: uuid.Must(uuid.NewV7()), Type: "basket", Subject: subject, Time: time.Date(2026, 10, 1, 0, 0, j%86400, 0, time.UTC),
				Fields: map[string]json.RawMessage{"email": json.RawMessage(`"` + subject + `@coop.example"`), "postcode": json.RawMessage(fmt.Sprintf(`"40%03d"`, j%300)), "amount": json.RawMessage(strconv.Itoa(j % 97))}})
		}
		if _, err := n.Publish(ctx, "coop-a", recs); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("published %d records in %v", records, time.Since(start).Round(time.Millisecond))
	ds := Dataset{Name: "baskets", Purpose: "dpv:ResearchAndDevelopment", Category: "pd:Purchase", K: 5,
		Types: []DatasetType{{Type: "basket", Fields: []string{"email", "postcode", "amount"}}}}
	p, err := n.Propose(ctx, "coop-a", Proposal{Kind: ProposeDataset, Dataset: &ds})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := n.CastVote(ctx, "coop-a", p.ID, "yes"); err != nil {
		b.Fatal(err)
	}
	g, err := n.Propose(ctx, "coop-a", Proposal{Kind: ProposeGrant, Grant: &Grant{Dataset: "baskets", Grantee: "coop-a", Purpose: "dpv:ResearchAndDevelopment", Until: time.Now().Add(24 * time.Hour)}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := n.CastVote(ctx, "coop-a", g.ID, "yes"); err != nil {
		b.Fatal(err)
	}

	b.Run("scan", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			count := 0
			err := n.ledger.Read(ctx, ledger.Stale, func(v *ledger.View) error {
				for e, err := range v.Entries(0, v.Size()) {
					if err != nil {
						return err
					}
					if e.Kind != KindRecord {
						continue
					}
					if head, err := format.DecodeRecordPayload(e.Payload); err == nil && head.Type == "basket" {
						count++
					}
				}
				return nil
			})
			if err != nil || count != records {
				b.Fatalf("scanned %d records: %v", count, err)
			}
		}
		b.ReportMetric(float64(records*b.N)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("export", func(b *testing.B) {
		// The live heap (as of each GC, runtime/metrics) at its peak
		// during the export, above what it was before: garbage awaiting
		// collection is not the export's memory.
		var peak atomic.Uint64
		stop := make(chan struct{})
		done := make(chan struct{})
		runtime.GC()
		live := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
		rtmetrics.Read(live)
		base := live[0].Value.Uint64()
		go func() {
			defer close(done)
			for {
				s := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
				rtmetrics.Read(s)
				if v := s[0].Value.Uint64(); v > peak.Load() {
					peak.Store(v)
				}
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
		rows := 0
		for i := 0; i < b.N; i++ {
			a, err := n.Export(ctx, "coop-a", ExportRequest{Dataset: "baskets", Purpose: "dpv:ResearchAndDevelopment"}, io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			rows = a.Rows + a.Suppressed
		}
		close(stop)
		<-done
		if rows != records {
			b.Fatalf("exported %d records, want %d", rows, records)
		}
		b.ReportMetric(float64(records*b.N)/b.Elapsed().Seconds(), "records/s")
		b.ReportMetric(float64(peak.Load()-min(base, peak.Load()))/(1<<20), "peak_live_MB")
	})
}
