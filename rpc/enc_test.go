package rpc

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// ts is 2025-03-19 04:16:24 UTC, the example from xapi-semantics.md §2.2.
var ts = time.Date(2025, 3, 19, 4, 16, 24, 0, time.UTC)

type valueCase struct {
	name      string
	write     func(w Writer)
	xml, json string
}

var valueCases = []valueCase{
	{"string", func(w Writer) { w.String("OpaqueRef:abc") }, `<value>OpaqueRef:abc</value>`, `"OpaqueRef:abc"`},
	{"empty string", func(w Writer) { w.String("") }, `<value></value>`, `""`},
	{"escapes", func(w Writer) { w.String(`a<b>&"c'`) }, `<value>a&lt;b&gt;&amp;&quot;c'</value>`, `"a<b>&\"c'"`},
	{"tab lf kept, cr as ref", func(w Writer) { w.String("a\tb\nc\rd") }, "<value>a\tb\nc&#13;d</value>", `"a\tb\nc\rd"`},
	{"control chars", func(w Writer) { w.String("a\x00b\x01\x1fc\x7f") }, "<value>abc\x7f</value>", `"a\u0000b\u0001\u001fc` + "\x7f" + `"`},
	{"invalid utf8", func(w Writer) { w.String("a\xffb") }, "<value>a\uFFFDb</value>", `"a\ufffdb"`},
	{"non-characters", func(w Writer) { w.String("a\uFFFEb\uFFFF") }, "<value>ab</value>", "\"a\uFFFEb\uFFFF\""},
	{"unicode", func(w Writer) { w.String("héllo ✓ 😀") }, "<value>héllo ✓ 😀</value>", `"héllo ✓ 😀"`},
	{"line separators", func(w Writer) { w.String("a\u2028b\u2029") }, "<value>a\u2028b\u2029</value>", `"a\u2028b\u2029"`},
	{"backslash", func(w Writer) { w.String(`a\b`) }, `<value>a\b</value>`, `"a\\b"`},
	{"int", func(w Writer) { w.Int(123) }, `<value>123</value>`, `123`},
	{"negative int", func(w Writer) { w.Int(-9223372036854775808) }, `<value>-9223372036854775808</value>`, `-9223372036854775808`},
	{"int32", func(w Writer) { w.Int32(7) }, `<value><i4>7</i4></value>`, `7`},
	{"float", func(w Writer) { w.Float(0.5) }, `<value><double>0.5</double></value>`, `0.5`},
	{"float integral", func(w Writer) { w.Float(1) }, `<value><double>1</double></value>`, `1.0`},
	{"float tenth", func(w Writer) { w.Float(0.1) }, `<value><double>0.1</double></value>`, `0.1`},
	{"float %.16g", func(w Writer) { w.Float(1.0 / 3) }, `<value><double>0.3333333333333333</double></value>`, `0.3333333333333333`},
	{"float big", func(w Writer) { w.Float(1e21) }, `<value><double>1e+21</double></value>`, `1e+21`},
	{"float 1e16", func(w Writer) { w.Float(1e16) }, `<value><double>1e+16</double></value>`, `10000000000000000.0`},
	{"float small", func(w Writer) { w.Float(1e-7) }, `<value><double>1e-07</double></value>`, `1e-07`},
	{"float negative zero", func(w Writer) { w.Float(math.Copysign(0, -1)) }, `<value><double>-0</double></value>`, `-0.0`},
	{"NaN", func(w Writer) { w.Float(math.NaN()) }, `<value><double>NaN</double></value>`, `"NaN"`},
	{"+Inf", func(w Writer) { w.Float(math.Inf(1)) }, `<value><double>Infinity</double></value>`, `"Infinity"`},
	{"-Inf", func(w Writer) { w.Float(math.Inf(-1)) }, `<value><double>-Infinity</double></value>`, `"-Infinity"`},
	{"true", func(w Writer) { w.Bool(true) }, `<value><boolean>1</boolean></value>`, `true`},
	{"false", func(w Writer) { w.Bool(false) }, `<value><boolean>0</boolean></value>`, `false`},
	{"datetime", func(w Writer) { w.DateTime(ts) }, `<value><dateTime.iso8601>20250319T04:16:24Z</dateTime.iso8601></value>`, `"20250319T04:16:24Z"`},
	{"datetime to UTC", func(w Writer) { w.DateTime(ts.In(time.FixedZone("x", 3600+1800))) }, `<value><dateTime.iso8601>20250319T04:16:24Z</dateTime.iso8601></value>`, `"20250319T04:16:24Z"`},
	{"epoch", func(w Writer) { w.DateTime(time.Unix(0, 0)) }, `<value><dateTime.iso8601>19700101T00:00:00Z</dateTime.iso8601></value>`, `"19700101T00:00:00Z"`},
	{"empty array", func(w Writer) { w.BeginArray(); w.EndArray() }, `<value><array><data></data></array></value>`, `[]`},
	{"array", func(w Writer) { w.BeginArray(); w.String("a"); w.Int(1); w.Bool(true); w.EndArray() },
		`<value><array><data><value>a</value><value>1</value><value><boolean>1</boolean></value></data></array></value>`, `["a",1,true]`},
	{"empty struct", func(w Writer) { w.BeginStruct(); w.EndStruct() }, `<value><struct></struct></value>`, `{}`},
	{"struct", func(w Writer) {
		w.BeginStruct()
		w.Member("name_label")
		w.String("vm")
		w.Member("a<b")
		w.Int(2)
		w.EndStruct()
	}, `<value><struct><member><name>name_label</name><value>vm</value></member><member><name>a&lt;b</name><value>2</value></member></struct></value>`,
		`{"name_label":"vm","a<b":2}`},
	{"nested", func(w Writer) {
		w.BeginStruct()
		w.Member("m")
		w.BeginStruct()
		w.Member("k")
		w.BeginArray()
		w.BeginStruct()
		w.EndStruct()
		w.BeginArray()
		w.EndArray()
		w.EndArray()
		w.Member("k2")
		w.String("v")
		w.EndStruct()
		w.Member("after")
		w.Float(2.5)
		w.EndStruct()
	}, `<value><struct><member><name>m</name><value><struct><member><name>k</name><value><array><data><value><struct></struct></value><value><array><data></data></array></value></data></array></value></member><member><name>k2</name><value>v</value></member></struct></value></member><member><name>after</name><value><double>2.5</double></value></member></struct></value>`,
		`{"m":{"k":[{},[]],"k2":"v"},"after":2.5}`},
}

func TestValueEncoding(t *testing.T) {
	for _, tc := range valueCases {
		t.Run(tc.name, func(t *testing.T) {
			var xb, jb bytes.Buffer
			xw := NewXMLWriter(&xb)
			tc.write(xw)
			if err := xw.Flush(); err != nil {
				t.Fatal(err)
			}
			if got := xb.String(); got != tc.xml {
				t.Errorf("XML:\n got %s\nwant %s", got, tc.xml)
			}
			jw := NewJSONWriter(&jb)
			tc.write(jw)
			if err := jw.Flush(); err != nil {
				t.Fatal(err)
			}
			if got := jb.String(); got != tc.json {
				t.Errorf("JSON:\n got %s\nwant %s", got, tc.json)
			}
			if !json.Valid(jb.Bytes()) {
				t.Errorf("invalid JSON %s", jb.String())
			}
		})
	}
}

const (
	loginRef         = "OpaqueRef:4a4d9f0e-9b2c-4a3e-8c51-0c0a1d4f2b77"
	loginSuccessBody = `<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Success</value></member><member><name>Value</name><value>OpaqueRef:4a4d9f0e-9b2c-4a3e-8c51-0c0a1d4f2b77</value></member></struct></value></param></params></methodResponse>`
	loginFailureBody = `<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Failure</value></member><member><name>ErrorDescription</name><value><array><data><value>SESSION_INVALID</value><value>OpaqueRef:4a4d9f0e-...</value></data></array></value></member></struct></value></param></params></methodResponse>`
)

func stringValue(s string) func(Writer) { return func(w Writer) { w.String(s) } }

func TestResponseEnvelopes(t *testing.T) {
	fault := &Fault{Code: "SESSION_INVALID", Params: []string{"OpaqueRef:4a4d9f0e-..."}}
	listMethods := func(w Writer) { w.BeginArray(); w.String("VM.start"); w.String("VM.get_all"); w.EndArray() }
	tests := []struct {
		name string
		resp Response
		xml  string
		v1   string
		v2   string
	}{
		{"login success", Response{Value: stringValue(loginRef)}, loginSuccessBody,
			`{"result":"` + loginRef + `","error":null,"id":1}`,
			`{"jsonrpc":"2.0","result":"` + loginRef + `","id":1}`},
		{"login failure", Response{Err: fault}, loginFailureBody,
			`{"result":null,"error":["SESSION_INVALID","OpaqueRef:4a4d9f0e-..."],"id":1}`,
			`{"jsonrpc":"2.0","error":{"code":1,"message":"SESSION_INVALID","data":["OpaqueRef:4a4d9f0e-..."]},"id":1}`},
		{"failure without params", Response{Err: &Fault{Code: "PERMISSION_DENIED"}},
			`<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Failure</value></member><member><name>ErrorDescription</name><value><array><data><value>PERMISSION_DENIED</value></data></array></value></member></struct></value></param></params></methodResponse>`,
			`{"result":null,"error":["PERMISSION_DENIED"],"id":1}`,
			`{"jsonrpc":"2.0","error":{"code":1,"message":"PERMISSION_DENIED","data":[]},"id":1}`},
		{"void", Response{},
			`<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Success</value></member><member><name>Value</name><value></value></member></struct></value></param></params></methodResponse>`,
			`{"result":"","error":null,"id":1}`,
			`{"jsonrpc":"2.0","result":"","id":1}`},
		{"value writing nothing is void", Response{Value: func(Writer) {}},
			`<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Success</value></member><member><name>Value</name><value></value></member></struct></value></param></params></methodResponse>`,
			`{"result":"","error":null,"id":1}`,
			`{"jsonrpc":"2.0","result":"","id":1}`},
		{"raw listMethods", Response{Value: listMethods, Raw: true},
			`<?xml version="1.0"?><methodResponse><params><param><value><array><data><value>VM.start</value><value>VM.get_all</value></data></array></value></param></params></methodResponse>`,
			`{"result":["VM.start","VM.get_all"],"error":null,"id":1}`,
			`{"jsonrpc":"2.0","result":["VM.start","VM.get_all"],"id":1}`},
		{"err wins over value", Response{Value: listMethods, Err: fault, Raw: true}, loginFailureBody,
			`{"result":null,"error":["SESSION_INVALID","OpaqueRef:4a4d9f0e-..."],"id":1}`,
			`{"jsonrpc":"2.0","error":{"code":1,"message":"SESSION_INVALID","data":["OpaqueRef:4a4d9f0e-..."]},"id":1}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteXMLResponse(&b, tc.resp); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.xml {
				t.Errorf("XML:\n got %s\nwant %s", b.String(), tc.xml)
			}
			for _, p := range []struct {
				proto Protocol
				want  string
			}{{JSONRPC1, tc.v1}, {JSONRPC2, tc.v2}} {
				b.Reset()
				if err := WriteJSONResponse(&b, p.proto, json.RawMessage("1"), tc.resp); err != nil {
					t.Fatal(err)
				}
				if b.String() != p.want {
					t.Errorf("%v:\n got %s\nwant %s", p.proto, b.String(), p.want)
				}
			}
		})
	}
}

func TestJSONIDEcho(t *testing.T) {
	for _, id := range []string{`0`, `42`, `-3`, `"abc"`, `"a\"b"`} {
		var b bytes.Buffer
		if err := WriteJSONResponse(&b, JSONRPC2, json.RawMessage(id), Response{}); err != nil {
			t.Fatal(err)
		}
		want := `{"jsonrpc":"2.0","result":"","id":` + id + `}`
		if b.String() != want {
			t.Errorf("got %s want %s", b.String(), want)
		}
	}
}

// TestStreamingFlush checks that a value larger than the buffer is written
// in several pieces and still comes out intact.
func TestStreamingFlush(t *testing.T) {
	var cw countingWriter
	xw := NewXMLWriter(&cw)
	xw.BeginArray()
	for i := 0; i < 20000; i++ {
		xw.String("0123456789")
	}
	xw.EndArray()
	if err := xw.Flush(); err != nil {
		t.Fatal(err)
	}
	if cw.writes < 5 {
		t.Errorf("only %d writes", cw.writes)
	}
	want := len("<value><array><data></data></array></value>") + 20000*len("<value>0123456789</value>")
	if cw.buf.Len() != want {
		t.Errorf("got %d bytes want %d", cw.buf.Len(), want)
	}
	if strings.Count(cw.buf.String(), "<value>0123456789</value>") != 20000 {
		t.Error("corrupted output")
	}
}

type countingWriter struct {
	buf    bytes.Buffer
	writes int
}

func (c *countingWriter) Write(p []byte) (int, error) { c.writes++; return c.buf.Write(p) }

func TestFormatDateTime(t *testing.T) {
	tests := []struct {
		t    time.Time
		want string
	}{
		{ts, "20250319T04:16:24Z"},
		{time.Time{}, "00010101T00:00:00Z"},
		{time.Date(2025, 12, 31, 23, 59, 59, 999999999, time.UTC), "20251231T23:59:59Z"},
		{time.Date(2025, 3, 19, 23, 0, 0, 0, time.FixedZone("", -2*3600)), "20250320T01:00:00Z"},
	}
	for _, tc := range tests {
		if got := FormatDateTime(tc.t); got != tc.want {
			t.Errorf("FormatDateTime(%v) = %s want %s", tc.t, got, tc.want)
		}
	}
}
