package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// coapp runs a client command in-process and returns its output.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := run(ctx, args, &out, &errOut)
	return out.String() + errOut.String(), err
}

// TestCommandLine runs a node process and drives it with the commands a
// member and an operator type.
func TestCommandLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the coapp binary")
	}
	node, token := bootstrapProc(t, "n0")
	waitFor(t, "node ready", 30*time.Second, func() error { return readyz(node.url()) })
	t.Setenv("COAPP_URL", node.url())
	t.Setenv("COAPP_TOKEN", token)

	out, err := runCLI(t, "token", "create", "--member", "coop-b")
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	var tok struct{ ID, Token, Member string }
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.Member != "coop-b" {
		t.Fatalf("token create printed %q", out)
	}

	schema := filepath.Join(t.TempDir(), "harvest.json")
	if err := os.WriteFile(schema, []byte(`{"type":"harvest","version":1,"fields":[
		{"name":"kg","kind":"decimal","class":"attribute","required":true,"min":0,"policy":{"action":"keep"}}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "schemas", "put", schema); err != nil || !strings.Contains(out, `"type": "harvest"`) {
		t.Fatalf("schemas put: %v\n%s", err, out)
	}
	recs := filepath.Join(t.TempDir(), "records.json")
	body := `{"records":[{"id":"0193a3c2-0000-7000-8000-0000000000aa","type":"harvest","subject":"grower-17","time":"2026-09-14T08:00:00Z","fields":{"kg":120}}]}`
	if err := os.WriteFile(recs, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, "records", "publish", "--token", tok.Token, recs)
	// coop-b's first signed entry registers its key; then the batch's
	// signature, then the record.
	if err != nil || !strings.Contains(out, `"index": 7`) {
		t.Fatalf("records publish: %v\n%s", err, out)
	}
	out, err = runCLI(t, "records", "get", "--consistency", "linearizable", "0193a3c2-0000-7000-8000-0000000000aa")
	if err != nil || !strings.Contains(out, `"member": "coop-b"`) {
		t.Fatalf("records get: %v\n%s", err, out)
	}
	// Consent: given, checked, withdrawn; the receipt verified by the
	// node and offline with the member's public key alone.
	give := filepath.Join(t.TempDir(), "consent.json")
	if err := os.WriteFile(give, []byte(`{"subject":"grower-17","purposes":["dpv:ResearchAndDevelopment"],
		"data_categories":["pd:Harvest"],"notice":{"uri":"https://olive.example/notice","sha256":"`+strings.Repeat("ab", 32)+`"},
		"jurisdiction":"IT","withdrawal_method":"https://olive.example/consent","validity":{"duration":"P1Y"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, "consent", "give", give)
	if err != nil || strings.Contains(out, "grower-17") {
		t.Fatalf("consent give: %v\n%s", err, out)
	}
	var given struct {
		Record string `json:"record"`
	}
	if err := json.Unmarshal([]byte(out), &given); err != nil || given.Record == "" {
		t.Fatalf("consent give printed %q", out)
	}
	if out, err = runCLI(t, "consent", "check", "--subject", "grower-17", "--purpose", "dpv:AcademicResearch"); err != nil || !strings.Contains(out, `"reason": "granted"`) {
		t.Fatalf("consent check: %v\n%s", err, out)
	}
	out, err = runCLI(t, "consent", "withdraw", given.Record)
	if err != nil {
		t.Fatalf("consent withdraw: %v\n%s", err, out)
	}
	receipt := filepath.Join(t.TempDir(), "receipt.json")
	if err := os.WriteFile(receipt, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err = runCLI(t, "consent", "check", "--subject", "grower-17", "--purpose", "dpv:AcademicResearch"); err != nil || !strings.Contains(out, `"reason": "withdrawn"`) {
		t.Fatalf("consent check after withdrawal: %v\n%s", err, out)
	}
	if out, err = runCLI(t, "consent", "verify", receipt); err != nil || !strings.Contains(out, `"valid": true`) {
		t.Fatalf("consent verify: %v\n%s", err, out)
	}
	key, err := runCLI(t, "consent", "key", "founder")
	if err != nil {
		t.Fatalf("consent key: %v\n%s", err, key)
	}
	if out, err = runCLI(t, "consent", "verify", "--public-key", strings.TrimSpace(key), "--url", "http://127.0.0.1:1", receipt); err != nil || !strings.Contains(out, `"valid": true`) {
		t.Fatalf("consent verify offline: %v\n%s", err, out)
	}
	if out, err = runCLI(t, "consent", "withdraw", given.Record); err == nil || !strings.Contains(err.Error(), "withdrawn") {
		t.Fatalf("withdrawing twice: %v\n%s", err, out)
	}

	// Governance: the founder proposes a dataset and a grant, votes them
	// through (one member), exports, and the audit trail shows it.
	if out, err = runCLI(t, "members"); err != nil || !strings.Contains(out, `"founder"`) {
		t.Fatalf("members: %v\n%s", err, out)
	}
	proposal := filepath.Join(t.TempDir(), "dataset.json")
	if err := os.WriteFile(proposal, []byte(`{"kind":"dataset","dataset":{"name":"harvests","description":"Harvests",
		"types":[{"type":"harvest","fields":["kg"]}],"purpose":"dpv:ResearchAndDevelopment","category":"pd:Harvest","k":1}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	vote := func(file string) {
		t.Helper()
		out, err := runCLI(t, "propose", file)
		var p struct{ ID string }
		if err != nil || json.Unmarshal([]byte(out), &p) != nil {
			t.Fatalf("propose: %v\n%s", err, out)
		}
		if out, err = runCLI(t, "vote", p.ID, "yes"); err != nil || !strings.Contains(out, `"outcome": "passed"`) {
			t.Fatalf("vote: %v\n%s", err, out)
		}
	}
	vote(proposal)
	grant := filepath.Join(t.TempDir(), "grant.json")
	if err := os.WriteFile(grant, []byte(`{"kind":"grant","grant":{"dataset":"harvests","grantee":"founder",
		"purpose":"dpv:AcademicResearch","until":"`+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)+`"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	vote(grant)
	exported := filepath.Join(t.TempDir(), "harvests.csv")
	if out, err = runCLI(t, "export", "--purpose", "dpv:AcademicResearch", "--format", "csv", "--out", exported, "harvests"); err != nil || !strings.Contains(out, "audit entry") {
		t.Fatalf("export: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(exported); err != nil || !strings.HasPrefix(string(b), "subject,member,type,date,kg") {
		t.Fatalf("export file: %v\n%s", err, b)
	}
	if out, err = runCLI(t, "audit", "harvests"); err != nil || !strings.Contains(out, `"purpose": "dpv:AcademicResearch"`) {
		t.Fatalf("audit: %v\n%s", err, out)
	}
	if out, err = runCLI(t, "export", "--purpose", "dpv:Marketing", "--out", exported+".2", "harvests"); err == nil {
		t.Fatalf("an export for a purpose without a grant: %s", out)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(exported), "*")); len(left) != 1 {
		t.Fatalf("a refused export left files behind: %v", left)
	}
	// A person's rights, as coop-b knows grower-17: access, the exports
	// that held their data, erasure; the subject given as an argument or
	// read from standard input. First grower-17 consents to coop-b, which
	// agrees to share harvests, and an export holds their record.
	for i, body := range []string{`"subject":"grower-17",`, `"tier":"member",`} {
		file := filepath.Join(t.TempDir(), fmt.Sprintf("consent-%d.json", i))
		if err := os.WriteFile(file, []byte(`{`+body+`"purposes":["dpv:ResearchAndDevelopment"],
			"data_categories":["pd:Harvest"],"notice":{"uri":"https://olive.example/notice","sha256":"`+strings.Repeat("ab", 32)+`"},
			"jurisdiction":"IT","withdrawal_method":"https://olive.example/consent","validity":{"duration":"P1Y"}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := runCLI(t, "consent", "give", "--token", tok.Token, file); err != nil {
			t.Fatalf("consent give %s: %v\n%s", body, err, out)
		}
	}
	if out, err = runCLI(t, "export", "--purpose", "dpv:AcademicResearch", "--format", "csv", "--out", exported+".3", "harvests"); err != nil || !strings.Contains(out, "exported 1 rows") {
		t.Fatalf("export with consent: %v\n%s", err, out)
	}
	out, err = runCLI(t, "subjects", "access", "--token", tok.Token, "grower-17")
	if err != nil || !strings.Contains(out, `"id": "0193a3c2-0000-7000-8000-0000000000aa"`) || !strings.Contains(out, `"kg": 120`) {
		t.Fatalf("subjects access: %v\n%s", err, out)
	}
	out, err = withStdin(t, "grower-17\n", func() (string, error) {
		return runCLI(t, "subjects", "exports", "--token", tok.Token, "-")
	})
	if err != nil || !strings.Contains(out, `"dataset": "harvests"`) || strings.Contains(out, "grower-17") {
		t.Fatalf("subjects exports -: %v\n%s", err, out)
	}
	out, err = withStdin(t, "grower-17\n", func() (string, error) {
		return runCLI(t, "subjects", "erase", "--token", tok.Token, "-")
	})
	if err != nil || !strings.Contains(out, `"raft_index"`) || strings.Contains(out, "grower-17") {
		t.Fatalf("subjects erase -: %v\n%s", err, out)
	}
	var erased struct {
		RaftIndex uint64 `json:"raft_index"`
	}
	if err := json.Unmarshal([]byte(out), &erased); err != nil || erased.RaftIndex == 0 {
		t.Fatalf("subjects erase printed no raft_index: %v\n%s", err, out)
	}
	idx := strconv.FormatUint(erased.RaftIndex, 10)
	// The node gathers erasures for --purge-delay (10s) before it purges.
	if out, err = runCLI(t, "subjects", "erasure", "--timeout", "55s", "--wait", idx); err != nil || !strings.Contains(out, `"done": true`) || !strings.Contains(out, `"verified": true`) {
		t.Fatalf("subjects erasure --wait %s: %v\n%s", idx, err, out)
	}
	if out, err = runCLI(t, "subjects", "erasure", "0"); exitCode(err) != exitUsage {
		t.Fatalf("subjects erasure 0: %v, want a usage error\n%s", err, out)
	}
	out, err = runCLI(t, "subjects", "access", "--token", tok.Token, "grower-17")
	if err != nil || !strings.Contains(out, `"erased": true`) {
		t.Fatalf("subjects access after the erasure: %v\n%s", err, out)
	}
	if _, err := withStdin(t, "", func() (string, error) { return runCLI(t, "subjects", "access", "-") }); exitCode(err) != exitUsage {
		t.Errorf("subjects access - with nothing on standard input: %v, want a usage error", err)
	}

	if out, err := runCLI(t, "export", "-h"); exitCode(err) != 0 || strings.Contains(out, token) || !strings.Contains(out, "-purpose") {
		t.Errorf("coapp export -h (exit %d) shows the token, or no flags:\n%s", exitCode(err), out)
	}
	for _, cmd := range []string{"token", "consent", "records", "ledger", "subjects"} {
		if out, err := runCLI(t, cmd, "-h"); err != nil || !strings.Contains(out, "coapp "+cmd) {
			t.Errorf("coapp %s -h: %v\n%s", cmd, err, out)
		}
	}

	out, err = runCLI(t, "ledger", "prove", "5")
	if err != nil || !strings.HasSuffix(strings.TrimSpace(out), "verified") {
		t.Fatalf("ledger prove: %v\n%s", err, out)
	}
	out, err = runCLI(t, "ledger", "consistency", "2", "4")
	if err != nil || !strings.HasSuffix(strings.TrimSpace(out), "verified") {
		t.Fatalf("ledger consistency: %v\n%s", err, out)
	}
	out, err = runCLI(t, "cluster")
	if err != nil || !strings.Contains(out, `"leader": "n0"`) {
		t.Fatalf("cluster: %v\n%s", err, out)
	}

	// A key file for a federation, sealed with a passphrase.
	dir := t.TempDir()
	pass := filepath.Join(dir, "pass")
	_ = os.WriteFile(pass, []byte("a long passphrase\n"), 0o600)
	if out, err := runCLI(t, "keys", "init", "--out", filepath.Join(dir, "keys.json"), "--passphrase-file", pass); err != nil || !strings.Contains(out, "sealed") {
		t.Fatalf("keys init: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "keys", "init", "--out", filepath.Join(dir, "keys.json")); err == nil {
		t.Error("keys init replaced an existing key file")
	}

	// Backup from the running node, restore into a new directory: the
	// restored root is the node's.
	var info struct {
		Size uint64
		Root string
	}
	out, _ = runCLI(t, "ledger")
	if err := json.Unmarshal([]byte(out), &info); err != nil || info.Root == "" {
		t.Fatalf("ledger printed %q", out)
	}
	backup := filepath.Join(t.TempDir(), "ledger.backup")
	if out, err = runCLI(t, "backup", "--out", backup); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	newDir := filepath.Join(t.TempDir(), "restored")
	out, err = runCLI(t, "restore", "--dir", newDir, "--keys", filepath.Join(node.dir, "keys.json"), backup)
	if err != nil || !strings.Contains(out, fmt.Sprintf("restored %d entries, root %s", info.Size, info.Root)) || !strings.Contains(out, "matches the fingerprint the backup records") {
		t.Fatalf("restore: %v\n%s\nwant the node's root %s, and the key file checked", err, out, info.Root)
	}

	// A member's key made for a node's directory, for --founding-members.
	keyDir := t.TempDir()
	if out, err := runCLI(t, "keys", "member", "--member", "coop-z", "--dir", keyDir); err != nil || !strings.HasPrefix(out, "coop-z=") {
		t.Fatalf("keys member: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "keys", "member", "--member", "coop-z", "--dir", keyDir); err == nil {
		t.Error("keys member replaced a key")
	}

	// Mistakes get a usage error and exit code 2.
	for _, args := range [][]string{
		{},
		{"nosuch"},
		{"token", "create"},
		{"records", "get", "not-a-uuid"},
		{"node", "--log-format", "xml"},
		{"node", "--election-timeout", "fast"},
		{"bench", "--nodes", "2"},
		{"keys"},
		{"schemas", "put"},
		{"node", "--majority", "most"},
		{"node", "--committees", "data"},
		{"vote", "not-a-uuid", "yes"},
		{"export", "harvests"},
		{"consent", "withdraw", "not-a-uuid"},
	} {
		_, err := runCLI(t, args...)
		if err == nil || exitCode(err) != 2 {
			t.Errorf("coapp %v: error %v (exit %d), want a usage error", args, err, exitCode(err))
		}
	}
	// The revoked token is refused by the node.
	if out, err := runCLI(t, "token", "revoke", tok.ID); err != nil {
		t.Fatalf("token revoke: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "records", "get", "--token", tok.Token, "0193a3c2-0000-7000-8000-0000000000aa"); err == nil || !strings.Contains(out+err.Error(), "401") {
		t.Errorf("revoked token: %v %s, want 401", err, out)
	}
}

// withStdin runs fn with standard input reading input.
func withStdin(t *testing.T, input string, fn func() (string, error)) (string, error) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(input); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	old := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = old }()
	return fn()
}
