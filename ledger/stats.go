package ledger

import (
	"strconv"

	"coapp.coop/ledger/raftbadger"
)

// RaftStats are hashicorp/raft's counters of this node (its Raft.Stats),
// for monitoring.
type RaftStats struct {
	// LastLogIndex and LastLogTerm are those of the last entry in this
	// node's Raft log.
	LastLogIndex, LastLogTerm uint64
	// LastSnapshotIndex and LastSnapshotTerm are those of the latest
	// snapshot; zero before the first.
	LastSnapshotIndex, LastSnapshotTerm uint64
	// FSMPending counts committed batches of commands queued for the
	// state machine.
	FSMPending uint64
	// NumPeers counts the other voters, when this node is a voter; 0
	// otherwise.
	NumPeers uint64
	// ProtocolVersion is the Raft protocol version this node speaks.
	ProtocolVersion uint64
}

// RaftStats returns hashicorp/raft's counters of this node. It returns
// ErrClosed after Close.
func (l *Ledger) RaftStats() (RaftStats, error) {
	l.lifeMu.RLock()
	defer l.lifeMu.RUnlock()
	if l.closed.Load() {
		return RaftStats{}, ErrClosed
	}
	m := l.raft.Stats()
	u := func(key string) uint64 {
		v, _ := strconv.ParseUint(m[key], 10, 64) // absent (no configuration yet): 0
		return v
	}
	return RaftStats{
		LastLogIndex: u("last_log_index"), LastLogTerm: u("last_log_term"),
		LastSnapshotIndex: u("last_snapshot_index"), LastSnapshotTerm: u("last_snapshot_term"),
		FSMPending:      u("fsm_pending"),
		NumPeers:        u("num_peers"),
		ProtocolVersion: u("protocol_version"),
	}, nil
}

// StoreStats is what Badger reports of one of the ledger's databases.
type StoreStats = raftbadger.Stats

// StoreStats returns Badger's statistics of the ledger's two databases,
// by name: "raft" (Raft's log and stable store, in Dir/raft) and "state"
// (entries, Merkle tree and keys, in Dir/state). It walks their
// directories to size the files. It returns ErrClosed after Close.
func (l *Ledger) StoreStats() (map[string]StoreStats, error) {
	l.lifeMu.RLock()
	defer l.lifeMu.RUnlock()
	if l.closed.Load() {
		return nil, ErrClosed
	}
	return map[string]StoreStats{
		"raft":  l.logs.Stats(),
		"state": raftbadger.DBStats(l.stateDB),
	}, nil
}
