package coapp

import (
	"bytes"
	"testing"

	"coapp.coop/coapp/client"
	"coapp.coop/ledger"
)

// TestBackupRestore streams a backup from a running node over the API,
// seeds a new node from it, and checks that the new federation holds the
// same log: the same root at the backup's size, and a consistency proof from
// there to its own, larger log.
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
	var buf bytes.Buffer
	if err := c.Backup(ctx, &buf); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	size, root, err := ledger.RestoreBackup(ctx, dir, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if size != orig.Size || root != orig.Root {
		t.Fatalf("restored size %d root %s, original %d %s", size, root, orig.Size, orig.Root)
	}
	// Member signing keys are secrets kept apart from the ledger, and
	// restored with the node's directory, as the federation's key file.
	copyMemberKeys(t, n0.cfg.Dir, dir)
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
	got, err := r.Record(ctx, recs[7].ID, "")
	if err != nil || got.ID != recs[7].ID {
		t.Errorf("record after restore: %+v, %v", got, err)
	}
	// New writes land after the restored log.
	rs, err := r.Publish(ctx, []client.Record{record(100)})
	if err != nil || rs[0].Index < orig.Size {
		t.Errorf("publish after restore: %+v, %v", rs, err)
	}
}
