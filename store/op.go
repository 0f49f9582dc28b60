package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/xapi-go/xapi-go/datamodel"
)

// OpKind is the kind of a write operation.
type OpKind uint8

// Operation kinds. The numbers are part of the log format: never renumber.
const (
	// OpCreate adds a record (Value is datamodel.MarshalRecord of it).
	OpCreate OpKind = iota + 1
	// OpSet replaces the value of one field.
	OpSet
	// OpDelete removes a record.
	OpDelete
	// OpMapAdd adds a key to a map field; the key must be absent.
	OpMapAdd
	// OpMapPut adds or replaces a key of a map field.
	OpMapPut
	// OpMapRemove removes a key from a map field; an absent key is fine.
	OpMapRemove
	// OpSetAdd adds an element to a set field unless it is already there.
	OpSetAdd
	// OpSetRemove removes an element from a set field; an absent one is fine.
	OpSetRemove
	// OpCheck changes nothing: it fails the whole batch with CHECK_FAILED
	// unless the field of the record currently holds Value (compare-and-set).
	OpCheck
)

var opKindNames = [...]string{
	OpCreate: "create", OpSet: "set", OpDelete: "delete", OpMapAdd: "map_add",
	OpMapPut: "map_put", OpMapRemove: "map_remove", OpSetAdd: "set_add", OpSetRemove: "set_remove",
	OpCheck: "check",
}

func (k OpKind) String() string {
	if int(k) < len(opKindNames) && opKindNames[k] != "" {
		return opKindNames[k]
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

// Op is one generic write operation on one record. Values are carried in their
// JSON wire form (datamodel.MarshalValue of the relevant type), so the log
// format does not depend on the Go types of the generated records.
type Op struct {
	Kind  OpKind `json:"k"`
	Class string `json:"c"`
	Ref   string `json:"r"`
	Field string `json:"f,omitempty"`
	// Key is the map key in its wire (string) form (MapAdd, MapPut, MapRemove).
	Key string `json:"key,omitempty"`
	// Value is MarshalValue of the field type (Set), of the element type
	// (SetAdd, SetRemove), of the map value type (MapAdd, MapPut), or
	// MarshalRecord of the record (Create).
	Value json.RawMessage `json:"v,omitempty"`
}

// fieldOf finds a field of c by wire name. It does not rely on the class having
// been registered (test classes are not).
func fieldOf(c *datamodel.Class, name string) (*datamodel.Field, bool) {
	if f, ok := c.FieldByName(name); ok {
		return f, true
	}
	for _, f := range c.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return nil, false
}

func internalError(format string, args ...any) *datamodel.Error {
	return datamodel.NewError("INTERNAL_ERROR", fmt.Sprintf(format, args...))
}

// coerce checks that v has the Go type of t's values, converting between
// types of the same kind (int → int64, string → an enum type).
func coerce(t *datamodel.Type, v any) (any, error) {
	if t.Zero == nil || v == nil {
		return v, nil
	}
	z := t.Zero()
	if z == nil {
		return v, nil
	}
	want, got := reflect.TypeOf(z), reflect.TypeOf(v)
	if got == want {
		return v, nil
	}
	if got.ConvertibleTo(want) && kindClass(got.Kind()) == kindClass(want.Kind()) && kindClass(want.Kind()) != reflect.Invalid {
		return reflect.ValueOf(v).Convert(want).Interface(), nil
	}
	return nil, internalError("a %s value must be a %v, not %T", t.Name, want, v)
}

// kindClass groups the reflect kinds between which coerce converts.
func kindClass(k reflect.Kind) reflect.Kind {
	switch k {
	case reflect.String:
		return reflect.String
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return reflect.Int
	case reflect.Float32, reflect.Float64:
		return reflect.Float64
	case reflect.Map, reflect.Slice:
		return k
	}
	return reflect.Invalid
}

// marshalValue encodes v with t after checking its Go type, turning a panic of
// the generated encoder into an error too.
func marshalValue(t *datamodel.Type, v any) (b []byte, err error) {
	if v, err = coerce(t, v); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			err = internalError("cannot encode %T as %s: %v", v, t.Name, r)
		}
	}()
	return datamodel.MarshalValue(t, v), nil
}

func opField(c *datamodel.Class, field string, kinds ...datamodel.Kind) (*datamodel.Field, error) {
	if c == nil {
		return nil, internalError("nil class")
	}
	f, ok := fieldOf(c, field)
	if !ok {
		return nil, internalError("class %s has no field %s", c.Name, field)
	}
	if len(kinds) > 0 && f.Type.Kind != kinds[0] {
		return nil, internalError("field %s.%s is a %s", c.Name, field, f.Type.Name)
	}
	return f, nil
}

// Create returns the operation that stores o under ref.
func Create(ref string, o datamodel.Object) Op {
	return Op{Kind: OpCreate, Class: o.ClassInfo().Name, Ref: ref, Value: datamodel.MarshalRecord(o)}
}

// Delete returns the operation that removes the record ref of class c.
func Delete(c *datamodel.Class, ref string) Op {
	return Op{Kind: OpDelete, Class: c.Name, Ref: ref}
}

// Set returns the operation that sets field of ref to the typed value v.
func Set(c *datamodel.Class, ref, field string, v any) (Op, error) {
	f, err := opField(c, field)
	if err != nil {
		return Op{}, err
	}
	b, err := marshalValue(f.Type, v)
	if err != nil {
		return Op{}, err
	}
	return Op{Kind: OpSet, Class: c.Name, Ref: ref, Field: field, Value: b}, nil
}

func mapOp(kind OpKind, c *datamodel.Class, ref, field, key string, v any) (Op, error) {
	f, err := opField(c, field, datamodel.KindMap)
	if err != nil {
		return Op{}, err
	}
	if _, err := f.Type.Key.Decode(key); err != nil {
		return Op{}, internalError("bad key %q for %s.%s: %v", key, c.Name, field, err)
	}
	op := Op{Kind: kind, Class: c.Name, Ref: ref, Field: field, Key: key}
	if kind != OpMapRemove {
		if op.Value, err = marshalValue(f.Type.Elem, v); err != nil {
			return Op{}, err
		}
	}
	return op, nil
}

// MapAdd returns the operation that adds key (in wire form) with the typed value
// v to the map field of ref. Applying it fails with MAP_DUPLICATE_KEY
// [class, field, uuid, key] if the key is already present.
func MapAdd(c *datamodel.Class, ref, field, key string, v any) (Op, error) {
	return mapOp(OpMapAdd, c, ref, field, key, v)
}

// MapPut returns the operation that adds or replaces key of the map field of ref.
func MapPut(c *datamodel.Class, ref, field, key string, v any) (Op, error) {
	return mapOp(OpMapPut, c, ref, field, key, v)
}

// MapRemove returns the operation that removes key from the map field of ref;
// an absent key is not an error.
func MapRemove(c *datamodel.Class, ref, field, key string) (Op, error) {
	return mapOp(OpMapRemove, c, ref, field, key, nil)
}

func setOp(kind OpKind, c *datamodel.Class, ref, field string, v any) (Op, error) {
	f, err := opField(c, field, datamodel.KindSet)
	if err != nil {
		return Op{}, err
	}
	b, err := marshalValue(f.Type.Elem, v)
	if err != nil {
		return Op{}, err
	}
	return Op{Kind: kind, Class: c.Name, Ref: ref, Field: field, Value: b}, nil
}

// SetAdd returns the operation that adds the typed element v to the set field
// of ref (nothing happens if it is already there).
func SetAdd(c *datamodel.Class, ref, field string, v any) (Op, error) {
	return setOp(OpSetAdd, c, ref, field, v)
}

// SetRemove returns the operation that removes the typed element v from the set
// field of ref (nothing happens if it is absent).
func SetRemove(c *datamodel.Class, ref, field string, v any) (Op, error) {
	return setOp(OpSetRemove, c, ref, field, v)
}

// Check returns the operation that fails its batch with CHECK_FAILED unless
// field of ref holds the typed value v when the batch is applied. Put it
// first in a batch to make the batch a compare-and-set.
func Check(c *datamodel.Class, ref, field string, v any) (Op, error) {
	op, err := Set(c, ref, field, v)
	op.Kind = OpCheck
	return op, err
}

// CodeCheckFailed is the code of the error a batch fails with when one of its
// Check operations does not hold. It is internal: callers turn it into the
// XenAPI error that fits (e.g. OTHER_OPERATION_IN_PROGRESS).
const CodeCheckFailed = "CHECK_FAILED"

// IsCheckFailed reports whether err is a failed Check.
func IsCheckFailed(err error) bool {
	var de *datamodel.Error
	return errors.As(err, &de) && de.Code == CodeCheckFailed
}

// ---- log entry encoding ----

// Each raft log entry is one command: a type byte followed by its payload.
// A type byte with flagIgnoreUnknown set may be skipped by a replica that does
// not know it (forward compatibility); any other unknown type is fatal.
const (
	cmdBatch          byte = 1 // payload: JSON array of Op
	cmdBatchID        byte = 2 // payload: 16-byte batch id, then JSON array of Op
	flagIgnoreUnknown byte = 0x80
	batchIDLen             = 16
)

// batchID identifies a batch that may be submitted more than once (a write
// forwarded again after its leader died): replicas remember the outcome of
// recent ids, and the leader does not propose an id that was applied.
type batchID [batchIDLen]byte

func encodeBatchID(id batchID, ops []Op) ([]byte, error) {
	b, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("encode batch: %w", err)
	}
	out := make([]byte, 0, len(b)+1+batchIDLen)
	out = append(out, cmdBatchID)
	out = append(out, id[:]...)
	return append(out, b...), nil
}

// splitBatch returns the id (if any) and the JSON ops of an encoded batch.
func splitBatch(data []byte) (id batchID, hasID bool, ops []byte, err error) {
	switch {
	case len(data) > 0 && data[0] == cmdBatch:
		return id, false, data[1:], nil
	case len(data) > batchIDLen && data[0] == cmdBatchID:
		copy(id[:], data[1:1+batchIDLen])
		return id, true, data[1+batchIDLen:], nil
	}
	return id, false, nil, errors.New("not a batch")
}

func encodeBatch(ops []Op) ([]byte, error) {
	b, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("encode batch: %w", err)
	}
	out := make([]byte, 0, len(b)+1)
	out = append(out, cmdBatch)
	return append(out, b...), nil
}

// ---- generic map and set edits on typed values ----

// goType returns the Go type of the values of field f.
func goType(f *datamodel.Field, cur any) reflect.Type {
	if cur != nil {
		return reflect.TypeOf(cur)
	}
	if f.Type.Zero != nil {
		if z := f.Type.Zero(); z != nil {
			return reflect.TypeOf(z)
		}
	}
	return nil
}

func convertTo(v any, t reflect.Type) (reflect.Value, bool) {
	if v == nil {
		return reflect.Zero(t), true
	}
	rv := reflect.ValueOf(v)
	if rv.Type() == t {
		return rv, true
	}
	if rv.Type().ConvertibleTo(t) {
		return rv.Convert(t), true
	}
	return reflect.Value{}, false
}

func valuesEqual(a, b reflect.Value) bool {
	if a.Type().Comparable() {
		return a.Equal(b)
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// editMap returns a copy of the map value cur with key set to val (put) or
// removed (val invalid). present tells whether the key was in cur.
func editMap(t reflect.Type, cur any, key any, val any, remove bool) (out any, present bool, ok bool) {
	if t == nil || t.Kind() != reflect.Map {
		return nil, false, false
	}
	k, ok := convertTo(key, t.Key())
	if !ok {
		return nil, false, false
	}
	old := reflect.ValueOf(cur)
	n := 0
	if old.IsValid() && !old.IsNil() {
		n = old.Len()
		present = old.MapIndex(k).IsValid()
	}
	if remove && !present {
		return cur, false, true
	}
	m := reflect.MakeMapWithSize(t, n+1)
	if n > 0 {
		it := old.MapRange()
		for it.Next() {
			m.SetMapIndex(it.Key(), it.Value())
		}
	}
	if remove {
		m.SetMapIndex(k, reflect.Value{})
	} else {
		v, ok := convertTo(val, t.Elem())
		if !ok {
			return nil, present, false
		}
		m.SetMapIndex(k, v)
	}
	return m.Interface(), present, true
}

// editSet returns a copy of the slice value cur with elem added or removed
// (set semantics). changed is false when nothing needed doing.
func editSet(t reflect.Type, cur any, elem any, remove bool) (out any, changed bool, ok bool) {
	if t == nil || t.Kind() != reflect.Slice {
		return nil, false, false
	}
	e, ok := convertTo(elem, t.Elem())
	if !ok {
		return nil, false, false
	}
	old := reflect.ValueOf(cur)
	n := 0
	if old.IsValid() && !old.IsNil() {
		n = old.Len()
	}
	at := -1
	for i := 0; i < n; i++ {
		if valuesEqual(old.Index(i), e) {
			at = i
			break
		}
	}
	switch {
	case remove && at < 0, !remove && at >= 0:
		return cur, false, true
	case remove:
		s := reflect.MakeSlice(t, 0, n-1)
		s = reflect.AppendSlice(s, old.Slice(0, at))
		s = reflect.AppendSlice(s, old.Slice(at+1, n))
		return s.Interface(), true, true
	default:
		s := reflect.MakeSlice(t, 0, n+1)
		if n > 0 {
			s = reflect.AppendSlice(s, old)
		}
		s = reflect.Append(s, e)
		return s.Interface(), true, true
	}
}

// decodeBatch checks and decodes an encoded batch (one that came from another
// host): a malformed entry must never reach the log, where it would stop
// every replica.
func decodeBatch(data []byte) ([]Op, error) {
	_, _, raw, err := splitBatch(data)
	if err != nil {
		return nil, err
	}
	var ops []Op
	if err := json.Unmarshal(raw, &ops); err != nil {
		return nil, err
	}
	for i := range ops {
		if ops[i].Kind < OpCreate || ops[i].Kind > OpCheck {
			return nil, fmt.Errorf("operation %d: unknown kind %d", i, ops[i].Kind)
		}
	}
	return ops, nil
}
