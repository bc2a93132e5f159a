package coapp

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/client"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/consent"
	"coapp.coop/internal/fsscan"
	"coapp.coop/ledger"
	"coapp.coop/ledger/merkle"
)

const anna = "anna.rossi@example.org"

func consentRequest(subject string, purposes ...string) ConsentRequest {
	return ConsentRequest{
		Subject: subject, Purposes: purposes, DataCategories: []string{"pd:Purchase"}, Recipients: []string{"federation"},
		Notice:       consent.Notice{URI: "https://coop-a.example/notice/v3", SHA256: consent.Hash([]byte("notice v3"))},
		Jurisdiction: "IT", WithdrawalMethod: "https://coop-a.example/consent", Language: "it",
		Validity: consent.Validity{Duration: "P6M"},
	}
}

// ledgerSize answers the ledger's size, to show that refused requests
// wrote nothing.
func ledgerSize(t *testing.T, c *client.Client) uint64 {
	t.Helper()
	li, err := c.Ledger(testCtx(t), "leader")
	if err != nil {
		t.Fatal(err)
	}
	return li.Size
}

func TestConsentOverTheAPI(t *testing.T) {
	n, token := bootstrapNode(t)
	ctx := testCtx(t)
	coopA := client.New(n.URL(), token) // the founder, coop-a
	tb, err := coopA.CreateToken(ctx, "coop-b", false)
	if err != nil {
		t.Fatal(err)
	}
	coopB := client.New(n.URL(), tb.Token)

	// coop-a agrees to share purchases for research; Anna consents to
	// research by coop-a.
	share := consentRequest("", "dpv:ResearchAndDevelopment")
	share.Tier, share.Subject = consent.TierMember, ""
	if _, err := coopA.GiveConsent(ctx, share); err != nil {
		t.Fatal(err)
	}
	given, err := coopA.GiveConsent(ctx, consentRequest(anna, "dpv:ResearchAndDevelopment"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := coopA.MemberKey(ctx, "coop-a")
	if err != nil {
		t.Fatal(err)
	}
	// The receipt verifies offline, after the JSON it travels as, with
	// coop-a's public key only.
	var kept consent.Receipt
	b, _ := json.Marshal(given.Receipt)
	if err := json.Unmarshal(b, &kept); err != nil {
		t.Fatal(err)
	}
	if e, err := kept.Verify(pub, nil); err != nil || e.Type != consent.Given || e.Record != given.Record {
		t.Fatalf("offline verification: %+v, %v", e, err)
	}
	if k := given.Receipt.Kantara; k == nil || k.Version != "KI-CR-v1.1.0" || k.PiiControllers[0].PiiController != "coop-a" {
		t.Fatalf("kantara view %+v", k)
	}
	if bytes.Contains(b, []byte(anna)) {
		t.Fatal("the receipt holds the raw identifier")
	}

	check := func(c *client.Client, req CheckRequest) consent.Decision {
		t.Helper()
		d, err := c.CheckConsent(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := check(coopA, CheckRequest{Subject: anna, Purpose: "dpv:AcademicResearch", Category: "pd:Purchase"}); !d.Allowed || d.Record != given.Record {
		t.Fatalf("both tiers, narrower purpose: %+v", d)
	}
	if d := check(coopA, CheckRequest{Subject: anna, Purpose: "dpv:Marketing"}); d.Allowed || d.Reason != consent.NoConsent {
		t.Fatalf("another purpose: %+v", d)
	}
	if d := check(coopB, CheckRequest{Subject: anna, Purpose: "dpv:AcademicResearch"}); d.Allowed {
		t.Fatalf("another member's domain sees Anna's consent: %+v", d)
	}

	// Withdrawal: a receipt too, and the decision changes at its index.
	withdrawn, err := coopA.ChangeConsent(ctx, given.Record, "withdraw", ConsentChange{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := withdrawn.Receipt.Verify(pub, nil); err != nil {
		t.Fatalf("withdrawal receipt: %v", err)
	}
	if d := check(coopA, CheckRequest{Subject: anna, Purpose: "dpv:AcademicResearch"}); d.Allowed || d.Reason != consent.WasWithdrawn || d.Event != withdrawn.Receipt.Index {
		t.Fatalf("after the withdrawal: %+v", d)
	}
	if d := check(coopA, CheckRequest{Subject: anna, Purpose: "dpv:AcademicResearch", AsOf: withdrawn.Receipt.Index - 1}); !d.Allowed {
		t.Fatalf("as of the index before the withdrawal: %+v", d)
	}
	list, err := coopA.Consents(ctx, anna)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Consents) != 1 || len(list.Consents[0].Events) != 2 || list.Consents[0].Latest().Type != consent.Withdrawn || list.Subject == anna {
		t.Fatalf("list %+v", list)
	}
	if v, err := coopB.VerifyReceipt(ctx, withdrawn.Receipt); err != nil || !v.Valid {
		t.Fatalf("the node's verification: %+v, %v", v, err)
	}

	// A receipt for an event never recorded, its proof computed against a
	// made-up tree larger than the node's ledger, is refused.
	key, err := n.svc.Signers().Key("coop-a")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	fe := &consent.Event{Record: uuid.New(), Type: consent.Given, At: now, By: "subject", Validity: &consent.Validity{From: now, Duration: "P6M"},
		Consent: &consent.Record{SchemaVersion: consent.SchemaVersion, Tier: consent.TierSubject, Controller: "coop-a", Subject: "ps1.1.someone",
			Purposes: []string{"dpv:Marketing"}, LegalBasis: "dpv:Consent", DataCategories: []string{"pd:Purchase"}, Jurisdiction: "IT", WithdrawalMethod: "https://coop-a.example/consent"}}
	fs, err := consent.Sign(fe, "coop-a", key)
	if err != nil {
		t.Fatal(err)
	}
	entry := ledger.Entry{Index: 1000, ID: uuid.New(), Kind: consent.Kind, Author: "coop-a", Time: fe.At, Payload: fs.Encode()}
	proof := make([]merkle.Hash, 20)
	root, err := merkle.RootFromInclusionProof(entry.LeafHash(), entry.Index, 1<<20, proof)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := coopB.VerifyReceipt(ctx, consent.NewReceipt(entry, 1<<20, root, proof)); err != nil || v.Valid {
		t.Fatalf("a receipt of an unrecorded event, from a made-up larger tree: %+v, %v", v, err)
	}

	// An expired consent cannot be renewed.
	old := consentRequest(anna, "dpv:Marketing")
	old.Validity = consent.Validity{From: time.Now().Add(-48 * time.Hour), Duration: "P1D"}
	expired, err := coopA.GiveConsent(ctx, old)
	if err != nil {
		t.Fatal(err)
	}

	// Bad input: a typed error, and nothing written.
	forged := withdrawn.Receipt
	forged.Entry.Payload = bytes.Replace(forged.Entry.Payload, []byte(`withdrawn`), []byte(`given`), 1)
	if v, err := coopA.VerifyReceipt(ctx, forged); err != nil || v.Valid || v.Error == "" {
		t.Fatalf("a forged receipt: %+v, %v", v, err)
	}
	if _, err := forged.Verify(pub, nil); !errors.Is(err, consent.ErrBadSignature) && !errors.Is(err, consent.ErrBadReceipt) {
		t.Fatalf("a forged receipt offline: %v", err)
	}
	badUntil := consentRequest(anna, "dpv:Marketing")
	until := time.Now().Add(-time.Hour)
	badUntil.Validity = consent.Validity{From: time.Now(), Until: &until}
	size := ledgerSize(t, coopA)
	for name, tc := range map[string]struct {
		do     func() error
		status int
		code   string
		field  string
	}{
		"unknown purpose": {func() error {
			_, err := coopA.GiveConsent(ctx, consentRequest(anna, "dpv:Snooping"))
			return err
		}, 400, "unknown_purpose", "purposes[0]"},
		"until before from": {func() error { _, err := coopA.GiveConsent(ctx, badUntil); return err }, 400, "invalid", "validity.until"},
		"unknown field": {func() error {
			status, code := postRaw(t, n.URL()+"/v1/consents", token, map[string]any{"subject": anna, "purposes": []string{"dpv:Marketing"}, "colour": "red"})
			return &client.Error{Status: status, Code: code, Field: "colour"}
		}, 400, "invalid", "colour"},
		"withdrawing what is withdrawn": {func() error {
			_, err := coopA.ChangeConsent(ctx, given.Record, "withdraw", ConsentChange{})
			return err
		}, 409, "withdrawn", "record"},
		"another member's subject": {func() error {
			_, err := coopB.ChangeConsent(ctx, expired.Record, "withdraw", ConsentChange{})
			return err
		}, 403, "forbidden", "record"},
		"renewing an expired consent": {func() error {
			_, err := coopA.ChangeConsent(ctx, expired.Record, "renew", ConsentChange{Validity: &consent.Validity{Duration: "P1Y"}})
			return err
		}, 409, "expired", "record"},
		"no such record": {func() error {
			_, err := coopA.ChangeConsent(ctx, uuid.New(), "withdraw", ConsentChange{})
			return err
		}, 404, "not_found", "record"},
		"unknown action": {func() error {
			_, err := coopA.ChangeConsent(ctx, given.Record, "forget", ConsentChange{})
			return err
		}, 400, "invalid", "action"},
		"check an unknown purpose": {func() error {
			_, err := coopA.CheckConsent(ctx, CheckRequest{Subject: anna, Purpose: "dpv:Snooping"})
			return err
		}, 400, "unknown_purpose", "purpose"},
	} {
		err := tc.do()
		var ae *client.Error
		if !errors.As(err, &ae) || ae.Status != tc.status || ae.Code != tc.code || ae.Field != tc.field {
			t.Errorf("%s: got %v, want %d %s on %s", name, err, tc.status, tc.code, tc.field)
		}
		if err != nil && strings.Contains(err.Error(), anna) {
			t.Errorf("%s: the error holds the raw identifier: %v", name, err)
		}
	}
	if got := ledgerSize(t, coopA); got != size {
		t.Fatalf("refused requests wrote %d entries", got-size)
	}

	// Purposes: the federation defines its own, under DPV's.
	if err := coopA.DefinePurpose(ctx, consent.Purpose{ID: "coop:MarketStudy", Parent: "dpv:CommercialResearch", Label: "Joint market study"}); err != nil {
		t.Fatal(err)
	}
	if d := check(coopA, CheckRequest{Subject: anna, Purpose: "coop:MarketStudy"}); d.Allowed || d.Reason != consent.WasWithdrawn {
		t.Fatalf("a federation purpose under a withdrawn grant: %+v", d)
	}
	ps, err := coopB.Purposes(ctx)
	if err != nil || len(ps) < 10 {
		t.Fatalf("purposes %d, %v", len(ps), err)
	}

	// Nothing on disk holds the raw identifier.
	matches, err := fsscan.Scan(n.cfg.Dir, []byte(anna))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range matches {
		t.Errorf("%s holds the raw identifier", m.Path)
	}
}

// TestWithdrawalOnEveryReplica withdraws a consent through a follower of a
// 3-node cluster over TCP, and shows that on every replica the decision
// changes exactly at the withdrawal's index: granted as of the index
// before, withdrawn from it on, once the replica has applied it.
func TestWithdrawalOnEveryReplica(t *testing.T) {
	n0, token := bootstrapNode(t)
	n1 := joinNode(t, "n1", n0, token, true)
	n2 := joinNode(t, "n2", n0, token, true)
	ctx := testCtx(t)
	via := client.New(n2.URL(), token) // a follower: signs there, forwards to the leader
	given, err := via.GiveConsent(ctx, consentRequest(anna, "dpv:ResearchAndDevelopment"))
	if err != nil {
		t.Fatal(err)
	}
	withdrawn, err := via.ChangeConsent(ctx, given.Record, "withdraw", ConsentChange{})
	if err != nil {
		t.Fatal(err)
	}
	w := withdrawn.Receipt.Index
	for _, n := range []*Node{n0, n1, n2} {
		waitUntil(t, n.ID()+" applies the withdrawal", 10*time.Second, func() error {
			if n.state.Applied() <= w {
				return errors.New("not yet")
			}
			return nil
		})
		for asOf, want := range map[uint64]bool{w - 1: true, w: false, consent.Latest: false} {
			d, err := n.CheckConsent("coop-a", CheckRequest{Subject: anna, Purpose: "dpv:AcademicResearch", AsOf: asOf})
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed != want {
				t.Errorf("%s as of %d: %+v, want allowed=%v", n.ID(), asOf, d, want)
			}
		}
	}
	// The member's key went to the ledger with its first event, from n2,
	// where the key lives; the receipts verify with it on every node.
	for _, n := range []*Node{n0, n1, n2} {
		if _, err := n.VerifyConsentReceipt(context.Background(), withdrawn.Receipt); err != nil {
			t.Errorf("%s: %v", n.ID(), err)
		}
	}
}

// TestMemberKeyRotation rotates a member's key: receipts from before
// verify under the old key, those after under the new, on the node and
// offline; a rotation not signed by the current key, or by another member,
// is refused and writes nothing.
func TestMemberKeyRotation(t *testing.T) {
	n, cl, tokens := smallFederation(t, Rules{}, []string{"coop-b"})
	ctx := testCtx(t)
	a, b := cl["coop-a"], cl["coop-b"]
	before, err := a.GiveConsent(ctx, consentRequest(anna, "dpv:ResearchAndDevelopment"))
	if err != nil {
		t.Fatal(err)
	}
	old, _ := a.MemberKey(ctx, "coop-a")
	keys, err := a.RotateKey(ctx, "coop-a")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys.Keys) != 2 || bytes.Equal(keys.PublicKey, old) {
		t.Fatalf("keys after the rotation: %+v", keys)
	}
	after, err := a.GiveConsent(ctx, consentRequest("bo@example.org", "dpv:ResearchAndDevelopment"))
	if err != nil {
		t.Fatalf("signing with the new key: %v", err)
	}
	newKey := ed25519.PublicKey(keys.PublicKey)
	for name, tc := range map[string]struct {
		rc  consent.Receipt
		pub ed25519.PublicKey
		ok  bool
	}{
		"before, old key": {before.Receipt, old, true},
		"after, new key":  {after.Receipt, newKey, true},
		"before, new key": {before.Receipt, newKey, false},
		"after, old key":  {after.Receipt, old, false},
	} {
		if _, err := tc.rc.Verify(tc.pub, nil); (err == nil) != tc.ok {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, rc := range []consent.Receipt{before.Receipt, after.Receipt} {
		if v, err := b.VerifyReceipt(ctx, rc); err != nil || !v.Valid {
			t.Errorf("the node's verification of the receipt at %d: %+v, %v", rc.Index, v, err)
		}
	}
	size := ledgerSize(t, a)
	if _, err := b.RotateKey(ctx, "coop-a"); apiStatus(err) != http.StatusForbidden {
		t.Fatalf("coop-b rotating coop-a's key: %v", err)
	}
	// A rotation signed by a key that is not coop-a's current one.
	_, stranger, _ := ed25519.GenerateKey(nil)
	pub, _, _ := ed25519.GenerateKey(nil)
	at := time.Now().UTC()
	body, _ := json.Marshal(format.KeyRotation{Member: "coop-a", PublicKey: pub, At: at})
	sub := api.SignedSubmission{Kind: KindKeyRotation, At: at, Signed: api.SignedBody{Body: body, Signer: "coop-a", Sig: ed25519.Sign(stranger, format.SigningContext(KindKeyRotation, body))}}
	if err := postJSON(t, n.URL()+"/v1/signed", tokens["coop-a"], sub); apiStatus(err) != http.StatusBadRequest {
		t.Fatalf("a rotation signed by another key: %v", err)
	}
	if got := ledgerSize(t, a); got != size {
		t.Fatalf("refused rotations wrote %d entries", got-size)
	}
}

// TestSealedMemberKeys keeps members' signing keys sealed with a
// passphrase: the key file holds no seed in clear, the node signs after a
// restart with the passphrase, and refuses to sign without it.
func TestSealedMemberKeys(t *testing.T) {
	cfg := nodeConfig(t.TempDir())
	cfg.Bootstrap, cfg.Federation, cfg.Member, cfg.NodeID = true, "Sealed", "coop-a", "n0"
	cfg.MemberKeyPassphrase = []byte("correct horse battery staple")
	n := mustStart(t, cfg)
	ctx := testCtx(t)
	if _, err := n.GiveConsent(ctx, "coop-a", consentRequest(anna, "dpv:ResearchAndDevelopment")); err != nil {
		t.Fatal(err)
	}
	key, err := n.svc.Signers().Key("coop-a")
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(n.svc.Signers().Path("coop-a"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(file, []byte("coapp-member-key/v1")) || bytes.Contains(file, []byte(base64.StdEncoding.EncodeToString(key.Seed()))) {
		t.Fatalf("the key file is not sealed:\n%s", file)
	}
	n.Close(ctx)

	wrong := cfg
	wrong.MemberKeyPassphrase = nil
	n2 := mustStart(t, wrong)
	if _, err := n2.GiveConsent(ctx, "coop-a", consentRequest("bo", "dpv:ResearchAndDevelopment")); err == nil {
		t.Fatal("the node signed without the passphrase")
	}
	n2.Close(ctx)
	n3 := mustStart(t, cfg)
	if _, err := n3.GiveConsent(ctx, "coop-a", consentRequest("bo", "dpv:ResearchAndDevelopment")); err != nil {
		t.Fatalf("after a restart with the passphrase: %v", err)
	}
}
