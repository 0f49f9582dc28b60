package events

import (
	"fmt"
	"strconv"
	"strings"
)

// FormatToken renders a raft index as an event.from token. The shape is
// xapi's ("%020d,%020d": database generation, message generation), zero padded
// so tokens compare as strings; our message half is always 0 because messages
// are ordinary replicated objects whose changes carry raft indexes too.
func FormatToken(index uint64) string {
	return fmt.Sprintf("%020d,%020d", index, 0)
}

// TokenError reports a token that is not of the form "a,b" with two decimal
// numbers (xapi: EVENT_FROM_TOKEN_PARSE_FAILURE [token]).
type TokenError struct {
	Token string
}

func (e *TokenError) Error() string { return fmt.Sprintf("events: bad token %q", e.Token) }

// ParseToken returns the raft index a token names. The empty string is the
// beginning of history (index 0); callers usually treat it specially (a full
// load). Anything else must be "a,b" with unsigned decimal numbers; the second
// half is checked but ignored.
func ParseToken(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		return 0, &TokenError{Token: s}
	}
	idx, err := strconv.ParseUint(a, 10, 64)
	if err != nil {
		return 0, &TokenError{Token: s}
	}
	if _, err := strconv.ParseUint(b, 10, 64); err != nil {
		return 0, &TokenError{Token: s}
	}
	return idx, nil
}
