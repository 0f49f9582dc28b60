package xapi

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/internal/where"
	"github.com/xapi-go/xapi-go/rpc"
	"github.com/xapi-go/xapi-go/store"
)

// Class-specific implicit create and destroy, replacing the generic store
// write (registered in impl.go).
var (
	createHooks  = map[*datamodel.Class]func(s *Server, ctx context.Context, call *Call, rec datamodel.Object) (string, error){}
	destroyHooks = map[*datamodel.Class]func(s *Server, ctx context.Context, call *Call, ref string) error{}
)

// runImplicit executes a generated (implicit) message generically over the store.
func (s *Server) runImplicit(ctx context.Context, call *Call, args []any) (any, error) {
	m := call.Method
	c := m.Class
	switch m.Implicit {
	case "get_record":
		o, err := s.lookup(c, args[0])
		if err != nil {
			return nil, err
		}
		return ResultFunc(func(w datamodel.Writer) { o.WriteRecord(w, false) }), nil
	case "get_by_uuid":
		uuid := args[0].(string)
		ref, ok := s.store.RefByUUID(c, uuid)
		if !ok {
			return nil, datamodel.ErrUUIDInvalid(c.Name, uuid)
		}
		return refResult(ref), nil
	case "get_by_name_label":
		return refsResult(s.store.RefsByName(c, args[0].(string))), nil
	case "getter":
		o, err := s.lookup(c, args[0])
		if err != nil {
			return nil, err
		}
		return o.Field(m.Field.Index), nil
	case "setter":
		return nil, s.setField(ctx, c, args[0], m.Field.Name, args[1])
	case "add":
		return nil, s.setAdd(ctx, c, args[0], m.Field.Name, args[1])
	case "remove":
		return nil, s.setRemove(ctx, c, args[0], m.Field.Name, args[1])
	case "add_to":
		return nil, s.mapAdd(ctx, c, args[0], m.Field.Name, args[1], args[2])
	case "remove_from":
		return nil, s.mapRemove(ctx, c, args[0], m.Field.Name, args[1])
	case "create":
		rec, ok := args[0].(datamodel.Object)
		if !ok {
			return nil, datamodel.ErrFieldTypeError("args")
		}
		create := s.createObject
		if h := createHooks[c]; h != nil {
			create = func(ctx context.Context, o datamodel.Object) (string, error) { return h(s, ctx, call, o) }
		}
		ref, err := create(ctx, rec)
		if err != nil {
			return nil, err
		}
		return refResult(ref), nil
	case "destroy":
		ref, err := s.existing(c, args[0])
		if err != nil {
			return nil, err
		}
		if h := destroyHooks[c]; h != nil {
			return nil, h(s, ctx, call, ref)
		}
		return nil, s.apply(ctx, store.Delete(c, ref))
	case "get_all":
		return refsResult(s.refs(c)), nil
	case "get_all_records":
		entries := s.store.List(c)
		return recordsResult(entries), nil
	case "get_all_where", "get_all_records_where":
		expr := args[0].(string)
		entries, err := s.where(c, expr)
		if err != nil {
			return nil, err
		}
		if m.Implicit == "get_all_where" {
			refs := make([]string, len(entries))
			for i, e := range entries {
				refs[i] = e.Ref
			}
			return refsResult(refs), nil
		}
		return recordsResult(entries), nil
	}
	return nil, internalf("implicit message kind %q not handled", m.Implicit)
}

// recordsPerPart is how many records one goroutine encodes at a time when a
// large map of records is encoded in parallel.
const recordsPerPart = 256

// parallelWriter is implemented by the rpc encoders (see rpc.XMLWriter.Parallel).
type parallelWriter interface {
	Parallel(n int, fn func(i int, w rpc.Writer))
}

func recordsResult(entries []store.Entry) ResultFunc {
	return func(w datamodel.Writer) {
		w.BeginStruct()
		writeRecords := func(w datamodel.Writer, entries []store.Entry) {
			for _, e := range entries {
				w.Member(e.Ref)
				e.Obj.WriteRecord(w, false)
			}
		}
		if pw, ok := w.(parallelWriter); ok && len(entries) >= 2*recordsPerPart {
			n := (len(entries) + recordsPerPart - 1) / recordsPerPart
			pw.Parallel(n, func(i int, sw rpc.Writer) {
				writeRecords(sw, entries[i*recordsPerPart:min(len(entries), (i+1)*recordsPerPart)])
			})
		} else {
			writeRecords(w, entries)
		}
		w.EndStruct()
	}
}

func (s *Server) refs(c *datamodel.Class) []string {
	entries := s.store.List(c)
	refs := make([]string, len(entries))
	for i, e := range entries {
		refs[i] = e.Ref
	}
	return refs
}

// refString extracts the string of a typed ref argument.
func refString(v any) string {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.String {
		return rv.String()
	}
	return ""
}

// keyString renders a typed map key in its wire form.
func keyString(v any) string {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return rv.String()
	case reflect.Int64, reflect.Int:
		return strconv.FormatInt(rv.Int(), 10)
	}
	return ""
}

// lookup returns the object a ref argument names, or HANDLE_INVALID.
func (s *Server) lookup(c *datamodel.Class, ref any) (datamodel.Object, error) {
	r := refString(ref)
	o, ok := s.store.Get(c, r)
	if !ok {
		// host-local sessions (slave_local_login) are readable like the others
		if c == datamodel.SessionClass {
			if rec, ok := s.localSession(r); ok {
				return rec, nil
			}
		}
		return nil, datamodel.ErrHandleInvalid(c.Name, r)
	}
	return o, nil
}

func (s *Server) existing(c *datamodel.Class, ref any) (string, error) {
	r := refString(ref)
	if _, ok := s.store.Get(c, r); !ok {
		return "", datamodel.ErrHandleInvalid(c.Name, r)
	}
	return r, nil
}

// apply writes ops through the store.
//
// A write ends when the server closes even if ctx does not (writes that must
// outlive their call use a context without cancel): a member cut off from
// its master would otherwise hold up the shutdown for the apply timeout.
func (s *Server) apply(ctx context.Context, ops ...store.Op) error {
	if len(ops) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if s.ctx != nil {
		defer context.AfterFunc(s.ctx, cancel)()
	}
	_, err := s.store.Apply(ctx, ops...)
	return err
}

// applyAsLeader applies the leader's own bookkeeping: only while this host
// leads, never forwarded (a late copy could undo a newer leader's view).
func (s *Server) applyAsLeader(ctx context.Context, ops ...store.Op) error {
	_, err := s.store.ApplyHere(ctx, ops...)
	return err
}

// createObject stores a new record with a fresh ref and uuid.
func (s *Server) createObject(ctx context.Context, o datamodel.Object) (string, error) {
	c := o.ClassInfo()
	if c.UUIDField >= 0 {
		if err := o.SetField(c.UUIDField, datamodel.NewUUID()); err != nil {
			return "", err
		}
	}
	ref := datamodel.NewRef()
	if err := s.apply(ctx, store.Create(ref, o)); err != nil {
		return "", err
	}
	return ref, nil
}

// where evaluates a get_all_records_where expression over a class.
func (s *Server) where(c *datamodel.Class, expr string) ([]store.Entry, error) {
	e, err := where.Parse(expr)
	if err != nil {
		return nil, datamodel.ErrInvalidValue(expr, err.Error())
	}
	for _, col := range where.Columns(e) {
		if col == "_ref" {
			continue
		}
		if _, ok := c.FieldByDBName(col); !ok {
			return nil, datamodel.ErrInvalidValue(expr, "unknown field "+col)
		}
	}
	var out []store.Entry
	row := &dbRow{c: c}
	for _, en := range s.store.List(c) {
		row.ref, row.o = en.Ref, en.Obj
		ok, err := e.Eval(row)
		if err != nil {
			var uc *where.UnknownColumnError
			if errors.As(err, &uc) {
				return nil, datamodel.ErrInvalidValue(expr, "unknown field "+uc.Column)
			}
			return nil, err
		}
		if ok {
			out = append(out, en)
		}
	}
	return out, nil
}

type dbRow struct {
	c   *datamodel.Class
	ref string
	o   datamodel.Object
}

func (r *dbRow) Column(name string) (string, bool) {
	if name == "_ref" {
		return r.ref, true
	}
	f, ok := r.c.FieldByDBName(name)
	if !ok {
		return "", false
	}
	return dbString(r.o.Field(f.Index)), true
}

// dbString renders a value as xapi's database does, for where-expressions:
// bools true/false, ints decimal, floats %0.18g, dates compact, sets and maps as
// S-expressions.
func dbString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'g', 18, 64)
	case time.Time:
		return datamodel.FormatDateTime(x)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return rv.String()
	case reflect.Slice:
		var b strings.Builder
		b.WriteByte('(')
		for i := 0; i < rv.Len(); i++ {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(sexpString(dbString(rv.Index(i).Interface())))
		}
		b.WriteByte(')')
		return b.String()
	case reflect.Map:
		keys := rv.MapKeys()
		ks := make([]string, len(keys))
		for i, k := range keys {
			ks[i] = dbString(k.Interface())
		}
		idx := make([]int, len(keys))
		for i := range idx {
			idx[i] = i
		}
		sortIdx(idx, ks)
		var b strings.Builder
		b.WriteByte('(')
		for n, i := range idx {
			if n > 0 {
				b.WriteByte(' ')
			}
			b.WriteString("(" + sexpString(ks[i]) + " " + sexpString(dbString(rv.MapIndex(keys[i]).Interface())) + ")")
		}
		b.WriteByte(')')
		return b.String()
	case reflect.Pointer:
		if rv.IsNil() {
			return ""
		}
		return dbString(rv.Elem().Interface())
	}
	return ""
}

func sexpString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func sortIdx(idx []int, keys []string) {
	for i := 1; i < len(idx); i++ {
		for j := i; j > 0 && keys[idx[j]] < keys[idx[j-1]]; j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
}

func createOp(ref string, o datamodel.Object) store.Op { return store.Create(ref, o) }
