package coapp

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/server"
	"coapp.coop/ledger"
)

// BenchmarkPublish measures publishing through the Go API with the whole
// privacy path (schema validation, the subject and an e-mail field
// pseudonymised, a postcode generalised, the fields sealed under the
// subject's data key, created for a new subject) against appending the
// same records to the ledger as they came, in one run (both signed,
// checked and appended as a member's batch: the signature is not part of
// the privacy path), and reports the
// ratio (x_plain: the target is at least 0.85). The records are
// about 20,000 people, so that some subjects are new and most have a key
// already, as when members trade again and again.
func BenchmarkPublish(b *testing.B) {
	schema := Schema{Type: "purchase", Version: 1, Fields: []Field{
		{Name: "email", Kind: "string", Class: "direct", Policy: Policy{Action: "pseudonymise"}},
		{Name: "postcode", Kind: "postcode", Class: "quasi", Policy: Policy{Action: "generalise", Keep: 3}},
		{Name: "amount", Kind: "decimal", Class: "attribute", Policy: Policy{Action: "keep"}},
		{Name: "shop", Kind: "string", Class: "attribute", Policy: Policy{Action: "keep"}},
	}}
	makeRecords := func(seq uint64) []Record {
		out := make([]Record, 10)
		for i := range out {
			subject := fmt.Sprintf("member-%d@coop-a.example.org", (seq*10+uint64(i))*7919%20000)
			out[i] = Record{
				ID: uuid.Must(uuid.NewV7()), Type: "purchase", Subject: subject, Time: time.Now().UTC(),
				Fields: map[string]json.RawMessage{
					"email": json.RawMessage(`"` + subject + `"`), "postcode": json.RawMessage(`"40126"`),
					"amount": json.RawMessage(`12.50`), "shop": json.RawMessage(`"Bologna centro, via Rizzoli 10, scaffale 4"`),
				},
			}
		}
		return out
	}
	rates := map[string]float64{}
	for _, mode := range []string{"plain", "privacy"} {
		b.Run(mode, func(b *testing.B) {
			// Each mode on a node of its own, so that neither runs on
			// the other's data.
			cfg := nodeConfig(b.TempDir())
			cfg.Bootstrap, cfg.Federation, cfg.Logger = true, "bench", nil
			n, err := Open(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close(context.Background())
			if _, err := n.Ledger().Append(context.Background(), server.SystemEntry(KindSchema, "founder", time.Now().UTC(), schema)); err != nil {
				b.Fatal(err)
			}
			n.svc.AwaitView(context.Background())
			var next atomic.Uint64
			var wg sync.WaitGroup
			calls := (b.N + 9) / 10
			b.ResetTimer()
			for c := 0; c < 64; c++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						seq := next.Add(1)
						if seq > uint64(calls) {
							return
						}
						recs := makeRecords(seq)
						var err error
						if mode == "privacy" {
							_, err = n.Publish(context.Background(), "coop-a", recs)
						} else {
							// The same records as they came, signed,
							// checked and appended as a batch is.
							entries := make([]ledger.Entry, len(recs))
							for i, r := range recs {
								payload, _ := json.Marshal(r)
								entries[i] = ledger.Entry{ID: r.ID, Kind: KindRecord, Author: "coop-a", Time: r.Time, Payload: payload}
							}
							key, kerr := n.svc.Signers().Key("coop-a")
							if kerr != nil {
								b.Error(kerr)
								return
							}
							_, err = n.svc.SignAndAppend(context.Background(), api.Caller{Member: "coop-a"}, key, entries, nil)
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			rate := float64(calls*10) / b.Elapsed().Seconds()
			b.ReportMetric(rate, "records/s")
			rates[mode] = rate
			if p, ok := rates["plain"]; ok && mode == "privacy" {
				b.ReportMetric(rate/p, "x_plain")
			}
		})
	}
}
