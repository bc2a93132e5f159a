package ledger

import (
	"coapp.coop/ledger/entry"
)

// Entry is one record of the log: an opaque payload with its kind, author,
// id and time. It is entry.Entry, which documents its fields and holds its
// canonical encoding; code that needs entries and leaf hashes without a
// ledger imports package coapp.coop/ledger/entry instead.
type Entry = entry.Entry

// Receipt acknowledges an appended entry: where it is in the log and the
// Merkle leaf hash that proofs refer to. It is entry.Receipt.
type Receipt = entry.Receipt

// validateEntry checks an entry's fields. i is its position in the call.
func validateEntry(e *Entry, i int, maxPayload int) error {
	if field, reason, ok := e.Validate(maxPayload); !ok {
		return &ValidationError{Entry: i, Field: field, Reason: reason}
	}
	return nil
}
