package events

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
)

// Queue is one session's legacy subscription (xapi's event.register,
// event.unregister and event.next): its own queue of the events of its
// subscriptions that it has not read yet.
//
// The queue holds no events: it is a position in the Buffer's history (what it
// has read) and, per subscription, the index from which that subscription's
// events are due (its registration), so it costs a few words per subscription
// however far behind its reader is. Its events are the Buffer's retained
// changes, coalesced per object as Collect does; the queue is lost (ErrLost)
// only when a change of a class it subscribes to, made after it read and while
// that subscription was registered, has been evicted — with the default
// retention, after 65,536 changes of the whole pool since that change (see the
// package documentation).
//
// All methods are safe for concurrent use; concurrent Next calls get disjoint
// events, as in xapi.
type Queue struct {
	b      *Buffer
	lookup ClassLookup

	mu      sync.Mutex        // taken before b.mu
	specs   map[string]uint64 // subscription → index from which its events are due
	pos     uint64            // the events up to pos have been read
	filter  *Filter           // every subscription
	changed chan struct{}     // closed when the subscriptions change (wakes Next)
}

// NewQueue returns an empty queue (no subscriptions) positioned at the current
// index. A nil lookup means EventClass.
func (b *Buffer) NewQueue(lookup ClassLookup) *Queue {
	b.mu.Lock()
	pos := b.current
	b.mu.Unlock()
	return &Queue{
		b:       b,
		lookup:  lookup,
		specs:   map[string]uint64{},
		pos:     pos,
		filter:  ParseFilter(nil, lookup),
		changed: make(chan struct{}),
	}
}

// normSpec makes equal subscriptions equal strings: the class part is
// case-insensitive, the ref part is not.
func normSpec(s string) string {
	if s == "*" {
		return s
	}
	cls, ref, hasRef := strings.Cut(s, "/")
	if !hasRef {
		return strings.ToLower(cls)
	}
	return strings.ToLower(cls) + "/" + ref
}

// Register adds subscriptions. A new subscription concerns the changes made
// from now on: earlier changes of its objects are neither delivered nor can
// their eviction make the queue lost. Registering a subscription again
// changes nothing.
func (q *Queue) Register(specs []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.b.Current()
	added := false
	for _, s := range specs {
		s = normSpec(s)
		if _, ok := q.specs[s]; !ok {
			q.specs[s] = max(now, q.pos)
			added = true
		}
	}
	if added {
		q.rebuild()
	}
}

// Unregister removes subscriptions: the unread events that only they matched
// are no longer delivered (xapi filters the queue with the subscriptions of the
// time of the read).
func (q *Queue) Unregister(specs []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	removed := false
	for _, s := range specs {
		s = normSpec(s)
		if _, ok := q.specs[s]; ok {
			delete(q.specs, s)
			removed = true
		}
	}
	if removed {
		q.rebuild()
	}
}

// Subscriptions lists the registered subscriptions (normalised, sorted).
func (q *Queue) Subscriptions() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]string, 0, len(q.specs))
	for s := range q.specs {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// rebuild recomputes the filter and wakes a waiting Next. Under q.mu.
func (q *Queue) rebuild() {
	specs := make([]string, 0, len(q.specs))
	for s := range q.specs {
		specs = append(specs, s)
	}
	q.filter = ParseFilter(specs, q.lookup)
	close(q.changed)
	q.changed = make(chan struct{})
}

// Next returns the unread events of the subscriptions, coalesced per object
// (adds, then mods, then dels), blocking until there is at least one or ctx
// ends (then it returns context.Cause(ctx)). It returns ErrLost when some
// were evicted before they were read; the queue then continues from the
// current index (the client re-reads everything, as with xapi's EVENTS_LOST).
// A change of the subscriptions wakes a blocked Next, which then reads with
// the new ones.
func (q *Queue) Next(ctx context.Context) ([]Event, error) {
	b := q.b
	for {
		q.mu.Lock()
		b.mu.Lock()
		evs, err := q.read()
		if err != nil || len(evs) > 0 {
			b.mu.Unlock()
			q.mu.Unlock()
			return evs, err
		}
		f, changed := q.filter, q.changed
		w := &waiter{ch: make(chan struct{}, 1)}
		b.register(f, w)
		b.mu.Unlock()
		q.mu.Unlock()

		select {
		case <-w.ch:
		case <-changed:
		case <-ctx.Done():
		}
		b.mu.Lock()
		b.unregister(f, w)
		b.mu.Unlock()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
	}
}

// read takes the unread events and moves the position to the current index.
// Under q.mu and b.mu.
//
// The subscriptions registered before the position are read from it with one
// filter; one registered later (rare: register while there are unread
// events) is read from its registration, and an object matched by several is
// reported from the oldest window (the longest subscribed), so no change is
// missed, none is reported twice and none from before its subscription (an
// object created and deleted within the oldest window gives nothing, even if a
// later window saw only its deletion).
func (q *Queue) read() ([]Event, error) {
	b := q.b
	now := max(b.current, q.pos)
	var young []uint64
	for _, since := range q.specs {
		if since > q.pos && !slices.Contains(young, since) {
			young = append(young, since)
		}
	}
	var out []Event
	var err error
	if len(young) == 0 {
		out, err = q.collect(q.filter, q.pos)
	} else {
		slices.Sort(young)
		older := []*Filter{q.group(func(since uint64) bool { return since <= q.pos })}
		out, err = q.collect(older[0], q.pos)
		for _, y := range young {
			if err != nil {
				break
			}
			f := q.group(func(since uint64) bool { return since == y })
			var evs []Event
			evs, err = q.collect(f, y)
			for _, e := range evs {
				// an object an older subscription matches was reported (or
				// coalesced away) over that longer window
				if !slices.ContainsFunc(older, func(o *Filter) bool { return o.Match(e.Class, e.Ref) }) {
					out = append(out, e)
				}
			}
			older = append(older, f)
		}
		slices.SortStableFunc(out, func(x, y Event) int {
			return cmp.Or(cmp.Compare(x.Kind, y.Kind), cmp.Compare(x.Index, y.Index))
		})
	}
	// Read (or lost): every subscription now starts at the new position.
	q.pos = now
	for s := range q.specs {
		q.specs[s] = now
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// group builds the filter of the subscriptions whose registration index
// satisfies keep. Under q.mu.
func (q *Queue) group(keep func(since uint64) bool) *Filter {
	var specs []string
	for s, since := range q.specs {
		if keep(since) {
			specs = append(specs, s)
		}
	}
	return ParseFilter(specs, q.lookup)
}

func (q *Queue) collect(f *Filter, from uint64) ([]Event, error) {
	bt, err := q.b.collect(f, from, false)
	return bt.Events, err
}
