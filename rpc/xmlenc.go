package rpc

import (
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// XMLWriter is the XML-RPC implementation of Writer. It writes compact XML
// (no whitespace between tags) through a buffer to an io.Writer; call Flush
// at the end.
type XMLWriter struct {
	outBuf
	// members has one entry per open struct: whether a <member> is open.
	members []bool
}

var _ Writer = (*XMLWriter)(nil)

// NewXMLWriter returns an XMLWriter writing to w.
func NewXMLWriter(w io.Writer) *XMLWriter {
	return &XMLWriter{outBuf: outBuf{buf: make([]byte, 0, bufCap), out: w}}
}

// Reset discards state and buffered data and makes the writer write to w.
func (w *XMLWriter) Reset(out io.Writer) {
	w.buf = w.buf[:0]
	w.out = out
	w.err = nil
	w.written = 0
	w.members = w.members[:0]
}

func (w *XMLWriter) check() {
	if len(w.buf) >= flushSize {
		w.flush()
	}
}

// String writes an untyped <value> holding the escaped string.
func (w *XMLWriter) String(s string) {
	w.buf = append(w.buf, "<value>"...)
	w.buf = appendXMLText(w.buf, s)
	w.buf = append(w.buf, "</value>"...)
	w.check()
}

// Int writes an untyped <value> holding the decimal number, as xapi does for
// 64-bit ints.
func (w *XMLWriter) Int(v int64) {
	w.buf = append(w.buf, "<value>"...)
	w.buf = strconv.AppendInt(w.buf, v, 10)
	w.buf = append(w.buf, "</value>"...)
	w.check()
}

// Int32 writes <value><i4>v</i4></value>.
func (w *XMLWriter) Int32(v int32) {
	w.buf = append(w.buf, "<value><i4>"...)
	w.buf = strconv.AppendInt(w.buf, int64(v), 10)
	w.buf = append(w.buf, "</i4></value>"...)
	w.check()
}

// Float writes <value><double>%.16g</double></value>; non-finite values are
// written as NaN, Infinity or -Infinity.
func (w *XMLWriter) Float(v float64) {
	w.buf = append(w.buf, "<value><double>"...)
	var ok bool
	if w.buf, ok = appendNonFinite(w.buf, v); !ok {
		w.buf = strconv.AppendFloat(w.buf, v, 'g', 16, 64)
	}
	w.buf = append(w.buf, "</double></value>"...)
	w.check()
}

// Bool writes <value><boolean>1</boolean></value> or 0.
func (w *XMLWriter) Bool(v bool) {
	if v {
		w.buf = append(w.buf, "<value><boolean>1</boolean></value>"...)
	} else {
		w.buf = append(w.buf, "<value><boolean>0</boolean></value>"...)
	}
	w.check()
}

// DateTime writes <value><dateTime.iso8601>yyyymmddTHH:MM:SSZ</dateTime.iso8601></value>.
func (w *XMLWriter) DateTime(t time.Time) {
	w.buf = append(w.buf, "<value><dateTime.iso8601>"...)
	w.buf = appendDateTime(w.buf, t)
	w.buf = append(w.buf, "</dateTime.iso8601></value>"...)
	w.check()
}

// BeginArray opens <value><array><data>.
func (w *XMLWriter) BeginArray() { w.buf = append(w.buf, "<value><array><data>"...) }

// EndArray closes the array.
func (w *XMLWriter) EndArray() {
	w.buf = append(w.buf, "</data></array></value>"...)
	w.check()
}

// BeginStruct opens <value><struct>.
func (w *XMLWriter) BeginStruct() {
	w.buf = append(w.buf, "<value><struct>"...)
	w.members = append(w.members, false)
}

// Member starts a struct member; the next value is its value.
func (w *XMLWriter) Member(name string) {
	if w.openMember() {
		w.buf = appendXMLText(w.buf, name)
		w.buf = append(w.buf, "</name>"...)
	}
}

// Field is Member for a name that needs no escaping.
func (w *XMLWriter) Field(name string) {
	if w.openMember() {
		w.buf = append(w.buf, name...)
		w.buf = append(w.buf, "</name>"...)
	}
}

// openMember closes the previous member of the current struct and opens the
// next one's name; it reports false when no struct is open (misuse).
func (w *XMLWriter) openMember() bool {
	n := len(w.members)
	if n == 0 {
		return false
	}
	if w.members[n-1] {
		w.buf = append(w.buf, "</member><member><name>"...)
	} else {
		w.buf = append(w.buf, "<member><name>"...)
		w.members[n-1] = true
	}
	return true
}

// EndStruct closes the struct.
func (w *XMLWriter) EndStruct() {
	if n := len(w.members); n > 0 {
		if w.members[n-1] {
			w.buf = append(w.buf, "</member>"...)
		}
		w.members = w.members[:n-1]
	}
	w.buf = append(w.buf, "</struct></value>"...)
	w.check()
}

// xmlSafe[c] is true for ASCII bytes that are copied verbatim into XML text.
var xmlSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	t['<'], t['>'], t['&'], t['"'] = false, false, false, false
	t['\t'], t['\n'] = true, true
	return t
}()

// xmlPlain is xmlSafe over all byte values (false from 0x80 up).
var xmlPlain = widen(&xmlSafe)

// appendXMLText appends s escaped as XML character data: <, >, &, " become
// entities, CR becomes &#13;, other control characters and U+FFFE/U+FFFF are
// dropped, invalid UTF-8 becomes U+FFFD.
func appendXMLText(b []byte, s string) []byte {
	i := plainPrefix(&xmlPlain, s)
	if i == len(s) {
		return append(b, s...)
	}
	start := 0
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if xmlSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '<':
				b = append(b, "&lt;"...)
			case '>':
				b = append(b, "&gt;"...)
			case '&':
				b = append(b, "&amp;"...)
			case '"':
				b = append(b, "&quot;"...)
			case '\r':
				b = append(b, "&#13;"...)
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, "\uFFFD"...)
			i++
			start = i
		case r == 0xFFFE || r == 0xFFFF:
			b = append(b, s[start:i]...)
			i += size
			start = i
		default:
			i += size
		}
	}
	return append(b, s[start:]...)
}

const (
	xmlHeader      = `<?xml version="1.0"?><methodResponse><params><param>`
	xmlFooter      = `</param></params></methodResponse>`
	xmlSuccessHead = xmlHeader + `<value><struct><member><name>Status</name><value>Success</value></member><member><name>Value</name>`
	xmlEnvFooter   = `</member></struct></value>` + xmlFooter
	xmlFailureHead = xmlHeader + `<value><struct><member><name>Status</name><value>Failure</value></member><member><name>ErrorDescription</name><value><array><data>`
	xmlFailureFoot = `</data></array></value>` + xmlEnvFooter
)

// encodeXMLResponse writes the complete methodResponse for resp into w
// (without flushing).
func encodeXMLResponse(w *XMLWriter, resp Response) {
	if resp.Err != nil {
		encodeXMLFault(w, resp.Err)
		return
	}
	if resp.Raw {
		w.buf = append(w.buf, xmlHeader...)
	} else {
		w.buf = append(w.buf, xmlSuccessHead...)
	}
	w.members = w.members[:0]
	before := w.total()
	if resp.Value != nil {
		resp.Value(w)
	}
	if w.total() == before {
		w.buf = append(w.buf, "<value></value>"...)
	}
	if resp.Raw {
		w.buf = append(w.buf, xmlFooter...)
	} else {
		w.buf = append(w.buf, xmlEnvFooter...)
	}
}

func encodeXMLFault(w *XMLWriter, f *Fault) {
	w.buf = append(w.buf, xmlFailureHead...)
	w.String(f.Code)
	for _, p := range f.Params {
		w.String(p)
	}
	w.buf = append(w.buf, xmlFailureFoot...)
}

// WriteXMLResponse writes the complete XML-RPC methodResponse for resp to out:
// the {Status, Value} or {Status, ErrorDescription} struct, or the bare value
// when resp.Raw is set.
func WriteXMLResponse(out io.Writer, resp Response) error {
	w := getXMLWriter(out)
	encodeXMLResponse(w, resp)
	err := w.Flush()
	releaseXMLWriter(w)
	return err
}

var xmlWriterPool = sync.Pool{New: func() any { return &XMLWriter{} }}

func getXMLWriter(out io.Writer) *XMLWriter {
	w := xmlWriterPool.Get().(*XMLWriter)
	if w.buf == nil {
		w.buf = make([]byte, 0, bufCap)
	}
	w.Reset(out)
	return w
}

func releaseXMLWriter(w *XMLWriter) {
	w.out = nil
	if cap(w.buf) > maxPooledCap {
		w.buf = nil
	}
	if cap(w.members) > 1024 {
		w.members = nil
	}
	xmlWriterPool.Put(w)
}
