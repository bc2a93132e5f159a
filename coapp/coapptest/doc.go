// Package coapptest starts real coapp nodes inside a test: for the
// project's own tests, and for a Go program that embeds coapp and wants to
// test against a federation without installing anything.
//
//	func TestMyApp(t *testing.T) {
//		f := coapptest.StartFederation(t, 3, coapptest.Options{})
//		c := f.Client(1)                      // the founder's admin, through node 1
//		c.PutSchema(ctx, mySchema)
//		...
//		f.Kill(0)                             // the leader, perhaps
//		f.Restart(0)
//	} // at cleanup: every running replica has one root at one index
//
// The nodes are in-process coapp.Nodes with real parts: Raft over TCP on
// loopback, Badger on disk in t.TempDir(), the HTTP API on loopback. Only
// the Raft timeouts are short and Badger's memory small, so that a node
// opens in a few hundred milliseconds and an election takes a fraction of
// a second.
//
// # Caveats
//
//   - Kill closes a node in-process, as Close does: it is not a crash (the
//     fault tests of cmd/coapp kill node processes with SIGKILL).
//   - Every node holds the founder's signing key (copied out of band, as a
//     member running several nodes would), so that the founder can publish
//     through any node.
//   - Use Options.Logger (or COAPP_TEST_LOG=1) to see the nodes' logs.
package coapptest
