package datamodel

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Writer is a streaming encoder of XenAPI values. The XML-RPC and JSON-RPC
// encoders of package rpc implement it, as does the JSON encoder used for the
// replicated log (see MarshalJSONValue).
type Writer interface {
	String(s string)
	Int(v int64)
	Int32(v int32)
	Float(v float64)
	Bool(v bool)
	DateTime(t time.Time)
	BeginArray()
	EndArray()
	BeginStruct()
	Member(name string)
	// Field is Member for a name that needs no escaping (a wire field name
	// of the model: ASCII letters, digits, '_' and '-'), written as is.
	Field(name string)
	EndStruct()
}

// Object is a record of a class stored in the database. Records are treated as
// immutable once stored: writers Clone, change the clone, and store it.
type Object interface {
	ClassInfo() *Class
	Clone() Object
	// Field returns the typed value of field i (see Class.Fields).
	Field(i int) any
	// SetField stores a typed value (as returned by the field's codec) in field i.
	SetField(i int, v any) error
	// WriteRecord writes the record as a struct keyed by wire field names;
	// internal-only fields are included only when internal is true.
	WriteRecord(w Writer, internal bool)
}

// Kind is the shape of a type.
type Kind int

// Type kinds, as in package schema.
const (
	KindString Kind = iota
	KindInt
	KindFloat
	KindBool
	KindDateTime
	KindRef
	KindEnum
	KindSet
	KindMap
	KindRecord
	KindOption
)

// Type describes a XenAPI type at run time, with its codec.
type Type struct {
	Name string // canonical schema spelling, e.g. "map<ref:VIF,string>"
	Kind Kind
	Of   string // class for ref/record, enum name for enum
	Key  *Type
	Elem *Type
	// Write encodes a typed value.
	Write func(w Writer, v any)
	// Decode converts a wire value (string, int64, float64, bool, time.Time,
	// []any, map[string]any, nil) into the typed Go value.
	Decode func(v any) (any, error)
	// Zero is the value used when a record field has no default.
	Zero func() any
}

// Class describes one class of the model.
type Class struct {
	Name       string
	Lower      string // lower-case name used by events
	InDatabase bool
	Persist    bool
	Events     bool
	GetAll     bool
	Fields     []*Field
	UUIDField  int // index of "uuid", or -1
	NameField  int // index of "name_label", or -1
	New        func() Object
	fieldIndex map[string]int
}

// Field describes one field.
type Field struct {
	Index       int
	Name        string // wire name
	DBName      string // column name in where-expressions
	Type        *Type
	Qualifier   string
	Internal    bool
	Persist     bool
	GetRole     string
	SetRole     string
	MapKeyRoles []MapKeyRole
	// CtorRequired fields must be given to an implicit create.
	CtorRequired bool
	// HasDefault tells whether the schema gives a default.
	HasDefault bool
}

// MapKeyRole gives a map key (or prefix ending in '*') its own writer role.
type MapKeyRole struct {
	Key  string
	Role string
}

// FieldByName returns the field with that wire name.
func (c *Class) FieldByName(name string) (*Field, bool) {
	i, ok := c.fieldIndex[name]
	if !ok {
		return nil, false
	}
	return c.Fields[i], true
}

// FieldByDBName finds a field by its database column name (name__label) or wire name.
func (c *Class) FieldByDBName(name string) (*Field, bool) {
	for _, f := range c.Fields {
		if f.DBName == name {
			return f, true
		}
	}
	return c.FieldByName(name)
}

func (c *Class) init() {
	c.fieldIndex = make(map[string]int, len(c.Fields))
	c.UUIDField, c.NameField = -1, -1
	for i, f := range c.Fields {
		f.Index = i
		c.fieldIndex[f.Name] = i
		switch f.Name {
		case "uuid":
			c.UUIDField = i
		case "name_label":
			c.NameField = i
		}
	}
}

var (
	classByName  = map[string]*Class{}
	classByLower = map[string]*Class{}
	typeByName   = map[string]*Type{}
)

func registerClass(c *Class) {
	c.init()
	classByName[c.Name] = c
	classByLower[c.Lower] = c
}

func registerType(t *Type) *Type {
	typeByName[t.Name] = t
	return t
}

// ClassByName looks up a class by its exact name ("VM", "host").
func ClassByName(name string) (*Class, bool) { c, ok := classByName[name]; return c, ok }

// ClassByLower looks up a class by its lower-case name ("vm", "host").
func ClassByLower(name string) (*Class, bool) {
	c, ok := classByLower[strings.ToLower(name)]
	return c, ok
}

// TypeByName returns the runtime type for a canonical schema type string.
func TypeByName(name string) (*Type, bool) { t, ok := typeByName[name]; return t, ok }

// AllClasses lists every class in model order.
func AllClasses() []*Class { return classes }

// UUIDOf returns the uuid of a record, or "".
func UUIDOf(o Object) string {
	c := o.ClassInfo()
	if c.UUIDField < 0 {
		return ""
	}
	s, _ := o.Field(c.UUIDField).(string)
	return s
}

// NameLabelOf returns the name_label of a record, or "".
func NameLabelOf(o Object) string {
	c := o.ClassInfo()
	if c.NameField < 0 {
		return ""
	}
	s, _ := o.Field(c.NameField).(string)
	return s
}

// NullRef is the null reference.
const NullRef = "OpaqueRef:NULL"

// NewUUID returns a random (version 4) UUID.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(&b)
}

// NewRef returns a fresh random OpaqueRef (a version 4 UUID: 122 random bits).
func NewRef() string { return "OpaqueRef:" + NewUUID() }

// NewSecretRef returns an OpaqueRef of 128 random bits: 16 random bytes in
// the 8-4-4-4-12 layout of a UUID, without fixing version or variant bits.
// Session refs are bearer credentials and use it.
func NewSecretRef() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "OpaqueRef:" + formatUUID(&b)
}

func formatUUID(b *[16]byte) string {
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// LocalAccountClass is an internal class of the replicated database, not
// part of the XenAPI model: the pool's credentials, one record per account
// (root and the local users of docs/rbac.md) with a salted password hash.
// It has no messages and no events, is not in AllClasses, and is found only
// by ClassByName (the store's lookup), not by ClassByLower (event classes).
var LocalAccountClass = &Class{Name: "xapi_go_local_account", Lower: "xapi_go_local_account", Persist: true,
	New: func() Object { return &LocalAccountRecord{} }}

// LocalAccountRecord is a record of LocalAccountClass.
type LocalAccountRecord struct {
	Name string // name: "root" or the user name
	Role string // role: the user's role ("" for root)
	Hash string // hash: the salted password hash
}

// ClassInfo implements Object.
func (r *LocalAccountRecord) ClassInfo() *Class { return LocalAccountClass }

// Clone implements Object (a shallow copy).
func (r *LocalAccountRecord) Clone() Object { c := *r; return &c }

// Field implements Object.
func (r *LocalAccountRecord) Field(i int) any {
	switch i {
	case 0:
		return r.Name
	case 1:
		return r.Role
	case 2:
		return r.Hash
	}
	return nil
}

// SetField implements Object.
func (r *LocalAccountRecord) SetField(i int, v any) error {
	x, ok := v.(string)
	if !ok || i < 0 || i > 2 {
		return &DecodeError{Expected: "string", Got: describe(v), Field: strconv.Itoa(i)}
	}
	switch i {
	case 0:
		r.Name = x
	case 1:
		r.Role = x
	case 2:
		r.Hash = x
	}
	return nil
}

// WriteRecord implements Object; the hash is written only with internal
// fields (the log and snapshots).
func (r *LocalAccountRecord) WriteRecord(w Writer, internal bool) {
	w.BeginStruct()
	w.Field("name")
	writestring(w, r.Name)
	w.Field("role")
	writestring(w, r.Role)
	if internal {
		w.Field("hash")
		writestring(w, r.Hash)
	}
	w.EndStruct()
}

func init() {
	LocalAccountClass.Fields = []*Field{
		{Name: "name", DBName: "name", Type: Tstring, Qualifier: "StaticRO", Internal: true, Persist: true},
		{Name: "role", DBName: "role", Type: Tstring, Qualifier: "DynamicRO", Internal: true, Persist: true},
		{Name: "hash", DBName: "hash", Type: Tstring, Qualifier: "DynamicRO", Internal: true, Persist: true},
	}
	LocalAccountClass.init()
	classByName[LocalAccountClass.Name] = LocalAccountClass
}

// Error is a XenAPI failure: a code and its string parameters, as carried in
// ErrorDescription.
type Error struct {
	Code   string
	Params []string
}

func (e *Error) Error() string {
	if len(e.Params) == 0 {
		return e.Code
	}
	return e.Code + ": " + strings.Join(e.Params, ", ")
}

// NewError builds an Error.
func NewError(code string, params ...string) *Error { return &Error{Code: code, Params: params} }

// DecodeError reports a wire value that does not fit the expected type.
type DecodeError struct {
	Expected string // schema type
	Got      string // a short rendering of what was received
	Field    string // for records: the missing or bad field
}

func (e *DecodeError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("field %s: expected %s, got %s", e.Field, e.Expected, e.Got)
	}
	return fmt.Sprintf("expected %s, got %s", e.Expected, e.Got)
}

func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "nil"
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case time.Time:
		return FormatDateTime(v)
	case []any:
		return "array"
	case map[string]any:
		return "struct"
	}
	return fmt.Sprintf("%T", v)
}

func decodeErr(expected string, v any) error {
	return &DecodeError{Expected: expected, Got: describe(v)}
}

// FormatDateTime renders t as xapi does: yyyymmddTHH:MM:SSZ in UTC.
func FormatDateTime(t time.Time) string {
	t = t.UTC()
	var b [18]byte
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	put := func(at, n, width int) {
		for i := width - 1; i >= 0; i-- {
			b[at+i] = byte('0' + n%10)
			n /= 10
		}
	}
	put(0, y, 4)
	put(4, int(mo), 2)
	put(6, d, 2)
	b[8] = 'T'
	put(9, h, 2)
	b[11] = ':'
	put(12, mi, 2)
	b[14] = ':'
	put(15, s, 2)
	b[17] = 'Z'
	return string(b[:])
}

// ParseDateTime accepts xapi's compact form (with or without Z or an offset)
// and RFC 3339; a missing zone means UTC.
func ParseDateTime(s string) (time.Time, error) {
	layouts := []string{
		"20060102T15:04:05Z07:00", "20060102T15:04:05Z", "20060102T15:04:05",
		"20060102T150405Z", "20060102T150405",
		time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04:05Z",
	}
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("bad datetime %q", s)
}

// Epoch is the zero datetime of the model (19700101T00:00:00Z).
var Epoch = time.Unix(0, 0).UTC()

// ---- scalar codecs used by generated code ----

// DecodeString decodes a string value.
func DecodeString(v any) (string, error) {
	if s, ok := v.(string); ok {
		return s, nil
	}
	return "", decodeErr("string", v)
}

// DecodeInt decodes an int64 leniently (numbers or decimal strings).
func DecodeInt(v any) (int64, error) {
	switch v := v.(type) {
	case int64:
		return v, nil
	case int:
		return int64(v), nil
	case float64:
		if v == float64(int64(v)) {
			return int64(v), nil
		}
	case string:
		if i, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			return i, nil
		}
	}
	return 0, decodeErr("int", v)
}

// DecodeFloat decodes a float leniently (numbers or strings).
func DecodeFloat(v any) (float64, error) {
	switch v := v.(type) {
	case float64:
		return v, nil
	case int64:
		return float64(v), nil
	case int:
		return float64(v), nil
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			return f, nil
		}
	}
	return 0, decodeErr("float", v)
}

// DecodeBool decodes a boolean.
func DecodeBool(v any) (bool, error) {
	if b, ok := v.(bool); ok {
		return b, nil
	}
	return false, decodeErr("bool", v)
}

// DecodeDateTime decodes a datetime from a time or a string.
func DecodeDateTime(v any) (time.Time, error) {
	switch v := v.(type) {
	case time.Time:
		return v.UTC(), nil
	case string:
		if t, err := ParseDateTime(v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, decodeErr("datetime", v)
}

// DecodeEnum matches a string case-insensitively against the enum's values.
func DecodeEnum(enum string, values []string, v any) (string, error) {
	s, ok := v.(string)
	if ok {
		for _, val := range values {
			if val == s {
				return val, nil
			}
		}
		for _, val := range values {
			if strings.EqualFold(val, s) {
				return val, nil
			}
		}
	}
	return "", decodeErr("enum:"+enum, v)
}

// DecodeArray checks for a set value.
func DecodeArray(expected string, v any) ([]any, error) {
	switch v := v.(type) {
	case []any:
		return v, nil
	case nil:
		return nil, nil
	}
	return nil, decodeErr(expected, v)
}

// DecodeStruct checks for a map or record value.
func DecodeStruct(expected string, v any) (map[string]any, error) {
	switch v := v.(type) {
	case map[string]any:
		return v, nil
	case nil:
		return map[string]any{}, nil
	}
	return nil, decodeErr(expected, v)
}

// SortedIntKeys returns the keys of an int-keyed map in order.
func SortedIntKeys[V any](m map[int64]V) []int64 {
	keys := make([]int64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}

// SortedMapsWriter is implemented by writers that want map entries in key
// order (stable bytes for the log and snapshots); wire encoders need not.
type SortedMapsWriter interface {
	SortedMaps() bool
}

func sortedMaps(w Writer) bool {
	sw, ok := w.(SortedMapsWriter)
	return ok && sw.SortedMaps()
}

// IsUUID reports whether s has the form of a UUID (8-4-4-4-12 hex digits).
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range []byte(s) {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
