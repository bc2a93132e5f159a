package coapp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	"coapp.coop/internal/fsscan"
)

func TestBootstrapWritesAdminToken(t *testing.T) {
	n, token := bootstrapNode(t)
	fi, err := os.Stat(filepath.Join(n.cfg.Dir, AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("admin.token mode = %v, want 0600", fi.Mode().Perm())
	}
	if !strings.HasPrefix(token, "coapp_") {
		t.Errorf("token %q lacks the coapp_ prefix", token)
	}
	// The secret never enters the ledger: only its hash does.
	_, secret, _ := format.SplitToken(token)
	if files := filesContaining(t, n.cfg.Dir, []byte(secret)); len(files) != 1 || filepath.Base(files[0]) != AdminTokenFile {
		t.Errorf("the token's secret is in %v, want only admin.token", files)
	}
}

// filesContaining lists the files under dir whose bytes contain needle.
func filesContaining(t *testing.T, dir string, needle []byte) []string {
	t.Helper()
	matches, err := fsscan.Scan(dir, needle)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range matches {
		out = append(out, m.Path)
	}
	return out
}

func TestPublishAndRead(t *testing.T) {
	n, token := bootstrapNode(t)
	c := client.New(n.URL(), token)
	ctx := testCtx(t)
	var recs []client.Record
	for i := 0; i < 5; i++ {
		recs = append(recs, record(i))
	}
	rs, err := c.Publish(ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 5 || rs[0].ID != recs[0].ID {
		t.Fatalf("receipts = %+v", rs)
	}
	// The genesis, node, token and schema entries come first, then the
	// batch's signature.
	if rs[0].Index != 5 || rs[4].Index != 9 {
		t.Errorf("record indexes %d..%d, want 5..9", rs[0].Index, rs[4].Index)
	}
	// Same records again, fields in another order and layout: same receipts.
	again := record(2)
	again.Fields = map[string]json.RawMessage{"shop": json.RawMessage(` "Bologna centro" `), "amount": json.RawMessage("20")}
	rs2, err := c.Publish(ctx, []client.Record{again})
	if err != nil || rs2[0] != rs[2] {
		t.Errorf("re-publish = %+v, %v; want %+v", rs2, err, rs[2])
	}
	info, err := c.Record(ctx, recs[1].ID, "linearizable")
	if err != nil {
		t.Fatal(err)
	}
	if info.Receipt != rs[1] || info.Type != "purchase" || info.Member != "coop-a" || !info.Time.Equal(recs[1].Time) {
		t.Errorf("Record = %+v", info)
	}
	li, err := c.Ledger(ctx, "")
	if err != nil || li.Size != 10 {
		t.Fatalf("Ledger = %+v, %v; want size 10 (nothing stored again)", li, err)
	}
	ip, err := c.InclusionProof(ctx, rs[3].Index, li.Size, "")
	if err != nil {
		t.Fatal(err)
	}
	if ip.Leaf != rs[3].Leaf || ip.Root != li.Root || ip.Verify() != nil {
		t.Errorf("inclusion proof %+v does not verify against receipt %+v and root %s", ip, rs[3], li.Root)
	}
	cp, err := c.ConsistencyProof(ctx, 4, li.Size, "stale")
	if err != nil || cp.ToRoot != li.Root || cp.Verify() != nil {
		t.Errorf("consistency proof %+v, %v", cp, err)
	}
	if _, err := c.Record(ctx, uuid.New(), ""); apiStatus(err) != http.StatusNotFound {
		t.Errorf("unknown record: %v, want 404", err)
	}
}

// TestPublishJSON publishes a request body the caller encoded: its
// receipts are those of Publish for the same records; a body that is not
// a publish request is refused, naming the field, and writes nothing.
func TestPublishJSON(t *testing.T) {
	n, token := bootstrapNode(t)
	c := client.New(n.URL(), token)
	ctx := testCtx(t)
	recs := []client.Record{record(1), record(2)}
	body, err := json.Marshal(map[string]any{"records": recs})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := c.PublishJSON(ctx, body)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].ID != recs[0].ID || rs[1].ID != recs[1].ID {
		t.Fatalf("receipts %+v", rs)
	}
	again, err := c.Publish(ctx, recs)
	if err != nil || len(again) != 2 || again[0] != rs[0] || again[1] != rs[1] {
		t.Errorf("Publish of the same records: %+v, %v; want %+v", again, err, rs)
	}
	before, err := c.Ledger(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`{"records":`, `{"records":[{"id":"not-a-uuid"}]}`, `[]`} {
		_, err := c.PublishJSON(ctx, []byte(bad))
		var e *client.Error
		if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
			t.Errorf("PublishJSON(%s): %v, want 400", bad, err)
		}
	}
	if after, err := c.Ledger(ctx, ""); err != nil || after.Size != before.Size {
		t.Errorf("bad bodies wrote entries: size %d, then %d (%v)", before.Size, after.Size, err)
	}
}

// TestBadRequests sends what clients get wrong and checks each answer: its
// status, code, field, and that nothing was written.
func TestBadRequests(t *testing.T) {
	n, token := bootstrapNode(t)
	c := client.New(n.URL(), token)
	ctx := testCtx(t)
	if _, err := c.Publish(ctx, []client.Record{record(1)}); err != nil {
		t.Fatal(err)
	}
	memberTok, err := c.CreateToken(ctx, "coop-b", false)
	if err != nil {
		t.Fatal(err)
	}
	before, err := c.Ledger(ctx, "")
	if err != nil {
		t.Fatal(err)
	}

	good := `{"id":"` + uuid.NewString() + `","type":"purchase","subject":"anna","time":"2026-11-01T10:00:00Z","fields":{"amount":3}}`
	conflict := strings.Replace(`{"records":[`+recordJSON(record(1))+`]}`, `"amount":10`, `"amount":11`, 1)
	big := `{"records":[{"id":"` + uuid.NewString() + `","type":"purchase","subject":"` + strings.Repeat("x", 5<<20) + `","time":"2026-11-01T10:00:00Z"}]}`
	tests := []struct {
		name, method, path, token, body string
		status                          int
		code, field                     string
	}{
		{"no token", "POST", "/v1/records", "", `{"records":[` + good + `]}`, 401, "unauthenticated", ""},
		{"unknown token", "POST", "/v1/records", "coapp_0123456789abcdef_" + strings.Repeat("A", 43), `{"records":[` + good + `]}`, 401, "unauthenticated", ""},
		{"member on an admin route", "POST", "/v1/tokens", memberTok.Token, `{"member":"x"}`, 403, "forbidden", ""},
		{"malformed JSON", "POST", "/v1/records", token, `{"records":[`, 400, "invalid", "body"},
		{"unknown field", "POST", "/v1/records", token, `{"records":[],"extra":1}`, 400, "invalid", "extra"},
		{"wrong type", "POST", "/v1/records", token, `{"records":"many"}`, 400, "invalid", "records"},
		{"no records", "POST", "/v1/records", token, `{"records":[]}`, 400, "invalid", "records"},
		{"missing id", "POST", "/v1/records", token, `{"records":[{"type":"purchase","subject":"a","time":"2026-11-01T10:00:00Z"}]}`, 400, "invalid", "records[0].id"},
		{"bad time", "POST", "/v1/records", token, `{"records":[{"id":"` + uuid.NewString() + `","type":"purchase","subject":"a","time":"yesterday"}]}`, 400, "invalid", "records[0].time"},
		{"second record bad type", "POST", "/v1/records", token, `{"records":[` + good + `,{"id":"` + uuid.NewString() + `","type":"Bad Type","subject":"a","time":"2026-11-01T10:00:00Z"}]}`, 400, "invalid", "records[1].type"},
		{"trailing data", "POST", "/v1/records", token, `{"records":[` + good + `]} {}`, 400, "invalid", "body"},
		{"id reused with other content", "POST", "/v1/records", token, conflict, 409, "conflict", "id"},
		{"body too large", "POST", "/v1/records", token, big, 413, "too_large", ""},
		{"bad consistency", "GET", "/v1/ledger?consistency=strong", token, "", 400, "invalid", "consistency"},
		{"proof index past size", "GET", "/v1/ledger/proofs/inclusion?index=5&size=5", token, "", 400, "invalid", "index"},
		{"proof size past the log", "GET", "/v1/ledger/proofs/inclusion?index=1&size=500", token, "", 400, "out_of_range", ""},
		{"proof without size", "GET", "/v1/ledger/proofs/inclusion?index=1", token, "", 400, "invalid", "size"},
		{"record id not a uuid", "GET", "/v1/records/nope", token, "", 400, "invalid", "id"},
		{"unknown route", "GET", "/v1/nothing", token, "", 404, "not_found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, n.URL()+tt.path, strings.NewReader(tt.body))
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body api.ErrorBody
			data, _ := io.ReadAll(resp.Body)
			if err := json.Unmarshal(data, &body); err != nil {
				t.Fatalf("status %d, body %q is not the error JSON", resp.StatusCode, data)
			}
			if resp.StatusCode != tt.status || body.Error.Code != tt.code || body.Error.Field != tt.field {
				t.Errorf("status %d code %q field %q (%s); want %d %q %q", resp.StatusCode, body.Error.Code, body.Error.Field, body.Error.Message, tt.status, tt.code, tt.field)
			}
			if body.Error.Message == "" {
				t.Error("empty error message")
			}
		})
	}
	if li, _ := c.Ledger(ctx, ""); li != before {
		t.Errorf("ledger changed by refused requests: %+v, was %+v", li, before)
	}
}

func recordJSON(r client.Record) string {
	b, _ := json.Marshal(r)
	return string(b)
}

func TestTokens(t *testing.T) {
	n, token := bootstrapNode(t)
	admin := client.New(n.URL(), token)
	ctx := testCtx(t)
	tok, err := admin.CreateToken(ctx, "coop-b", false)
	if err != nil {
		t.Fatal(err)
	}
	b := client.New(n.URL(), tok.Token)
	rs, err := b.Publish(ctx, []client.Record{record(1)})
	if err != nil {
		t.Fatal(err)
	}
	info, _ := b.Record(ctx, rs[0].ID, "")
	if info.Member != "coop-b" {
		t.Errorf("record published with coop-b's token belongs to %q", info.Member)
	}
	if err := admin.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	b.Retries = 1
	if _, err := b.Publish(ctx, []client.Record{record(2)}); apiStatus(err) != http.StatusUnauthorized {
		t.Errorf("publish with a revoked token: %v, want 401", err)
	}
	if err := admin.RevokeToken(ctx, tok.ID); apiStatus(err) != http.StatusNotFound {
		t.Errorf("revoking twice: %v, want 404", err)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	n, token := bootstrapNode(t)
	c := client.New(n.URL(), token)
	ctx := testCtx(t)
	if _, err := c.Publish(ctx, []client.Record{record(1)}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		waitUntil(t, "GET "+path+" answers 200", 10*time.Second, func() error {
			resp, err := http.Get(n.URL() + path)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
	}
	resp, err := http.Get(n.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`coapp_raft_state{state="Leader"} 1`,
		"coapp_ledger_size 6",
		`coapp_append_duration_seconds_count 1`,
		"coapp_signed_batches_total 1",
		"coapp_signed_batch_requests_total 1",
		"coapp_signed_batch_fallbacks_total 0",
		`coapp_http_requests_total{route="POST /v1/records",status="200"} 1`,
	} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("metrics lack %q:\n%s", want, data)
		}
	}
}
