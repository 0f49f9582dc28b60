package xapi

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/events"
	"github.com/xapi-go/xapi-go/store"
)

// maxEventWait is how long event.from waits when its timeout cannot be used
// (negative, NaN, infinite or absurdly large) (xapi: 24 h).
const maxEventWait = 24 * time.Hour

// maxCachedFilters bounds the cache of parsed subscription lists: clients
// repeat the same list on every event.from.
const maxCachedFilters = 1024

// eventHub feeds the store's change sets into an events.Buffer and keeps the
// per-session state of the event messages: the waiting calls (so a logout
// ends them at once) and the legacy event.register subscriptions.
type eventHub struct {
	s   *Server
	buf *events.Buffer

	filters sync.Map     // subscription list (joined) → *events.Filter
	nfilter atomic.Int32 // entries in filters (bounded by maxCachedFilters)

	mu      sync.Mutex
	waiting map[string]map[*sessionWait]struct{} // session ref → waiting calls
	legacy  map[string]*events.Queue             // session ref → event.register queue
}

type sessionWait struct {
	cancel context.CancelCauseFunc
}

func (s *Server) eventHub() *eventHub { return s.events }

// initEvents creates the event buffer and subscribes it to the store. New
// calls it before bootstrap, so every object the server creates produces events.
func (s *Server) initEvents() {
	h := &eventHub{
		s:       s,
		buf:     events.New(events.Config{MaxChanges: s.cfg.EventMaxChanges}),
		waiting: map[string]map[*sessionWait]struct{}{},
		legacy:  map[string]*events.Queue{},
	}
	unsubscribe := s.store.Subscribe(h.publish)
	// Every change after idx is published from here on; count objects as of idx.
	idx, entries := s.store.ListConsistent(h.buf.Classes())
	h.buf.Anchor(idx, countsOf(h.buf.Classes(), entries))
	s.events = h
	s.goBackground(func(ctx context.Context) {
		<-ctx.Done()
		unsubscribe()
	})

}

func countsOf(classes []*datamodel.Class, entries map[*datamodel.Class][]store.Entry) []int32 {
	counts := make([]int32, len(classes))
	for i, c := range classes {
		counts[i] = int32(len(entries[c]))
	}
	return counts
}

// publish is the store subscriber: it runs on the applier goroutine after
// every applied entry, so it only converts and appends.
func (h *eventHub) publish(cs *store.ChangeSet) {
	if cs.Reset {
		classes := h.buf.Classes()
		counts := make([]int32, len(classes))
		for i, c := range classes {
			counts[i] = int32(h.s.store.Count(c))
		}
		h.buf.Reset(cs.Index, counts)
		h.dropMissingSessions()
		return
	}
	var out []events.Change
	for i := range cs.Changes {
		ch := &cs.Changes[i]
		if ch.Class == datamodel.SessionClass && ch.Kind == store.Del {
			h.sessionGone(ch.Ref)
		}
		if !ch.Class.Events {
			continue
		}
		var k events.Kind
		switch ch.Kind {
		case store.Add:
			k = events.Add
		case store.Mod:
			k = events.Mod
		case store.Del:
			k = events.Del
		default:
			continue
		}
		if out == nil {
			out = make([]events.Change, 0, len(cs.Changes)-i)
		}
		out = append(out, events.Change{Class: ch.Class, Ref: ch.Ref, Kind: k, Obj: ch.Obj})
	}
	h.buf.Publish(cs.Index, out)
}

// sessionGone ends the waiting calls of a destroyed session with
// SESSION_INVALID and forgets its event.register state.
func (h *eventHub) sessionGone(ref string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.legacy, ref)
	for w := range h.waiting[ref] {
		w.cancel(datamodel.ErrSessionInvalid(ref))
	}
}

// dropMissingSessions is sessionGone for every session a snapshot restore removed.
func (h *eventHub) dropMissingSessions() {
	h.mu.Lock()
	var gone []string
	for ref := range h.waiting {
		if _, ok := h.s.store.Get(datamodel.SessionClass, ref); !ok {
			gone = append(gone, ref)
		}
	}
	for ref := range h.legacy {
		if _, ok := h.s.store.Get(datamodel.SessionClass, ref); !ok {
			gone = append(gone, ref)
		}
	}
	h.mu.Unlock()
	for _, ref := range gone {
		h.sessionGone(ref)
	}
}

// watchSession returns a context that ends with SESSION_INVALID when the
// session is destroyed, and the function that stops watching.
func (h *eventHub) watchSession(ctx context.Context, session string) (context.Context, func(), error) {
	ctx, cancel := context.WithCancelCause(ctx)
	w := &sessionWait{cancel: cancel}
	h.mu.Lock()
	set := h.waiting[session]
	if set == nil {
		set = map[*sessionWait]struct{}{}
		h.waiting[session] = set
	}
	set[w] = struct{}{}
	h.mu.Unlock()
	done := func() {
		h.mu.Lock()
		// w is in the current set: a set is dropped only once empty.
		if cur := h.waiting[session]; cur != nil {
			delete(cur, w)
			if len(cur) == 0 {
				delete(h.waiting, session)
			}
		}
		h.mu.Unlock()
		cancel(nil)
	}
	// The session may have gone between the dispatcher's check and now.
	if _, ok := h.s.store.Get(datamodel.SessionClass, session); !ok {
		done()
		return nil, nil, datamodel.ErrSessionInvalid(session)
	}
	return ctx, done, nil
}

// filter parses a subscription list, caching the result.
func (h *eventHub) filter(classes []string) *events.Filter {
	key := strings.Join(classes, "\x00")
	if f, ok := h.filters.Load(key); ok {
		return f.(*events.Filter)
	}
	f := events.ParseFilter(classes, nil)
	if h.nfilter.Load() < maxCachedFilters {
		if _, loaded := h.filters.LoadOrStore(key, f); !loaded {
			h.nfilter.Add(1)
		}
	}
	return f
}

// waitError maps the errors of Buffer.Wait to XenAPI failures.
func waitError(ctx context.Context, err error) error {
	if errors.Is(err, events.ErrLost) {
		return datamodel.ErrEventsLost()
	}
	var de *datamodel.Error
	if errors.As(err, &de) {
		return de
	}
	if c := context.Cause(ctx); c != nil {
		return c
	}
	return err
}

// waitDuration converts event.from's float seconds, as xapi does: values it
// cannot use mean 24 h.
func waitDuration(seconds float64) time.Duration {
	if math.IsNaN(seconds) || seconds < 0 || seconds > maxEventWait.Seconds() {
		return maxEventWait
	}
	return time.Duration(seconds * float64(time.Second))
}

// eventMessages implements the explicit messages of class event.
type eventMessages struct {
	UnimplementedEventMessages
	s *Server
}

func (m *eventMessages) hub() (*eventHub, error) {
	h := m.s.eventHub()
	if h == nil {
		return nil, internalf("event system not running")
	}
	return h, nil
}

// from is event.from: it returns {events, valid_ref_counts, token}.
func (m *eventMessages) From(ctx context.Context, call *Call, classes []string, token string, timeout float64) (any, error) {
	h, err := m.hub()
	if err != nil {
		return nil, err
	}
	f := h.filter(classes)
	var from uint64
	if token == "" {
		// The beginning: every matching object as an add, with a token for
		// exactly that state.
		idx, entries := h.s.store.ListConsistent(h.buf.Classes())
		var evs []events.Event
		for _, c := range h.buf.Classes() {
			if !f.MatchClass(c) {
				continue
			}
			for _, e := range entries[c] {
				if f.Match(c, e.Ref) {
					evs = append(evs, events.Event{Index: idx, Class: c, Ref: e.Ref, Kind: events.Add, Obj: e.Obj})
				}
			}
		}
		if len(evs) > 0 {
			return batchResult(evs, idx, h.buf.Classes(), countsOf(h.buf.Classes(), entries)), nil
		}
		from = idx
	} else if from, err = events.ParseToken(token); err != nil {
		return nil, datamodel.ErrEventFromTokenParseFailure(token)
	} else if h.beyondHistory(from) {
		return nil, datamodel.ErrEventsLost()
	}
	wctx, done, err := h.watchSession(ctx, string(call.Session))
	if err != nil {
		return nil, err
	}
	defer done()
	b, err := h.buf.Wait(wctx, f, from, waitDuration(timeout))
	if err != nil {
		return nil, waitError(wctx, err)
	}
	return batchResult(b.Events, b.Token, h.buf.Classes(), b.Counts), nil
}

// beyondHistory reports a token that no host of the pool has reached: on the
// leader (which has applied everything committed before its term) a token
// beyond the commit index cannot come from this pool's history — a client of
// an earlier incarnation of the pool, or a made-up token. xapi would wait for
// its generation to get there and echo the token meanwhile, so the client
// would silently miss every change up to it; it gets EVENTS_LOST instead and
// re-reads everything. A follower cannot tell (it may be behind the leader
// that gave the token): there the token waits, as does one between the
// leader's applied and commit indexes.
func (h *eventHub) beyondHistory(from uint64) bool {
	if from <= h.buf.Current() || !h.s.store.IsLeader() {
		return false
	}
	return from > h.s.store.Raft().CommitIndex()
}

// batchResult writes event.from's struct.
func batchResult(evs []events.Event, token uint64, classes []*datamodel.Class, counts []int32) ResultFunc {
	return func(w datamodel.Writer) {
		w.BeginStruct()
		w.Field("events")
		writeEvents(w, evs, "0.0")
		w.Field("valid_ref_counts")
		w.BeginStruct()
		for i, c := range classes {
			w.Member(c.Lower)
			w.Int32(counts[i])
		}
		w.EndStruct()
		w.Field("token")
		w.String(events.FormatToken(token))
		w.EndStruct()
	}
}

// writeEvents writes event records; del events carry no snapshot.
func writeEvents(w datamodel.Writer, evs []events.Event, timestamp string) {
	w.BeginArray()
	var idBuf [20]byte
	for i := range evs {
		e := &evs[i]
		w.BeginStruct()
		w.Field("id")
		w.String(string(strconv.AppendUint(idBuf[:0], e.Index, 10)))
		w.Field("timestamp")
		w.String(timestamp)
		w.Field("class")
		w.String(e.Class.Lower)
		w.Field("operation")
		w.String(e.Kind.String())
		w.Field("ref")
		w.String(e.Ref)
		if e.Kind != events.Del && e.Obj != nil {
			w.Field("snapshot")
			e.Obj.WriteRecord(w, false)
		}
		w.EndStruct()
	}
	w.EndArray()
}

// Register is event.register: it adds subscriptions to the session's queue
// (created at the current point of history); they concern changes from now on.
func (m *eventMessages) Register(ctx context.Context, call *Call, classes []string) error {
	h, err := m.hub()
	if err != nil {
		return err
	}
	ref := string(call.Session)
	h.mu.Lock()
	q := h.legacy[ref]
	if q == nil {
		q = h.buf.NewQueue(nil)
		h.legacy[ref] = q
	}
	h.mu.Unlock()
	q.Register(classes)
	return nil
}

// Unregister is event.unregister: it removes subscriptions (the unread events
// only they matched are dropped).
func (m *eventMessages) Unregister(ctx context.Context, call *Call, classes []string) error {
	h, err := m.hub()
	if err != nil {
		return err
	}
	h.mu.Lock()
	q := h.legacy[string(call.Session)]
	h.mu.Unlock()
	if q != nil {
		q.Unregister(classes)
	}
	return nil
}

// Next is event.next: it blocks until the session's queue has events and
// returns them (coalesced per object, like event.from). EVENTS_LOST means a
// change of a registered class was evicted from the event buffer before it was
// read; the queue then continues from the current point.
func (m *eventMessages) Next(ctx context.Context, call *Call) (any, error) {
	evs, err := m.nextEvents(ctx, call)
	if err != nil {
		return nil, err
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10) + "."
	return ResultFunc(func(w datamodel.Writer) { writeEvents(w, evs, ts) }), nil
}

func (m *eventMessages) nextEvents(ctx context.Context, call *Call) ([]events.Event, error) {
	h, err := m.hub()
	if err != nil {
		return nil, err
	}
	ref := string(call.Session)
	h.mu.Lock()
	q := h.legacy[ref]
	h.mu.Unlock()
	if q == nil {
		return nil, datamodel.ErrSessionNotRegistered(ref)
	}
	wctx, done, err := h.watchSession(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer done()
	evs, err := q.Next(wctx)
	if err != nil {
		return nil, waitError(wctx, err)
	}
	return evs, nil
}

// GetCurrentID is event.get_current_id: the index of the last applied entry.
func (m *eventMessages) GetCurrentID(ctx context.Context, call *Call) (int64, error) {
	h, err := m.hub()
	if err != nil {
		return 0, err
	}
	return int64(h.buf.Current()), nil
}

// Inject is event.inject: it makes a mod event for the object through a no-op
// write (so it is replicated and has a raft index) and returns the token just
// before that write, so the next event.from with it sees the mod.
func (m *eventMessages) Inject(ctx context.Context, call *Call, class, ref string) (string, error) {
	c, ok := datamodel.ClassByName(class)
	if !ok {
		c, ok = datamodel.ClassByLower(class)
	}
	if !ok || !c.InDatabase {
		return "", datamodel.ErrHandleInvalid(class, ref)
	}
	o, ok := m.s.store.Get(c, ref)
	if !ok {
		return "", datamodel.ErrHandleInvalid(class, ref)
	}
	op, err := touchOp(c, ref, o)
	if err != nil {
		return "", err
	}
	idx, err := m.s.store.Apply(ctx, op)
	if err != nil {
		return "", err
	}
	return events.FormatToken(idx - 1), nil
}

// touchOp returns a write that changes nothing but still makes a mod: it
// re-sets the uuid (which never changes) or, without one, removes an absent
// map key, or re-sets the first field.
func touchOp(c *datamodel.Class, ref string, o datamodel.Object) (store.Op, error) {
	if c.UUIDField >= 0 {
		return store.Set(c, ref, "uuid", o.Field(c.UUIDField))
	}
	for _, f := range c.Fields {
		if f.Type.Kind == datamodel.KindMap && f.Type.Key != nil && f.Type.Key.Kind == datamodel.KindString {
			return store.MapRemove(c, ref, f.Name, "\x00xapi-go:event.inject")
		}
	}
	if len(c.Fields) == 0 {
		return store.Op{}, internalf("class %s has no field to touch", c.Name)
	}
	return store.Set(c, ref, c.Fields[0].Name, o.Field(0))
}
