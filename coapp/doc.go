// Package coapp is a federation node: the data-sharing platform that
// member cooperatives run together. It composes a replicated,
// tamper-evident ledger (package ledger), consent (package consent) and
// pseudonymisation (package pseudonym) into one Node, with a Go API and
// an HTTP API that run the same code.
//
// # A record, from publish to export
//
// Open starts a node. The embedded default is a one-voter federation on a
// local directory; more nodes join it over the network.
//
//	n, err := coapp.Open(ctx, coapp.Config{
//		Dir: "data", Bootstrap: true, Federation: "Emilia Food Coops", Member: "coop-a",
//	})
//	defer n.Close(ctx)
//
// An exchange schema says what each field is and what happens to it
// before storage: dropped, pseudonymised, generalised or kept.
//
//	n.PutSchema(ctx, "coop-a", coapp.Schema{Type: "purchase", Version: 1, Fields: ...})
//
// A person gives consent per purpose, and gets a signed receipt that
// verifies offline (consent.Receipt.Verify):
//
//	rc, err := n.GiveConsent(ctx, "coop-a", coapp.ConsentRequest{Subject: "anna@example.org", Purposes: ...})
//
// A member publishes what its exchanges produce. Before anything is
// stored, the node pseudonymises the subject (a keyed hash in the
// member's domain), applies each field's policy, seals the fields under
// the person's own data key, and signs the batch with the member's key;
// every replica verifies the signature as it applies it:
//
//	receipts, err := n.Publish(ctx, "coop-a", []coapp.Record{{ID: id, Type: "purchase", Subject: "anna@example.org", ...}})
//
// The members decide together, one member one vote, which datasets exist
// and who may use them:
//
//	p, err := n.Propose(ctx, "coop-a", coapp.Proposal{Kind: coapp.ProposeDataset, Dataset: &ds})
//	p, err = n.CastVote(ctx, "coop-b", p.ID, "yes")
//
// An export releases only records whose people consented to the
// dataset's purpose, under pseudonyms of the dataset's own (two datasets
// cannot be joined), and only groups of at least k people; its audit
// entry is in the ledger before a byte leaves:
//
//	audit, err := n.Export(ctx, "coop-b", coapp.ExportRequest{Dataset: "market-study", Purpose: ...}, w)
//
// A person can ask what is held about them (Access) and be erased
// (Erase): their data key is destroyed on every replica, and their
// records can no longer be read, while the ledger's proofs still verify.
//
// # The packages beneath
//
// coapp/api holds the wire (JSON shapes, validation, errors); coapp/client
// is the Go client of the HTTP API; coapp/coapptest starts real
// federations inside tests. The internal packages are the state machine
// every replica applies (internal/state), the bytes of entries
// (internal/format), the use-cases (internal/server), dataset release
// (internal/release) and the HTTP API (internal/httpapi);
// docs/architecture.md draws them.
//
// # Caveats
//
//   - A write runs on the leader. On a follower, the Go API hands it to the
//     leader with Config.JoinToken (or the admin token the node wrote); a
//     follower without either answers ErrNoLeader.
//   - A member signs on a node that holds its key (Dir/members/): copy the
//     key file to publish as that member through another node.
//   - Open with the default Raft timeouts takes one to two seconds on one
//     node; tests use coapptest, whose nodes open in a few hundred
//     milliseconds.
//   - Errors are api's sentinels (re-exported here): test them with
//     errors.Is; a *ValidationError names the field at fault.
//   - Open checks Config against what Dir holds before it writes
//     anything: it never makes a key file for a directory that holds a
//     ledger (ErrNoKeyFile), refuses a key file whose fingerprint is not
//     the genesis's (ErrKeyMismatch), and Join from a directory where the
//     node bootstrapped, or Bootstrap of another federation
//     (ErrLedgerExists).
//   - A backup (GET /v1/backup) holds the ledger only. Restore brings a
//     federation back from it with the key file and the members' signing
//     keys kept apart, checked against it; docs/operations.md says what
//     to keep.
package coapp
