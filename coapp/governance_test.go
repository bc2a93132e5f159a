package coapp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
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
	"coapp.coop/consent"
	"coapp.coop/ledger"
	"coapp.coop/pseudonym"
)

// basketSchema has a quasi-identifier (the postcode, cut to 3 characters),
// a direct identifier pseudonymised at ledger level, and an amount.
func basketSchema() Schema {
	return Schema{Type: "basket", Version: 1, Fields: []Field{
		{Name: "email", Kind: "string", Class: "direct", Policy: Policy{Action: "pseudonymise"}},
		{Name: "postcode", Kind: "postcode", Class: "quasi", Policy: Policy{Action: "generalise", Keep: 3}},
		{Name: "amount", Kind: "decimal", Class: "attribute", Required: true, Min: f64(0), Policy: Policy{Action: "keep"}},
	}}
}

func basket(subject, postcode string, amount int) client.Record {
	return client.Record{
		ID: uuid.New(), Type: "basket", Subject: subject, Time: time.Date(2026, 10, 5, 9, 0, 0, 0, time.UTC),
		Fields: rawFields("email", `"`+subject+`"`, "postcode", `"`+postcode+`"`, "amount", fmt.Sprint(amount)),
	}
}

type exportLine struct {
	Subject string                     `json:"subject"`
	Member  string                     `json:"member"`
	Type    string                     `json:"type"`
	Fields  map[string]json.RawMessage `json:"fields"`
}

func parseExport(t *testing.T, b []byte) []exportLine {
	t.Helper()
	var out []exportLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var l exportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

// passes proposes p as the first client and has the others vote yes until
// it passes.
func passes(t *testing.T, ctx context.Context, p Proposal, proposer *client.Client, voters ...*client.Client) client.Proposal {
	t.Helper()
	pr, err := proposer.Propose(ctx, p)
	if err != nil {
		t.Fatalf("propose: %v", err)
	}
	for _, v := range voters {
		if pr, err = v.Vote(ctx, pr.ID, "yes"); err != nil {
			t.Fatalf("vote: %v", err)
		}
		if pr.Outcome == "passed" {
			return pr
		}
	}
	t.Fatalf("proposal %s did not pass: %+v", pr.Kind, pr)
	return pr
}

// TestCooperativeStory is the whole story with three cooperatives, each on
// its own node of a 3-node cluster over TCP: genesis, members admitted by
// vote, a schema, consents on both tiers, exchanges, a dataset proposed
// and voted, a grant, an export through a follower, a withdrawal that the
// next export honours, shares and the audit trail.
func TestCooperativeStory(t *testing.T) {
	n0, admin := bootstrapNode(t) // coop-a, founder
	n1 := joinNode(t, "n1", n0, admin, true)
	n2 := joinNode(t, "n2", n0, admin, true)
	ctx := testCtx(t)
	root := client.New(n0.URL(), admin)
	tokB, err := root.CreateToken(ctx, "coop-b", false)
	if err != nil {
		t.Fatal(err)
	}
	tokC, err := root.CreateToken(ctx, "coop-c", false)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := root, client.New(n1.URL(), tokB.Token), client.New(n2.URL(), tokC.Token)

	// Members: admitted one by one, by vote.
	passes(t, ctx, Proposal{Kind: ProposeAdmit, Member: "coop-b"}, a, a)
	passes(t, ctx, Proposal{Kind: ProposeAdmit, Member: "coop-c"}, a, a, b)
	if ms, err := c.Members(ctx); err != nil || strings.Join(ms, ",") != "coop-a,coop-b,coop-c" {
		t.Fatalf("members %v, %v", ms, err)
	}
	if _, err := root.PutSchema(ctx, basketSchema()); err != nil {
		t.Fatal(err)
	}

	// Each cooperative agrees to share purchases for research, and records
	// its members' consents; some people do not consent.
	coops := map[string]*client.Client{"coop-a": a, "coop-b": b, "coop-c": c}
	consentOf := map[string]uuid.UUID{}
	owner := map[string]string{}
	for name, cl := range coops {
		share := consentRequest("", "dpv:ResearchAndDevelopment")
		share.Tier = consent.TierMember
		if _, err := cl.GiveConsent(ctx, share); err != nil {
			t.Fatalf("%s agreement: %v", name, err)
		}
		var recs []client.Record
		for i := 0; i < 6; i++ {
			subject := fmt.Sprintf("person-%d@%s.example", i, name)
			owner[subject] = name
			if i < 4 {
				rc, err := cl.GiveConsent(ctx, consentRequest(subject, "dpv:ResearchAndDevelopment"))
				if err != nil {
					t.Fatal(err)
				}
				consentOf[subject] = rc.Record
			}
			postcode := "40126"
			if i == 3 && name == "coop-a" {
				postcode = "90100" // alone in its group: suppressed
			}
			recs = append(recs, basket(subject, postcode, 10+i))
		}
		if _, err := cl.Publish(ctx, recs); err != nil {
			t.Fatalf("%s publish: %v", name, err)
		}
	}

	// The dataset, proposed by coop-b and voted; a grant to coop-c.
	ds := Dataset{
		Name: "market-study", Description: "Joint market study of baskets", Purpose: "dpv:CommercialResearch", Category: "pd:Purchase", K: 2,
		Types: []DatasetType{{Type: "basket", Fields: []string{"email", "postcode", "amount"}}},
	}
	passes(t, ctx, Proposal{Kind: ProposeDataset, Dataset: &ds}, b, a, b)
	passes(t, ctx, Proposal{Kind: ProposeGrant, Grant: &Grant{Dataset: "market-study", Grantee: "coop-c", Purpose: "dpv:CommercialResearch", Until: time.Now().Add(24 * time.Hour)}}, a, a, c)

	// The export, by coop-c through its own node, a follower.
	var out bytes.Buffer
	res, err := c.Export(ctx, "market-study", ExportRequest{Purpose: "dpv:CommercialResearch"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(out.Bytes())
	if hex.EncodeToString(sum[:]) != res.SHA256 {
		t.Fatal("the body's hash is not the audited one")
	}
	rows := parseExport(t, out.Bytes())
	// 3 coops x 4 consenting people, but one alone in its postcode group
	// (k is 2): 11 rows, and every released group has at least k.
	if len(rows) != 11 || res.Rows != 11 {
		t.Fatalf("%d rows (header says %d), want 11:\n%s", len(rows), res.Rows, out.String())
	}
	groups := map[string]int{}
	for _, r := range rows {
		groups[string(r.Fields["postcode"])]++
	}
	for g, count := range groups {
		if count < ds.K {
			t.Fatalf("group %s released with %d rows, under k=%d", g, count, ds.K)
		}
	}
	ledgerPseudonyms := map[string]bool{}
	for subject, m := range owner {
		p, _ := n0.keys.Pseudonym(pseudonym.MemberDomain(m), subject)
		ledgerPseudonyms[string(p)] = true
	}
	for _, r := range rows {
		if ledgerPseudonyms[r.Subject] || ledgerPseudonyms[strings.Trim(string(r.Fields["email"]), `"`)] {
			t.Fatalf("a ledger-level pseudonym left in an export: %+v", r)
		}
		if strings.Contains(out.String(), "@") {
			t.Fatal("a raw identifier left in an export")
		}
	}
	audits, err := a.Audit(ctx, "market-study")
	if err != nil || len(audits) != 1 || audits[0].SHA256 != res.SHA256 || audits[0].Member != "coop-c" || audits[0].Rows != 11 || audits[0].Suppressed != 1 || audits[0].NoConsent != 6 {
		t.Fatalf("audit %+v, %v", audits, err)
	}

	// Reproducible: the same dataset, grant and index, the same bytes.
	var again bytes.Buffer
	if _, err := c.Export(ctx, "market-study", ExportRequest{Purpose: "dpv:CommercialResearch", AsOf: audits[0].AsOf}, &again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), out.Bytes()) {
		t.Fatal("the same export as of the same index gave other bytes")
	}

	// A person withdraws: absent from the next export. Their cooperative
	// sees which exports held their data.
	leaver := "person-0@coop-b.example"
	if _, err := b.ChangeConsent(ctx, consentOf[leaver], "withdraw", ConsentChange{}); err != nil {
		t.Fatal(err)
	}
	if ex, err := b.SubjectExports(ctx, leaver); err != nil || len(ex) != 2 {
		t.Fatalf("exports holding the leaver: %+v, %v", ex, err)
	}
	var after bytes.Buffer
	if _, err := c.Export(ctx, "market-study", ExportRequest{Purpose: "dpv:CommercialResearch", Format: "csv"}, &after); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(after.String()), "\n")
	if lines[0] != "subject,member,type,date,amount,email,postcode" || len(lines) != 1+10 {
		t.Fatalf("csv after the withdrawal:\n%s", after.String())
	}
	p0, _ := n0.keys.Pseudonym(pseudonym.DatasetDomain("market-study"), func() string {
		lp, _ := n0.keys.Pseudonym(pseudonym.MemberDomain("coop-b"), leaver)
		return string(lp)
	}())
	if strings.Contains(after.String(), string(p0)) || !strings.Contains(out.String(), string(p0)) {
		t.Fatal("the leaver's dataset pseudonym: want it in the first export only")
	}
	// An export as of the first export's index, after the withdrawal,
	// does not bring the leaver back.
	var old bytes.Buffer
	if _, err := c.Export(ctx, "market-study", ExportRequest{Purpose: "dpv:CommercialResearch", AsOf: audits[0].AsOf}, &old); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(old.String(), string(p0)) || len(parseExport(t, old.Bytes())) != 10 {
		t.Fatalf("an export as of an index before the withdrawal, made after it:\n%s", old.String())
	}
	if ex, err := a.SubjectExports(ctx, "person-1@coop-a.example"); err != nil || len(ex) != 4 {
		t.Fatalf("exports holding a consenting person: %d, %v", len(ex), err)
	}

	// Shares: each cooperative's part of the records and the people.
	sh, err := b.Shares(ctx, "market-study", "", "")
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, s := range sh.Shares {
		total += s.RecordShare
	}
	if len(sh.Shares) != 3 || sh.Records != 11 || sh.Subjects != 11 || total < 0.999 || total > 1.001 {
		t.Fatalf("shares %+v", sh)
	}
	for _, s := range sh.Shares {
		want := 4
		if s.Member == "coop-b" {
			want = 3
		}
		if s.Records != want {
			t.Errorf("%s contributed %d records, want %d", s.Member, s.Records, want)
		}
	}
}

// TestGovernanceRefusals shows each refusal typed and nothing written: an
// export without a grant, with an expired grant, for another purpose; a
// non-member voting; a member voting twice; a forged signature; a vote
// past a proposal's lifetime.
func TestGovernanceRefusals(t *testing.T) {
	n, cl, tokens := smallFederation(t, Rules{Lifetime: "PT2S"}, []string{"coop-b"}, "coop-x")
	ctx := testCtx(t)
	a, b, x := cl["coop-a"], cl["coop-b"], cl["coop-x"]
	ds := Dataset{Name: "d", Purpose: "dpv:ResearchAndDevelopment", Category: "pd:Purchase", K: 1,
		Types: []DatasetType{{Type: "basket", Fields: []string{"amount"}}}}
	passes(t, ctx, Proposal{Kind: ProposeDataset, Dataset: &ds}, a, a, b)
	passes(t, ctx, Proposal{Kind: ProposeGrant, Grant: &Grant{Dataset: "d", Grantee: "coop-a", Purpose: "dpv:CommercialResearch", Until: time.Now().Add(time.Second)}}, a, a, b)
	passes(t, ctx, Proposal{Kind: ProposeGrant, Grant: &Grant{Dataset: "d", Grantee: "coop-b", Purpose: "dpv:AcademicResearch", Until: time.Now().Add(time.Hour)}}, a, a, b)
	open, err := a.Propose(ctx, Proposal{Kind: ProposeAdmit, Member: "coop-c"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Vote(ctx, open.ID, "yes"); err != nil {
		t.Fatal(err)
	}
	old, err := a.Propose(ctx, Proposal{Kind: ProposeAdmit, Member: "coop-d"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond) // coop-a's grant and the proposals' lifetimes end

	size := ledgerSize(t, a)
	export := func(cl *client.Client, purpose string) error {
		_, err := cl.Export(ctx, "d", ExportRequest{Purpose: purpose}, &bytes.Buffer{})
		return err
	}
	forged := func() error {
		body, _ := json.Marshal(Vote{Proposal: open.ID, Choice: "yes", At: time.Now()})
		sub := api.SignedSubmission{Kind: KindVote, Signed: api.SignedBody{Body: body, Signer: "coop-b", Sig: make([]byte, 64)}, At: time.Now()}
		return postJSON(t, n.URL()+"/v1/signed", tokens["coop-b"], sub)
	}
	// An audit entry (which would spend the dataset's budget) signed by a
	// token holder without a grant.
	burn := func() error {
		key, err := n.svc.Signers().Key("coop-x")
		if err != nil {
			return err
		}
		at := time.Now().UTC()
		body, _ := json.Marshal(ExportAudit{ID: uuid.New(), Member: "coop-x", Dataset: "d", Purpose: "dpv:ResearchAndDevelopment", Format: "aggregate:count", At: at, Epsilon: 0.5})
		sub := api.SignedSubmission{Kind: KindExport, At: at, PublicKey: key.Public().(ed25519.PublicKey),
			Signed: api.SignedBody{Body: body, Signer: "coop-x", Sig: ed25519.Sign(key, format.SigningContext(KindExport, body))}}
		return postJSON(t, n.URL()+"/v1/signed", tokens["coop-x"], sub)
	}
	for name, tc := range map[string]struct {
		do     func() error
		status int
	}{
		"an audit entry without a grant": {burn, http.StatusForbidden},
		"export without a grant":         {func() error { return export(x, "dpv:CommercialResearch") }, http.StatusForbidden},
		"export with an expired grant":   {func() error { return export(a, "dpv:CommercialResearch") }, http.StatusForbidden},
		"export for another purpose":     {func() error { return export(b, "dpv:CommercialResearch") }, http.StatusForbidden},
		"a non-member voting":            {func() error { _, err := x.Vote(ctx, open.ID, "yes"); return err }, http.StatusForbidden},
		"a member voting twice":          {func() error { _, err := a.Vote(ctx, open.ID, "no"); return err }, http.StatusConflict},
		"a forged signature":             {forged, http.StatusBadRequest},
		"a vote past the lifetime":       {func() error { _, err := b.Vote(ctx, old.ID, "yes"); return err }, http.StatusConflict},
		"a non-member proposing":         {func() error { _, err := x.Propose(ctx, Proposal{Kind: ProposeAdmit, Member: "coop-x"}); return err }, http.StatusForbidden},
		"a dataset on an unknown type": {func() error {
			_, err := a.Propose(ctx, Proposal{Kind: ProposeDataset, Dataset: &Dataset{Name: "e", Purpose: "dpv:Marketing", Category: "pd:Purchase", K: 1, Types: []DatasetType{{Type: "nope"}}}})
			return err
		}, http.StatusBadRequest},
		"an unknown choice": {func() error { _, err := b.Vote(ctx, open.ID, "maybe"); return err }, http.StatusBadRequest},
	} {
		if err := tc.do(); apiStatus(err) != tc.status {
			t.Errorf("%s: got %v, want status %d", name, err, tc.status)
		}
	}
	if got := ledgerSize(t, a); got != size {
		t.Fatalf("refused requests wrote %d entries", got-size)
	}
}

// smallFederation bootstraps a one-node federation founded by coop-a with
// the other founding members, registers the basket schema, and returns a
// client and a token for coop-a and for each name in members and others
// (non-members too).
func smallFederation(t *testing.T, rules Rules, members []string, others ...string) (*Node, map[string]*client.Client, map[string]string) {
	t.Helper()
	cfg := nodeConfig(t.TempDir())
	cfg.Bootstrap, cfg.Federation, cfg.Member, cfg.NodeID = true, "Small", "coop-a", "n0"
	cfg.FoundingMembers, cfg.Rules = members, rules
	n := mustStart(t, cfg)
	ctx := testCtx(t)
	admin := readToken(t, cfg.Dir)
	a := client.New(n.URL(), admin)
	if _, err := a.PutSchema(ctx, basketSchema()); err != nil {
		t.Fatal(err)
	}
	clients, tokens := map[string]*client.Client{"coop-a": a}, map[string]string{"coop-a": admin}
	for _, m := range append(append([]string(nil), members...), others...) {
		tok, err := a.CreateToken(ctx, m, false)
		if err != nil {
			t.Fatal(err)
		}
		clients[m], tokens[m] = client.New(n.URL(), tok.Token), tok.Token
	}
	return n, clients, tokens
}

func readToken(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// postJSON posts v and returns the API error, if any.
func postJSON(t *testing.T, url, token string, v any) error {
	t.Helper()
	body, ok := v.(json.RawMessage)
	if !ok {
		body, _ = json.Marshal(v)
	}
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &client.Error{Status: resp.StatusCode}
	}
	return nil
}

// TestSignedOnOwnDevice submits a vote that a member signed itself, with
// the body formatted its own way: the ledger keeps the bytes as signed, so
// every replica verifies them. A vote dated an hour ago is refused.
func TestSignedOnOwnDevice(t *testing.T) {
	n, cl, tokens := smallFederation(t, Rules{}, []string{"coop-b"})
	ctx := testCtx(t)
	a := cl["coop-a"]
	p, err := a.Propose(ctx, Proposal{Kind: ProposeAdmit, Member: "coop-c"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Vote(ctx, p.ID, "yes"); err != nil {
		t.Fatal(err)
	}
	key, err := n.svc.Signers().Key("coop-b") // as if on coop-b's own device
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	vote := func(at time.Time) error {
		body := []byte(fmt.Sprintf("{ \"proposal\" : %q,\n  \"choice\": \"yes\", \"at\": %q }", p.ID, at.Format(time.RFC3339Nano)))
		// The request embeds the body as written (json.Marshal would
		// compact it).
		sig := ed25519.Sign(key, format.SigningContext(KindVote, body))
		raw := fmt.Sprintf(`{"kind":%q,"at":%q,"public_key":%q,"signed":{"body":%s,"signer":"coop-b","sig":%q}}`,
			KindVote, at.Format(time.RFC3339Nano), base64.StdEncoding.EncodeToString(pub), body, base64.StdEncoding.EncodeToString(sig))
		return postJSON(t, n.URL()+"/v1/signed", tokens["coop-b"], json.RawMessage(raw))
	}
	if err := vote(time.Now().Add(-time.Hour)); apiStatus(err) != http.StatusBadRequest {
		t.Fatalf("a vote dated an hour ago: %v", err)
	}
	if err := vote(time.Now().UTC()); err != nil {
		t.Fatalf("a vote signed on the member's device: %v", err)
	}
	if ps, ok := n.state.Proposal(p.ID); !ok || ps.Outcome != "passed" {
		t.Fatalf("proposal after both votes: %+v", ps)
	}
}

// TestRemovedMemberLosesGrants removes a member by vote: its tokens stop
// working and its grants end with its membership.
func TestRemovedMemberLosesGrants(t *testing.T) {
	n, cl, _ := smallFederation(t, Rules{}, []string{"coop-b", "coop-c"})
	ctx := testCtx(t)
	a, b, c := cl["coop-a"], cl["coop-b"], cl["coop-c"]
	ds := Dataset{Name: "d", Purpose: "dpv:ResearchAndDevelopment", Category: "pd:Purchase", K: 1,
		Types: []DatasetType{{Type: "basket", Fields: []string{"amount"}}}}
	passes(t, ctx, Proposal{Kind: ProposeDataset, Dataset: &ds}, a, a, c)
	passes(t, ctx, Proposal{Kind: ProposeGrant, Grant: &Grant{Dataset: "d", Grantee: "coop-b", Purpose: "dpv:ResearchAndDevelopment", Until: time.Now().Add(time.Hour)}}, a, a, c)
	if _, err := b.Export(ctx, "d", ExportRequest{Purpose: "dpv:ResearchAndDevelopment"}, &bytes.Buffer{}); err != nil {
		t.Fatalf("an export under the grant: %v", err)
	}
	passes(t, ctx, Proposal{Kind: ProposeRemove, Member: "coop-b"}, a, a, c)
	// Its tokens stop working, and its grants are gone.
	if _, err := b.Export(ctx, "d", ExportRequest{Purpose: "dpv:ResearchAndDevelopment"}, &bytes.Buffer{}); apiStatus(err) != http.StatusUnauthorized {
		t.Fatalf("an export by a removed member: %v", err)
	}
	if _, err := b.Propose(ctx, Proposal{Kind: ProposeAdmit, Member: "coop-b2"}); apiStatus(err) != http.StatusUnauthorized {
		t.Fatalf("a proposal by a removed member: %v", err)
	}
	if _, err := n.state.GrantFor("d", "coop-b", "dpv:ResearchAndDevelopment", time.Now()); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a removed member's grant: %v", err)
	}
	if ms, _ := a.Members(ctx); strings.Join(ms, ",") != "coop-a,coop-c" {
		t.Fatalf("members after the removal: %v", ms)
	}
}

// TestFoundingKeysInGenesis founds a federation whose genesis holds the
// founder's key and a founding member's key (both made with
// CreateMemberKey in the node's directory): both sign from the start,
// without registering a key by their first entry.
func TestFoundingKeysInGenesis(t *testing.T) {
	dir := t.TempDir()
	if _, err := CreateMemberKey(dir, "coop-a", nil); err != nil {
		t.Fatal(err)
	}
	pubB, err := CreateMemberKey(dir, "coop-b", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CreateMemberKey(dir, "coop-b", nil); err == nil {
		t.Fatal("CreateMemberKey replaced a key")
	}
	cfg := nodeConfig(dir)
	cfg.Bootstrap, cfg.Federation, cfg.Member, cfg.NodeID = true, "Keys", "coop-a", "n0"
	cfg.FoundingMembers = []string{"coop-b"}
	cfg.FoundingKeys = map[string]ed25519.PublicKey{"coop-b": pubB}
	n := mustStart(t, cfg)
	ctx := testCtx(t)
	founder, _ := n.svc.Signers().Key("coop-a")
	if k, ok := n.state.MemberKeyAt("coop-a", 0); !ok || !k.Equal(founder.Public()) {
		t.Fatalf("the founder's key at genesis: %v", k)
	}
	if k, ok := n.state.MemberKeyAt("coop-b", 0); !ok || !k.Equal(pubB) {
		t.Fatalf("coop-b's key at genesis: %v", k)
	}
	a := client.New(n.URL(), readToken(t, dir))
	tb, _ := a.CreateToken(ctx, "coop-b", false)
	p, err := client.New(n.URL(), tb.Token).Propose(ctx, Proposal{Kind: ProposeAdmit, Member: "coop-c"})
	if err != nil {
		t.Fatalf("coop-b proposing with its own key: %v", err)
	}
	if _, err := a.Vote(ctx, p.ID, "yes"); err != nil {
		t.Fatal(err)
	}
	registered := 0
	if err := n.Ledger().Read(ctx, ledger.Stale, func(v *ledger.View) error {
		for e, err := range v.Entries(0, v.Size()) {
			if err != nil {
				return err
			}
			if e.Kind == KindMemberKey {
				registered++
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if registered != 0 {
		t.Fatalf("%d member keys registered by first use; the genesis holds them", registered)
	}

	bad := nodeConfig(t.TempDir())
	bad.Bootstrap, bad.Federation, bad.Member = true, "Bad", "coop-a"
	bad.FoundingKeys = map[string]ed25519.PublicKey{"coop-z": pubB} // not a founding member
	if _, err := Open(ctx, bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a key for a member who is not founding: %v", err)
	}
}

// TestCommittee delegates datasets and grants to a committee of two of the
// three members: its members alone vote, counted over the committee; the
// others cannot vote or propose to it, and it cannot admit members.
func TestCommittee(t *testing.T) {
	rules := Rules{Committees: []Committee{{Name: "data", Members: []string{"coop-a", "coop-b"}, Powers: []string{ProposeDataset, ProposeGrant}}}}
	_, cl, _ := smallFederation(t, rules, []string{"coop-b", "coop-c"})
	ctx := testCtx(t)
	a, b, c := cl["coop-a"], cl["coop-b"], cl["coop-c"]
	ds := Dataset{Name: "d", Purpose: "dpv:ResearchAndDevelopment", Category: "pd:Purchase", K: 1,
		Types: []DatasetType{{Type: "basket", Fields: []string{"amount"}}}}
	p, err := a.Propose(ctx, Proposal{Kind: ProposeDataset, Dataset: &ds, Committee: "data"})
	if err != nil {
		t.Fatal(err)
	}
	if p, err = a.Vote(ctx, p.ID, "yes"); err != nil || p.Outcome != "open" {
		t.Fatalf("one committee vote of two: %+v, %v", p, err)
	}
	if _, err := c.Vote(ctx, p.ID, "yes"); apiStatus(err) != http.StatusForbidden {
		t.Fatalf("a member outside the committee voting: %v", err)
	}
	if p, err = b.Vote(ctx, p.ID, "yes"); err != nil || p.Outcome != "passed" || p.Electors != 2 {
		t.Fatalf("both committee votes: %+v, %v", p, err)
	}
	if _, err := c.Propose(ctx, Proposal{Kind: ProposeGrant, Committee: "data", Grant: &Grant{Dataset: "d", Grantee: "coop-c", Purpose: "dpv:ResearchAndDevelopment", Until: time.Now().Add(time.Hour)}}); apiStatus(err) != http.StatusForbidden {
		t.Fatalf("a member outside the committee proposing to it: %v", err)
	}
	if _, err := a.Propose(ctx, Proposal{Kind: ProposeAdmit, Member: "coop-d", Committee: "data"}); apiStatus(err) != http.StatusBadRequest {
		t.Fatalf("a committee admitting a member: %v", err)
	}
	if _, err := a.Propose(ctx, Proposal{Kind: ProposeAdmit, Member: "coop-d", Committee: "nope"}); apiStatus(err) != http.StatusBadRequest {
		t.Fatalf("an unknown committee: %v", err)
	}

	bad := nodeConfig(t.TempDir())
	bad.Bootstrap, bad.Federation, bad.Member = true, "Bad", "coop-a"
	bad.Rules = Rules{Committees: []Committee{{Name: "x", Members: []string{"coop-z"}, Powers: []string{ProposeGrant}}}}
	if _, err := Open(ctx, bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a committee with a member who is not founding: %v", err)
	}
}

// TestDatasetNotReplaced: while a dataset's proposal is open, another
// proposal of the same name is refused; a dataset is never replaced.
func TestDatasetNotReplaced(t *testing.T) {
	_, cl, _ := smallFederation(t, Rules{}, []string{"coop-b"})
	ctx := testCtx(t)
	a, b := cl["coop-a"], cl["coop-b"]
	ds := Dataset{Name: "d", Purpose: "dpv:ResearchAndDevelopment", Category: "pd:Purchase", K: 5,
		Types: []DatasetType{{Type: "basket", Fields: []string{"amount"}}}}
	first, err := a.Propose(ctx, Proposal{Kind: ProposeDataset, Dataset: &ds})
	if err != nil {
		t.Fatal(err)
	}
	other := ds
	other.K = 1
	if _, err := b.Propose(ctx, Proposal{Kind: ProposeDataset, Dataset: &other}); apiStatus(err) != http.StatusBadRequest {
		t.Fatalf("a second proposal for a dataset being voted: %v", err)
	}
	for _, v := range []*client.Client{a, b} {
		if _, err := v.Vote(ctx, first.ID, "yes"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Propose(ctx, Proposal{Kind: ProposeDataset, Dataset: &other}); apiStatus(err) != http.StatusBadRequest {
		t.Fatalf("a proposal replacing an existing dataset: %v", err)
	}
}

// TestRetallyOnMembershipChange: a proposal with two yes votes of four
// members is open; once a member is removed, two of three pass it, at the
// removal's index.
func TestRetallyOnMembershipChange(t *testing.T) {
	n, cl, _ := smallFederation(t, Rules{}, []string{"coop-b", "coop-c", "coop-d"})
	ctx := testCtx(t)
	a, b, c := cl["coop-a"], cl["coop-b"], cl["coop-c"]
	ds := Dataset{Name: "d", Purpose: "dpv:ResearchAndDevelopment", Category: "pd:Purchase", K: 1,
		Types: []DatasetType{{Type: "basket", Fields: []string{"amount"}}}}
	p, err := a.Propose(ctx, Proposal{Kind: ProposeDataset, Dataset: &ds})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []*client.Client{a, b} {
		if p, err = v.Vote(ctx, p.ID, "yes"); err != nil {
			t.Fatal(err)
		}
	}
	if p.Outcome != "open" {
		t.Fatalf("two yes of four: %+v", p)
	}
	removal := passes(t, ctx, Proposal{Kind: ProposeRemove, Member: "coop-d"}, a, a, b, c)
	after, ok := n.state.Proposal(p.ID)
	if !ok || after.Outcome != "passed" || after.Decided != removal.Decided || after.Electors != 3 {
		t.Fatalf("after the removal: %+v (removal decided at %d)", after, removal.Decided)
	}
	if _, ok := n.state.Dataset("d"); !ok {
		t.Fatal("the dataset does not exist")
	}
}
