package rpc

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func xmlCall(params ...string) string {
	var b strings.Builder
	b.WriteString(`<?xml version='1.0'?>` + "\n<methodCall>\n<methodName>m.x</methodName>\n<params>\n")
	for _, p := range params {
		b.WriteString("<param>\n" + p + "\n</param>\n")
	}
	b.WriteString("</params>\n</methodCall>\n")
	return b.String()
}

func TestDecodeXMLValues(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want any
	}{
		{"untyped", `<value>abc</value>`, "abc"},
		{"untyped keeps spaces", `<value> a b </value>`, " a b "},
		{"string", `<value><string>abc</string></value>`, "abc"},
		{"string keeps spaces", `<value><string>  x
</string></value>`, "  x\n"},
		{"empty value", `<value/>`, ""},
		{"empty value pair", `<value></value>`, ""},
		{"empty string", `<value><string/></string></value>`, nil}, // replaced below
		{"entities", `<value>a&lt;b&gt;&amp;&quot;&apos;&#13;&#x41;</value>`, "a<b>&\"'\rA"},
		{"cdata", `<value><![CDATA[<x>]]></value>`, "<x>"},
		{"whitespace around typed", "<value>\n  <int>5</int>\n</value>", int64(5)},
		{"int", `<value><int>-12</int></value>`, int64(-12)},
		{"i4", `<value><i4>7</i4></value>`, int64(7)},
		{"i8", `<value><i8>9223372036854775807</i8></value>`, int64(math.MaxInt64)},
		{"int spaces", `<value><int> 3 </int></value>`, int64(3)},
		{"double", `<value><double>2.5</double></value>`, 2.5},
		{"double exp", `<value><double>1e+21</double></value>`, 1e21},
		{"boolean 1", `<value><boolean>1</boolean></value>`, true},
		{"boolean 0", `<value><boolean>0</boolean></value>`, false},
		{"datetime compact", `<value><dateTime.iso8601>20250319T04:16:24Z</dateTime.iso8601></value>`, ts},
		{"datetime compact no tz", `<value><dateTime.iso8601>20250319T04:16:24</dateTime.iso8601></value>`, ts},
		{"datetime compact offset", `<value><dateTime.iso8601>20250319T06:16:24+02:00</dateTime.iso8601></value>`, ts},
		{"datetime rfc3339", `<value><dateTime.iso8601>2025-03-19T04:16:24Z</dateTime.iso8601></value>`, ts},
		{"datetime rfc3339 no tz", `<value><dateTime.iso8601>2025-03-19T04:16:24</dateTime.iso8601></value>`, ts},
		{"datetime python", `<value><dateTime.iso8601>20250319T04:16:24</dateTime.iso8601></value>`, ts},
		{"datetime bad", `<value><dateTime.iso8601>yesterday</dateTime.iso8601></value>`, "yesterday"},
		{"nil", `<value><nil/></value>`, nil},
		{"base64", `<value><base64>aGVs
bG8=</base64></value>`, "hello"},
		{"array", `<value><array><data><value>a</value><value><i4>1</i4></value></data></array></value>`, []any{"a", int64(1)}},
		{"array pretty", "<value>\n <array>\n  <data>\n   <value><string>a</string></value>\n  </data>\n </array>\n</value>", []any{"a"}},
		{"empty array", `<value><array><data/></array></value>`, []any{}},
		{"struct", `<value><struct><member><name>k</name><value>v</value></member><member><value><int>1</int></value><name>n</name></member></struct></value>`,
			map[string]any{"k": "v", "n": int64(1)}},
		{"empty struct", `<value><struct/></value>`, map[string]any{}},
		{"nested", `<value><struct><member><name>a</name><value><array><data><value><struct><member><name>b</name><value><nil/></value></member></struct></value></data></array></value></member></struct></value>`,
			map[string]any{"a": []any{map[string]any{"b": nil}}}},
		{"comment ignored", `<value><!-- c --><int>1</int><!-- d --></value>`, int64(1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if tc.name == "empty string" {
				tc.in, want = `<value><string/></value>`, ""
			}
			c, err := DecodeXMLCall(strings.NewReader(xmlCall(tc.in)))
			if err != nil {
				t.Fatal(err)
			}
			if c.Method != "m.x" || c.Protocol != XMLRPC || len(c.Params) != 1 {
				t.Fatalf("bad call %+v", c)
			}
			if !reflect.DeepEqual(c.Params[0], want) {
				t.Errorf("got %#v want %#v", c.Params[0], want)
			}
		})
	}
}

func TestDecodeXMLCallShapes(t *testing.T) {
	// Exactly what CPython's xmlrpc.client sends (xapi-semantics.md §2.1).
	py := `<?xml version='1.0'?>
<methodCall>
<methodName>session.login_with_password</methodName>
<params>
<param>
<value><string>root</string></value>
</param>
<param>
<value><string>secret</string></value>
</param>
<param>
<value><string>1.0</string></value>
</param>
<param>
<value><string>my-script</string></value>
</param>
</params>
</methodCall>
`
	c, err := DecodeXMLCall(strings.NewReader(py))
	if err != nil {
		t.Fatal(err)
	}
	if c.Method != "session.login_with_password" || !reflect.DeepEqual(c.Params, []any{"root", "secret", "1.0", "my-script"}) {
		t.Errorf("got %+v", c)
	}
	for _, in := range []string{
		`<methodCall><methodName>system.listMethods</methodName></methodCall>`,
		`<methodCall><methodName>system.listMethods</methodName><params/></methodCall>`,
		`<?xml version="1.0" encoding="UTF-8"?><methodCall><methodName>system.listMethods</methodName><params></params></methodCall>`,
		`<?xml version="1.0" encoding="ISO-8859-1"?><methodCall><methodName>system.listMethods</methodName><params></params></methodCall>`,
		"<methodCall>\n <methodName> system.listMethods </methodName>\n</methodCall>\n<!-- trailing -->\n",
		"\xef\xbb\xbf<?xml version=\"1.0\"?><methodCall><methodName>system.listMethods</methodName></methodCall>",
	} {
		c, err := DecodeXMLCall(strings.NewReader(in))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if c.Method != "system.listMethods" || c.Params == nil || len(c.Params) != 0 {
			t.Errorf("%s: got %+v", in, c)
		}
	}
	// Latin-1 bodies are transcoded.
	c, err = DecodeXMLCall(strings.NewReader("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><methodCall><methodName>m</methodName><params><param><value>caf\xe9</value></param></params></methodCall>"))
	if err != nil || c.Params[0] != "café" {
		t.Errorf("latin1: %v %#v", err, c)
	}
}

func TestDecodeXMLMalformed(t *testing.T) {
	deep := strings.Repeat("<value><array><data>", maxDepth+1) + strings.Repeat("</data></array></value>", maxDepth+1)
	for _, in := range []string{
		``,
		`   `,
		`not xml`,
		`<methodCall>`,
		`<methodCall><methodName>x</methodName>`,
		`<methodResponse><params/></methodResponse>`,
		`<methodCall><params/></methodCall>`,
		`<methodCall><methodName>x</methodName><bogus/></methodCall>`,
		`<methodCall><methodName>x<b/></methodName></methodCall>`,
		`<methodCall><methodName>x</methodName></methodCall><methodCall/>`,
		`<methodCall><methodName>x</methodName></methodCall>junk`,
		xmlCall(`<value><int>abc</int></value>`),
		xmlCall(`<value><int>99999999999999999999</int></value>`),
		xmlCall(`<value><double>x</double></value>`),
		xmlCall(`<value><boolean>2</boolean></value>`),
		xmlCall(`<value><base64>!!!</base64></value>`),
		xmlCall(`<value><float>1</float></value>`),
		xmlCall(`<value>text<int>1</int></value>`),
		xmlCall(`<value><int>1</int>text</value>`),
		xmlCall(`<value><int>1</int><int>2</int></value>`),
		xmlCall(`<value><struct><member><name>a</name></member></struct></value>`),
		xmlCall(`<value><struct><member><value>a</value></member></struct></value>`),
		xmlCall(`<value><struct><value>a</value></struct></value>`),
		xmlCall(`<value><array><data><int>1</int></data></array></value>`),
		xmlCall(`<value><array><bogus/></array></value>`),
		xmlCall(`<value>a &nbsp; b</value>`),
		xmlCall(`<value>a</value><value>b</value>`),
		xmlCall(``),
		xmlCall(`<value>` + "\x01" + `</value>`),
		xmlCall(`<value><int>1</i4></value>`),
		`<?xml version="1.0" encoding="EBCDIC"?><methodCall><methodName>x</methodName></methodCall>`,
		`<methodCall><methodName>x</methodName><params><param>` + deep + `</param></params></methodCall>`,
	} {
		_, err := DecodeXMLCall(strings.NewReader(in))
		var me *MalformedError
		if !errors.As(err, &me) {
			t.Errorf("%q: got err %v, want *MalformedError", in, err)
		}
	}
}

func TestDecodeJSONCall(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		proto  Protocol
		method string
		params []any
		id     string
	}{
		{"xo v2", `{"id":0,"jsonrpc":"2.0","method":"session.login_with_password","params":["root","pw"]}`,
			JSONRPC2, "session.login_with_password", []any{"root", "pw"}, `0`},
		{"v1", `{"method":"VM.get_all","params":["OpaqueRef:s"],"id":7}`, JSONRPC1, "VM.get_all", []any{"OpaqueRef:s"}, `7`},
		{"v2 no params", `{"jsonrpc":"2.0","method":"m","id":"abc"}`, JSONRPC2, "m", []any{}, `"abc"`},
		{"v2 null params", `{"jsonrpc":"2.0","method":"m","params":null,"id":"a\u0062"}`, JSONRPC2, "m", []any{}, `"ab"`},
		{"v2 object params", `{"jsonrpc":"2.0","method":"VM.create","params":{"name_label":"x","VCPUs_max":2},"id":1}`,
			JSONRPC2, "VM.create", []any{map[string]any{"name_label": "x", "VCPUs_max": int64(2)}}, `1`},
		{"values", `{"jsonrpc":"2.0","method":"m","id":1,"params":["s",1,-2,1.5,1e3,2.0,true,false,null,[1,[2]],{"a":{"b":3},"c":[4.5]},9223372036854775808]}`,
			JSONRPC2, "m", []any{"s", int64(1), int64(-2), 1.5, 1000.0, 2.0, true, false, nil,
				[]any{int64(1), []any{int64(2)}}, map[string]any{"a": map[string]any{"b": int64(3)}, "c": []any{4.5}}, 9223372036854775808.0}, `1`},
		{"whitespace", " {\n \"id\" : 3 , \"method\":\"m\",\"params\":[ ]}\n", JSONRPC1, "m", []any{}, `3`},
		{"bom", "\xef\xbb\xbf{\"id\":1,\"method\":\"m\",\"params\":[]}", JSONRPC1, "m", []any{}, `1`},
		{"big id", `{"id":9223372036854775807,"method":"m","params":[]}`, JSONRPC1, "m", []any{}, `9223372036854775807`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, id, err := DecodeJSONCall([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if c.Protocol != tc.proto || c.Method != tc.method || string(id) != tc.id {
				t.Errorf("got %v %q id %s", c.Protocol, c.Method, id)
			}
			if !reflect.DeepEqual(c.Params, tc.params) {
				t.Errorf("params got %#v want %#v", c.Params, tc.params)
			}
		})
	}
}

func TestDecodeJSONMalformed(t *testing.T) {
	for _, in := range []string{
		``,
		`null`,
		`[]`,
		`[{"id":1,"method":"m","params":[]}]`,
		`"x"`,
		`{`,
		`{"method":"m","params":[]}`,
		`{"id":null,"method":"m","params":[]}`,
		`{"id":1.5,"method":"m","params":[]}`,
		`{"id":true,"method":"m","params":[]}`,
		`{"id":[1],"method":"m","params":[]}`,
		`{"id":1,"params":[]}`,
		`{"id":1,"method":3,"params":[]}`,
		`{"id":1,"method":"m"}`,
		`{"id":1,"method":"m","params":null}`,
		`{"id":1,"method":"m","params":{"a":1}}`,
		`{"id":1,"method":"m","params":"x"}`,
		`{"jsonrpc":"2.0","id":1,"method":"m","params":5}`,
		`{"jsonrpc":"1.0","id":1,"method":"m","params":[]}`,
		`{"jsonrpc":2,"id":1,"method":"m","params":[]}`,
		`{"jsonrpc":null,"method":"m","params":[],"id":1}`, // §1.6: only absent means v1
		`{"jsonrpc":"","method":"m","params":[],"id":1}`,
		`{"jsonrpc":"2.0 ","method":"m","params":[],"id":1}`,
		`{"jsonrpc":"2.0","id":1,"method":"m","params":[1e999]}`,
		`{"id":1,"method":"m","params":[]} trailing`,
	} {
		_, _, err := DecodeJSONCall([]byte(in))
		var me *MalformedError
		if !errors.As(err, &me) {
			t.Errorf("%q: got err %v, want *MalformedError", in, err)
		}
	}
}

// TestJSONIDRoundTrip checks that decoded ids echo with their type.
func TestJSONIDRoundTrip(t *testing.T) {
	for _, id := range []string{`0`, `12`, `"x"`, `"é"`} {
		_, got, err := DecodeJSONCall([]byte(`{"id":` + id + `,"method":"m","params":[]}`))
		if err != nil {
			t.Fatal(err)
		}
		var a, b any
		_ = json.Unmarshal(got, &a)
		_ = json.Unmarshal([]byte(id), &b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("id %s echoed as %s", id, got)
		}
	}
}

// TestDecodeJSONInvalidUTF8 checks that a params string (key or value) that
// is not UTF-8 makes the call carry xapi's INVALID_VALUE fault with the
// first such string as decoded, and that nothing else does (§2.2).
func TestDecodeJSONInvalidUTF8(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		reject string // the fault's string; "" means no Reject
		params []any
	}{
		{"valid", `{"id":1,"method":"m","params":["héllo",{"clé":"✓"}]}`, "", []any{"héllo", map[string]any{"clé": "✓"}}},
		{"top-level value", "{\"id\":1,\"method\":\"m\",\"params\":[\"a\xffb\"]}", "a\uFFFDb", []any{"a\uFFFDb"}},
		{"each bad byte replaced", "{\"id\":1,\"method\":\"m\",\"params\":[\"\xc3\xff\xfe.\"]}", "\uFFFD\uFFFD\uFFFD.", []any{"\uFFFD\uFFFD\uFFFD."}},
		{"truncated sequence", "{\"id\":1,\"method\":\"m\",\"params\":[\"x\xe2\x9c\"]}", "x\uFFFD\uFFFD", []any{"x\uFFFD\uFFFD"}},
		{"surrogate encoded", "{\"id\":1,\"method\":\"m\",\"params\":[\"\xed\xa0\x80\"]}", "\uFFFD\uFFFD\uFFFD", []any{"\uFFFD\uFFFD\uFFFD"}},
		{"first of two", "{\"id\":1,\"method\":\"m\",\"params\":[\"é\",\"1\xff\",\"2\xff\"]}", "1\uFFFD", []any{"é", "1\uFFFD", "2\uFFFD"}},
		{"nested value", "{\"id\":1,\"method\":\"m\",\"params\":[1,[true,{\"k\":[null,\"v\x80\"]}]]}", "v\uFFFD",
			[]any{int64(1), []any{true, map[string]any{"k": []any{nil, "v\uFFFD"}}}}},
		{"struct key", "{\"id\":1,\"method\":\"m\",\"params\":[{\"k\xff\":\"v\"}]}", "k\uFFFD", []any{map[string]any{"k\uFFFD": "v"}}},
		{"v2 object params", "{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":{\"name_label\":\"\xff\"}}", "\uFFFD", []any{map[string]any{"name_label": "\uFFFD"}}},
		{"escaped lone surrogate is not raw bytes", `{"id":1,"method":"m","params":["\ud800"]}`, "", []any{"\uFFFD"}},
		{"bad method only", "{\"id\":1,\"method\":\"m\xff\",\"params\":[]}", "", []any{}},
		{"bad id only", "{\"id\":\"\xff\",\"method\":\"m\",\"params\":[]}", "", []any{}},
		{"bad key outside params", "{\"id\":1,\"x\xff\":1,\"method\":\"m\",\"params\":[]}", "", []any{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := DecodeJSONCall([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Params, tc.params) {
				t.Errorf("params got %#v want %#v", c.Params, tc.params)
			}
			var want *Fault
			if tc.reject != "" {
				want = &Fault{Code: "INVALID_VALUE", Params: []string{"Invalid UTF-8 string in parameter", tc.reject}}
			}
			if !reflect.DeepEqual(c.Reject, want) {
				t.Errorf("Reject got %+v want %+v", c.Reject, want)
			}
		})
	}
}

// TestDecodeXMLInvalidUTF8 documents that invalid UTF-8 in the XML text is
// malformed (encoding/xml, like xapi's xmlm, rejects the document), while a
// <base64> string that decodes to invalid UTF-8 reaches xapi's pre-dispatch
// check and makes the call carry INVALID_VALUE.
func TestDecodeXMLInvalidUTF8(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		malformed bool
		reject    string
	}{
		{"valid", xmlCall(`<value>héllo</value>`), false, ""},
		{"untyped value", xmlCall("<value>a\xffb</value>"), true, ""},
		{"string", xmlCall("<value><string>a\xffb</string></value>"), true, ""},
		{"struct name", xmlCall("<value><struct><member><name>k\xff</name><value>v</value></member></struct></value>"), true, ""},
		{"method name", strings.Replace(xmlCall(), "m.x", "m\xff", 1), true, ""},
		{"us-ascii declared", strings.Replace(xmlCall("<value>a\xffb</value>"), "version='1.0'", "version='1.0' encoding='us-ascii'", 1), true, ""},
		{"base64 valid", xmlCall(`<value><base64>aMOp</base64></value>`), false, ""},           // "hé"
		{"base64 invalid", xmlCall(`<value><base64>Yf9i</base64></value>`), false, "a\uFFFDb"}, // "a\xffb"
		{"base64 nested, first wins", xmlCall(`<value><array><data><value>x</value><value><struct><member><name>k</name><value><base64>/w==</base64></value></member></struct></value></data></array></value>`,
			`<value><base64>YWL/</base64></value>`), false, "\uFFFD"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DecodeXMLCall(strings.NewReader(tc.in))
			var me *MalformedError
			if tc.malformed {
				if !errors.As(err, &me) {
					t.Fatalf("got %v, want *MalformedError", err)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var want *Fault
			if tc.reject != "" {
				want = InvalidUTF8Fault(tc.reject)
			}
			if !reflect.DeepEqual(c.Reject, want) {
				t.Errorf("Reject got %+v want %+v", c.Reject, want)
			}
		})
	}
}
