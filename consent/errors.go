package consent

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalid is returned for a malformed record or event. The error is
	// an *Error naming the field.
	ErrInvalid = errors.New("consent: invalid")

	// ErrUnknownPurpose is returned for a purpose the vocabulary does not
	// hold.
	ErrUnknownPurpose = errors.New("consent: unknown purpose")

	// ErrNotFound is returned for an event on a consent record that does
	// not exist.
	ErrNotFound = errors.New("consent: no such consent record")

	// ErrExists is returned when a record id is given a second time.
	ErrExists = errors.New("consent: consent record exists")

	// ErrChain is returned when an event does not link to the record's
	// latest event (another change came first: read it and retry).
	ErrChain = errors.New("consent: event does not follow the latest event")

	// ErrWithdrawn is returned when an event acts on a consent that was
	// already withdrawn or revoked.
	ErrWithdrawn = errors.New("consent: consent already withdrawn or revoked")

	// ErrExpired is returned when an event uses a consent whose validity
	// has ended: give a new consent instead.
	ErrExpired = errors.New("consent: consent expired")

	// ErrForbidden is returned when a member acts on a consent record of
	// which it is not the controller.
	ErrForbidden = errors.New("consent: not the controller of this consent")

	// ErrBadSignature is returned for an event whose signature does not
	// verify under the controller's key.
	ErrBadSignature = errors.New("consent: bad signature")

	// ErrBadReceipt is returned for a receipt that does not verify: altered,
	// forged, or not included in the ledger it names.
	ErrBadReceipt = errors.New("consent: receipt does not verify")
)

// Error is a refused record, event or receipt: the sentinel it wraps
// (ErrInvalid, ErrUnknownPurpose, ...), the field at fault when there is
// one, and why.
type Error struct {
	Err    error
	Field  string
	Reason string
}

// Error names the field and the reason.
func (e *Error) Error() string {
	switch {
	case e.Field != "" && e.Reason != "":
		return fmt.Sprintf("%v: %s: %s", e.Err, e.Field, e.Reason)
	case e.Field != "":
		return fmt.Sprintf("%v: %s", e.Err, e.Field)
	case e.Reason != "":
		return fmt.Sprintf("%v: %s", e.Err, e.Reason)
	}
	return e.Err.Error()
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }

func fail(sentinel error, field, format string, args ...any) error {
	return &Error{Err: sentinel, Field: field, Reason: fmt.Sprintf(format, args...)}
}
