package ledger

import (
	"errors"
	"fmt"

	"github.com/google/uuid"

	"coapp.coop/ledger/entry"
)

var (
	// ErrClosed is returned by every call on a ledger after Close.
	ErrClosed = errors.New("ledger: closed")

	// ErrNotLeader is returned when a write or a leader/linearizable read
	// reaches a node that is not the leader. The error is a *NotLeaderError
	// naming the leader when one is known.
	ErrNotLeader = errors.New("ledger: not the leader")

	// ErrNoLeader is returned when no leader is known yet (an election is
	// under way or a quorum is missing). Callers retry after a short wait.
	ErrNoLeader = errors.New("ledger: no leader")

	// ErrNotFound is returned when no entry has the index or id asked for.
	ErrNotFound = errors.New("ledger: entry not found")

	// ErrOutOfRange is returned when a size or index lies beyond the log
	// as this node knows it.
	ErrOutOfRange = errors.New("ledger: beyond the log")

	// ErrInvalid is returned when an entry or argument is malformed. The
	// error is a *ValidationError naming the field.
	ErrInvalid = errors.New("ledger: invalid input")

	// ErrTooLarge is returned when an Append is larger than
	// Config.MaxBatchBytes or an entry larger than Config.MaxEntryBytes.
	ErrTooLarge = errors.New("ledger: too large")

	// ErrConflict is returned when an id already in the log is appended
	// again with different content. The error is a *ConflictError.
	ErrConflict = errors.New("ledger: id already used for different content")

	// ErrCorrupt is returned when stored data fails its checksum or does not
	// match the Merkle tree. The error is a *CorruptionError.
	ErrCorrupt = errors.New("ledger: corrupt data")

	// ErrTimeout is returned when Raft did not accept or commit a command
	// within Config.ApplyTimeout.
	ErrTimeout = errors.New("ledger: timed out")
)

// ValidationError reports an entry or argument that cannot be accepted.
// Nothing of the call that returned it was written.
type ValidationError struct {
	Entry  int    // position of the entry in the call, -1 if not about an entry
	Field  string // "kind", "author", "payload", "time", "id", or an argument name
	Reason string
}

// Error names the entry, the field and the reason.
func (e *ValidationError) Error() string {
	if e.Entry < 0 {
		return fmt.Sprintf("ledger: invalid %s: %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("ledger: entry %d: invalid %s: %s", e.Entry, e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalid) true, and ErrTooLarge for size limits.
func (e *ValidationError) Is(target error) bool {
	return target == ErrInvalid || (target == ErrTooLarge && e.Reason == reasonTooLarge)
}

const reasonTooLarge = entry.ReasonTooLarge // "too large"

// ConflictError reports an id that the log already holds with other content.
// Nothing of the Append that returned it was written.
type ConflictError struct {
	ID    uuid.UUID
	Index uint64 // where the log holds the original entry
}

// Error names the id and where the log holds it.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("ledger: id %s already used at index %d for different content", e.ID, e.Index)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// CorruptionError reports stored data that failed a check. Index is the
// log index concerned, or -1 when the damage is not tied to one entry.
type CorruptionError struct {
	Index  int64
	Reason string
}

// Error names the index, when known, and what failed.
func (e *CorruptionError) Error() string {
	if e.Index < 0 {
		return "ledger: corrupt data: " + e.Reason
	}
	return fmt.Sprintf("ledger: corrupt data at index %d: %s", e.Index, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptionError) Is(target error) bool { return target == ErrCorrupt }

func corruptAt(index uint64, format string, args ...any) error {
	return &CorruptionError{Index: int64(index), Reason: fmt.Sprintf(format, args...)}
}

func corrupt(format string, args ...any) error {
	return &CorruptionError{Index: -1, Reason: fmt.Sprintf(format, args...)}
}

// NotLeaderError reports that this node cannot serve a call that needs the
// leader. LeaderID and LeaderAddr name the leader when one is known; the
// address is its Raft address.
type NotLeaderError struct {
	LeaderID   string
	LeaderAddr string
}

// Error names the leader when one is known.
func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "ledger: no leader"
	}
	return fmt.Sprintf("ledger: not the leader (the leader is %s at %s)", e.LeaderID, e.LeaderAddr)
}

// Is makes errors.Is(err, ErrNotLeader) true, and errors.Is(err,
// ErrNoLeader) too when no leader is known.
func (e *NotLeaderError) Is(target error) bool {
	return target == ErrNotLeader || (target == ErrNoLeader && e.LeaderID == "")
}
