package store

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"github.com/xapi-go/xapi-go/datamodel"
)

// ChangeKind tells what happened to a record.
type ChangeKind uint8

// Change kinds.
const (
	Add ChangeKind = iota + 1
	Mod
	Del
)

func (k ChangeKind) String() string {
	switch k {
	case Add:
		return "add"
	case Mod:
		return "mod"
	case Del:
		return "del"
	}
	return fmt.Sprintf("ChangeKind(%d)", uint8(k))
}

// Change is the effect of one applied entry on one record.
type Change struct {
	Class *datamodel.Class
	Ref   string
	Kind  ChangeKind
	// Obj is the new value, or the last value for Del. It is immutable.
	Obj datamodel.Object
}

// ChangeSet is what one applied raft entry did. A record touched several times
// by one batch appears once, with its final state; a record created and
// deleted by the same batch does not appear. A failed batch yields an empty
// change set (the index still advances).
type ChangeSet struct {
	Index   uint64
	Changes []Change
	// Reset is true when the whole state was replaced by a snapshot restore
	// (a replica that fell too far behind); Changes is then empty and
	// subscribers must treat everything they derived from earlier change sets
	// as stale (events: EVENTS_LOST).
	Reset bool
}

type subscriber struct {
	fn func(*ChangeSet)
}

// fsm is the raft state machine. Apply, Restore and Snapshot are called by
// raft from one goroutine, so the applier is the only writer of the tables:
// it reads them without locking and takes mu for writing only to install a
// batch that it has already validated. Readers take mu for reading.
type fsm struct {
	log         *slog.Logger
	lookupClass func(string) (*datamodel.Class, bool)

	mu     sync.RWMutex      // guards tables and their contents
	tables map[string]*table // by class name
	// tablesIndex is the raft index of the last entry whose changes are in
	// tables (guarded by mu), for consistent reads.
	tablesIndex uint64

	applied atomic.Uint64

	// batches remembers the outcome of the last batches with an id
	batches recentBatches

	waitMu sync.Mutex    // guards waitCh
	waitCh chan struct{} // closed and cleared after each applied entry; nil if nobody waits

	subMu sync.Mutex                    // serialises changes of subs
	subs  atomic.Pointer[[]*subscriber] // copy on write
}

func newFSM(log *slog.Logger) *fsm {
	return &fsm{log: log, lookupClass: datamodel.ClassByName, tables: map[string]*table{}}
}

var _ raft.FSM = (*fsm)(nil)

// Apply applies one committed log entry. It returns nil or the
// *datamodel.Error that made the batch fail.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand || len(l.Data) == 0 {
		f.finish(&ChangeSet{Index: l.Index})
		return nil
	}
	typ := l.Data[0]
	switch typ &^ flagIgnoreUnknown {
	case cmdBatch, cmdBatchID:
		id, hasID, raw, err := splitBatch(l.Data)
		var ops []Op
		if err == nil {
			err = json.Unmarshal(raw, &ops)
		}
		if err != nil {
			// Corruption or a newer log format: carrying on would diverge.
			panic(fmt.Sprintf("store: cannot decode log entry %d: %v", l.Index, err))
		}
		cs := &ChangeSet{Index: l.Index}
		var derr *datamodel.Error
		if prev, dup := f.batches.get(id); hasID && dup {
			// the same batch again (proposed twice across a change of
			// leader): it takes effect once
			derr = prev.err
		} else {
			derr = f.applyBatch(ops, cs)
			if hasID {
				f.batches.put(id, batchResult{index: l.Index, err: derr})
			}
		}
		f.finish(cs)
		if derr != nil {
			return derr
		}
		return nil
	default:
		if typ&flagIgnoreUnknown == 0 {
			panic(fmt.Sprintf("store: unknown command type %d in log entry %d", typ, l.Index))
		}
		f.log.Warn("ignoring unknown command", "raft_index", l.Index, "type", typ)
		f.finish(&ChangeSet{Index: l.Index})
		return nil
	}
}

func (f *fsm) finish(cs *ChangeSet) {
	f.applied.Store(cs.Index)
	f.waitMu.Lock()
	if f.waitCh != nil {
		close(f.waitCh)
		f.waitCh = nil
	}
	f.waitMu.Unlock()
	if p := f.subs.Load(); p != nil {
		for _, s := range *p {
			s.fn(cs)
		}
	}
}

// waitApplied waits until the applied index reaches index.
func (f *fsm) waitApplied(ctx context.Context, index uint64) error {
	for {
		f.waitMu.Lock()
		if f.applied.Load() >= index {
			f.waitMu.Unlock()
			return nil
		}
		if f.waitCh == nil {
			f.waitCh = make(chan struct{})
		}
		ch := f.waitCh
		f.waitMu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (f *fsm) subscribe(fn func(*ChangeSet)) func() {
	s := &subscriber{fn: fn}
	f.subMu.Lock()
	defer f.subMu.Unlock()
	var cur []*subscriber
	if p := f.subs.Load(); p != nil {
		cur = *p
	}
	next := append(cur[:len(cur):len(cur)], s)
	f.subs.Store(&next)
	var once sync.Once
	return func() {
		once.Do(func() {
			f.subMu.Lock()
			defer f.subMu.Unlock()
			old := *f.subs.Load()
			next := make([]*subscriber, 0, len(old))
			for _, x := range old {
				if x != s {
					next = append(next, x)
				}
			}
			f.subs.Store(&next)
		})
	}
}

// ---- batch validation and commit ----

type tkey struct{ class, id string }

type pending struct {
	class  *datamodel.Class
	ref    string
	before datamodel.Object // committed value; nil if absent
	after  datamodel.Object // value after the batch so far; nil if deleted
	last   datamodel.Object // last non-nil value (what a Del change carries)
}

// batch is the overlay of a batch being validated over the committed tables.
type batch struct {
	f     *fsm
	order []*pending
	recs  map[tkey]*pending
	uuids map[tkey]string // (class, uuid) → owner ref; "" = freed by this batch
}

func (b *batch) get(c *datamodel.Class, ref string) (datamodel.Object, bool) {
	if p, ok := b.recs[tkey{c.Name, ref}]; ok {
		return p.after, p.after != nil
	}
	if t := b.f.tables[c.Name]; t != nil {
		return t.get(ref)
	}
	return nil, false
}

func (b *batch) uuidOwner(c *datamodel.Class, uuid string) (string, bool) {
	if r, ok := b.uuids[tkey{c.Name, uuid}]; ok {
		return r, r != ""
	}
	if t := b.f.tables[c.Name]; t != nil {
		r, ok := t.byUUID[uuid]
		return r, ok
	}
	return "", false
}

// put records the new value of ref (nil: deleted), checking uuid uniqueness.
func (b *batch) put(c *datamodel.Class, ref string, old, o datamodel.Object) *datamodel.Error {
	ou, nu := uuidOf(c, old), uuidOf(c, o)
	if ou != nu {
		if nu != "" {
			if owner, ok := b.uuidOwner(c, nu); ok && owner != ref {
				return datamodel.NewError("DB_UNIQUENESS_CONSTRAINT_VIOLATION", c.Name, "uuid", nu)
			}
		}
		if ou != "" {
			b.uuids[tkey{c.Name, ou}] = ""
		}
		if nu != "" {
			b.uuids[tkey{c.Name, nu}] = ref
		}
	}
	k := tkey{c.Name, ref}
	p, ok := b.recs[k]
	if !ok {
		p = &pending{class: c, ref: ref, before: old}
		b.recs[k] = p
		b.order = append(b.order, p)
	}
	p.after = o
	if old != nil {
		p.last = old
	}
	return nil
}

func (f *fsm) applyBatch(ops []Op, cs *ChangeSet) *datamodel.Error {
	b := &batch{f: f, recs: make(map[tkey]*pending, len(ops)), uuids: map[tkey]string{}}
	for i := range ops {
		if err := b.apply(&ops[i]); err != nil {
			return err
		}
	}
	cs.Changes = make([]Change, 0, len(b.order))
	for _, p := range b.order {
		switch {
		case p.before == nil && p.after == nil:
		case p.before == nil:
			cs.Changes = append(cs.Changes, Change{Class: p.class, Ref: p.ref, Kind: Add, Obj: p.after})
		case p.after == nil:
			cs.Changes = append(cs.Changes, Change{Class: p.class, Ref: p.ref, Kind: Del, Obj: p.last})
		default:
			cs.Changes = append(cs.Changes, Change{Class: p.class, Ref: p.ref, Kind: Mod, Obj: p.after})
		}
	}
	if len(cs.Changes) == 0 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tablesIndex = cs.Index
	for i := range cs.Changes {
		ch := &cs.Changes[i]
		t := f.tables[ch.Class.Name]
		if t == nil {
			t = newTable(ch.Class, 16)
			f.tables[ch.Class.Name] = t
		}
		switch ch.Kind {
		case Add:
			t.add(ch.Ref, ch.Obj)
		case Mod:
			old, _ := t.get(ch.Ref)
			t.replace(ch.Ref, old, ch.Obj)
		case Del:
			old, _ := t.get(ch.Ref)
			t.remove(ch.Ref, old)
		}
	}
	return nil
}

func (b *batch) apply(op *Op) *datamodel.Error {
	c, ok := b.f.lookupClass(op.Class)
	if !ok {
		return internalError("unknown class %q", op.Class)
	}
	cur, exists := b.get(c, op.Ref)
	if op.Kind == OpCreate {
		if exists {
			return datamodel.NewError("DB_UNIQUENESS_CONSTRAINT_VIOLATION", c.Name, "_ref", op.Ref)
		}
		o, err := datamodel.UnmarshalRecord(c, op.Value)
		if err != nil {
			return internalError("create %s %s: %v", c.Name, op.Ref, err)
		}
		return b.put(c, op.Ref, nil, o)
	}
	switch op.Kind {
	case OpSet, OpDelete, OpMapAdd, OpMapPut, OpMapRemove, OpSetAdd, OpSetRemove, OpCheck:
	default:
		return internalError("unknown operation %d", uint8(op.Kind))
	}
	var f *datamodel.Field
	if op.Kind != OpDelete {
		if f, ok = fieldOf(c, op.Field); !ok {
			return internalError("class %s has no field %q", c.Name, op.Field)
		}
	}
	if !exists {
		return datamodel.NewError("HANDLE_INVALID", c.Name, op.Ref)
	}
	if op.Kind == OpDelete {
		return b.put(c, op.Ref, cur, nil)
	}
	v, derr := editField(c, f, cur, op)
	if derr != nil {
		return derr
	}
	if op.Kind == OpCheck {
		if have := cur.Field(f.Index); !reflect.DeepEqual(have, v) {
			return datamodel.NewError(CodeCheckFailed, c.Name, op.Ref, f.Name)
		}
		return nil
	}
	o := cur.Clone()
	if err := o.SetField(f.Index, v); err != nil {
		return internalError("set %s.%s: %v", c.Name, f.Name, err)
	}
	return b.put(c, op.Ref, cur, o)
}

// editField computes the new value of field f of cur for a field operation.
func editField(c *datamodel.Class, f *datamodel.Field, cur datamodel.Object, op *Op) (any, *datamodel.Error) {
	decode := func(t *datamodel.Type) (any, *datamodel.Error) {
		if t == nil {
			return nil, internalError("field %s.%s has no element type", c.Name, f.Name)
		}
		v, err := datamodel.UnmarshalValue(t, op.Value)
		if err != nil {
			return nil, internalError("%s %s.%s: %v", op.Kind, c.Name, f.Name, err)
		}
		return v, nil
	}
	if op.Kind == OpSet || op.Kind == OpCheck {
		return decode(f.Type)
	}
	old := cur.Field(f.Index)
	gt := goType(f, old)
	switch op.Kind {
	case OpMapAdd, OpMapPut, OpMapRemove:
		if f.Type.Kind != datamodel.KindMap || f.Type.Key == nil {
			return nil, internalError("%s on %s.%s of type %s", op.Kind, c.Name, f.Name, f.Type.Name)
		}
		key, err := f.Type.Key.Decode(op.Key)
		if err != nil {
			return nil, internalError("%s %s.%s: bad key %q: %v", op.Kind, c.Name, f.Name, op.Key, err)
		}
		var val any
		if op.Kind != OpMapRemove {
			var derr *datamodel.Error
			if val, derr = decode(f.Type.Elem); derr != nil {
				return nil, derr
			}
		}
		out, present, ok := editMap(gt, old, key, val, op.Kind == OpMapRemove)
		if !ok {
			return nil, internalError("%s %s.%s: value does not fit %v", op.Kind, c.Name, f.Name, gt)
		}
		if present && op.Kind == OpMapAdd {
			id := uuidOf(c, cur)
			if id == "" {
				id = op.Ref
			}
			return nil, datamodel.NewError("MAP_DUPLICATE_KEY", c.Name, f.Name, id, op.Key)
		}
		return out, nil
	default: // OpSetAdd, OpSetRemove
		if f.Type.Kind != datamodel.KindSet {
			return nil, internalError("%s on %s.%s of type %s", op.Kind, c.Name, f.Name, f.Type.Name)
		}
		elem, derr := decode(f.Type.Elem)
		if derr != nil {
			return nil, derr
		}
		out, _, ok := editSet(gt, old, elem, op.Kind == OpSetRemove)
		if !ok {
			return nil, internalError("%s %s.%s: value does not fit %v", op.Kind, c.Name, f.Name, gt)
		}
		return out, nil
	}
}

// ---- reads ----

func (f *fsm) get(c *datamodel.Class, ref string) (datamodel.Object, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if t := f.tables[c.Name]; t != nil {
		return t.get(ref)
	}
	return nil, false
}

func (f *fsm) refByUUID(c *datamodel.Class, uuid string) (string, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if t := f.tables[c.Name]; t != nil {
		r, ok := t.byUUID[uuid]
		return r, ok
	}
	return "", false
}

func (f *fsm) refsByName(c *datamodel.Class, name string) []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if t := f.tables[c.Name]; t != nil {
		return t.refsByName(name)
	}
	return nil
}

func (f *fsm) list(c *datamodel.Class) []Entry {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t := f.tables[c.Name]
	if t == nil || len(t.entries) == 0 {
		return nil
	}
	out := make([]Entry, len(t.entries))
	copy(out, t.entries)
	return out
}

func (f *fsm) count(c *datamodel.Class) int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if t := f.tables[c.Name]; t != nil {
		return len(t.entries)
	}
	return 0
}

// listConsistent copies the entries of several classes and the raft index they
// reflect, under one read lock.
func (f *fsm) listConsistent(classes []*datamodel.Class) (uint64, map[*datamodel.Class][]Entry) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[*datamodel.Class][]Entry, len(classes))
	for _, c := range classes {
		if t := f.tables[c.Name]; t != nil && len(t.entries) > 0 {
			out[c] = append([]Entry(nil), t.entries...)
		}
	}
	return f.tablesIndex, out
}

// batchResult is the outcome of a batch with an id.
type batchResult struct {
	index uint64
	err   *datamodel.Error
}

// recentBatchesMax is how many batch ids replicas remember: far more than
// the writes that can be in flight while a leader is replaced.
const recentBatchesMax = 65536

// recentBatches is a bounded map of batch id → outcome, oldest evicted
// first. Every replica derives the same map from the log; it is not in
// snapshots, so a replica restored from one has a shorter memory, which only
// matters for a batch retried across that restore.
type recentBatches struct {
	mu    sync.Mutex
	res   map[batchID]batchResult
	order []batchID
	next  int
}

func (r *recentBatches) get(id batchID) (batchResult, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.res[id]
	return v, ok
}

func (r *recentBatches) put(id batchID, v batchResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.res == nil {
		r.res = make(map[batchID]batchResult)
		r.order = make([]batchID, recentBatchesMax)
	}
	if len(r.res) >= recentBatchesMax {
		delete(r.res, r.order[r.next])
	}
	r.order[r.next] = id
	r.next = (r.next + 1) % recentBatchesMax
	r.res[id] = v
}

// list returns the remembered outcomes, oldest first (for snapshots).
func (r *recentBatches) list() []snapBatch {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]snapBatch, 0, len(r.res))
	n := len(r.order)
	for i := range n {
		id := r.order[(r.next+i)%n]
		if v, ok := r.res[id]; ok {
			b := snapBatch{ID: id, Index: v.index}
			if v.err != nil {
				b.Err = append([]string{v.err.Code}, v.err.Params...)
			}
			out = append(out, b)
		}
	}
	return out
}

// reset replaces the remembered outcomes (snapshot restore).
func (r *recentBatches) reset(bs []snapBatch) {
	r.mu.Lock()
	r.res, r.order, r.next = nil, nil, 0
	r.mu.Unlock()
	for _, b := range bs {
		v := batchResult{index: b.Index}
		if len(b.Err) > 0 {
			v.err = datamodel.NewError(b.Err[0], b.Err[1:]...)
		}
		r.put(b.ID, v)
	}
}
