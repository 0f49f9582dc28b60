package backends

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Check them with errors.Is; the structured variants
// (*BadPowerStateError, *NotEnoughMemoryError) also match their sentinel.
var (
	// ErrNotFound: the backend knows no domain with that UUID.
	ErrNotFound = errors.New("domain not found")
	// ErrBadPowerState: the operation is illegal in the domain's state.
	ErrBadPowerState = errors.New("bad power state")
	// ErrNotEnoughMemory: the host lacks free memory for the operation.
	ErrNotEnoughMemory = errors.New("not enough free memory")
	// ErrAlreadyExists: another domain already uses the spec's name.
	ErrAlreadyExists = errors.New("domain already exists")
	// ErrCancelled: the context was done before the operation committed;
	// the domain is unchanged.
	ErrCancelled = errors.New("operation cancelled")
	// ErrInvalid: the spec or argument is invalid.
	ErrInvalid = errors.New("invalid argument")
	// ErrNotSupported: the backend cannot perform the operation.
	ErrNotSupported = errors.New("operation not supported")
	// ErrClosed: the backend has been closed.
	ErrClosed = errors.New("backend closed")
)

// BadPowerStateError reports an operation attempted in the wrong power
// state. It matches ErrBadPowerState.
type BadPowerStateError struct {
	UUID     string
	Op       Op
	Expected []PowerState
	Actual   PowerState
}

func (e *BadPowerStateError) Error() string {
	return fmt.Sprintf("%s of domain %s: bad power state: expected %s, actual %s",
		e.Op, e.UUID, e.ExpectedString(), e.Actual.Lower())
}

// ExpectedString joins the expected states as VM_BAD_POWER_STATE's second
// parameter does: lower-case, separated by ", ".
func (e *BadPowerStateError) ExpectedString() string {
	s := make([]string, len(e.Expected))
	for i, p := range e.Expected {
		s[i] = p.Lower()
	}
	return strings.Join(s, ", ")
}

// Is makes errors.Is(err, ErrBadPowerState) true.
func (e *BadPowerStateError) Is(target error) bool { return target == ErrBadPowerState }

// NotEnoughMemoryError reports that the host cannot fit a domain. Needed and
// Available are bytes (HOST_NOT_ENOUGH_FREE_MEMORY's parameters). It matches
// ErrNotEnoughMemory.
type NotEnoughMemoryError struct {
	Needed    int64
	Available int64
}

func (e *NotEnoughMemoryError) Error() string {
	return fmt.Sprintf("not enough free memory: needed %d bytes, available %d bytes", e.Needed, e.Available)
}

// Is makes errors.Is(err, ErrNotEnoughMemory) true.
func (e *NotEnoughMemoryError) Is(target error) bool { return target == ErrNotEnoughMemory }

// NotFound returns an error matching ErrNotFound for uuid.
func NotFound(uuid string) error { return fmt.Errorf("domain %s: %w", uuid, ErrNotFound) }

// Cancelled returns an error matching both ErrCancelled and the context's
// own error (context.Canceled or context.DeadlineExceeded).
func Cancelled(ctx context.Context) error {
	cause := ctx.Err()
	if cause == nil {
		cause = context.Canceled
	}
	return fmt.Errorf("%w: %w", ErrCancelled, cause)
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Invalidf returns an error matching ErrInvalid.
func Invalidf(format string, args ...any) error { return invalidf(format, args...) }
