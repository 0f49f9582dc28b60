package events

import (
	"strings"

	"github.com/xapi-go/xapi-go/datamodel"
)

// Filter selects the objects a subscription is about: whole classes, single
// objects, or everything. The zero Filter matches nothing. A Filter is
// immutable once built.
type Filter struct {
	all     bool
	classes map[*datamodel.Class]struct{}
	refs    map[*datamodel.Class]map[string]struct{}
	list    []*datamodel.Class // classes touched (when not all)
}

// ClassLookup resolves the class part of a subscription (already lower-cased)
// to a class with events, or reports false.
type ClassLookup func(lower string) (*datamodel.Class, bool)

// EventClass is the default ClassLookup: a class of the model (by lower-case
// name) that has events.
func EventClass(lower string) (*datamodel.Class, bool) {
	c, ok := datamodel.ClassByLower(lower)
	if !ok || !c.Events {
		return nil, false
	}
	return c, true
}

// ParseFilter builds a filter from xapi subscriptions: "*" (everything),
// "<class>" or "<class>/<ref>". The class part is case-insensitive; the ref
// part is matched exactly. Unknown classes and classes without events are
// ignored, as xapi does. A nil lookup means EventClass.
func ParseFilter(specs []string, lookup ClassLookup) *Filter {
	if lookup == nil {
		lookup = EventClass
	}
	f := &Filter{}
	for _, s := range specs {
		if s == "*" {
			f.all = true
			continue
		}
		cls, ref, hasRef := strings.Cut(s, "/")
		c, ok := lookup(strings.ToLower(cls))
		if !ok {
			continue
		}
		if !hasRef {
			if f.classes == nil {
				f.classes = map[*datamodel.Class]struct{}{}
			}
			f.classes[c] = struct{}{}
			continue
		}
		if f.refs == nil {
			f.refs = map[*datamodel.Class]map[string]struct{}{}
		}
		m := f.refs[c]
		if m == nil {
			m = map[string]struct{}{}
			f.refs[c] = m
		}
		m[ref] = struct{}{}
	}
	f.list = f.classList()
	return f
}

// All reports whether the filter matches every class.
func (f *Filter) All() bool { return f != nil && f.all }

// Empty reports whether the filter can match nothing.
func (f *Filter) Empty() bool {
	return f == nil || (!f.all && len(f.classes) == 0 && len(f.refs) == 0)
}

// MatchClass reports whether some object of class c may match.
func (f *Filter) MatchClass(c *datamodel.Class) bool {
	if f == nil {
		return false
	}
	if f.all {
		return true
	}
	if _, ok := f.classes[c]; ok {
		return true
	}
	_, ok := f.refs[c]
	return ok
}

// Match reports whether object ref of class c matches.
func (f *Filter) Match(c *datamodel.Class, ref string) bool {
	if f == nil {
		return false
	}
	if f.all {
		return true
	}
	if _, ok := f.classes[c]; ok {
		return true
	}
	if m, ok := f.refs[c]; ok {
		_, ok = m[ref]
		return ok
	}
	return false
}

// classList lists the classes the filter touches (not meaningful when All).
func (f *Filter) classList() []*datamodel.Class {
	out := make([]*datamodel.Class, 0, len(f.classes)+len(f.refs))
	for c := range f.classes {
		out = append(out, c)
	}
	for c := range f.refs {
		if _, dup := f.classes[c]; !dup {
			out = append(out, c)
		}
	}
	return out
}
