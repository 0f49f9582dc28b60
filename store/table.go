package store

import (
	"slices"

	"github.com/xapi-go/xapi-go/datamodel"
)

// Entry is one record of a table with its ref.
type Entry struct {
	Ref string
	Obj datamodel.Object
}

// table holds the records of one class with their indexes. Records are kept in
// a dense slice (so List is one copy) with a ref → position map; deletion swaps
// the last entry into the hole. A table is only changed by the FSM applier,
// under fsm.mu held for writing.
type table struct {
	class   *datamodel.Class
	entries []Entry
	pos     map[string]int
	byUUID  map[string]string
	byName  map[string]map[string]struct{}
}

func newTable(c *datamodel.Class, capacity int) *table {
	return &table{
		class:   c,
		entries: make([]Entry, 0, capacity),
		pos:     make(map[string]int, capacity),
		byUUID:  make(map[string]string, capacity),
		byName:  make(map[string]map[string]struct{}),
	}
}

func (t *table) get(ref string) (datamodel.Object, bool) {
	i, ok := t.pos[ref]
	if !ok {
		return nil, false
	}
	return t.entries[i].Obj, true
}

func uuidOf(c *datamodel.Class, o datamodel.Object) string {
	if o == nil || c.UUIDField < 0 {
		return ""
	}
	s, _ := o.Field(c.UUIDField).(string)
	return s
}

func nameOf(c *datamodel.Class, o datamodel.Object) (string, bool) {
	if o == nil || c.NameField < 0 {
		return "", false
	}
	s, ok := o.Field(c.NameField).(string)
	return s, ok
}

func (t *table) index(ref string, o datamodel.Object) {
	if u := uuidOf(t.class, o); u != "" {
		t.byUUID[u] = ref
	}
	if n, ok := nameOf(t.class, o); ok {
		set := t.byName[n]
		if set == nil {
			set = make(map[string]struct{}, 1)
			t.byName[n] = set
		}
		set[ref] = struct{}{}
	}
}

func (t *table) unindex(ref string, o datamodel.Object) {
	if u := uuidOf(t.class, o); u != "" && t.byUUID[u] == ref {
		delete(t.byUUID, u)
	}
	if n, ok := nameOf(t.class, o); ok {
		if set := t.byName[n]; set != nil {
			delete(set, ref)
			if len(set) == 0 {
				delete(t.byName, n)
			}
		}
	}
}

func (t *table) add(ref string, o datamodel.Object) {
	t.pos[ref] = len(t.entries)
	t.entries = append(t.entries, Entry{Ref: ref, Obj: o})
	t.index(ref, o)
}

func (t *table) replace(ref string, old, o datamodel.Object) {
	t.entries[t.pos[ref]].Obj = o
	c := t.class
	on, _ := nameOf(c, old)
	nn, _ := nameOf(c, o)
	if uuidOf(c, old) != uuidOf(c, o) || on != nn {
		t.unindex(ref, old)
		t.index(ref, o)
	}
}

func (t *table) remove(ref string, old datamodel.Object) {
	i, ok := t.pos[ref]
	if !ok {
		return
	}
	last := len(t.entries) - 1
	if i != last {
		t.entries[i] = t.entries[last]
		t.pos[t.entries[i].Ref] = i
	}
	t.entries[last] = Entry{}
	t.entries = t.entries[:last]
	delete(t.pos, ref)
	t.unindex(ref, old)
}

func (t *table) refsByName(name string) []string {
	set := t.byName[name]
	if len(set) == 0 {
		return nil
	}
	out := make([]string, 0, len(set))
	for r := range set {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}
