package rpc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzDecodeXML checks that DecodeXMLCall never panics, fails only with
// *MalformedError, and that whatever it decodes can be encoded again and
// decodes to an equivalent call.
func FuzzDecodeXML(f *testing.F) {
	f.Add([]byte(pyLogin))
	f.Add([]byte(xmlCall(`<value><struct><member><name>a</name><value><array><data><value><i4>1</i4></value><value><nil/></value></data></array></value></member></struct></value>`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeXMLCall(bytes.NewReader(data))
		if err != nil {
			var me *MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if c.Params == nil {
			t.Fatal("nil Params")
		}
		// Re-encode and decode again: the tree must be stable (after the
		// first decode every value is in canonical form, except that ints
		// re-encode as untyped strings, NaN and strings get sanitised).
		enc := encodeXMLCall(c.Method, c.Params)
		c2, err := DecodeXMLCall(bytes.NewReader(enc))
		if err != nil {
			t.Fatalf("re-decode failed: %v\n%s", err, enc)
		}
		if want := normalize(c.Params, true); !equalTree(c2.Params, want) {
			t.Fatalf("params changed:\n%#v\n%#v", want, c2.Params)
		}
	})
}

// FuzzDecodeJSON checks that DecodeJSONCall never panics, fails only with
// *MalformedError, and that a decoded call re-encodes and decodes to the same
// tree.
func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(`{"id":0,"jsonrpc":"2.0","method":"session.login_with_password","params":["root","secret"]}`))
	f.Add([]byte(`{"id":"a","method":"m","params":[1,2.5,true,null,{"k":[1]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, id, err := DecodeJSONCall(data)
		if err != nil {
			var me *MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		var b bytes.Buffer
		b.WriteString(`{"id":`)
		b.Write(id)
		if c.Protocol == JSONRPC2 {
			b.WriteString(`,"jsonrpc":"2.0"`)
		}
		b.WriteString(`,"method":`)
		b.Write(appendJSONString(nil, c.Method))
		b.WriteString(`,"params":`)
		jw := NewJSONWriter(&b)
		writeAny(jw, c.Params)
		_ = jw.Flush()
		b.WriteString(`}`)
		c2, id2, err := DecodeJSONCall(b.Bytes())
		if err != nil {
			t.Fatalf("re-decode failed: %v\n%s", err, b.Bytes())
		}
		if !bytes.Equal(id, id2) || c2.Method != c.Method || c2.Protocol != c.Protocol {
			t.Fatalf("call changed: %v %q %s -> %v %q %s", c.Protocol, c.Method, id, c2.Protocol, c2.Method, id2)
		}
		if !equalTree(normalize(c.Params, false), c2.Params) {
			t.Fatalf("params changed:\n%#v\n%#v", c.Params, c2.Params)
		}
	})
}

// FuzzXMLRoundTrip builds a value tree from the fuzz input, encodes it with
// the XML writer, decodes it, and checks it gets the same tree back (with the
// documented normalisations: Int becomes a string, Float goes through %.16g,
// strings are sanitised).
func FuzzXMLRoundTrip(f *testing.F) {
	for _, s := range roundTripSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var b bytes.Buffer
		b.WriteString(`<?xml version="1.0"?><methodCall><methodName>m</methodName><params><param>`)
		xw := NewXMLWriter(&b)
		g := &treeGen{b: data, xml: true}
		want := g.value(xw)
		_ = xw.Flush()
		b.WriteString(`</param></params></methodCall>`)
		c, err := DecodeXMLCall(bytes.NewReader(b.Bytes()))
		if err != nil {
			t.Fatalf("decode: %v\n%s", err, b.Bytes())
		}
		if len(c.Params) != 1 || !equalTree(c.Params[0], want) {
			t.Fatalf("round trip:\n got %#v\nwant %#v\n%s", c.Params, want, b.Bytes())
		}
	})
}

// FuzzJSONRoundTrip is FuzzXMLRoundTrip for the JSON writer.
func FuzzJSONRoundTrip(f *testing.F) {
	for _, s := range roundTripSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var b bytes.Buffer
		b.WriteString(`{"id":1,"method":"m","params":[`)
		jw := NewJSONWriter(&b)
		g := &treeGen{b: data}
		want := g.value(jw)
		_ = jw.Flush()
		b.WriteString(`]}`)
		c, _, err := DecodeJSONCall(b.Bytes())
		if err != nil {
			t.Fatalf("decode: %v\n%s", err, b.Bytes())
		}
		if len(c.Params) != 1 || !equalTree(c.Params[0], want) {
			t.Fatalf("round trip:\n got %#v\nwant %#v\n%s", c.Params, want, b.Bytes())
		}
	})
}

var roundTripSeeds = []string{
	"",
	"\x00\x05hello",
	"\x06\x03\x00\x02ab\x01\x01\x02\x03\x04\x05\x06\x07\x08\x04\x01",
	"\x07\x03\x02k1\x00\x01x\x02k2\x03\x40\x09\x21\xfb\x54\x44\x2d\x18\x04k<&>\x05\x00\x00\x00\x00\x60\x00\x00\x00",
	"\x00\x08a\r\nb\x00\xff\xef\xbf\xbe",
	"\x03\x7f\xf0\x00\x00\x00\x00\x00\x00",
}

func encodeXMLCall(method string, params []any) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0"?><methodCall><methodName>`)
	b.Write(appendXMLText(nil, method))
	b.WriteString(`</methodName><params>`)
	xw := NewXMLWriter(&b)
	for _, p := range params {
		xw.buf = append(xw.buf, "<param>"...)
		writeAny(xw, p)
		xw.buf = append(xw.buf, "</param>"...)
	}
	_ = xw.Flush()
	b.WriteString(`</params></methodCall>`)
	return b.Bytes()
}

// treeGen derives a value tree from fuzz bytes, writing it to a Writer and
// returning the tree the decoder should produce.
type treeGen struct {
	b     []byte
	depth int
	xml   bool
}

func (g *treeGen) next() byte {
	if len(g.b) == 0 {
		return 0
	}
	c := g.b[0]
	g.b = g.b[1:]
	return c
}

func (g *treeGen) u64() uint64 {
	var a [8]byte
	n := copy(a[:], g.b)
	g.b = g.b[n:]
	return binary.BigEndian.Uint64(a[:])
}

func (g *treeGen) str() string {
	n := min(int(g.next()%16), len(g.b))
	s := string(g.b[:n])
	g.b = g.b[n:]
	return s
}

func (g *treeGen) value(w Writer) any {
	switch g.next() % 9 {
	case 0:
		s := g.str()
		w.String(s)
		return g.sanitize(s)
	case 1:
		v := int64(g.u64())
		w.Int(v)
		if g.xml {
			return strconv.FormatInt(v, 10)
		}
		return v
	case 2:
		v := int32(g.u64())
		w.Int32(v)
		return int64(v)
	case 3:
		v := math.Float64frombits(g.u64())
		w.Float(v)
		switch {
		case math.IsNaN(v):
			if g.xml {
				return math.NaN()
			}
			return "NaN"
		case math.IsInf(v, 1) && !g.xml:
			return "Infinity"
		case math.IsInf(v, -1) && !g.xml:
			return "-Infinity"
		case g.xml:
			r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 16, 64), 64)
			return r
		}
		return v
	case 4:
		v := g.next()%2 == 1
		w.Bool(v)
		return v
	case 5:
		// Seconds within years 1..9999.
		const lo, span = -62135596800, 315537897600
		t := time.Unix(lo+int64(g.u64()%span), 0).UTC()
		w.DateTime(t)
		if g.xml {
			return t
		}
		return FormatDateTime(t)
	case 6:
		if g.depth >= 6 {
			w.String("")
			return ""
		}
		g.depth++
		n := int(g.next() % 5)
		w.BeginArray()
		a := []any{}
		for i := 0; i < n; i++ {
			a = append(a, g.value(w))
		}
		w.EndArray()
		g.depth--
		return a
	case 7:
		if g.depth >= 6 {
			w.String("")
			return ""
		}
		g.depth++
		n := int(g.next() % 5)
		w.BeginStruct()
		m := map[string]any{}
		for i := 0; i < n; i++ {
			k := g.str()
			w.Member(k)
			m[g.sanitize(k)] = g.value(w)
		}
		w.EndStruct()
		g.depth--
		return m
	default:
		w.BeginStruct()
		w.EndStruct()
		return map[string]any{}
	}
}

// sanitize is an independent statement of the string normalisation.
func (g *treeGen) sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if g.xml && ((r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0xFFFE || r == 0xFFFF) {
			continue
		}
		b.WriteRune(r)
	}
	// ToValidUTF8 collapses runs of invalid bytes; the encoders replace each
	// invalid byte, so redo it byte by byte.
	if !utf8.ValidString(s) {
		var c strings.Builder
		for i := 0; i < len(s); {
			r, n := utf8.DecodeRuneInString(s[i:])
			i += n
			if g.xml && ((r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0xFFFE || r == 0xFFFF) {
				continue
			}
			c.WriteRune(r)
		}
		return c.String()
	}
	return b.String()
}

// equalTree compares decoded trees, treating NaN as equal to NaN and times by
// instant.
func equalTree(a, b any) bool {
	switch a := a.(type) {
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !equalTree(a[i], b[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			w, ok := b[k]
			if !ok || !equalTree(v, w) {
				return false
			}
		}
		return true
	case float64:
		b, ok := b.(float64)
		return ok && (a == b && math.Signbit(a) == math.Signbit(b) || math.IsNaN(a) && math.IsNaN(b))
	case time.Time:
		b, ok := b.(time.Time)
		return ok && a.Equal(b)
	}
	return a == b
}

// normalize maps a decoded tree to what writeAny + decode yields: nil becomes
// "", and in XML ints become strings and floats go through %.16g.
func normalize(v any, xml bool) any {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return (&treeGen{xml: xml}).sanitize(v)
	case int64:
		if xml {
			return strconv.FormatInt(v, 10)
		}
	case float64:
		if xml && !math.IsNaN(v) && !math.IsInf(v, 0) {
			r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 16, 64), 64)
			return r
		}
		if !xml && math.IsNaN(v) {
			return "NaN"
		}
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = normalize(e, xml)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = normalize(e, xml)
		}
		return out
	}
	return v
}
