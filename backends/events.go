package backends

import (
	"context"
	"sync"
	"time"
)

// EventKind says what happened to a domain.
type EventKind int

// Event kinds.
const (
	// EventResync: the subscriber missed events; re-read with List.
	EventResync EventKind = iota
	// EventStarted: the domain was built (State is Running or Paused).
	EventStarted
	// EventShutdown: the domain stopped and is Halted; Reason says why
	// ("clean", "hard", "guest").
	EventShutdown
	// EventCrashed: the domain crashed and is Halted.
	EventCrashed
	// EventRebooted: the domain was rebuilt with a new domid; Reason is
	// "clean", "hard" or "guest".
	EventRebooted
	// EventPaused: the domain is Paused.
	EventPaused
	// EventUnpaused: the domain is Running again.
	EventUnpaused
	// EventSuspended: the domain is Suspended.
	EventSuspended
	// EventResumed: the domain was rebuilt from its suspend image.
	EventResumed
	// EventChanged: the domain's vCPUs or memory target changed.
	EventChanged
	// EventDestroyed: the backend forgot the domain.
	EventDestroyed
	// EventGuestAgent: the guest agent published new data.
	EventGuestAgent
)

func (k EventKind) String() string {
	switch k {
	case EventResync:
		return "resync"
	case EventStarted:
		return "started"
	case EventShutdown:
		return "shutdown"
	case EventCrashed:
		return "crashed"
	case EventRebooted:
		return "rebooted"
	case EventPaused:
		return "paused"
	case EventUnpaused:
		return "unpaused"
	case EventSuspended:
		return "suspended"
	case EventResumed:
		return "resumed"
	case EventChanged:
		return "changed"
	case EventDestroyed:
		return "destroyed"
	case EventGuestAgent:
		return "guest_agent"
	default:
		return "unknown"
	}
}

// Event reports a change to one domain.
type Event struct {
	Kind EventKind
	// UUID is empty for EventResync.
	UUID string
	// DomID is the domain id after the event (-1 when inactive).
	DomID int
	// State is the power state after the event.
	State PowerState
	// Reason qualifies the kind (for example "clean", "hard", "guest").
	Reason string
	// Time is when the backend committed the change.
	Time time.Time
}

// DefaultEventBuffer is the per-subscriber backlog a Broadcaster keeps
// before it discards events and sends EventResync.
const DefaultEventBuffer = 4096

// Broadcaster fans events out to Watch subscribers without ever blocking
// the publisher. Backend implementations embed one. The zero value is not
// usable; use NewBroadcaster.
type Broadcaster struct {
	limit int

	mu     sync.Mutex // guards subs and closed
	subs   map[*subscriber]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewBroadcaster returns a Broadcaster keeping at most limit undelivered
// events per subscriber (DefaultEventBuffer if limit <= 0).
func NewBroadcaster(limit int) *Broadcaster {
	if limit <= 0 {
		limit = DefaultEventBuffer
	}
	return &Broadcaster{limit: limit, subs: map[*subscriber]struct{}{}}
}

type subscriber struct {
	mu     sync.Mutex // guards queue and lost
	queue  []Event
	lost   bool
	wake   chan struct{} // capacity 1
	out    chan Event
	cancel chan struct{} // closed by Broadcaster.Close
}

// Watch registers a subscriber. Its channel receives every event published
// after Watch returns, in order, and is closed when ctx is done or the
// Broadcaster is closed.
func (b *Broadcaster) Watch(ctx context.Context) <-chan Event {
	s := &subscriber{
		wake:   make(chan struct{}, 1),
		out:    make(chan Event),
		cancel: make(chan struct{}),
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		close(s.out)
		return s.out
	}
	b.subs[s] = struct{}{}
	b.wg.Add(1)
	b.mu.Unlock()
	go b.pump(ctx, s)
	return s.out
}

func (b *Broadcaster) pump(ctx context.Context, s *subscriber) {
	defer b.wg.Done()
	defer close(s.out)
	defer func() {
		b.mu.Lock()
		delete(b.subs, s)
		b.mu.Unlock()
	}()
	for {
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		if s.lost {
			s.lost = false
			batch = append([]Event{{Kind: EventResync, DomID: -1, Time: time.Now()}}, batch...)
		}
		s.mu.Unlock()
		for _, ev := range batch {
			select {
			case s.out <- ev:
			case <-ctx.Done():
				return
			case <-s.cancel:
				return
			}
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			return
		case <-s.cancel:
			return
		}
	}
}

// Publish queues ev for every subscriber. It never blocks on a subscriber,
// so backends may call it while holding their own locks (which keeps events
// in commit order).
func (b *Broadcaster) Publish(ev Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		s.mu.Lock()
		if len(s.queue) >= b.limit {
			s.queue = s.queue[:0]
			s.lost = true
		} else {
			s.queue = append(s.queue, ev)
		}
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// Close closes every subscriber channel and waits for the delivery
// goroutines to exit. Later Watch calls return a closed channel.
func (b *Broadcaster) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	for s := range b.subs {
		close(s.cancel)
	}
	b.mu.Unlock()
	b.wg.Wait()
}
