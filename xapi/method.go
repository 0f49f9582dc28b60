package xapi

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/xapi-go/xapi-go/datamodel"
)

// Method is one client-callable message of the model (a row of methodTable).
type Method struct {
	Name         string // wire name, Class.message
	Class        *datamodel.Class
	Message      string
	Role         string // minimum role, "+client-cert", or "local-root-only"
	Session      bool
	Async        bool
	Hidden       bool
	PoolInternal bool
	State        string // "" (published), deprecated, removed, prototyped
	Result       *datamodel.Type
	Params       []Param // without session_id
	Errors       []string
	Implicit     string // implicit kind (schema.Impl*) or ""
	Field        *datamodel.Field
	// Call runs an explicit message with typed arguments.
	Call func(ctx context.Context, impl *Impl, c *Call, a []any) (any, error)

	required   int    // params without defaults
	permission string // lower-case wire name, RBAC permission
}

// Param is one parameter of a message.
type Param struct {
	Name    string
	Type    *datamodel.Type
	Default string // JSON of the default as on the wire; "" when required
	def     any
}

type methodSet struct {
	byName map[string]*Method
	alt    map[string]*Method // Class_message alternative wire names
	list   []*Method
}

func buildMethods() (*methodSet, error) {
	ms := &methodSet{byName: map[string]*Method{}, alt: map[string]*Method{}}
	for _, m := range methodTable() {
		m.permission = strings.ToLower(m.Name)
		for i := range m.Params {
			p := &m.Params[i]
			if p.Default == "" {
				m.required++
				continue
			}
			v, err := datamodel.UnmarshalValue(p.Type, []byte(p.Default))
			if err != nil {
				return nil, fmt.Errorf("%s: default of %s: %w", m.Name, p.Name, err)
			}
			p.def = v
		}
		// explicit messages that edit a map field carry the field for per-key RBAC
		if m.Implicit == "" && m.Field == nil {
			for _, pre := range []string{"add_to_", "remove_from_"} {
				if name, ok := strings.CutPrefix(m.Message, pre); ok {
					if f, ok := m.Class.FieldByName(name); ok && f.Type.Kind == datamodel.KindMap {
						m.Field = f
					}
				}
			}
		}
		ms.byName[m.Name] = m
		ms.alt[m.Class.Name+"_"+m.Message] = m
		ms.list = append(ms.list, m)
	}
	return ms, nil
}

func (ms *methodSet) lookup(name string) *Method {
	if m, ok := ms.byName[name]; ok {
		return m
	}
	return ms.alt[name]
}

// ResultFunc is a result that writes itself; implicit messages that build
// untyped results (sets of refs, maps of records) return one.
type ResultFunc func(w datamodel.Writer)

func refResult(ref string) ResultFunc { return func(w datamodel.Writer) { w.String(ref) } }

func refsResult(refs []string) ResultFunc {
	return func(w datamodel.Writer) {
		w.BeginArray()
		for _, r := range refs {
			w.String(r)
		}
		w.EndArray()
	}
}

// HasMessage reports whether the model has the client-callable message name
// (e.g. "message.get_all_records"), implicit or explicit.
func HasMessage(name string) bool { return messageNames()[name] }

// messageNames is the set of the model's message names, built once.
var messageNames = sync.OnceValue(func() map[string]bool {
	names := map[string]bool{}
	for _, m := range methodTable() {
		names[m.Name] = true
	}
	return names
})
