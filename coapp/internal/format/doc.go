// Package format holds the bytes of coapp's ledger entries: the kinds of
// entry a federation writes, the JSON payloads of its control entries, the
// binary format of exchange records and batch signatures, the messages
// members sign, the additional data a record's box is bound to, and the
// names of subjects' data keys.
//
// These bytes are in every replica's log, snapshot and backup, and in the
// leaf hashes members witness: a change that would make an old ledger
// unreadable, or give one record two encodings, is a break of the
// federation. Each binary format has a golden file under testdata/ (run
// the tests with -update to rewrite them, only for a new format version)
// and each decoder a fuzz test.
//
// The package does no I/O and reads no clock; its encoders are
// deterministic: the same record gives the same bytes on every node.
//
// # Caveats
//
//   - Decoders accept what this package writes; the fast paths for JSON
//     payloads hand anything unexpected to encoding/json, so that they
//     never decide differently from it (FuzzDecoders checks it).
//   - The first, JSON, record payload format is read, never written.
package format
