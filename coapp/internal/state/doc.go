// Package state is a federation's state machine: what the ledger's entries
// mean. Every replica applies the same entries in log order (Apply) and
// reaches the same state at the same index: members and their keys, rules,
// tokens, nodes, schemas, purposes and consents, proposals and their
// tallies, datasets, grants, exports and privacy budgets, and which
// records every replica refused.
//
// The leader asks the same code, before it proposes an entry, what Apply
// would refuse (Check): one function for both, so that the leader's checks
// and the replicas' never drift apart.
//
//	s := state.New()
//	for e := range entries {
//		_ = s.Apply(e) // a refusal is recorded, the same on every replica
//	}
//	if err := s.Check(next...); err != nil {
//		// every replica would refuse it: do not propose it
//	}
//
// Apply is deterministic: it reads no clock, makes no random choice, does
// no I/O and never depends on map iteration order. Times and ids come with
// the entries. Its import list shows it: no net/http, no os, no Badger, no
// Raft.
//
// # Caveats
//
//   - Entries that a replica refuses stay in the log, inert. Apply records
//     why (Rejection, RecordRefusal), for the writer waiting on them.
//   - A refused record is refused for good: no export, aggregate or share
//     counts it, and its id cannot be used again.
//   - Queries return copies; a State is safe for concurrent use, with one
//     goroutine applying.
package state
