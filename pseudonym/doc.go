// Package pseudonym hides who the people in coapp's records are, and makes
// their records erasable.
//
// # Pseudonyms
//
// A pseudonym is a keyed hash of an identifier (an e-mail address, a
// membership number, an IBAN) in a domain:
//
//	pseudonym = "ps1." + key version + "." +
//	            base64url(HMAC-SHA-256(k, Canonical(identifier)))
//	k         = HKDF-SHA-256(federation secret, salt "coapp.coop/pseudonym/v1",
//	                         info "coapp/v1/pseudonym|" + domain)
//
// Canonical applies Unicode NFKC, simple lower-casing and white-space
// folding, so that spellings of one identifier get one pseudonym. Inside a
// domain pseudonyms are deterministic (a cooperative finds a member's
// records again); across domains they cannot be linked without the
// secret: each cooperative has its own domain (MemberDomain), the
// federation a shared one for records a person agreed may be linked
// (Federation), and every dataset its own (DatasetDomain), so that two
// exports cannot be joined. testdata/vectors.json holds test vectors
// computed by an independent implementation.
//
// # Keys
//
// The federation secret reaches each node out of band, in a key file
// (WriteKeyFile, ReadKeyFile) that may be sealed with a passphrase
// (Argon2id, then XChaCha20-Poly1305). It is never written to the ledger,
// the Raft log or a log: a Secret prints as REDACTED and refuses to
// marshal. Keys are versioned: Rotate adds a version that makes new
// pseudonyms while older ones still resolve (All, Matches) until Retire.
//
// # Erasure by crypto-shredding
//
// A subject's record payloads are sealed (Seal, XChaCha20-Poly1305) under a
// per-subject data key, and the data key is stored wrapped (WrapKey) under
// a key-encryption key derived from the federation secret. Destroying the
// wrapped data key makes every copy of the payloads unreadable, while the
// ciphertexts, and so the Merkle tree over them, stay as they were.
//
// # Generalisation
//
// GeneraliseDate, GeneraliseNumber, AgeBand and GeneralisePostcode coarsen
// quasi-identifiers, as a schema's field policies ask.
//
// # Caveats
//
//   - Pseudonymised data is still personal data under the GDPR: anyone
//     holding the secret can recompute pseudonyms from identifiers. Keep
//     the key file apart from the data.
//   - Lower-casing is Unicode's simple mapping (Go's unicode.ToLower), not
//     full case folding: "ß" stays "ß", final sigma is not special.
//   - Whether a destroyed key counts as erasure under the GDPR is not
//     settled; the package makes the data unreadable, not absent.
package pseudonym
