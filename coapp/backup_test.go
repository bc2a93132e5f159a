package coapp

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"coapp.coop/coapp/client"
	"coapp.coop/coapp/internal/memberkey"
	"coapp.coop/pseudonym"
)

// TestBackupRestore streams a backup from a running node over the API,
// seeds a new node from it with the federation's key file and the
// founder's signing key, and checks that the new federation holds the
// same log (the same root at the backup's size, and a consistency proof
// from there to its own, larger log), that the same person's access
// finds the same records, and that the founder publishes.
func TestBackupRestore(t *testing.T) {
	n0, token := bootstrapNode(t)
	c := client.New(n0.URL(), token)
	ctx := testCtx(t)
	var recs []client.Record
	for i := 0; i < 20; i++ {
		recs = append(recs, record(i))
	}
	if _, err := c.Publish(ctx, recs); err != nil {
		t.Fatal(err)
	}
	orig, err := c.Ledger(ctx, "linearizable")
	if err != nil {
		t.Fatal(err)
	}
	access, err := c.Access(ctx, "member-3")
	if err != nil || len(access.Records) == 0 {
		t.Fatalf("access before the backup: %+v, %v", access, err)
	}
	var buf bytes.Buffer
	if err := c.Backup(ctx, &buf); err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "restored")
	got, err := Restore(ctx, RestoreConfig{Dir: dir, KeyFile: n0.KeyFile(), MembersDir: filepath.Join(n0.cfg.Dir, memberkey.Dir)}, bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	wantPrint, err := KeyFingerprint(n0.KeyFile(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != orig.Size || got.Root != orig.Root || got.Federation != "Test Federation" || got.KeyFingerprint != wantPrint ||
		!slices.Equal(got.Members, []string{"coop-a"}) || len(got.WithoutKey) != 0 {
		t.Fatalf("Restore = %+v; want size %d root %s, federation %q, fingerprint %s, members [coop-a]", got, orig.Size, orig.Root, "Test Federation", wantPrint)
	}
	// A second restore into it: refused.
	if _, err := Restore(ctx, RestoreConfig{Dir: dir, KeyFile: n0.KeyFile()}, bytes.NewReader(buf.Bytes())); !errors.Is(err, ErrLedgerExists) {
		t.Errorf("restore into a restored directory: %v, want ErrLedgerExists", err)
	}
	cfg := nodeConfig(dir)
	cfg.Bootstrap, cfg.NodeID = true, "restored"
	n1 := mustStart(t, cfg)

	// The original admin token works on the restored federation.
	r := client.New(n1.URL(), token)
	info, err := r.Ledger(ctx, "linearizable")
	if err != nil {
		t.Fatal(err)
	}
	if info.Size < orig.Size {
		t.Fatalf("restored ledger has %d entries, backup %d", info.Size, orig.Size)
	}
	cp, err := r.ConsistencyProof(ctx, orig.Size, info.Size, "")
	if err != nil {
		t.Fatal(err)
	}
	if cp.FromRoot != orig.Root || cp.Verify() != nil {
		t.Errorf("restored root at size %d = %s, original %s (proof: %v)", orig.Size, cp.FromRoot, orig.Root, cp.Verify())
	}
	rec, err := r.Record(ctx, recs[7].ID, "")
	if err != nil || rec.ID != recs[7].ID {
		t.Errorf("record after restore: %+v, %v", rec, err)
	}
	// The same person finds the same records: the same pseudonyms.
	again, err := r.Access(ctx, "member-3")
	if err != nil || !slices.Equal(again.Pseudonyms, access.Pseudonyms) || !sameRecords(again.Records, access.Records) {
		t.Errorf("access after restore: %d records under %v, %v; before: %d under %v", len(again.Records), again.Pseudonyms, err, len(access.Records), access.Pseudonyms)
	}
	// The founder publishes: its signing key was restored. New writes
	// land after the restored log.
	rs, err := r.Publish(ctx, []client.Record{record(100)})
	if err != nil || rs[0].Index < orig.Size {
		t.Errorf("publish after restore: %+v, %v", rs, err)
	}
}

func sameRecords(a, b []SubjectRecord) bool {
	return slices.EqualFunc(a, b, func(x, y SubjectRecord) bool {
		return x.ID == y.ID && x.Receipt == y.Receipt && !x.Unreadable && !y.Unreadable
	})
}

// TestRestoreRefusals: a restore without a key file, with another
// federation's, with a missing one, with a member key the ledger does not
// register, or with member key files for no member: each a typed error,
// and the directory left as it was (not made, or still empty).
func TestRestoreRefusals(t *testing.T) {
	n0, token := bootstrapNode(t)
	ctx := testCtx(t)
	c := client.New(n0.URL(), token)
	if _, err := c.Publish(ctx, []client.Record{record(1)}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := c.Backup(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other-keys.json")
	writeNewKeyFile(t, other)
	strangerKeys := t.TempDir() // coop-a's key, but not the one the ledger registers
	if _, err := CreateMemberKey(strangerKeys, "coop-a", nil); err != nil {
		t.Fatal(err)
	}
	nobodyKeys := t.TempDir()
	if _, err := CreateMemberKey(nobodyKeys, "coop-z", nil); err != nil {
		t.Fatal(err)
	}
	junk := t.TempDir()
	if err := os.WriteFile(filepath.Join(junk, "not-hex.key"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  RestoreConfig
		want error
		text string
	}{
		{"no key file", RestoreConfig{}, ErrInvalid, "key_file"},
		{"another federation's key", RestoreConfig{KeyFile: other}, ErrKeyMismatch, "is not the key file of federation \"Test Federation\""},
		{"a missing key file", RestoreConfig{KeyFile: filepath.Join(t.TempDir(), "keys.json")}, ErrNoKeyFile, "is not there"},
		{"a member key the ledger does not register", RestoreConfig{KeyFile: n0.KeyFile(), MembersDir: filepath.Join(strangerKeys, memberkey.Dir)}, ErrMemberKeyMismatch, "not the key the ledger registers"},
		{"a key for no member", RestoreConfig{KeyFile: n0.KeyFile(), MembersDir: filepath.Join(nobodyKeys, memberkey.Dir)}, ErrMemberKeyMismatch, "not a member"},
		{"a file that is no member key", RestoreConfig{KeyFile: n0.KeyFile(), MembersDir: junk}, ErrMemberKeyMismatch, "not a member's key file name"},
	} {
		for _, existing := range []bool{false, true} {
			dir := filepath.Join(t.TempDir(), "restored")
			if existing {
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			tc.cfg.Dir = dir
			_, err := Restore(ctx, tc.cfg, bytes.NewReader(buf.Bytes()))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("%s: Restore = %v, want %v saying %q", tc.name, err, tc.want, tc.text)
			}
			switch entries, serr := os.ReadDir(dir); {
			case !existing && !os.IsNotExist(serr):
				t.Errorf("%s: Restore left %s behind: %v", tc.name, dir, entries)
			case existing && len(entries) != 0:
				t.Errorf("%s: Restore left %v in %s", tc.name, entries, dir)
			}
		}
	}
}

func writeNewKeyFile(t *testing.T, path string) {
	t.Helper()
	secret, err := pseudonym.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	k, err := pseudonym.NewKeyring(1, secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := pseudonym.WriteKeyFile(path, k, nil); err != nil {
		t.Fatal(err)
	}
}
