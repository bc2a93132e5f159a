// Package httpapi is a node's HTTP API: its routes, the middleware every
// request goes through (authentication, a bounded body, recovery from
// panics, metrics), the handlers by resource, and the proxy that hands a
// request to the leader whole.
//
// A handler decodes its request strictly (api.Decode), calls the node's
// use-case (package server) with the caller it authenticated, and writes
// the answer; an error becomes a status and a code through api's one
// table. A use-case decides itself whether it runs on the leader; the
// proxy serves only what must be answered by the leader as it is: reads
// at leader or linearizable consistency on a follower, and requests whose
// token this node does not know yet.
//
// # Caveats
//
//   - The routes and JSON shapes are contracts (docs/openapi.json; a test
//     keeps them equal): extend them, never rename them.
//   - A person's raw identifier travels only in request bodies, never in
//     a URL, so that it is in no access log.
//   - GET /metrics serves the registry in Config.Metrics (the node's own,
//     never client_golang's process-wide default). Probes serves
//     /healthz, /readyz and /metrics alone, for a listener without TLS:
//     the caller decides who may reach it.
package httpapi
