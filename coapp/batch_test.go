package coapp

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/client"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/coapp/internal/memberkey"
	"coapp.coop/consent"
	"coapp.coop/ledger"
	"coapp.coop/pseudonym"
)

// sealedEntry seals a record for member on n as Publish would, without
// appending it, and returns the entry with its key requirements.
func sealedEntry(t *testing.T, n *Node, member string, r Record) (ledger.Entry, []ledger.KeyRequirement) {
	t.Helper()
	entries, reqs, err := n.svc.Seal(testCtx(t), api.Caller{Member: member}, []Record{r})
	if err != nil {
		t.Fatal(err)
	}
	return entries[0], reqs
}

// wire is the body of POST /v1/records/signed for records signed by
// member with key.
func wire(key ed25519.PrivateKey, member string, records []ledger.Entry, reqs []ledger.KeyRequirement) api.SealedBatch {
	b := api.SealedBatch{}
	for _, e := range records {
		b.Records = append(b.Records, api.SealedRecord{ID: e.ID, Time: e.Time, Payload: e.Payload})
	}
	for _, k := range reqs {
		b.Keys = append(b.Keys, api.SealedKey{Name: k.Name, Create: k.Create, Hash: k.Hash[:]})
	}
	_, b.Signature, _ = format.DecodeBatch(format.SignBatch(key, member, records).Payload)
	return b
}

// entriesOf rebuilds the record entries of a sealed batch, as the leader
// does, for member.
func entriesOf(b *api.SealedBatch, member string) []ledger.Entry {
	out := make([]ledger.Entry, len(b.Records))
	for i, r := range b.Records {
		out[i] = ledger.Entry{ID: r.ID, Kind: KindRecord, Author: member, Time: r.Time.UTC(), Payload: r.Payload}
	}
	return out
}

func purchase(subject string, amount int) Record {
	return Record{ID: uuid.New(), Type: "purchase", Subject: subject, Time: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC),
		Fields: rawFields("amount", fmt.Sprint(amount))}
}

// TestForgedRecordsRefusedByEveryReplica appends record entries straight
// to the ledger, past the node's checks, as a node with a forged or
// damaged writer would: a record without a batch signature, one signed by
// a stranger's key, one swapped for another after signing, one signed by
// another member than its author. Every replica refuses each of them (it
// stays in the log, inert, and says so), and no export counts them; a
// record signed properly the same way is accepted and exported.
func TestForgedRecordsRefusedByEveryReplica(t *testing.T) {
	n0, token := bootstrapNode(t)
	n1 := joinNode(t, "n1", n0, token, true)
	n2 := joinNode(t, "n2", n0, token, true)
	nodes := []*Node{n0, n1, n2}
	ctx := testCtx(t)
	a := client.New(n1.URL(), token) // through a follower
	share := consentRequest("", "dpv:ResearchAndDevelopment")
	share.Tier = consent.TierMember
	if _, err := a.GiveConsent(ctx, share); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GiveConsent(ctx, consentRequest("anna@example.org", "dpv:ResearchAndDevelopment")); err != nil {
		t.Fatal(err)
	}
	genuine := []client.Record{record(1), record(2)}
	for i := range genuine {
		genuine[i].Subject = "anna@example.org"
	}
	if _, err := a.Publish(ctx, genuine); err != nil {
		t.Fatal(err)
	}

	key, err := n0.svc.Signers().Key("coop-a")
	if err != nil {
		t.Fatal(err)
	}
	_, stranger, _ := ed25519.GenerateKey(nil)
	seal := func(amount int) (ledger.Entry, []ledger.KeyRequirement) {
		return sealedEntry(t, n0, "coop-a", purchase("anna@example.org", amount))
	}
	type forged struct {
		name    string
		entries []ledger.Entry
		record  ledger.Entry // the record entry, last of entries
		refused bool
	}
	var cases []forged
	unsigned := purchase("anna@example.org", 101)
	e, reqs := sealedEntry(t, n0, "coop-a", unsigned)
	cases = append(cases, forged{"no batch signature", []ledger.Entry{e}, e, true})
	e, _ = seal(102)
	cases = append(cases, forged{"a stranger's signature", []ledger.Entry{format.SignBatch(stranger, "coop-a", []ledger.Entry{e}), e}, e, true})
	e, _ = seal(103)
	swapped, _ := seal(104)
	cases = append(cases, forged{"swapped after signing", []ledger.Entry{format.SignBatch(key, "coop-a", []ledger.Entry{e}), swapped}, swapped, true})
	e, _ = seal(105)
	other := e
	other.Author = "coop-z"
	cases = append(cases, forged{"signed by another member", []ledger.Entry{format.SignBatch(key, "coop-a", []ledger.Entry{e}), other}, other, true})
	e, _ = seal(106)
	cases = append(cases, forged{"signed properly", []ledger.Entry{format.SignBatch(key, "coop-a", []ledger.Entry{e}), e}, e, false})
	// Signed properly, but its box does not open: no honest node writes
	// one (the leader opens what a follower sealed); exports skip it.
	e, _ = seal(107)
	p, err := format.DecodeRecordPayload(e.Payload)
	if err != nil {
		t.Fatal(err)
	}
	p.Box = bytes.Repeat([]byte{9}, len(p.Box))
	e.Payload = p.Encode()
	cases = append(cases, forged{"signed, unreadable", []ledger.Entry{format.SignBatch(key, "coop-a", []ledger.Entry{e}), e}, e, false})
	indexes := map[string]uint64{}
	for _, c := range cases {
		rs, err := n0.Ledger().AppendWithKeys(ctx, reqs, c.entries...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		indexes[c.name] = rs[len(rs)-1].Index
	}
	size, _ := n0.Ledger().Status()
	for _, n := range nodes {
		waitUntil(t, n.ID()+" applied the forged entries", 20*time.Second, func() error {
			if n.state.Applied() < size.Size {
				return errors.New("behind")
			}
			return nil
		})
		for _, c := range cases {
			err := n.state.RecordRefusal(indexes[c.name])
			if c.refused != (err != nil) || (err != nil && !errors.Is(err, ErrBadSignature)) {
				t.Errorf("%s on %s: refusal %v, want refused=%v", c.name, n.ID(), err, c.refused)
			}
		}
	}
	// A replica restarted replays the log into a new view: the same
	// refusals.
	back := restart(t, n2)
	waitUntil(t, "the restarted replica applied the log", 20*time.Second, func() error {
		if back.state.Applied() < size.Size {
			return errors.New("behind")
		}
		return nil
	})
	for _, c := range cases {
		if err := back.state.RecordRefusal(indexes[c.name]); c.refused != (err != nil) {
			t.Errorf("%s after a restart: refusal %v, want refused=%v", c.name, err, c.refused)
		}
	}
	info, err := a.Record(ctx, cases[1].record.ID, "")
	if err != nil || info.Refused == "" {
		t.Errorf("a refused record's info = %+v, %v; want it marked refused", info, err)
	}
	if info, err := a.Record(ctx, cases[4].record.ID, ""); err != nil || info.Refused != "" {
		t.Errorf("an accepted record's info = %+v, %v", info, err)
	}

	// An export counts the two published records and the one signed
	// properly, none of the forged ones.
	ds := Dataset{Name: "d", Purpose: "dpv:ResearchAndDevelopment", Category: "pd:Purchase", K: 1,
		Types: []DatasetType{{Type: "purchase", Fields: []string{"amount"}}}}
	passes(t, ctx, Proposal{Kind: ProposeDataset, Dataset: &ds}, a, a)
	passes(t, ctx, Proposal{Kind: ProposeGrant, Grant: &Grant{Dataset: "d", Grantee: "coop-a", Purpose: "dpv:ResearchAndDevelopment", Until: time.Now().Add(time.Hour)}}, a, a)
	var out bytes.Buffer
	res, err := a.Export(ctx, "d", ExportRequest{Purpose: "dpv:ResearchAndDevelopment"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	amounts := map[string]bool{}
	for _, l := range parseExport(t, out.Bytes()) {
		amounts[string(l.Fields["amount"])] = true
	}
	if res.Rows != 3 || !amounts["10"] || !amounts["20"] || !amounts["106"] {
		t.Errorf("export rows %d, amounts %v; want 10, 20 and 106 only", res.Rows, amounts)
	}
	audit, err := a.Audit(ctx, "d")
	if err != nil || len(audit) != 1 || audit[0].Unreadable != 1 {
		t.Errorf("audit = %+v, %v; want one export with one unreadable record", audit, err)
	}
	// A refused record's id is spent: publishing the same record again
	// says so, and writes nothing.
	size0 := ledgerSize(t, a)
	again := client.Record{ID: unsigned.ID, Type: unsigned.Type, Subject: unsigned.Subject, Time: unsigned.Time, Fields: unsigned.Fields}
	if _, err := client.New(n0.URL(), token).Publish(ctx, []client.Record{again}); apiStatus(err) != http.StatusConflict || !strings.Contains(err.Error(), "refused") {
		t.Errorf("publishing a refused record again: %v, want 409 refused", err)
	}
	if got := ledgerSize(t, a); got != size0 {
		t.Errorf("publishing a refused record again wrote %d entries", got-size0)
	}
}

// TestSignedBatchRefusals submits sealed batches to the leader's POST
// /v1/records/signed that it must refuse, each with its typed error and
// nothing written; and publishes through a node that does not hold the
// member's key: refused, nothing written.
func TestSignedBatchRefusals(t *testing.T) {
	n0, token := bootstrapNode(t)
	n1 := joinNode(t, "n1", n0, token, true)
	ctx := testCtx(t)
	c := client.New(n0.URL(), token)
	key, err := n0.svc.Signers().Key("coop-a")
	if err != nil {
		t.Fatal(err)
	}
	e, reqs := sealedEntry(t, n0, "coop-a", purchase("bruno@example.org", 7))
	good := func() api.SealedBatch { return wire(key, "coop-a", []ledger.Entry{e}, reqs) }
	before := ledgerSize(t, c)
	_, stranger, _ := ed25519.GenerateKey(nil)
	cases := []struct {
		name   string
		mutate func(b *api.SealedBatch)
		status int
		code   string
	}{
		{"a stranger's signature", func(b *api.SealedBatch) {
			b.Signature = ed25519.Sign(stranger, format.BatchMessage("coop-a", nil))
		}, http.StatusBadRequest, "bad_signature"},
		{"a record changed after signing", func(b *api.SealedBatch) {
			b.Records[0].Time = b.Records[0].Time.Add(time.Second)
		}, http.StatusBadRequest, "bad_signature"},
		{"a payload that is not a sealed record", func(b *api.SealedBatch) {
			b.Records[0].Payload = []byte(`{"type":"purchase"}`)
		}, http.StatusBadRequest, "invalid"},
		{"a record sealed under a key the batch does not name", func(b *api.SealedBatch) {
			b.Keys = nil
		}, http.StatusBadRequest, "invalid"},
		{"a short signature", func(b *api.SealedBatch) {
			b.Signature = b.Signature[:10]
		}, http.StatusBadRequest, "invalid"},
		{"no records", func(b *api.SealedBatch) {
			b.Records = nil
		}, http.StatusBadRequest, "invalid"},
	}
	for _, tc := range cases {
		b := good()
		tc.mutate(&b)
		status, code := postRaw(t, n0.URL()+"/v1/records/signed", token, b)
		if status != tc.status || code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, code, tc.status, tc.code)
		}
	}
	// Batches the member really signed, whose content the leader must
	// still refuse: what an export could not read or erasure not shred.
	resign := func(b *api.SealedBatch) {
		_, b.Signature, _ = format.DecodeBatch(format.SignBatch(key, "coop-a", entriesOf(b, "coop-a")).Payload)
	}
	withPayload := func(b *api.SealedBatch, p format.RecordPayload, keys ...ledger.KeyRequirement) {
		b.Records[0].Payload = p.Encode()
		b.Keys = nil
		for _, k := range keys {
			b.Keys = append(b.Keys, api.SealedKey{Name: k.Name, Create: k.Create, Hash: k.Hash[:]})
		}
	}
	head, err := format.DecodeRecordPayload(e.Payload)
	if err != nil {
		t.Fatal(err)
	}
	raw := pseudonym.Pseudonym("raw.person@example.org")
	signed := []struct {
		name   string
		mutate func(b *api.SealedBatch)
	}{
		{"a subject in clear", func(b *api.SealedBatch) {
			p := head
			p.Subject = raw
			withPayload(b, p, ledger.NewKey(format.SubjectKeyName(raw), []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")))
		}},
		{"a new data key that does not unwrap", func(b *api.SealedBatch) {
			p := head
			p.Subject = pseudonym.Pseudonym("ps1.1." + base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
			withPayload(b, p, ledger.NewKey(format.SubjectKeyName(p.Subject), bytes.Repeat([]byte{1}, 72)))
		}},
		{"a key no record uses", func(b *api.SealedBatch) {
			b.Keys = append(b.Keys, api.SealedKey{Name: []byte("s/other"), Hash: make([]byte, 32)})
		}},
		{"an unregistered type", func(b *api.SealedBatch) {
			p := head
			p.Type = "harvest"
			withPayload(b, p, reqs...)
		}},
		{"a box that does not open", func(b *api.SealedBatch) {
			p := head
			p.Box = bytes.Repeat([]byte{9}, len(head.Box))
			withPayload(b, p, reqs...)
		}},
	}
	for _, tc := range signed {
		b := good()
		b.Records[0].ID = uuid.New() // each case on its own
		tc.mutate(&b)
		resign(&b)
		status, code := postRaw(t, n0.URL()+"/v1/records/signed", token, b)
		if status != http.StatusBadRequest || code != "invalid" {
			t.Errorf("%s, signed by the member: %d %s, want 400 invalid", tc.name, status, code)
		}
	}
	if after := ledgerSize(t, c); after != before {
		t.Fatalf("refused batches wrote %d entries", after-before)
	}
	// The batch as signed is accepted, through a follower too.
	if status, code := postRaw(t, n1.URL()+"/v1/records/signed", token, good()); status != http.StatusOK {
		t.Fatalf("the batch as signed: %d %s", status, code)
	}
	if after := ledgerSize(t, c); after != before+2 {
		t.Fatalf("the batch wrote %d entries, want its signature and its record", after-before)
	}

	// A node without the member's key refuses to sign for it.
	keyFile := filepath.Join(n1.cfg.Dir, memberkey.Dir, hex.EncodeToString([]byte("coop-a"))+".key")
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	before = ledgerSize(t, c)
	_, err = client.New(n1.URL(), token).Publish(ctx, []client.Record{record(40)})
	if apiStatus(err) != http.StatusForbidden {
		t.Fatalf("publishing through a node without the member's key: %v, want 403", err)
	}
	if after := ledgerSize(t, c); after != before {
		t.Fatalf("a refused publish wrote %d entries", after-before)
	}
}

// postRaw posts v and returns the status and error code.
func postRaw(t *testing.T, url, token string, v any) (int, string) {
	t.Helper()
	body, _ := json.Marshal(v)
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb api.ErrorBody
	_ = json.NewDecoder(resp.Body).Decode(&eb)
	return resp.StatusCode, eb.Error.Code
}

// TestPublishingAcrossKeyRotation publishes without pause while the member
// rotates its key: every batch is checked and applied under the key in
// force at its index, so none is refused; a batch signed with the old key
// afterwards is refused, and nothing is written.
func TestPublishingAcrossKeyRotation(t *testing.T) {
	n, cl, tokens := smallFederation(t, Rules{}, nil)
	ctx := testCtx(t)
	a := cl["coop-a"]
	old, err := n.svc.Signers().Key("coop-a")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	published := make(chan int)
	go func() {
		count := 0
		defer func() { published <- count }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			recs := []client.Record{basket(fmt.Sprintf("p-%d", i), "40100", i), basket(fmt.Sprintf("q-%d", i), "40100", i)}
			if _, err := a.Publish(ctx, recs); err != nil {
				t.Errorf("publish %d: %v", i, err)
				return
			}
			count += len(recs)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	if _, err := a.RotateKey(ctx, "coop-a"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	count := <-published
	if count == 0 {
		t.Fatal("nothing published")
	}
	n.svc.AwaitView(ctx)
	if bad := n.state.RefusedRecords(); len(bad) != 0 {
		t.Fatalf("%d of %d records refused across the rotation", len(bad), count)
	}

	e, reqs := sealedEntry(t, n, "coop-a", Record{ID: uuid.New(), Type: "basket", Subject: "late@example.org", Time: time.Now().UTC(),
		Fields: rawFields("email", `"late@example.org"`, "postcode", `"40100"`, "amount", "3")})
	stale := wire(old, "coop-a", []ledger.Entry{e}, reqs)
	size := ledgerSize(t, a)
	if status, code := postRaw(t, n.URL()+"/v1/records/signed", tokens["coop-a"], stale); status != http.StatusBadRequest || code != "bad_signature" {
		t.Fatalf("a batch signed with the rotated-out key: %d %s", status, code)
	}
	if got := ledgerSize(t, a); got != size {
		t.Fatalf("the refused batch wrote %d entries", got-size)
	}
}
