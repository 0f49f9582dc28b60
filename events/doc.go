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
// entries and doubles as needed, so a quiet host pays little.
//
// Loss is decided per class: besides the oldest retained index, the buffer
// remembers for each class the index of its newest evicted change (a map of at
// most one entry per class). A collection yields ErrLost (the client must
// re-read everything: EVENTS_LOST) only when a change its filter covers, made
// after its token, was evicted: for "*" when the token is older than the oldest
// retained change; for "vm" or "vm/<ref>" when it is older than the newest
// evicted vm change. A subscriber to vm is therefore not lost by any number of
// network changes: the changes after its token that are still retained are
// all the vm changes after it. (Granularity is the class: "vm/<ref>" is lost
// by the eviction of a change of another VM made after its token.) A token
// before Anchor's or Reset's index (a snapshot restore replaced the state) is
// lost for every filter.
//
// # Legacy queues
//
// event.register/unregister/next give each session a Queue: its own queue of
// unread events of its subscriptions. A queue stores no events — it is a read
// position plus the registration index of each subscription, a few words per
// subscription — and reads the buffer's retained changes. Its bound is the
// buffer's: a queue is lost only when a change of a class it subscribes to,
// made after its last read while that subscription was registered, has been
// evicted, i.e. when at least MaxChanges changes (of any class; 65,536 by
// default) were made after an unread change of its classes. xapi bounds its
// shared queue by 10 MB of JSON instead, and loses every session at once.
// A new subscription concerns changes from its registration on; unregistering
// drops the unread events only it matched.
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
//
// A token ahead of the current index waits until the buffer gets there (a
// follower behind the leader was given a token by another host); whether such
// a token can exist at all is the caller's call (xapi answers EVENTS_LOST on
// the leader for a token beyond its commit index).
package events
