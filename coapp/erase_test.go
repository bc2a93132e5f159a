package coapp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"coapp.coop/coapp/client"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/internal/fsscan"
	"coapp.coop/ledger"
	"coapp.coop/pseudonym"
)

// TestRightOfAccessAndErasure publishes records about two people on a
// three-node federation, shows one of them what is held about them, erases
// them, and checks that afterwards no replica can open their records, their
// wrapped key is in no file of any node, nothing more is published about
// them, the other person is untouched, the ledger verifies, and the
// erasure survives a restart.
func TestRightOfAccessAndErasure(t *testing.T) {
	n0, token := bootstrapNode(t)
	n1 := joinNode(t, "n1", n0, token, true)
	n2 := joinNode(t, "n2", n0, token, true)
	nodes := []*Node{n0, n1, n2}
	ctx := testCtx(t)
	admin := client.New(n1.URL(), token)
	if _, err := admin.PutSchema(ctx, careSchema()); err != nil {
		t.Fatal(err)
	}
	anna, bruno := "anna.rossi@example.org", "bruno.bianchi@example.org"
	recs := []client.Record{careRecord(anna), careRecord(anna), careRecord(bruno)}
	if _, err := admin.Publish(ctx, recs); err != nil {
		t.Fatal(err)
	}
	rep, err := admin.Access(ctx, "  ANNA.Rossi@example.org ")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Records) != 2 || rep.Records[0].Erased || string(rep.Records[0].Fields["service"]) != `"home-care"` {
		t.Fatalf("access before erasure = %+v", rep)
	}
	ps, _ := n0.keys.Pseudonym(pseudonym.MemberDomain("coop-a"), anna)
	var wrapped []byte
	if err := n0.Ledger().Read(ctx, ledger.Stale, func(v *ledger.View) error {
		wrapped, err = v.Key(format.SubjectKeyName(ps))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if err := n.Ledger().Snapshot(ctx); err != nil {
			t.Fatal(err)
		}
		if found, _ := fsscan.Scan(n.cfg.Dir, wrapped); len(found) == 0 {
			t.Fatalf("%s: the wrapped key is not on disk before erasure: the scan proves nothing", n.ID())
		}
	}

	index, err := client.New(n2.URL(), token).Erase(ctx, anna)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := n.Ledger().WaitPurged(pctx, index); err != nil {
			t.Fatalf("%s: purge: %v", n.ID(), err)
		}
		cancel()
		if found, _ := fsscan.Scan(n.cfg.Dir, wrapped); len(found) > 0 {
			t.Errorf("%s: the erased subject's wrapped key is still in %s", n.ID(), found[0].Path)
		}
		// No replica can open the records any more.
		err := n.Ledger().Read(ctx, ledger.Stale, func(v *ledger.View) error {
			e, _, err := v.ByID(recs[0].ID)
			if err != nil {
				return err
			}
			p, err := format.DecodeRecordPayload(e.Payload)
			if err != nil {
				return err
			}
			_, err = n.svc.DataKey(v, p.Subject, false)
			return err
		})
		if !errors.Is(err, ErrErased) {
			t.Errorf("%s: opening an erased record: %v, want ErrErased", n.ID(), err)
		}
		if err := n.Ledger().Verify(ctx); err != nil {
			t.Errorf("%s: Verify after erasure: %v", n.ID(), err)
		}
	}
	// Each node reports its purge, through any node.
	st, err := client.New(n0.URL(), token).ErasureStatus(ctx, index, false)
	if err != nil || !st.Done || len(st.Nodes) != 3 || st.Index != index {
		t.Fatalf("erasure status = %+v, %v", st, err)
	}
	for _, ne := range st.Nodes {
		if !ne.Erased || !ne.Purged || !ne.Verified || ne.VerifiedAt.IsZero() || ne.Unreachable || ne.Error != "" {
			t.Errorf("node %s: %+v", ne.Node, ne)
		}
	}
	// And its metrics: nothing left pending, one purge round (or more).
	for _, n := range nodes {
		resp, err := http.Get(n.URL() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^coapp_erasures_pending 0$`),
			regexp.MustCompile(`(?m)^coapp_erasure_oldest_pending_seconds 0$`),
			regexp.MustCompile(`(?m)^coapp_erasure_verified_index ` + strconv.FormatUint(index, 10) + `$`),
			regexp.MustCompile(`(?m)^coapp_purge_rounds_total [1-9][0-9]*$`),
		} {
			if !want.Match(data) {
				t.Errorf("%s: metrics lack %s", n.ID(), want)
			}
		}
	}
	if _, err := admin.ErasureStatus(ctx, 0, false); apiStatus(err) != http.StatusBadRequest {
		t.Errorf("erasure status of index 0: %v, want 400", err)
	}
	if later, err := admin.ErasureStatus(ctx, index+1000, false); err != nil || later.Done || later.Nodes[0].Erased {
		t.Errorf("an erasure not applied yet reads as done: %+v, %v", later, err)
	}
	rep, err = admin.Access(ctx, anna)
	if err != nil || len(rep.Records) != 2 || !rep.Records[0].Erased || rep.Records[0].Fields != nil {
		t.Errorf("access after erasure = %+v, %v", rep, err)
	}
	if _, err := admin.Publish(ctx, []client.Record{careRecord(anna)}); apiStatus(err) != http.StatusGone {
		t.Errorf("publishing about an erased subject: %v, want 410", err)
	}
	rb, err := admin.Access(ctx, bruno)
	if err != nil || len(rb.Records) != 1 || rb.Records[0].Erased {
		t.Errorf("the other subject after the erasure: %+v, %v", rb, err)
	}
	// The erasure survives a restart (on the same addresses, as a node
	// restarts in a federation).
	back := restart(t, n2)
	r2 := client.New(back.URL(), token)
	r2.Retries = 2
	waitUntil(t, "the restarted node reports the erasure", 20*time.Second, func() error {
		rep, err := r2.Access(ctx, anna)
		if err != nil {
			return err
		}
		if len(rep.Records) != 2 || !rep.Records[0].Erased {
			return errors.New("not erased")
		}
		return nil
	})
	if found, _ := fsscan.Scan(back.cfg.Dir, wrapped); len(found) > 0 {
		t.Errorf("after restart the wrapped key is in %s", found[0].Path)
	}
}

func TestSubjectRequestsRefused(t *testing.T) {
	n, token := bootstrapNode(t)
	c := client.New(n.URL(), token)
	for _, subject := range []string{"", "   ", "\t\n"} {
		if _, err := c.Access(testCtx(t), subject); apiStatus(err) != http.StatusBadRequest {
			t.Errorf("Access(%q): %v, want 400", subject, err)
		}
		if _, err := c.Erase(testCtx(t), subject); apiStatus(err) != http.StatusBadRequest {
			t.Errorf("Erase(%q): %v, want 400", subject, err)
		}
	}
}

// TestSubjectRequestsStayWithTheirMember: under a federation-wide
// pseudonym, another member (not an admin) can neither read what coop-a
// published about a person nor erase it.
func TestSubjectRequestsStayWithTheirMember(t *testing.T) {
	_, cl, _ := smallFederation(t, Rules{}, []string{"coop-b"})
	ctx := testCtx(t)
	a, b := cl["coop-a"], cl["coop-b"]
	linked := basketSchema()
	linked.Type, linked.SubjectDomain = "linked-basket", "federation"
	if _, err := a.PutSchema(ctx, linked); err != nil {
		t.Fatal(err)
	}
	rec := basket("zoe@example.org", "40100", 7)
	rec.Type = "linked-basket"
	if _, err := a.Publish(ctx, []client.Record{rec}); err != nil {
		t.Fatal(err)
	}
	if rep, err := b.Access(ctx, "zoe@example.org"); err != nil || len(rep.Records) != 0 {
		t.Fatalf("coop-b's access to coop-a's record: %+v, %v", rep, err)
	}
	if _, err := b.Erase(ctx, "zoe@example.org"); err != nil {
		t.Fatal(err)
	}
	rep, err := a.Access(ctx, "zoe@example.org")
	if err != nil || len(rep.Records) != 1 || rep.Records[0].Erased || rep.Records[0].Fields == nil {
		t.Fatalf("coop-a's record after coop-b's erasure request: %+v, %v", rep, err)
	}
	// coop-a's admin erases it federation-wide.
	if _, err := a.Erase(ctx, "zoe@example.org"); err != nil {
		t.Fatal(err)
	}
	if rep, err := a.Access(ctx, "zoe@example.org"); err != nil || len(rep.Records) != 1 || !rep.Records[0].Erased {
		t.Fatalf("after the admin's erasure: %+v, %v", rep, err)
	}
}
