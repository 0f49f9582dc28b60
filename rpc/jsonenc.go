package rpc

import (
	"encoding/json"
	"io"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// JSONWriter is the JSON implementation of Writer. It writes compact JSON
// through a buffer to an io.Writer; call Flush at the end.
type JSONWriter struct {
	outBuf
	comma bool // a value was just completed: the next item needs a ','
}

var _ Writer = (*JSONWriter)(nil)

// NewJSONWriter returns a JSONWriter writing to w.
func NewJSONWriter(w io.Writer) *JSONWriter {
	return &JSONWriter{outBuf: outBuf{buf: make([]byte, 0, bufCap), out: w}}
}

// Reset discards state and buffered data and makes the writer write to w.
func (w *JSONWriter) Reset(out io.Writer) {
	w.buf = w.buf[:0]
	w.out = out
	w.err = nil
	w.written = 0
	w.comma = false
}

func (w *JSONWriter) check() {
	if len(w.buf) >= flushSize {
		w.flush()
	}
}

func (w *JSONWriter) sep() {
	if w.comma {
		w.buf = append(w.buf, ',')
	}
}

// String writes a JSON string.
func (w *JSONWriter) String(s string) {
	w.sep()
	w.buf = appendJSONString(w.buf, s)
	w.comma = true
	w.check()
}

// Int writes a JSON number.
func (w *JSONWriter) Int(v int64) {
	w.sep()
	w.buf = strconv.AppendInt(w.buf, v, 10)
	w.comma = true
	w.check()
}

// Int32 writes a JSON number.
func (w *JSONWriter) Int32(v int32) { w.Int(int64(v)) }

// Float writes a JSON number that always has a fraction or exponent (1.0).
// Non-finite values, which JSON cannot represent, are written as the strings
// "NaN", "Infinity" and "-Infinity".
func (w *JSONWriter) Float(v float64) {
	w.sep()
	w.buf = appendJSONFloat(w.buf, v)
	w.comma = true
	w.check()
}

func appendJSONFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		b = append(b, '"')
		b, _ = appendNonFinite(b, v)
		return append(b, '"')
	}
	start := len(b)
	abs := math.Abs(v)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		b = strconv.AppendFloat(b, v, 'e', -1, 64)
	} else {
		b = strconv.AppendFloat(b, v, 'f', -1, 64)
	}
	for _, c := range b[start:] {
		if c == '.' || c == 'e' {
			return b
		}
	}
	return append(b, ".0"...)
}

// Bool writes true or false.
func (w *JSONWriter) Bool(v bool) {
	w.sep()
	if v {
		w.buf = append(w.buf, "true"...)
	} else {
		w.buf = append(w.buf, "false"...)
	}
	w.comma = true
	w.check()
}

// DateTime writes the string "yyyymmddTHH:MM:SSZ".
func (w *JSONWriter) DateTime(t time.Time) {
	w.sep()
	w.buf = append(w.buf, '"')
	w.buf = appendDateTime(w.buf, t)
	w.buf = append(w.buf, '"')
	w.comma = true
	w.check()
}

// BeginArray writes '['.
func (w *JSONWriter) BeginArray() {
	w.sep()
	w.buf = append(w.buf, '[')
	w.comma = false
}

// EndArray writes ']'.
func (w *JSONWriter) EndArray() {
	w.buf = append(w.buf, ']')
	w.comma = true
	w.check()
}

// BeginStruct writes '{'.
func (w *JSONWriter) BeginStruct() {
	w.sep()
	w.buf = append(w.buf, '{')
	w.comma = false
}

// Member writes a member name; the next value is its value.
func (w *JSONWriter) Member(name string) {
	w.sep()
	w.buf = appendJSONString(w.buf, name)
	w.buf = append(w.buf, ':')
	w.comma = false
}

// Field is Member for a name that needs no escaping.
func (w *JSONWriter) Field(name string) {
	w.sep()
	w.buf = append(w.buf, '"')
	w.buf = append(w.buf, name...)
	w.buf = append(w.buf, '"', ':')
	w.comma = false
}

// EndStruct writes '}'.
func (w *JSONWriter) EndStruct() {
	w.buf = append(w.buf, '}')
	w.comma = true
	w.check()
}

// jsonSafe[c] is true for ASCII bytes copied verbatim into a JSON string.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = false, false
	return t
}()

// jsonPlain is jsonSafe over all byte values (false from 0x80 up).
var jsonPlain = widen(&jsonSafe)

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a quoted JSON string. Invalid UTF-8 becomes
// U+FFFD; U+2028 and U+2029 are escaped for JavaScript's sake.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	i := plainPrefix(&jsonPlain, s)
	if i == len(s) {
		b = append(b, s...)
		return append(b, '"')
	}
	start := 0
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
		default:
			i += size
		}
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// encodeJSONResponse writes the complete JSON-RPC response for resp into w
// (without flushing). id must be a valid JSON integer or string; an empty id
// is written as null.
func encodeJSONResponse(w *JSONWriter, p Protocol, id json.RawMessage, resp Response) {
	w.comma = false
	if p == JSONRPC2 {
		w.buf = append(w.buf, `{"jsonrpc":"2.0",`...)
	} else {
		w.buf = append(w.buf, '{')
	}
	if f := resp.Err; f != nil {
		if p == JSONRPC2 {
			w.buf = append(w.buf, `"error":{"code":1,"message":`...)
			w.buf = appendJSONString(w.buf, f.Code)
			w.buf = append(w.buf, `,"data":[`...)
			for i, s := range f.Params {
				if i > 0 {
					w.buf = append(w.buf, ',')
				}
				w.buf = appendJSONString(w.buf, s)
			}
			w.buf = append(w.buf, "]},"...)
		} else {
			w.buf = append(w.buf, `"result":null,"error":[`...)
			w.buf = appendJSONString(w.buf, f.Code)
			for _, s := range f.Params {
				w.buf = append(w.buf, ',')
				w.buf = appendJSONString(w.buf, s)
			}
			w.buf = append(w.buf, "],"...)
		}
	} else {
		w.buf = append(w.buf, `"result":`...)
		before := w.total()
		if resp.Value != nil {
			resp.Value(w)
		}
		if w.total() == before {
			w.buf = append(w.buf, `""`...)
		}
		if p == JSONRPC2 {
			w.buf = append(w.buf, ',')
		} else {
			w.buf = append(w.buf, `,"error":null,`...)
		}
	}
	w.buf = append(w.buf, `"id":`...)
	if len(id) == 0 {
		w.buf = append(w.buf, "null"...)
	} else {
		w.buf = append(w.buf, id...)
	}
	w.buf = append(w.buf, '}')
	w.comma = false
}

// WriteJSONResponse writes the complete JSON-RPC response for resp to out in
// the envelope of protocol p (JSONRPC1 or JSONRPC2), echoing id (a raw JSON
// integer or string as returned by DecodeJSONCall).
func WriteJSONResponse(out io.Writer, p Protocol, id json.RawMessage, resp Response) error {
	w := getJSONWriter(out)
	encodeJSONResponse(w, p, id, resp)
	err := w.Flush()
	releaseJSONWriter(w)
	return err
}

var jsonWriterPool = sync.Pool{New: func() any { return &JSONWriter{} }}

func getJSONWriter(out io.Writer) *JSONWriter {
	w := jsonWriterPool.Get().(*JSONWriter)
	if w.buf == nil {
		w.buf = make([]byte, 0, bufCap)
	}
	w.Reset(out)
	return w
}

func releaseJSONWriter(w *JSONWriter) {
	w.out = nil
	if cap(w.buf) > maxPooledCap {
		w.buf = nil
	}
	jsonWriterPool.Put(w)
}
