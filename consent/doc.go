// Package consent records people's consent per purpose, and cooperatives'
// agreements to share data into their federation, as signed events in the
// ledger, and decides from them whether data may be used.
//
// A consent Record follows ISO/IEC TS 27560 (the consent record information
// structure) through the W3C Data Privacy Vocabulary: the subject (a
// pseudonym, never a raw identifier), the controller (the member
// cooperative), DPV purposes, legal basis, personal-data categories,
// recipients, the notice shown (URI and SHA-256 of its text), jurisdiction,
// withdrawal method, retention. Its state changes are Events (given,
// renewed, withdrawn, expired, revoked), each linking to the hash of the
// previous one, each signed by the controller with Ed25519 (Signed) and
// appended to the ledger as an entry of Kind.
//
// There are two tiers, and data is usable for a purpose only when both
// hold (Index.Usable): the subject's consent to its cooperative
// (TierSubject), and the cooperative's agreement, as a member, to share
// that category of data into the federation for that purpose (TierMember).
//
// An Index is fed the events in ledger order, so that every replica that
// applied the same entries decides the same; it answers as of any earlier
// ledger index too, which is what exports use. Purposes form a hierarchy
// (Vocabulary): consent to dpv:ResearchAndDevelopment covers
// dpv:AcademicResearch. A decision is a few map lookups and does not
// allocate.
//
// Every event yields a Receipt that the person keeps: the ledger entry, and
// the Merkle inclusion proof of it. Receipt.Verify checks it offline with
// the controller's public key alone; Kantara gives the Kantara Consent
// Receipt v1.1 view of it.
//
// Bad input is refused with an *Error wrapping one of the sentinels
// (ErrInvalid, ErrUnknownPurpose, ErrWithdrawn, ErrExpired, ErrForbidden,
// ErrChain, ErrBadSignature, ErrBadReceipt, ...), and changes nothing.
package consent
