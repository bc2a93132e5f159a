package format

import (
	"encoding/json"
	"errors"
	"fmt"

	"coapp.coop/ledger/entry"
	"coapp.coop/pseudonym"
)

// ErrUnreadable marks a record that cannot be decrypted: its subject's
// key does not unwrap, or its box does not open. No honest node writes
// one (the leader opens every box a follower sealed before appending it);
// exports and aggregates skip and count them rather than fail.
var ErrUnreadable = errors.New("coapp: record cannot be decrypted")

// OpenFields decrypts a record's sealed fields.
func OpenFields(dk pseudonym.Secret, e entry.Entry, p *RecordPayload) (map[string]json.RawMessage, error) {
	plain, err := pseudonym.Open(dk, p.Box, RecordAD(e, p))
	if err != nil {
		return nil, fmt.Errorf("%w: record %s: %v", ErrUnreadable, e.ID, err)
	}
	fields, err := DecodeFields(plain)
	if err != nil {
		return nil, fmt.Errorf("%w: record %s fields: %v", ErrUnreadable, e.ID, err)
	}
	return fields, nil
}
