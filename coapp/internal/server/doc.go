// Package server holds a node's use-cases: publishing records, consent,
// proposals and votes, key rotation, schemas and purposes, tokens and
// membership of the cluster, the rights of a person (access, erasure),
// and dataset release. Each takes an api.Caller (who acts: a member, an
// admin, the token it presented), never an HTTP request, so that the HTTP
// API and a Go program that embeds a node run the same code.
//
// A use-case that must run on the leader runs there: on the leader itself,
// or, on a follower, through the Leader interface (served by
// coapp.coop/coapp/client), with the caller's token. What must happen on
// the node that received a request happens there first: a subject is
// pseudonymised and a record sealed and signed on the node that holds the
// member's key, so that no raw identifier travels to the leader.
//
// Before it appends, the leader asks the federation's state
// (internal/state) what every replica would refuse, with the same
// function the replicas apply; it adds only the checks that need what the
// replicas lack: the node's clock, the federation key to open what a
// follower sealed.
//
// # Caveats
//
//   - Errors are translated at this boundary: a caller sees api's
//     sentinels, never Badger's or Raft's.
//   - A call made through the Go API on a follower reaches the leader only
//     when the node has a token to present (api.Caller.Token, or the
//     node's forwarding token); otherwise it fails with api.ErrNoLeader.
package server
