// Package events turns the store's applied change sets into XenAPI events.
//
// A Buffer keeps the most recent changes, keyed by the raft index of the log
// entry that made them. The store's subscriber calls Publish after every
// applied entry (in index order, on every host), so a token — which is just a
// raft index rendered as a string — names the same point of history on every
// replica: a client can continue event.from on a new master after a failover.
//
// # Retention
//
// The buffer retains at most Config.MaxChanges changes (default
// DefaultMaxChanges = 65,536). A retained change costs about 64 bytes plus an
// entry of the per-object index; the buffer never holds a record the store has
// replaced: a change superseded by a later change of the same object drops its
// record, and deletions hold none, so the records it keeps are the store's
// current ones (shared). 65,536 changes is thus at most about 8 MiB and, at
// 1,000 writes per second, about a minute of history. The ring starts at 1,024
// entries and doubles as needed, so a quiet host pays little. A token older than the oldest
// retained change (and any token after a snapshot restore replaced the state)
// yields ErrLost: the client must re-read everything (EVENTS_LOST).
//
// # Coalescing
//
// Collect and Wait return at most one event per object for the window between
// the token and the current index, computed from the object's first and last
// change in the window:
//
//   - created in the window and still present: one add (latest record);
//   - present before and still present: one mod (latest record), however many
//     changes there were;
//   - present before and deleted: one del (no record);
//   - created and deleted within the window: nothing.
//
// As in xapi, adds come first, then mods, then dels; within each group events
// are in the order of the objects' last changes.
//
// # Waiting
//
// Wait long-polls: a waiter registers a one-slot channel under each class it
// watches (or under "all") and sleeps on it, its context and one timer; Publish
// does a non-blocking send to the waiters of the classes it touched. Nothing
// wakes an idle waiter, and a waiter costs one small struct and one map entry
// per watched class.
package events
