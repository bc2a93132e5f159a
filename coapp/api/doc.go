// Package api is the wire of a coapp node: every JSON shape of its HTTP
// API, the checks each request gets before anything is written (the
// Validate methods), the errors a caller can meet and the one table that
// maps them to HTTP statuses and stable codes.
//
// The node's server and the Go client (coapp.coop/coapp/client) both use
// it, so a shape is written once; and because the client maps each code
// back to its sentinel, a caller tests an error the same way whether it
// called a node in its own process or over HTTP:
//
//	_, err := c.Publish(ctx, records)
//	if errors.Is(err, api.ErrForbidden) { ... }
//
// Package coapp re-exports every name a program needs (coapp.Record is
// api.Record), so most programs never import this package directly.
//
// # What it depends on
//
// Only the standard library, github.com/google/uuid and the pure packages
// consent, pseudonym and ledger/merkle: a program that imports the client
// links neither Badger nor Raft. A test keeps it so.
//
// # Caveats
//
//   - Validate checks a request's shape alone. What depends on the
//     federation's state (a schema registered, a member admitted, a grant in
//     force) is checked by the node, the same way on every replica.
//   - A JSON shape here is a contract with scripts and other tools:
//     extend it, never rename or remove a field.
package api
