package api

import (
	"errors"
	"fmt"
)

// sentinel is an error kind. A sentinel with a parent is a narrower kind of
// it: errors.Is(ErrNotMember, ErrForbidden) holds.
type sentinel struct {
	msg    string
	parent error
}

func (s *sentinel) Error() string { return s.msg }

// Unwrap returns the broader kind, if any.
func (s *sentinel) Unwrap() error { return s.parent }

func newSentinel(msg string, parent error) error { return &sentinel{msg: msg, parent: parent} }

// The errors a node returns. Each is one row of the table below: an HTTP
// status and a stable code (and, where several errors share a code, a
// kind). Test them with errors.Is, in-process or through the client.
var (
	// ErrInvalid is returned for malformed or invalid input. The error is
	// a *ValidationError naming the field. Nothing was written.
	ErrInvalid = newSentinel("coapp: invalid input", nil)
	// ErrUnauthenticated is returned when a request carries no token or an
	// unknown or revoked one.
	ErrUnauthenticated = newSentinel("coapp: unauthenticated", nil)
	// ErrForbidden is returned when a caller acts outside its rights.
	ErrForbidden = newSentinel("coapp: forbidden", nil)
	// ErrNotMember is returned when someone who is not a member of the
	// federation (or of the committee concerned) proposes or votes. It is
	// an ErrForbidden.
	ErrNotMember = newSentinel("coapp: not a member of the federation", ErrForbidden)
	// ErrNotFound is returned when a record, token, node, dataset or
	// proposal does not exist.
	ErrNotFound = newSentinel("coapp: not found", nil)
	// ErrNotBootstrapped is returned when the federation has no genesis
	// entry yet (a joining node that has not caught up).
	ErrNotBootstrapped = newSentinel("coapp: federation not bootstrapped", nil)
	// ErrConflict is returned when a write conflicts with the ledger: a
	// record id used for another record, a schema version that is not the
	// next one.
	ErrConflict = newSentinel("coapp: conflict", nil)
	// ErrVoted is returned for a member's second vote on a proposal. It is
	// an ErrConflict.
	ErrVoted = newSentinel("coapp: already voted on this proposal", ErrConflict)
	// ErrClosed is returned for a vote on a proposal that passed, failed
	// or outlived its lifetime. It is an ErrConflict.
	ErrClosed = newSentinel("coapp: proposal closed", ErrConflict)
	// ErrConsentExists is returned for a consent record id already used. It
	// is an ErrConflict.
	ErrConsentExists = newSentinel("coapp: consent record exists", ErrConflict)
	// ErrConsentChain is returned for a consent event that does not follow
	// the record's latest one (another event overtook it). It is an
	// ErrConflict.
	ErrConsentChain = newSentinel("coapp: consent event out of order", ErrConflict)
	// ErrWithdrawn is returned for a change to a consent that was
	// withdrawn or revoked.
	ErrWithdrawn = newSentinel("coapp: consent withdrawn", nil)
	// ErrExpired is returned for a change to a consent that expired.
	ErrExpired = newSentinel("coapp: consent expired", nil)
	// ErrUnknownPurpose is returned for a purpose the federation's
	// vocabulary does not hold.
	ErrUnknownPurpose = newSentinel("coapp: unknown purpose", nil)
	// ErrBadSignature is returned for an entry whose signature does not
	// verify under the member's key.
	ErrBadSignature = newSentinel("coapp: bad signature", nil)
	// ErrBadReceipt is returned for a consent receipt that does not verify.
	ErrBadReceipt = newSentinel("coapp: bad receipt", nil)
	// ErrRefused is returned for a record id the ledger holds with a record
	// every replica refused (no valid signature of its member covered it):
	// it stays in the log, inert, and the id cannot be used again.
	ErrRefused = newSentinel("coapp: record refused by every replica", nil)
	// ErrBudgetSpent is returned for a differentially private query that
	// would spend more of a dataset's privacy budget than is left.
	ErrBudgetSpent = newSentinel("coapp: privacy budget spent", nil)
	// ErrKeyConflict is returned when a subject's data key changed while a
	// batch was being sealed; sealing again succeeds.
	ErrKeyConflict = newSentinel("coapp: a subject's data key changed meanwhile", nil)
	// ErrErased is returned for a subject whose data key was destroyed:
	// their records cannot be decrypted, and nothing more is published
	// about them.
	ErrErased = newSentinel("coapp: subject erased", nil)
	// ErrTooLarge is returned for a body or a batch larger than the node
	// accepts.
	ErrTooLarge = newSentinel("coapp: too large", nil)
	// ErrOutOfRange is returned for a ledger index or size beyond the
	// ledger.
	ErrOutOfRange = newSentinel("coapp: out of range", nil)
	// ErrNoLeader is returned while no leader is known or reachable; the
	// call may be retried.
	ErrNoLeader = newSentinel("coapp: no leader is available", nil)
	// ErrTimeout is returned when a call ran out of time; retrying with
	// the same record ids is safe.
	ErrTimeout = newSentinel("coapp: timed out", nil)
	// ErrCorrupt is returned when a node detected corrupt data; ask
	// another node.
	ErrCorrupt = newSentinel("coapp: corrupt data", nil)
	// ErrInternal is returned for a failure the node does not explain to
	// callers (it logs it).
	ErrInternal = newSentinel("coapp: internal error", nil)
)

// Code is one row of the error table.
type Code struct {
	Err    error  // the sentinel
	Status int    // the HTTP status
	Code   string // the stable code in the error body
	// Kind names the sentinel in the error body when its code is shared
	// with a broader one ("not_member" under "forbidden").
	Kind string
	// Field is the field reported when the error names none.
	Field string
	// Retry is true when the same call may succeed later (the answer
	// carries Retry-After).
	Retry bool
}

// Codes is the table from errors to statuses and codes, narrowest first:
// the first row whose sentinel the error matches is its row. The client
// maps (code, kind) back to the sentinel with Sentinel.
var Codes = []Code{
	{Err: ErrNotMember, Status: 403, Code: "forbidden", Kind: "not_member"},
	{Err: ErrVoted, Status: 409, Code: "conflict", Kind: "voted"},
	{Err: ErrClosed, Status: 409, Code: "conflict", Kind: "closed"},
	{Err: ErrConsentExists, Status: 409, Code: "conflict", Kind: "exists"},
	{Err: ErrConsentChain, Status: 409, Code: "conflict", Kind: "chain"},
	{Err: ErrInvalid, Status: 400, Code: "invalid"},
	{Err: ErrUnauthenticated, Status: 401, Code: "unauthenticated"},
	{Err: ErrForbidden, Status: 403, Code: "forbidden"},
	{Err: ErrNotFound, Status: 404, Code: "not_found"},
	{Err: ErrNotBootstrapped, Status: 503, Code: "not_bootstrapped", Retry: true},
	{Err: ErrConflict, Status: 409, Code: "conflict"},
	{Err: ErrWithdrawn, Status: 409, Code: "withdrawn"},
	{Err: ErrExpired, Status: 409, Code: "expired"},
	{Err: ErrUnknownPurpose, Status: 400, Code: "unknown_purpose", Field: "purpose"},
	{Err: ErrBadSignature, Status: 400, Code: "bad_signature"},
	{Err: ErrBadReceipt, Status: 400, Code: "bad_receipt"},
	{Err: ErrRefused, Status: 409, Code: "refused", Field: "id"},
	{Err: ErrBudgetSpent, Status: 409, Code: "budget_spent", Field: "dp.epsilon"},
	{Err: ErrKeyConflict, Status: 409, Code: "key_conflict", Field: "keys"},
	{Err: ErrErased, Status: 410, Code: "erased"},
	{Err: ErrTooLarge, Status: 413, Code: "too_large"},
	{Err: ErrOutOfRange, Status: 400, Code: "out_of_range"},
	{Err: ErrNoLeader, Status: 503, Code: "no_leader", Retry: true},
	{Err: ErrTimeout, Status: 503, Code: "timeout", Retry: true},
	{Err: ErrCorrupt, Status: 500, Code: "corrupt"},
	{Err: ErrInternal, Status: 500, Code: "internal"},
}

// CodeOf returns the row of err's sentinel, or the ErrInternal row when err
// matches none.
func CodeOf(err error) Code {
	for _, c := range Codes {
		if errors.Is(err, c.Err) {
			return c
		}
	}
	return Codes[len(Codes)-1]
}

// Sentinel returns the sentinel of a code and kind as an error body gives
// them, or nil for a code this version does not know.
func Sentinel(code, kind string) error {
	var broad error
	for _, c := range Codes {
		if c.Code != code {
			continue
		}
		if c.Kind == kind {
			return c.Err
		}
		if c.Kind == "" {
			broad = c.Err
		}
	}
	return broad
}

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

// Invalid returns a *ValidationError for field, its reason formatted.
func Invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Within prefixes the field of a *ValidationError with at ("records[3]"),
// and returns any other error as it is.
func Within(at string, err error) error {
	var ve *ValidationError
	if at == "" || !errors.As(err, &ve) {
		return err
	}
	field := at
	if ve.Field != "" {
		field = at + "." + ve.Field
	}
	return &ValidationError{Field: field, Reason: ve.Reason}
}

// Error is an error of a given kind (one of the sentinels above), with the
// field it concerns and a reason safe to show; it wraps the error it was
// made from, so that errors.Is matches both the sentinel and the cause
// (a consent.ErrWithdrawn is an api.ErrWithdrawn too).
type Error struct {
	Err    error // the sentinel
	Field  string
	Reason string
	Cause  error
}

// Error returns the sentinel's message, the field and the reason.
func (e *Error) Error() string {
	msg := e.Err.Error()
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	if e.Field != "" {
		msg += " (" + e.Field + ")"
	}
	return msg
}

// Is matches the sentinel.
func (e *Error) Is(target error) bool { return errors.Is(e.Err, target) }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// ErrorBody is the JSON shape of every error response:
// {"error":{"code":"...","message":"...","field":"...","kind":"..."}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of an ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	// Kind names the error more narrowly where its code is shared
	// ("voted" and "closed" under "conflict").
	Kind string `json:"kind,omitempty"`
}
