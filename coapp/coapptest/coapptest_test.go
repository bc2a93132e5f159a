package coapptest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/client"
	"coapp.coop/coapp/coapptest"
)

func purchaseSchema() api.Schema {
	min := 0.0
	return api.Schema{Type: "purchase", Version: 1, Fields: []api.Field{
		{Name: "amount", Kind: "decimal", Class: "attribute", Required: true, Min: &min, Policy: api.Policy{Action: "keep"}},
	}}
}

func purchase(i int) client.Record {
	return client.Record{ID: uuid.New(), Type: "purchase", Subject: fmt.Sprintf("person-%d@example.org", i),
		Time: time.Date(2026, 11, 2, 9, 0, i, 0, time.UTC), Fields: map[string]json.RawMessage{"amount": json.RawMessage(fmt.Sprint(i))}}
}

// TestStartFederation publishes through a follower, kills the leader,
// publishes through a survivor, restarts the old leader: every record is
// read back through every node, and at cleanup every replica has one root.
func TestStartFederation(t *testing.T) {
	f := coapptest.StartFederation(t, 3, coapptest.Options{Schemas: []api.Schema{purchaseSchema()}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	leader := f.Leader()
	follower := (leader + 1) % 3
	rs, err := f.Client(follower).Publish(ctx, []client.Record{purchase(1)})
	if err != nil {
		t.Fatalf("publish through a follower: %v", err)
	}
	f.Kill(leader)
	survivor := (leader + 2) % 3
	rs2, err := f.Client(survivor).Publish(ctx, []client.Record{purchase(2)})
	if err != nil {
		t.Fatalf("publish after the leader was killed: %v", err)
	}
	f.Restart(leader)
	f.CheckConverged()
	for i := range 3 {
		for _, rc := range append(rs, rs2...) {
			got, err := f.Client(i).Record(ctx, rc.ID, "stale")
			if err != nil || got.Index != rc.Index {
				t.Errorf("node %d: record %s = %+v, %v; want index %d", i, rc.ID, got, err, rc.Index)
			}
		}
	}
	// A member's token: what it may not do is refused with the sentinel.
	b := f.Member(0, "coop-b")
	if _, err := b.PutSchema(ctx, purchaseSchema()); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("a member registers a schema: %v, want ErrForbidden", err)
	}
}

// TestNewNode starts one node and publishes through its Go API and its
// HTTP API.
func TestNewNode(t *testing.T) {
	f := coapptest.NewNode(t, coapptest.Options{Schemas: []api.Schema{purchaseSchema()}})
	ctx := context.Background()
	if _, err := f.Node(0).Publish(ctx, "coop-a", []api.Record{purchase(1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Client(0).Publish(ctx, []client.Record{purchase(2)}); err != nil {
		t.Fatal(err)
	}
	rep, err := f.Node(0).Access(ctx, "coop-a", "person-1@example.org")
	if err != nil || len(rep.Records) != 1 {
		t.Fatalf("access = %+v, %v", rep, err)
	}
}

// BenchmarkNewNode measures how long a test waits for a one-node
// federation: open, bootstrap, ready.
func BenchmarkNewNode(b *testing.B) {
	for b.Loop() {
		f := coapptest.NewNode(b, coapptest.Options{})
		f.Kill(0)
	}
}

// TestGoAPIOnAFollower calls the Go API of a follower: its writes reach
// the leader as the HTTP API's do (the follower presents its join token,
// for the member), and bad input gets the same typed error.
func TestGoAPIOnAFollower(t *testing.T) {
	f := coapptest.StartFederation(t, 2, coapptest.Options{Schemas: []api.Schema{purchaseSchema()}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	follower := f.Node(1 - f.Leader())
	rs, err := follower.Publish(ctx, "coop-a", []api.Record{purchase(7)})
	if err != nil {
		t.Fatalf("publish through a follower's Go API: %v", err)
	}
	if got, err := f.Client(f.Leader()).Record(ctx, rs[0].ID, "leader"); err != nil || got.Index != rs[0].Index {
		t.Fatalf("the leader has %+v, %v; want index %d", got, err, rs[0].Index)
	}
	p, err := follower.Propose(ctx, "coop-a", api.Proposal{Kind: api.ProposeAdmit, Member: "coop-b"})
	if err != nil {
		t.Fatalf("a proposal through a follower's Go API: %v", err)
	}
	if p, err = follower.CastVote(ctx, "coop-a", p.ID, "yes"); err != nil || p.Outcome != "passed" {
		t.Fatalf("a vote through a follower's Go API: %+v, %v", p, err)
	}
	if err := follower.PutSchema(ctx, "coop-a", purchaseSchema()); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("schema version 1 again through a follower: %v, want ErrConflict", err)
	}
	if _, err := follower.Publish(ctx, "coop-a", []api.Record{{Type: "purchase"}}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("a record without an id through a follower: %v, want ErrInvalid", err)
	}
}
