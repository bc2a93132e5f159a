// Package ledger is coapp's replicated, tamper-evident, append-only log.
//
// A Ledger is one node of a Raft cluster (hashicorp/raft over TCP) whose
// state is a Merkle tree (RFC 9162) of entries kept in Badger. By default it
// is a cluster of one: Open on an empty directory bootstraps it, and later
// Opens reopen it. More voters and non-voters join through AddVoter and
// AddNonvoter on the leader; the code path is the same.
//
// The ledger stores opaque, typed entries: a kind, an author, an id, a time
// and a payload. It interprets none of them; the layers above (consent,
// pseudonyms, the cooperative platform) give them meaning.
//
// # Writing
//
//	l, err := ledger.Open(ctx, ledger.Config{Dir: "data"})
//	...
//	defer l.Close(ctx)
//	receipts, err := l.Append(ctx, ledger.Entry{
//		ID:      id, // set it, so that retries are safe
//		Kind:    "coop.harvest/v1",
//		Author:  "coop-a",
//		Time:    t,
//		Payload: payload,
//	})
//
// Append returns once the entries are committed by a quorum and durable
// there. Concurrent Appends are grouped into few Raft commands (group
// commit) and applied in one Badger transaction per batch. An id the log
// already holds with the same content returns its original receipt; with
// other content, a *ConflictError. Each Append is atomic.
//
// # Reading and proving
//
// Reads run on a consistent view at a chosen consistency (Stale, Leader,
// Linearizable):
//
//	err := l.Read(ctx, ledger.Linearizable, func(v *ledger.View) error {
//		e, err := v.Entry(42)
//		proof, err := v.InclusionProof(42, v.Size())
//		...
//	})
//
// Proofs are checked by package merkle with hashes alone:
// merkle.VerifyInclusion(receipt.Leaf, index, size, proof, root). Follow
// yields the log from an index onwards and then each new entry, for apps
// that keep their own views; Verify walks the whole log and rebuilds the
// tree.
//
// # Storage
//
// Dir holds raft/ (the Raft log and stable store, package raftbadger, synced
// on every write), state/ (the Merkle tree and entries, see state.go for the
// key layout), snapshots/ and node-id. The Raft log is the durable record:
// the state is written without fsync, and its last applied Raft index is
// stored in the same Badger transaction as the entries it describes, so a
// restart resumes exactly where the state stops and re-applies the rest of
// the log. Snapshots stream the state with a digest; on restart a snapshot
// is not copied over a state that already holds it.
//
// # Errors
//
// Errors wrap the package's sentinels (ErrNotLeader, ErrNoLeader,
// ErrNotFound, ErrInvalid, ErrTooLarge, ErrConflict, ErrCorrupt, ErrClosed,
// ErrTimeout) and come as typed errors where there is more to say
// (*ValidationError, *ConflictError, *CorruptionError, *NotLeaderError).
// Test them with errors.Is and errors.As.
//
// # Caveats
//
//   - Append on a follower returns a *NotLeaderError; forwarding writes to
//     the leader is the caller's job (coapp's node does it).
//   - When ctx ends during an Append, or leadership is lost while it is in
//     flight, the outcome is unknown: retry with the same ids.
//   - The crash tests kill the process (SIGKILL); a machine losing power
//     also loses what the disk had not flushed, which fsync guards for the
//     Raft log but which these tests cannot reproduce.
//   - A damaged state is reported (ErrCorrupt), not repaired. Restore it by
//     deleting Dir/state: the node rebuilds it from its latest snapshot and
//     the Raft log, or from the leader.
//   - Keep the functions given to Read short (a snapshot restore waits for
//     them), and call no other Ledger method inside them.
package ledger
