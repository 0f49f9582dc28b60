package datamodel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// JSONWriter is a compact JSON implementation of Writer. The replicated log and
// snapshots use it; the wire encoders live in package rpc.
type JSONWriter struct {
	Buf   bytes.Buffer
	comma []bool // per open container: whether a separator is needed before the next item
	key   bool   // a member name was just written
}

// SortedMaps makes generated writers emit map entries in key order, so the
// log and snapshots are stable bytes.
func (w *JSONWriter) SortedMaps() bool { return true }

func (w *JSONWriter) sep() {
	if w.key {
		w.key = false
		return
	}
	if n := len(w.comma); n > 0 {
		if w.comma[n-1] {
			w.Buf.WriteByte(',')
		}
		w.comma[n-1] = true
	}
}

func (w *JSONWriter) String(s string) {
	w.sep()
	w.quote(s)
}

// quote writes s as a JSON string: plain printable ASCII directly (the common
// case in records), anything else through encoding/json.
func (w *JSONWriter) quote(s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			b, _ := json.Marshal(s)
			w.Buf.Write(b)
			return
		}
	}
	w.Buf.WriteByte('"')
	w.Buf.WriteString(s)
	w.Buf.WriteByte('"')
}
func (w *JSONWriter) Int(v int64)   { w.sep(); w.Buf.WriteString(strconv.FormatInt(v, 10)) }
func (w *JSONWriter) Int32(v int32) { w.Int(int64(v)) }
func (w *JSONWriter) Float(v float64) {
	w.sep()
	if math.IsNaN(v) || math.IsInf(v, 0) {
		w.Buf.WriteString(`"` + strconv.FormatFloat(v, 'g', -1, 64) + `"`)
		return
	}
	w.Buf.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
}
func (w *JSONWriter) Bool(v bool) { w.sep(); w.Buf.WriteString(strconv.FormatBool(v)) }
func (w *JSONWriter) DateTime(t time.Time) {
	w.String(FormatDateTime(t))
}
func (w *JSONWriter) BeginArray()  { w.sep(); w.Buf.WriteByte('['); w.comma = append(w.comma, false) }
func (w *JSONWriter) EndArray()    { w.comma = w.comma[:len(w.comma)-1]; w.Buf.WriteByte(']') }
func (w *JSONWriter) BeginStruct() { w.sep(); w.Buf.WriteByte('{'); w.comma = append(w.comma, false) }
func (w *JSONWriter) EndStruct()   { w.comma = w.comma[:len(w.comma)-1]; w.Buf.WriteByte('}') }
func (w *JSONWriter) Member(name string) {
	w.sep()
	w.quote(name)
	w.Buf.WriteByte(':')
	w.key = true
}

// Field is Member for a field name (no escaping needed).
func (w *JSONWriter) Field(name string) { w.Member(name) }

// MarshalValue encodes a typed value of type t as JSON.
func MarshalValue(t *Type, v any) []byte {
	var w JSONWriter
	t.Write(&w, v)
	return w.Buf.Bytes()
}

// UnmarshalValue decodes JSON written by MarshalValue back into a typed value.
func UnmarshalValue(t *Type, b []byte) (any, error) {
	g, err := ParseJSON(b)
	if err != nil {
		return nil, err
	}
	return t.Decode(g)
}

// MarshalRecord encodes a whole record, internal fields included.
func MarshalRecord(o Object) []byte {
	var w JSONWriter
	o.WriteRecord(&w, true)
	return w.Buf.Bytes()
}

// UnmarshalRecord decodes a record written by MarshalRecord. Fields missing from
// the JSON keep their defaults.
func UnmarshalRecord(c *Class, b []byte) (Object, error) {
	g, err := ParseJSON(b)
	if err != nil {
		return nil, err
	}
	m, ok := g.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s record: not an object", c.Name)
	}
	return RecordFromStruct(c, m, false)
}

// RecordFromStruct builds a record of class c from a decoded struct. Fields not
// present keep their defaults; when strict, a missing CtorRequired field is an
// error (a *DecodeError naming the field). Members that are not fields of c are ignored.
func RecordFromStruct(c *Class, m map[string]any, strict bool) (Object, error) {
	o := c.New()
	for _, f := range c.Fields {
		raw, ok := m[f.Name]
		if !ok {
			if strict && f.CtorRequired {
				return nil, &DecodeError{Expected: f.Type.Name, Got: "nothing", Field: f.Name}
			}
			continue
		}
		v, err := f.Type.Decode(raw)
		if err != nil {
			if de, ok := err.(*DecodeError); ok && de.Field == "" {
				de.Field = f.Name
			}
			return nil, err
		}
		if err := o.SetField(f.Index, v); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// ParseJSON decodes JSON into wire values: string, int64 (integral numbers),
// float64, bool, nil, []any, map[string]any.
func ParseJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return normalizeJSON(v), nil
}

func normalizeJSON(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return i
		}
		f, _ := strconv.ParseFloat(string(v), 64)
		return f
	case []any:
		for i := range v {
			v[i] = normalizeJSON(v[i])
		}
		return v
	case map[string]any:
		for k, x := range v {
			v[k] = normalizeJSON(x)
		}
		return v
	}
	return v
}
