package consent_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"coapp.coop/consent"
	"coapp.coop/ledger"
	"coapp.coop/ledger/merkle"
)

// appendEvent signs an event as coop-a, appends it to a real one-node
// ledger and returns its receipt with the inclusion proof.
func appendEvent(t *testing.T, l *ledger.Ledger, key ed25519.PrivateKey, e *consent.Event) consent.Receipt {
	t.Helper()
	ctx := context.Background()
	s, err := consent.Sign(e, "coop-a", key)
	if err != nil {
		t.Fatal(err)
	}
	entry := ledger.Entry{ID: uuid.Must(uuid.NewV7()), Kind: consent.Kind, Author: "coop-a", Time: e.At, Payload: s.Encode()}
	rs, err := l.Append(ctx, entry)
	if err != nil {
		t.Fatal(err)
	}
	var rc consent.Receipt
	err = l.Read(ctx, ledger.Linearizable, func(v *ledger.View) error {
		stored, err := v.Entry(rs[0].Index)
		if err != nil {
			return err
		}
		proof, err := v.InclusionProof(rs[0].Index, v.Size())
		if err != nil {
			return err
		}
		rc = consent.NewReceipt(stored, v.Size(), v.Root(), proof)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// receiptFixture opens a one-node ledger (closed with the test) and makes
// coop-a's key and a consent record of subject.
func receiptFixture(t *testing.T, subject string) (*ledger.Ledger, ed25519.PublicKey, ed25519.PrivateKey, time.Time, *consent.Record) {
	t.Helper()
	ctx := context.Background()
	l, err := ledger.Open(ctx, ledger.Config{Dir: t.TempDir(), BindAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(ctx) })
	pub, key, _ := ed25519.GenerateKey(nil)
	rec := &consent.Record{
		ID: uuid.New(), SchemaVersion: consent.SchemaVersion, Tier: consent.TierSubject, Subject: subject, Controller: "coop-a",
		Purposes: []string{"dpv:AcademicResearch"}, LegalBasis: "dpv:Consent", DataCategories: []string{"pd:Purchase"},
		Notice:       consent.Notice{URI: "https://coop-a.example/notice", SHA256: consent.Hash([]byte("notice"))},
		Jurisdiction: "IT", WithdrawalMethod: "https://coop-a.example/consent",
	}
	return l, pub, key, time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), rec
}

// TestReceiptRoundTrip gives and withdraws a consent on a real ledger and
// verifies both receipts offline, after a JSON round trip, with only the
// controller's public key; then shows altered and forged receipts refused.
func TestReceiptRoundTrip(t *testing.T) {
	l, pub, key, at, rec := receiptFixture(t, "ps1.1.anna")
	given := &consent.Event{Record: rec.ID, Type: consent.Given, At: at, By: "subject", Consent: rec, Validity: &consent.Validity{From: at, Duration: "P6M"}}
	r1 := appendEvent(t, l, key, given)
	givenBytes, _ := json.Marshal(given)
	withdrawn := &consent.Event{Record: rec.ID, Type: consent.Withdrawn, At: at.Add(time.Hour), By: "subject", Prev: consent.Hash(givenBytes)}
	r2 := appendEvent(t, l, key, withdrawn)

	for _, rc := range []consent.Receipt{r1, r2} {
		b, err := json.Marshal(rc)
		if err != nil {
			t.Fatal(err)
		}
		var kept consent.Receipt
		if err := json.Unmarshal(b, &kept); err != nil {
			t.Fatal(err)
		}
		e, err := kept.Verify(pub, nil)
		if err != nil {
			t.Fatalf("receipt at %d: %v", kept.Index, err)
		}
		if e.Record != rec.ID {
			t.Fatalf("receipt names record %s", e.Record)
		}
	}
	if k := consent.Kantara(rec, given, r1.Entry.ID, pub); k.Version != "KI-CR-v1.1.0" || k.PiiPrincipalID != "ps1.1.anna" || k.Services[0].Purposes[0].Purpose != "dpv:AcademicResearch" {
		t.Fatalf("kantara view %+v", k)
	}

	otherPub, otherKey, _ := ed25519.GenerateKey(nil)
	forged := appendEvent(t, l, otherKey, withdrawn) // signed by a key that is not coop-a's
	altered := r2
	altered.Entry.Payload = append([]byte(nil), r2.Entry.Payload...)
	altered.Entry.Payload[len(altered.Entry.Payload)/3] ^= 0x01
	wrongRoot := r2
	wrongRoot.Root = merkle.LeafHash([]byte("another ledger"))
	wrongIndex := r2
	wrongIndex.Index = r1.Index
	otherAuthor := r2
	otherAuthor.Entry.Author = "coop-b"
	for name, tc := range map[string]struct {
		rc   consent.Receipt
		pub  ed25519.PublicKey
		want error
	}{
		"forged signature":     {forged, pub, consent.ErrBadSignature},
		"another member's key": {r2, otherPub, consent.ErrBadSignature},
		"altered payload":      {altered, pub, consent.ErrBadReceipt},
		"another root":         {wrongRoot, pub, consent.ErrBadReceipt},
		"another index":        {wrongIndex, pub, consent.ErrBadReceipt},
		"another author":       {otherAuthor, pub, consent.ErrBadReceipt},
	} {
		if _, err := tc.rc.Verify(tc.pub, nil); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
}

// TestReceiptReadableCopies shows that a receipt whose readable event or
// Kantara view was altered does not verify, though its signed entry is
// intact.
func TestReceiptReadableCopies(t *testing.T) {
	l, pub, key, at, rec := receiptFixture(t, "ps1.1.bo")
	given := &consent.Event{Record: rec.ID, Type: consent.Given, At: at, By: "subject", Consent: rec, Validity: &consent.Validity{From: at}}
	rc := appendEvent(t, l, key, given)
	e := *given
	k := consent.Kantara(rec, &e, rc.Entry.ID, pub)
	rc.Event, rc.Kantara = &e, &k
	if _, err := rc.Verify(pub, nil); err != nil {
		t.Fatalf("an intact receipt with its readable copies: %v", err)
	}
	altered := *rec
	altered.Purposes = []string{"dpv:Marketing"}
	e2 := e
	e2.Consent = &altered
	bad := rc
	bad.Event = &e2
	if _, err := bad.Verify(pub, nil); !errors.Is(err, consent.ErrBadReceipt) {
		t.Fatalf("an altered readable event: %v", err)
	}
	k2 := k
	k2.Jurisdiction = "US"
	bad = rc
	bad.Kantara = &k2
	if _, err := bad.Verify(pub, nil); !errors.Is(err, consent.ErrBadReceipt) {
		t.Fatalf("an altered Kantara view: %v", err)
	}
}
