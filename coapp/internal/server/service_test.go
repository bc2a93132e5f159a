package server

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/coapp/internal/state"
	"coapp.coop/ledger"
	"coapp.coop/pseudonym"
)

// founder acts as the founding member of a test federation.
var founder = api.Caller{Member: "coop-a", Admin: true}

func testCtx(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

// newService starts the service of a one-node federation on a ledger in a
// temporary directory, without HTTP: coop-a founds it, and a purchase
// schema is registered. The state follows the ledger as a node's does.
func newService(tb testing.TB) *Service {
	tb.Helper()
	ctx := testCtx(tb)
	dir := tb.TempDir()
	l, err := ledger.Open(ctx, ledger.Config{
		Dir: dir, BindAddr: "127.0.0.1:0",
		HeartbeatTimeout: 150 * time.Millisecond, ElectionTimeout: 150 * time.Millisecond,
		LeaderLeaseTimeout: 75 * time.Millisecond, CommitTimeout: 5 * time.Millisecond,
		MemTableSize: 16 << 20, BlockCacheSize: 8 << 20, MaxBatchBytes: 256 << 10, MaxEntryBytes: 64 << 10,
	})
	if err != nil {
		tb.Fatal(err)
	}
	secret, err := pseudonym.NewSecret()
	if err != nil {
		tb.Fatal(err)
	}
	keys, err := pseudonym.NewKeyring(1, secret)
	if err != nil {
		tb.Fatal(err)
	}
	st := state.New()
	life, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e, err := range l.Follow(life, 0, format.Kinds...) {
			if err != nil {
				return
			}
			_ = st.Apply(e)
		}
	}()
	tb.Cleanup(func() {
		cancel()
		_ = l.Close(context.Background())
		<-done
	})
	s := New(life, Config{Dir: dir, URL: "http://127.0.0.1:1", MaxBodyBytes: 4 << 20}, l, st, keys, nil)
	if err := l.WaitLeader(ctx); err != nil {
		tb.Fatal(err)
	}
	if _, err := s.Bootstrap(ctx, Founding{Federation: "Test", Founder: "coop-a", Self: api.NodeInfo{ID: l.ID(), RaftAddr: l.Addr(), HTTPAddr: "http://127.0.0.1:1", Voter: true}}); err != nil {
		tb.Fatal(err)
	}
	if _, err := s.PutSchema(ctx, founder, purchaseSchema()); err != nil {
		tb.Fatal(err)
	}
	return s
}

func f64(x float64) *float64 { return &x }

// purchaseSchema is the schema of the test records: the subject is a
// member's e-mail, the shop an attribute, the amount a bounded decimal.
func purchaseSchema() api.Schema {
	return api.Schema{Type: "purchase", Version: 1, Fields: []api.Field{
		{Name: "amount", Kind: "decimal", Class: "attribute", Required: true, Min: f64(0), Max: f64(1e6), Policy: api.Policy{Action: "keep"}},
		{Name: "shop", Kind: "string", Class: "attribute", Policy: api.Policy{Action: "keep"}},
	}}
}

func purchase(subject string, amount int) api.Record {
	return api.Record{ID: uuid.New(), Type: "purchase", Subject: subject, Time: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC),
		Fields: map[string]json.RawMessage{"amount": json.RawMessage(fmt.Sprint(amount))}}
}

// kindsFrom counts the ledger's entries by kind from index from on.
func kindsFrom(t *testing.T, s *Service, from uint64) (map[string]int, uint64) {
	t.Helper()
	kinds := map[string]int{}
	var size uint64
	err := s.ledger.Read(testCtx(t), ledger.Stale, func(v *ledger.View) error {
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

// TestPublishAndAccess publishes through the service alone and reads the
// record back through the right of access, decrypted.
func TestPublishAndAccess(t *testing.T) {
	s := newService(t)
	ctx := testCtx(t)
	c := api.Caller{Member: "coop-a"}
	rs, err := s.Publish(ctx, c, []api.Record{purchase("anna@example.org", 12)})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.Access(ctx, c, "anna@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Records) != 1 || rep.Records[0].ID != rs[0].ID || string(rep.Records[0].Fields["amount"]) != "12" {
		t.Fatalf("access = %+v, want the record published", rep)
	}
	// Bad input changes nothing.
	bad := purchase("anna@example.org", -1)
	if _, err := s.Publish(ctx, c, []api.Record{bad}); !isInvalid(err, "records[0].fields.amount") {
		t.Fatalf("Publish(amount -1) = %v, want invalid records[0].fields.amount", err)
	}
	if got, _ := s.Access(ctx, c, "anna@example.org"); len(got.Records) != 1 {
		t.Fatalf("a refused record was written: %d records", len(got.Records))
	}
}

func isInvalid(err error, field string) bool {
	ve, ok := err.(*api.ValidationError)
	return ok && ve.Field == field
}
