// Package entry defines the ledger's entry, its receipt and its canonical
// encoding: the bytes whose Merkle leaf hash the ledger's proofs are about.
//
// Package ledger stores and replicates entries (with Raft and Badger);
// ledger.Entry and ledger.Receipt are aliases of the types here. This
// package imports only the standard library, github.com/google/uuid and
// coapp.coop/ledger/merkle, so code that needs entries and leaf hashes
// without a ledger (a client, an auditor, consent receipts checked
// offline) imports it instead of package ledger and links neither Raft nor
// Badger.
//
// # The canonical encoding
//
// An entry has exactly one encoding:
//
//	version (1 byte, FormatVersion)
//	id (16 bytes)
//	time, Unix nanoseconds (8 bytes, big-endian two's complement)
//	uvarint length | kind
//	uvarint length | author
//	uvarint length | payload
//
// Lengths are minimal uvarints (encoding/binary); Index is not encoded.
// Its leaf hash is merkle.LeafHash of those bytes, which is what
// Receipt.Leaf holds and what an inclusion proof binds to a tree root:
//
//	leaf := e.LeafHash() // = merkle.LeafHash(e.Encode())
//	err := merkle.VerifyInclusion(leaf, e.Index, size, proof, root)
//
// Decode and Split accept exactly what Encode produces, and nothing else
// (a wrong version, a non-minimal length, a kind or author over its limit,
// trailing bytes); Split does it without allocating, and ID reads the id
// of an accepted encoding. Validate checks the fields' shapes the way the
// ledger does before appending: Kind of [A-Za-z0-9._:/-], Author UTF-8,
// their lengths, the payload's size and the time's range.
//
// # Caveats
//
//   - The format is frozen: changing a byte of it changes every leaf hash,
//     and so every stored root and proof. A new format needs a new
//     FormatVersion, and ledgers that hold the old one.
//   - LeafHash covers ID and Time as they are. ledger.Append fills a zero
//     ID or Time before encoding, so the hash of an entry as you passed it
//     to Append differs from its receipt's Leaf unless you set both.
//   - Time is encoded as UnixNano: its location and monotonic reading are
//     dropped (Decode returns UTC), and a time outside UnixNano's range
//     (about 1678 to 2262) is encoded wrongly. Encode does not check this;
//     Validate allows the years 1678 to 2261 only.
//   - Encode does not validate. Encoding a kind or author longer than its
//     limit gives bytes that Decode refuses.
//   - Decode checks the framing, not the fields' shapes: an accepted
//     encoding may still fail Validate. Its Payload aliases the input.
package entry
