// Package release turns a federation's records into what may leave it: a
// dataset's export, an aggregate, each member's share. It reads the ledger
// as of an index and releases a record only when
//
//   - it is of one of the dataset's types, within its retention;
//   - its subject held consent for the dataset's purpose at that index
//     (both tiers: the person's, and the member's agreement to share),
//     and still does at the latest index;
//   - its subject was not erased, and every replica accepted it;
//
// with its subject and pseudonymised fields mapped into the dataset's own
// pseudonym domain (two datasets cannot be joined on them), the dataset's
// transforms applied, and only groups of quasi-identifiers shared by at
// least k people.
//
// An export is computed once into a scratch file (Prepare), hashed for its
// audit entry, and only then written out (Release): the same rows, the
// same bytes, in a format a Writer gives (JSON Lines, CSV).
//
// # Caveats
//
//   - Memory is bounded by the number of quasi-identifier groups times k,
//     not by the dataset's size; caches of subjects and pseudonyms are
//     bounded too.
//   - Consent is decided at a time the caller passes (the node's clock
//     when the export runs, recorded in its audit entry), so that a replay
//     decides the same.
//   - Differentially private aggregates draw their noise from crypto/rand:
//     they are not reproducible, by design.
package release
