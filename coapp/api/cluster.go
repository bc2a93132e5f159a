package api

import (
	"crypto/ed25519"
	"encoding/json"
	"time"

	"coapp.coop/ledger/merkle"
	"coapp.coop/pseudonym"
)

// NodeInfo describes a node of the federation: its Raft and HTTP
// addresses, as announced when it was bootstrapped or joined. It is also
// the body of POST /v1/cluster/join.
type NodeInfo struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	Voter    bool   `json:"voter"`
	Removed  bool   `json:"removed,omitempty"`
}

// NodeStatus is one node as GET /v1/cluster reports it (and GET
// /v1/status, the node answering alone).
type NodeStatus struct {
	ID           string `json:"id"`
	RaftAddr     string `json:"raft_addr"`
	HTTPAddr     string `json:"http_addr"`
	Suffrage     string `json:"suffrage"` // "voter" or "nonvoter"
	State        string `json:"state"`    // "Leader", "Follower", "Candidate", or "unreachable"
	LastContact  string `json:"last_contact,omitempty"`
	AppliedIndex uint64 `json:"applied_index"`
	Size         uint64 `json:"size"`
}

// ClusterInfo is the answer of GET /v1/cluster.
type ClusterInfo struct {
	Federation string       `json:"federation"`
	Leader     string       `json:"leader"`
	Nodes      []NodeStatus `json:"nodes"`
}

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	Member string `json:"member"`
	Admin  bool   `json:"admin"`
}

// Validate checks the member: a member id, as the genesis and proposals
// take them.
func (r *TokenRequest) Validate() error {
	if !ValidMember(r.Member) {
		return Invalid("member", "a member id: 1 to 64 characters of [a-z0-9._-], starting with a letter or digit")
	}
	return nil
}

// TokenResponse is the answer of POST /v1/tokens: the token, shown once.
type TokenResponse struct {
	ID     string `json:"id"`
	Token  string `json:"token"`
	Member string `json:"member"`
	Admin  bool   `json:"admin"`
}

// LedgerInfo is the answer of GET /v1/ledger.
type LedgerInfo struct {
	Size uint64      `json:"size"`
	Root merkle.Hash `json:"root"`
}

// InclusionProof is the answer of GET /v1/ledger/proofs/inclusion: that
// the leaf at Index is in the tree of Size entries with Root.
type InclusionProof struct {
	Index uint64        `json:"index"`
	Size  uint64        `json:"size"`
	Root  merkle.Hash   `json:"root"`
	Leaf  merkle.Hash   `json:"leaf"`
	Proof []merkle.Hash `json:"proof"`
}

// Verify checks the proof with hashes alone, against the root it carries.
func (p InclusionProof) Verify() error {
	return merkle.VerifyInclusion(p.Leaf, p.Index, p.Size, p.Proof, p.Root)
}

// ConsistencyProof is the answer of GET /v1/ledger/proofs/consistency:
// that the tree of From entries is a prefix of the tree of To entries.
type ConsistencyProof struct {
	From     uint64        `json:"from"`
	To       uint64        `json:"to"`
	FromRoot merkle.Hash   `json:"from_root"`
	ToRoot   merkle.Hash   `json:"to_root"`
	Proof    []merkle.Hash `json:"proof"`
}

// Verify checks the proof with hashes alone, against the roots it carries.
func (p ConsistencyProof) Verify() error {
	return merkle.VerifyConsistency(p.From, p.To, p.FromRoot, p.ToRoot, p.Proof)
}

// KeyAt is a member's key from a ledger index on.
type KeyAt struct {
	From      uint64            `json:"from"`
	PublicKey ed25519.PublicKey `json:"public_key"`
}

// MemberKeysInfo is the answer of GET /v1/members/{id}/key: the member's
// current key and every key it had, from which index.
type MemberKeysInfo struct {
	Member    string  `json:"member"`
	PublicKey []byte  `json:"public_key"`
	Keys      []KeyAt `json:"keys"`
}

// SubjectRecord is one record about a subject, as the right of access
// shows it: its fields decrypted, or Erased.
type SubjectRecord struct {
	RecordInfo
	Fields map[string]json.RawMessage `json:"fields,omitempty"`
	Erased bool                       `json:"erased,omitempty"`
	// Unreadable is set for a record that cannot be decrypted (never
	// written by an honest node).
	Unreadable bool `json:"unreadable,omitempty"`
}

// SubjectReport answers the right of access: the subject's pseudonyms, as
// the member and the federation know them, and every record under them.
type SubjectReport struct {
	Pseudonyms []pseudonym.Pseudonym `json:"pseudonyms"`
	Records    []SubjectRecord       `json:"records"`
}

// EraseResponse is the answer of POST /v1/subjects/erase.
type EraseResponse struct {
	Pseudonyms []pseudonym.Pseudonym `json:"pseudonyms"`
	RaftIndex  uint64                `json:"raft_index"`
}

// SchemaList is the answer of GET /v1/schemas: the latest version of each
// schema.
type SchemaList struct {
	Schemas []Schema `json:"schemas"`
}

// SchemaVersions is the answer of GET /v1/schemas/{type}: every version.
type SchemaVersions struct {
	Versions []Schema `json:"versions"`
}

// Health is the answer of GET /healthz.
type Health struct {
	Status string `json:"status"`
}

// Readiness is the answer of GET /readyz when the node is ready.
type Readiness struct {
	Status       string `json:"status"`
	Leader       string `json:"leader"`
	AppliedIndex uint64 `json:"applied_index"`
}

// Caller is who a request acts for: a member, whether its token is an
// admin's, and the bearer token itself, which a follower presents to the
// leader when it hands a request on. The use-cases of a node take a
// Caller, never an HTTP request.
type Caller struct {
	Member string
	Admin  bool
	// Token is the bearer token the caller authenticated with; empty for
	// a program that embeds the node and acts as a member directly.
	Token string
}

// Header names of the API.
const (
	// HeaderForwardedBy marks a request a node handed to the leader, with
	// that node's id, so that it is never handed on twice.
	HeaderForwardedBy = "X-Coapp-Forwarded-By"
)

// Consistency levels of reads (?consistency=).
const (
	ConsistencyStale        = "stale"
	ConsistencyLeader       = "leader"
	ConsistencyLinearizable = "linearizable"
)

// Timestamp formats the API uses for dates.
const DateLayout = "2006-01-02"

var _ = time.RFC3339 // times are RFC 3339, as encoding/json writes them
