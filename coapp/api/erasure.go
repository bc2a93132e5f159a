package api

import "time"

// ErasureStatus is the answer of GET /v1/subjects/erasures/{id}: how far
// each node of the cluster has purged the erasure at Raft index id (the
// raft_index of POST /v1/subjects/erase) from its files.
type ErasureStatus struct {
	Index uint64        `json:"index"`
	Nodes []NodeErasure `json:"nodes"`
	// Done is true when every node of the cluster verified its files
	// clean of the erased keys.
	Done bool `json:"done"`
}

// NodeErasure is one node's progress on an erasure.
type NodeErasure struct {
	Node string `json:"node"`
	// Erased: the node applied the destruction; its key store refuses
	// the keys.
	Erased bool `json:"erased"`
	// Purged: the keys' other copies were removed from its state, its
	// Raft log and its snapshots, at PurgedAt.
	Purged   bool      `json:"purged"`
	PurgedAt time.Time `json:"purged_at,omitzero"`
	// Verified: a scan of every file of the node found none of the keys'
	// bytes, at VerifiedAt.
	Verified   bool      `json:"verified"`
	VerifiedAt time.Time `json:"verified_at,omitzero"`
	// Pending is how many destroyed keys the node has yet to verify gone,
	// and PendingSince since when (the node's clock).
	Pending      int       `json:"pending,omitempty"`
	PendingSince time.Time `json:"pending_since,omitzero"`
	// Error says why the node's last purge or check failed.
	Error string `json:"error,omitempty"`
	// Unreachable: the node did not answer.
	Unreachable bool `json:"unreachable,omitempty"`
}
