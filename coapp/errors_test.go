package coapp

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/client"
)

// TestOneErrorFamily provokes each error the way a caller meets it, once
// through the Go API of a node and once through the HTTP API with the Go
// client: both match the same sentinel with errors.Is (and the broader
// one, where there is one), and nothing was written.
func TestOneErrorFamily(t *testing.T) {
	n, cl, tokens := smallFederation(t, Rules{}, []string{"coop-b"}, "coop-z")
	ctx := testCtx(t)
	a, z := cl["coop-a"], cl["coop-z"]
	_ = tokens
	if err := n.PutSchema(ctx, "coop-a", purchaseSchema()); err != nil {
		t.Fatal(err)
	}
	// A dataset, passed by both members, with no grant yet.
	p, err := n.Propose(ctx, "coop-a", Proposal{Kind: ProposeDataset, Dataset: &Dataset{Name: "d", Purpose: "dpv:ResearchAndDevelopment", Category: "pd:Purchase", K: 1,
		Types: []DatasetType{{Type: "basket", Fields: []string{"amount"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.CastVote(ctx, "coop-a", p.ID, "yes"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.CastVote(ctx, "coop-b", p.ID, "yes"); err != nil {
		t.Fatal(err)
	}
	// An open proposal coop-a voted on.
	open, err := n.Propose(ctx, "coop-a", Proposal{Kind: ProposeAdmit, Member: "coop-q"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.CastVote(ctx, "coop-a", open.ID, "yes"); err != nil {
		t.Fatal(err)
	}
	// A consent withdrawn, and a person erased.
	given, err := n.GiveConsent(ctx, "coop-a", consentRequest("anna@example.org", "dpv:ResearchAndDevelopment"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.ChangeConsent(ctx, "coop-a", given.Record, "withdraw", ConsentChange{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.Erase(ctx, "coop-a", "erased@example.org"); err != nil {
		t.Fatal(err)
	}
	reused := consentRequest("bea@example.org", "dpv:ResearchAndDevelopment")
	reused.ID = uuid.New()
	if _, err := n.GiveConsent(ctx, "coop-a", reused); err != nil {
		t.Fatal(err)
	}
	erasedRecord := purchase("erased@example.org", 3)
	export := ExportRequest{Dataset: "d", Purpose: "dpv:ResearchAndDevelopment"}

	cases := []struct {
		name   string
		want   error
		inproc func() error
		http   func() error
	}{
		{"a record without an id", ErrInvalid,
			func() error { _, err := n.Publish(ctx, "coop-a", []Record{{Type: "purchase"}}); return err },
			func() error { _, err := a.Publish(ctx, []client.Record{{Type: "purchase"}}); return err }},
		{"the audit of no dataset", ErrNotFound,
			func() error { _, err := n.Audit("nope"); return err },
			func() error { _, err := a.Audit(ctx, "nope"); return err }},
		{"an export without a grant", ErrForbidden,
			func() error { _, err := n.Export(ctx, "coop-a", export, nil); return err },
			func() error { _, err := a.Export(ctx, "d", export, nil); return err }},
		{"a proposal by a non-member", ErrNotMember,
			func() error {
				_, err := n.Propose(ctx, "coop-z", Proposal{Kind: ProposeAdmit, Member: "coop-y"})
				return err
			},
			func() error { _, err := z.Propose(ctx, Proposal{Kind: ProposeAdmit, Member: "coop-y"}); return err }},
		{"a second vote", ErrVoted,
			func() error { _, err := n.CastVote(ctx, "coop-a", open.ID, "no"); return err },
			func() error { _, err := a.Vote(ctx, open.ID, "no"); return err }},
		{"a vote on a passed proposal", ErrClosed,
			func() error { _, err := n.CastVote(ctx, "coop-a", p.ID, "no"); return err },
			func() error { _, err := a.Vote(ctx, p.ID, "no"); return err }},
		{"a schema version that is not the next", ErrConflict,
			func() error { return n.PutSchema(ctx, "coop-a", purchaseSchema()) },
			func() error { _, err := a.PutSchema(ctx, purchaseSchema()); return err }},
		{"an unknown purpose", ErrUnknownPurpose,
			func() error {
				_, err := n.CheckConsent("coop-a", CheckRequest{Subject: "anna@example.org", Purpose: "dpv:Nope"})
				return err
			},
			func() error {
				_, err := a.CheckConsent(ctx, CheckRequest{Subject: "anna@example.org", Purpose: "dpv:Nope"})
				return err
			}},
		{"a consent record id used twice", ErrConsentExists,
			func() error { _, err := n.GiveConsent(ctx, "coop-a", reused); return err },
			func() error { _, err := a.GiveConsent(ctx, reused); return err }},
		{"withdrawing what is withdrawn", ErrWithdrawn,
			func() error {
				_, err := n.ChangeConsent(ctx, "coop-a", given.Record, "withdraw", ConsentChange{})
				return err
			},
			func() error { _, err := a.ChangeConsent(ctx, given.Record, "withdraw", ConsentChange{}); return err }},
		{"publishing about an erased person", ErrErased,
			func() error { _, err := n.Publish(ctx, "coop-a", []Record{erasedRecord}); return err },
			func() error { _, err := a.Publish(ctx, []client.Record{erasedRecord}); return err }},
	}
	size := ledgerSize(t, a)
	for _, tc := range cases {
		for via, call := range map[string]func() error{"Go API": tc.inproc, "HTTP": tc.http} {
			err := call()
			if !errors.Is(err, tc.want) {
				t.Errorf("%s, through the %s: %v (%T), want %v", tc.name, via, err, err, tc.want)
			}
			if parent := errors.Unwrap(tc.want); parent != nil && !errors.Is(err, parent) {
				t.Errorf("%s, through the %s: %v is not a %v", tc.name, via, err, parent)
			}
		}
	}
	n.svc.AwaitView(ctx)
	if got := ledgerSize(t, a); got != size {
		t.Errorf("the refused calls wrote %d entries", got-size)
	}
	bad := client.New(n.URL(), "coapp_0000000000000000_nope", client.WithRetries(1))
	ctx2, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := bad.Members(ctx2); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("an unknown token: %v, want ErrUnauthenticated", err)
	}
}
