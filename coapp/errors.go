package coapp

import (
	"errors"
	"fmt"
)

var (
	// ErrUnauthenticated is returned when a request carries no token or an
	// unknown or revoked one.
	ErrUnauthenticated = errors.New("coapp: unauthenticated")

	// ErrForbidden is returned when a member acts outside its rights.
	ErrForbidden = errors.New("coapp: forbidden")

	// ErrInvalid is returned for malformed or invalid input. The error is
	// a *ValidationError naming the field.
	ErrInvalid = errors.New("coapp: invalid input")

	// ErrNotFound is returned when a record, token or node does not exist.
	ErrNotFound = errors.New("coapp: not found")

	// ErrNotBootstrapped is returned when the federation has no genesis
	// entry yet (a joining node that has not caught up).
	ErrNotBootstrapped = errors.New("coapp: federation not bootstrapped")
)

// ValidationError reports input that cannot be accepted, naming the field
// as a JSON path such as "records[2].time". Nothing was written.
type ValidationError struct {
	Field  string
	Reason string
}

// Error names the field and the reason.
func (e *ValidationError) Error() string {
	return fmt.Sprintf("coapp: invalid %s: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
