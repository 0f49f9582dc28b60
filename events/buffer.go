package events

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
)

// DefaultMaxChanges is the default retention of a Buffer (see the package
// documentation for its memory cost).
const DefaultMaxChanges = 1 << 16

// initialRing is the starting size of the ring; it doubles up to MaxChanges,
// so an idle buffer costs little.
const initialRing = 1024

// ErrLost is returned for a token older than the retained history (xapi:
// EVENTS_LOST): the client must re-read everything.
var ErrLost = errors.New("events: token older than the retained history")

// Kind is what happened to an object.
type Kind uint8

// Kinds of change, ordered as event.from lists them.
const (
	Add Kind = iota + 1
	Mod
	Del
)

func (k Kind) String() string {
	switch k {
	case Add:
		return "add"
	case Mod:
		return "mod"
	case Del:
		return "del"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Change is the effect of one applied raft entry on one object, as published
// by the store. Obj is the new record (ignored for Del) and must not be
// modified afterwards.
type Change struct {
	Class *datamodel.Class
	Ref   string
	Kind  Kind
	Obj   datamodel.Object
}

// Event is one coalesced event: the object's latest record (nil for Del) and
// the raft index of its last change.
type Event struct {
	Index uint64
	Class *datamodel.Class
	Ref   string
	Kind  Kind
	Obj   datamodel.Object
}

// Batch is the answer to a collection: the events after the caller's token,
// the token to continue from, and the number of objects of each class (in the
// order of Buffer.Classes) as of that token.
type Batch struct {
	Events []Event
	Token  uint64
	Counts []int32
}

// Config configures a Buffer.
type Config struct {
	// MaxChanges bounds the retained changes; 0 means DefaultMaxChanges.
	MaxChanges int
	// Classes are the classes whose objects are counted (Batch.Counts); nil
	// means every class of the model that has events.
	Classes []*datamodel.Class
}

// entry is one retained change. seq numbers entries from 0 for the life of the
// buffer; the entry of seq s lives in ring[s%len(ring)].
type entry struct {
	index      uint64
	class      *datamodel.Class
	ref        string
	obj        datamodel.Object // nil for Del and once superseded
	prev       int64            // seq of the object's previous retained change, or -1
	kind       Kind
	superseded bool // a later change of the same object is retained
}

type objKey struct {
	class *datamodel.Class
	ref   string
}

type waiter struct {
	ch chan struct{} // one slot: a pending wake-up
}

func (w *waiter) wake() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

type classWaiters struct {
	set   map[*waiter]struct{}
	stamp uint64 // last Publish that woke this set
}

// Buffer retains recent changes and serves event collections and long polls.
// All methods are safe for concurrent use.
type Buffer struct {
	mu sync.Mutex

	ring   []entry // grows by doubling up to max
	max    int
	base   int64 // oldest retained seq
	next   int64 // seq of the next change
	latest map[objKey]int64
	floor  uint64 // every change after floor is retained
	base0  uint64 // Anchor/Reset index: older tokens are lost for every filter
	// classFloor is, per class, the index of the newest evicted change of
	// that class (at most one entry per class): a filter that does not
	// cover a class is not concerned by the eviction of its changes.
	classFloor map[*datamodel.Class]uint64
	current    uint64 // index of the last published entry
	anchored   bool
	pubs       uint64 // Publish counter (wake-up dedupe stamp)
	classes    []*datamodel.Class
	classIdx   map[*datamodel.Class]int
	counts     []int32
	byClass    map[*datamodel.Class]*classWaiters
	allWait    map[*waiter]struct{}
	nWaiters   int
	wokenLast  int // waiters woken by the last Publish (tests, stats)
}

// New returns an empty buffer. Until Anchor is called, every token is lost.
func New(cfg Config) *Buffer {
	n := cfg.MaxChanges
	if n <= 0 {
		n = DefaultMaxChanges
	}
	cls := cfg.Classes
	if cls == nil {
		for _, c := range datamodel.AllClasses() {
			if c.Events {
				cls = append(cls, c)
			}
		}
	}
	b := &Buffer{
		ring:       make([]entry, min(n, initialRing)),
		max:        n,
		latest:     make(map[objKey]int64),
		classFloor: make(map[*datamodel.Class]uint64),
		classes:    slices.Clone(cls),
		classIdx:   make(map[*datamodel.Class]int, len(cls)),
		counts:     make([]int32, len(cls)),
		byClass:    make(map[*datamodel.Class]*classWaiters),
		allWait:    make(map[*waiter]struct{}),
	}
	for i, c := range b.classes {
		b.classIdx[c] = i
	}
	return b
}

// Classes lists the counted classes, in the order of Batch.Counts.
func (b *Buffer) Classes() []*datamodel.Class { return b.classes }

// Anchor declares that every change after index will be published and gives
// the number of objects of each class (Config.Classes order) as of index. It
// is called once, after subscribing Publish to the store: changes published
// before Anchor with an index above index are kept and counted.
func (b *Buffer) Anchor(index uint64, counts []int32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	copy(b.counts, counts)
	for s := b.base; s < b.next; s++ {
		if e := &b.ring[s%int64(len(b.ring))]; e.index > index {
			b.count(e.class, e.kind, 1)
		}
	}
	b.floor, b.base0 = index, index
	clear(b.classFloor)
	b.current = max(b.current, index)
	b.anchored = true
	for b.next-b.base > int64(b.max) {
		b.evict()
	}
	b.wakeAll()
}

// Reset forgets all history (the state was replaced by a snapshot restore at
// index): waiters with an older token get ErrLost.
func (b *Buffer) Reset(index uint64, counts []int32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.ring)
	clear(b.latest)
	b.base = b.next
	copy(b.counts, counts)
	clear(b.classFloor)
	b.floor, b.base0, b.current, b.anchored = index, index, index, true
	b.wakeAll()
}

// Current is the index of the last published entry: the token of "now".
func (b *Buffer) Current() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.current
}

// Floor is the oldest token that is still answered for every filter (the
// filter "*").
func (b *Buffer) Floor() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.floor
}

// FloorFor is the oldest token that is still answered for filter f: every
// change of a class f covers after it is retained. It is Floor for "*" and
// may be older for a filter of some classes.
func (b *Buffer) FloorFor(f *Filter) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.floorFor(f)
}

func (b *Buffer) floorFor(f *Filter) uint64 {
	if f.All() {
		return b.floor
	}
	fl := b.base0
	if f != nil {
		for _, c := range f.list {
			fl = max(fl, b.classFloor[c])
		}
	}
	return fl
}

// Waiters is the number of waiting long polls.
func (b *Buffer) Waiters() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.nWaiters
}

func (b *Buffer) count(c *datamodel.Class, k Kind, sign int32) {
	i, ok := b.classIdx[c]
	if !ok {
		return
	}
	switch k {
	case Add:
		b.counts[i] += sign
	case Del:
		b.counts[i] -= sign
	}
}

// Publish records the changes of the applied entry index and wakes the
// waiters they concern. It is called in index order; an empty change set just
// advances the current index. Publish does no encoding and no allocation
// beyond the per-object index; changes must not be modified afterwards.
func (b *Buffer) Publish(index uint64, changes []Change) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.anchored && index <= b.current {
		return // already covered (a replay around Anchor)
	}
	b.current = max(b.current, index)
	if len(changes) == 0 {
		return
	}
	b.pubs++
	b.wokenLast = 0
	for i := range changes {
		ch := &changes[i]
		// Before Anchor nothing is evicted (the changes must still be counted);
		// Anchor trims.
		if b.anchored && b.next-b.base >= int64(b.max) {
			b.evict()
		}
		if b.next-b.base == int64(len(b.ring)) {
			b.grow()
		}
		n := int64(len(b.ring))
		k := objKey{ch.Class, ch.Ref}
		prev := int64(-1)
		if p, ok := b.latest[k]; ok {
			pe := &b.ring[p%n]
			pe.superseded, pe.obj = true, nil
			prev = p
		}
		e := &b.ring[b.next%n]
		*e = entry{index: index, class: ch.Class, ref: ch.Ref, kind: ch.Kind, prev: prev}
		if ch.Kind != Del {
			e.obj = ch.Obj
		}
		b.latest[k] = b.next
		b.next++
		if b.anchored {
			b.count(ch.Class, ch.Kind, 1)
		}
		if cw := b.byClass[ch.Class]; cw != nil && cw.stamp != b.pubs {
			cw.stamp = b.pubs
			for w := range cw.set {
				w.wake()
			}
			b.wokenLast += len(cw.set)
		}
	}
	for w := range b.allWait {
		w.wake()
	}
	b.wokenLast += len(b.allWait)
}

// grow doubles the ring (up to max, unless it is already that large, which
// happens only before Anchor), keeping every entry at seq%len.
func (b *Buffer) grow() {
	old := b.ring
	size := 2 * len(old)
	if len(old) < b.max {
		size = min(size, b.max)
	}
	b.ring = make([]entry, size)
	for s := b.base; s < b.next; s++ {
		b.ring[s%int64(len(b.ring))] = old[s%int64(len(old))]
	}
}

// evict drops the oldest retained change.
func (b *Buffer) evict() {
	n := int64(len(b.ring))
	e := &b.ring[b.base%n]
	if !e.superseded {
		k := objKey{e.class, e.ref}
		if b.latest[k] == b.base {
			delete(b.latest, k)
		}
	}
	b.floor = max(b.floor, e.index)
	if e.index > b.classFloor[e.class] {
		b.classFloor[e.class] = e.index
	}
	*e = entry{}
	b.base++
}

func (b *Buffer) wakeAll() {
	for w := range b.allWait {
		w.wake()
	}
	for _, cw := range b.byClass {
		for w := range cw.set {
			w.wake()
		}
	}
}

// Collect returns the coalesced events matching f after token from, without
// waiting. It gives ErrLost when a change f covers, made after from, is no
// longer retained (see FloorFor): changes of other classes evicted since from
// do not matter.
func (b *Buffer) Collect(f *Filter, from uint64) (Batch, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.collect(f, from, true)
}

// collect gathers events under b.mu. Counts are copied when withCounts or
// when there are events.
func (b *Buffer) collect(f *Filter, from uint64, withCounts bool) (Batch, error) {
	if !b.anchored || from < b.floorFor(f) {
		return Batch{}, ErrLost
	}
	// Every change of f's classes after from is retained (the evicted ones
	// after from are of other classes), so gather misses none of them.
	out := Batch{Token: max(from, b.current)}
	if from < b.current && !f.Empty() {
		out.Events = b.gather(f, from)
	}
	if withCounts || len(out.Events) > 0 {
		out.Counts = slices.Clone(b.counts)
	}
	return out, nil
}

func (b *Buffer) gather(f *Filter, from uint64) []Event {
	n := int64(len(b.ring))
	// first retained seq whose index is after from
	start := b.base + int64(sort.Search(int(b.next-b.base), func(i int) bool {
		return b.ring[(b.base+int64(i))%n].index > from
	}))
	var out []Event
	for s := start; s < b.next; s++ {
		e := &b.ring[s%n]
		if e.superseded || !f.Match(e.class, e.ref) {
			continue
		}
		first := e
		for p := e.prev; p >= start; p = first.prev {
			first = &b.ring[p%n]
		}
		before, after := first.kind != Add, e.kind != Del
		var k Kind
		switch {
		case !before && after:
			k = Add
		case before && after:
			k = Mod
		case before && !after:
			k = Del
		default:
			continue // created and deleted within the window
		}
		out = append(out, Event{Index: e.index, Class: e.class, Ref: e.ref, Kind: k, Obj: e.obj})
	}
	byKind := func(x, y Event) int { return int(x.Kind) - int(y.Kind) }
	if !slices.IsSortedFunc(out, byKind) {
		slices.SortStableFunc(out, byKind)
	}
	return out
}

// Wait is Collect that blocks, up to timeout, until at least one event
// matches. On timeout it returns no events and the current token. It returns
// context.Cause(ctx) when ctx ends first. A negative timeout is treated as 0
// (no wait).
func (b *Buffer) Wait(ctx context.Context, f *Filter, from uint64, timeout time.Duration) (Batch, error) {
	b.mu.Lock()
	out, err := b.collect(f, from, false)
	if err != nil || len(out.Events) > 0 || timeout <= 0 {
		if err == nil && out.Counts == nil {
			out.Counts = slices.Clone(b.counts)
		}
		b.mu.Unlock()
		return out, err
	}
	from = out.Token // nothing matched up to here: skip it next time
	w := &waiter{ch: make(chan struct{}, 1)}
	b.register(f, w)
	b.mu.Unlock()

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case <-w.ch:
		case <-timer.C:
			b.mu.Lock()
			b.unregister(f, w)
			out, err = b.collect(f, from, true)
			b.mu.Unlock()
			return out, err
		case <-ctx.Done():
			b.mu.Lock()
			b.unregister(f, w)
			b.mu.Unlock()
			return Batch{}, context.Cause(ctx)
		}
		b.mu.Lock()
		out, err = b.collect(f, from, false)
		if err != nil || len(out.Events) > 0 {
			b.unregister(f, w)
			b.mu.Unlock()
			return out, err
		}
		from = out.Token
		b.mu.Unlock()
	}
}

func (b *Buffer) register(f *Filter, w *waiter) {
	b.nWaiters++
	if f.All() {
		b.allWait[w] = struct{}{}
		return
	}
	for _, c := range f.list {
		cw := b.byClass[c]
		if cw == nil {
			cw = &classWaiters{set: map[*waiter]struct{}{}}
			b.byClass[c] = cw
		}
		cw.set[w] = struct{}{}
	}
}

func (b *Buffer) unregister(f *Filter, w *waiter) {
	b.nWaiters--
	if f.All() {
		delete(b.allWait, w)
		return
	}
	for _, c := range f.list {
		if cw := b.byClass[c]; cw != nil {
			delete(cw.set, w) // the (few) per-class sets are kept for reuse
		}
	}
}
