package coapp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/client"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/internal/fsscan"
	"coapp.coop/ledger"
)

// careSchema has every kind of field and policy.
func careSchema() Schema {
	return Schema{Type: "care-hours", Version: 1, Fields: []Field{
		{Name: "email", Kind: "string", Class: "direct", Policy: Policy{Action: "pseudonymise"}},
		{Name: "phone", Kind: "string", Class: "direct", Policy: Policy{Action: "drop"}},
		{Name: "birth_date", Kind: "date", Class: "quasi", Policy: Policy{Action: "generalise", Unit: "year"}},
		{Name: "age", Kind: "integer", Class: "quasi", Min: f64(0), Max: f64(130), Policy: Policy{Action: "generalise", Width: 10, Band: true}},
		{Name: "postcode", Kind: "postcode", Class: "quasi", Policy: Policy{Action: "generalise", Keep: 3}},
		{Name: "service", Kind: "enum", Class: "attribute", Required: true, Values: []string{"home-care", "meals", "transport"}, Policy: Policy{Action: "keep"}},
		{Name: "hours", Kind: "decimal", Class: "attribute", Required: true, Min: f64(0), Max: f64(24), Policy: Policy{Action: "keep"}},
		{Name: "diagnosis", Kind: "string", Class: "sensitive", Policy: Policy{Action: "keep"}},
		{Name: "when", Kind: "time", Class: "quasi", Policy: Policy{Action: "generalise", Unit: "week"}},
	}}
}

func rawFields(kv ...string) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = json.RawMessage(kv[i+1])
	}
	return out
}

func careRecord(subject string) client.Record {
	return client.Record{
		ID: uuid.New(), Type: "care-hours", Subject: subject, Time: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC),
		Fields: rawFields(
			"email", `"`+subject+`"`, "phone", `"+39 051 555 0199"`, "birth_date", `"1987-03-14"`,
			"age", `38`, "postcode", `"40126"`, "service", `"home-care"`, "hours", `2.5`,
			"when", `"2026-03-02T10:00:00Z"`),
	}
}

func TestSchemaRegistration(t *testing.T) {
	n, token := bootstrapNode(t)
	c := client.New(n.URL(), token)
	ctx := testCtx(t)
	if _, err := c.PutSchema(ctx, careSchema()); err != nil {
		t.Fatal(err)
	}
	v2 := careSchema()
	v2.Version = 2
	v2.Fields = append(v2.Fields, Field{Name: "notes", Kind: "string", Class: "attribute", Policy: Policy{Action: "keep"}})
	if _, err := c.PutSchema(ctx, v2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutSchema(ctx, v2); apiStatus(err) != http.StatusConflict {
		t.Errorf("registering version 2 twice: %v, want 409", err)
	}
	before, _ := c.Ledger(ctx, "")
	mutate := func(f func(*Schema)) Schema { s := careSchema(); s.Type = "other"; f(&s); return s }
	bad := []struct {
		name  string
		s     Schema
		field string
	}{
		{"direct identifier kept", mutate(func(s *Schema) { s.Fields[0].Policy.Action = "keep" }), "fields[0].policy.action"},
		{"quasi-identifier kept", mutate(func(s *Schema) { s.Fields[2].Policy = Policy{Action: "keep"} }), "fields[2].policy.action"},
		{"unknown kind", mutate(func(s *Schema) { s.Fields[1].Kind = "blob" }), "fields[1].kind"},
		{"unknown class", mutate(func(s *Schema) { s.Fields[1].Class = "secret" }), "fields[1].class"},
		{"repeated name", mutate(func(s *Schema) { s.Fields[1].Name = "email" }), "fields[1].name"},
		{"bad unit", mutate(func(s *Schema) { s.Fields[2].Policy.Unit = "decade" }), "fields[2].policy.unit"},
		{"enum without values", mutate(func(s *Schema) { s.Fields[5].Values = nil }), "fields[5].values"},
		{"min above max", mutate(func(s *Schema) { s.Fields[6].Min = f64(30) }), "fields[6].min"},
		{"version 0", mutate(func(s *Schema) { s.Version = 0 }), "version"},
		{"bad type", mutate(func(s *Schema) { s.Type = "Care Hours" }), "type"},
	}
	for _, tt := range bad {
		_, err := c.PutSchema(ctx, tt.s)
		var ae *client.Error
		if !errors.As(err, &ae) || ae.Status != 400 || ae.Field != tt.field {
			t.Errorf("%s: %v, want 400 on %s", tt.name, err, tt.field)
		}
	}
	if after, _ := c.Ledger(ctx, ""); after != before {
		t.Error("refused schemas changed the ledger")
	}
}

// TestRecordsFollowTheirSchema sends records that break their schema in
// each way: every one is refused with 400 naming the field, and nothing of
// the batch is written.
func TestRecordsFollowTheirSchema(t *testing.T) {
	n, token := bootstrapNode(t)
	c := client.New(n.URL(), token)
	ctx := testCtx(t)
	if _, err := c.PutSchema(ctx, careSchema()); err != nil {
		t.Fatal(err)
	}
	before, _ := c.Ledger(ctx, "")
	with := func(f func(*client.Record)) client.Record { r := careRecord("anna@example.org"); f(&r); return r }
	tests := []struct {
		name  string
		r     client.Record
		field string
	}{
		{"unknown type", with(func(r *client.Record) { r.Type = "harvest" }), "records[1].type"},
		{"unknown version", with(func(r *client.Record) { r.Version = 7 }), "records[1].version"},
		{"unknown field", with(func(r *client.Record) { r.Fields["colour"] = json.RawMessage(`"red"`) }), "records[1].fields.colour"},
		{"missing required", with(func(r *client.Record) { delete(r.Fields, "hours") }), "records[1].fields.hours"},
		{"wrong type", with(func(r *client.Record) { r.Fields["hours"] = json.RawMessage(`"two"`) }), "records[1].fields.hours"},
		{"out of range", with(func(r *client.Record) { r.Fields["hours"] = json.RawMessage(`25`) }), "records[1].fields.hours"},
		{"not an integer", with(func(r *client.Record) { r.Fields["age"] = json.RawMessage(`38.5`) }), "records[1].fields.age"},
		{"enum value", with(func(r *client.Record) { r.Fields["service"] = json.RawMessage(`"gardening"`) }), "records[1].fields.service"},
		{"bad date", with(func(r *client.Record) { r.Fields["birth_date"] = json.RawMessage(`"14/03/1987"`) }), "records[1].fields.birth_date"},
		{"empty subject", with(func(r *client.Record) { r.Subject = "   " }), "records[1].subject"},
	}
	for _, tt := range tests {
		_, err := c.Publish(ctx, []client.Record{careRecord("first@example.org"), tt.r})
		var ae *client.Error
		if !errors.As(err, &ae) || ae.Status != 400 || ae.Field != tt.field {
			t.Errorf("%s: %v, want 400 on %s", tt.name, err, tt.field)
		}
	}
	if after, _ := c.Ledger(ctx, ""); after != before {
		t.Errorf("refused batches changed the ledger: %+v, was %+v", after, before)
	}
}

// storedRecord reads a record as the ledger holds it, and its fields
// decrypted with its subject's key.
func storedRecord(t *testing.T, n *Node, id uuid.UUID) (format.RecordPayload, map[string]json.RawMessage) {
	t.Helper()
	var p format.RecordPayload
	var fields map[string]json.RawMessage
	err := n.Ledger().Read(testCtx(t), ledger.Stale, func(v *ledger.View) error {
		e, _, err := v.ByID(id)
		if err != nil {
			return err
		}
		if p, err = format.DecodeRecordPayload(e.Payload); err != nil {
			return err
		}
		dk, err := n.svc.DataKey(v, p.Subject, format.IsLegacyPayload(e.Payload))
		if err != nil {
			return err
		}
		fields, err = format.OpenFields(dk, e, &p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, fields
}

func TestPoliciesApplied(t *testing.T) {
	n, token := bootstrapNode(t)
	admin := client.New(n.URL(), token)
	ctx := testCtx(t)
	if _, err := admin.PutSchema(ctx, careSchema()); err != nil {
		t.Fatal(err)
	}
	rec := careRecord("Anna.Rossi@example.org")
	if _, err := admin.Publish(ctx, []client.Record{rec}); err != nil {
		t.Fatal(err)
	}
	p, fields := storedRecord(t, n, rec.ID)
	want := map[string]string{
		"birth_date": `"1987"`, "age": `"30-39"`, "postcode": `"401*"`, "service": `"home-care"`,
		"hours": `2.5`, "when": `"2026-W10"`,
	}
	for k, v := range want {
		if string(fields[k]) != v {
			t.Errorf("stored %s = %s, want %s", k, fields[k], v)
		}
	}
	if _, ok := fields["phone"]; ok {
		t.Error("the dropped phone number was stored")
	}
	if !strings.HasPrefix(string(p.Subject), "ps1.1.") || !strings.HasPrefix(string(fields["email"]), `"ps1.1.`) {
		t.Errorf("subject %s and email %s are not pseudonyms", p.Subject, fields["email"])
	}
	// The subject and the e-mail field are the same person: the same
	// pseudonym in the member's domain.
	if `"`+string(p.Subject)+`"` != string(fields["email"]) {
		t.Errorf("subject %s and email %s differ for one identifier", p.Subject, fields["email"])
	}
	// The fields are sealed in the ledger: the stored payload holds no
	// field in clear.
	if len(p.Box) == 0 {
		t.Error("the record's fields are not sealed")
	}
	// Another member sees the same person under another pseudonym.
	tokB, _ := admin.CreateToken(ctx, "coop-b", false)
	recB := careRecord("anna.rossi@EXAMPLE.org")
	if _, err := client.New(n.URL(), tokB.Token).Publish(ctx, []client.Record{recB}); err != nil {
		t.Fatal(err)
	}
	if pb, _ := storedRecord(t, n, recB.ID); pb.Subject == p.Subject {
		t.Error("two members' records of one person share a pseudonym")
	}
	// Republishing the same record gives the same receipt: pseudonyms
	// are deterministic.
	if rs, err := admin.Publish(ctx, []client.Record{rec}); err != nil || rs[0].ID != rec.ID {
		t.Errorf("republish: %v, %v", rs, err)
	}
}

// lockedBuffer collects a node's logs from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestNoRawIdentifierOnDisk publishes records with distinctive identifiers
// through a follower of a three-node federation, forces snapshots, and
// scans every byte of every node's directory (Badger files, Raft log,
// snapshots) and their debug logs: no raw identifier appears, in any
// encoding the code uses.
func TestNoRawIdentifierOnDisk(t *testing.T) {
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))
	cfg := nodeConfig(t.TempDir())
	cfg.Bootstrap, cfg.Federation, cfg.NodeID, cfg.Logger = true, "Privacy", "n0", logger
	n0 := mustStart(t, cfg)
	tokenBytes, err := os.ReadFile(filepath.Join(cfg.Dir, AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tokenBytes))
	ctx := testCtx(t)
	admin := client.New(n0.URL(), token)
	if _, err := admin.PutSchema(ctx, careSchema()); err != nil {
		t.Fatal(err)
	}
	var nodes = []*Node{n0}
	for _, id := range []string{"n1", "n2"} {
		c := nodeConfig(t.TempDir())
		c.NodeID, c.Join, c.JoinToken, c.KeyFile, c.Logger = id, n0.URL(), token, n0.KeyFile(), logger
		copyMemberKeys(t, n0.cfg.Dir, c.Dir)
		nodes = append(nodes, mustStart(t, c))
	}
	var secrets [][]byte
	var recs []client.Record
	for i := 0; i < 30; i++ {
		subject := fmt.Sprintf("Zanzibar.Quokka%03d@Distinctive-Coop.example", i)
		r := careRecord(subject)
		r.Fields["phone"] = json.RawMessage(fmt.Sprintf(`"+39 051 777 %04d"`, i))
		recs = append(recs, r)
		lower := strings.ToLower(subject)
		for _, s := range []string{subject, lower, fmt.Sprintf("+39 051 777 %04d", i), "1987-03-14"} {
			secrets = append(secrets, []byte(s))
		}
		q, _ := json.Marshal(subject)
		secrets = append(secrets, q)
	}
	follower := client.New(nodes[1].URL(), token)
	if _, err := follower.Publish(ctx, recs); err != nil {
		t.Fatal(err)
	}
	// Consents for some of them, given and withdrawn through a follower,
	// checked and listed through another: raw identifiers in bodies only.
	for i := 0; i < 5; i++ {
		subject := fmt.Sprintf("Zanzibar.Quokka%03d@Distinctive-Coop.example", i)
		rc, err := follower.GiveConsent(ctx, consentRequest(subject, "dpv:ResearchAndDevelopment"))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if _, err := follower.ChangeConsent(ctx, rc.Record, "withdraw", ConsentChange{}); err != nil {
				t.Fatal(err)
			}
		}
		other := client.New(nodes[2].URL(), token)
		if _, err := other.CheckConsent(ctx, CheckRequest{Subject: subject, Purpose: "dpv:AcademicResearch"}); err != nil {
			t.Fatal(err)
		}
		if _, err := other.Consents(ctx, subject); err != nil {
			t.Fatal(err)
		}
	}
	li, err := admin.Ledger(ctx, "leader")
	if err != nil {
		t.Fatal(err)
	}
	converged(t, token, li.Size, nodes...)
	for _, n := range nodes {
		if err := n.Ledger().Snapshot(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The scan is only worth something if it can find: the key file's
	// directory holds nothing to find, but the ledger does hold the
	// stored pseudonyms, which the scan must see.
	p, _ := storedRecord(t, n0, recs[0].ID)
	found, err := fsscan.Scan(nodes[2].cfg.Dir, []byte(p.Subject))
	if err != nil || len(found) == 0 {
		t.Fatalf("the scan does not find the stored pseudonym %s in n2's directory (%v): it would not find identifiers either", p.Subject, err)
	}
	for _, n := range nodes {
		matches, err := fsscan.Scan(n.cfg.Dir, secrets...)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range matches {
			t.Errorf("%s holds %q", m.Path, m.Needle)
		}
	}
	for _, s := range secrets {
		if strings.Contains(logs.String(), string(s)) {
			t.Errorf("the logs hold %q", s)
		}
	}
	if !strings.Contains(logs.String(), "raft") {
		t.Error("no logs were captured; the log check proves nothing")
	}
}
