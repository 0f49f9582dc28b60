package rpc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kolo/xmlrpc"
)

// fakeDispatcher implements a few methods for the HTTP tests.
type fakeDispatcher struct {
	mu        sync.Mutex
	calls     []*Call
	cancelled chan struct{} // receives when a "wait" call sees its context end
}

func (f *fakeDispatcher) Dispatch(ctx context.Context, c *Call) Response {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	switch c.Method {
	case "session.login_with_password":
		if len(c.Params) >= 2 && c.Params[0] == "root" && c.Params[1] == "secret" {
			return Response{Value: stringValue(loginRef)}
		}
		return Response{Err: &Fault{Code: "SESSION_AUTHENTICATION_FAILED", Params: []string{"root", "Authentication failure"}}}
	case "session.logout":
		return Response{}
	case "system.listMethods":
		return Response{Raw: true, Value: func(w Writer) {
			w.BeginArray()
			w.String("VM.start")
			w.String("session.logout")
			w.EndArray()
		}}
	case "echo":
		return Response{Value: func(w Writer) { writeAny(w, c.Params) }}
	case "record":
		return Response{Value: func(w Writer) { writeVM(w, 1) }}
	case "big":
		n := 10
		if len(c.Params) == 1 {
			if v, ok := c.Params[0].(int64); ok {
				n = int(v)
			}
		}
		return Response{Value: func(w Writer) {
			w.BeginArray()
			for i := 0; i < n; i++ {
				writeVM(w, i)
			}
			w.EndArray()
		}}
	case "wait":
		select {
		case <-ctx.Done():
			if f.cancelled != nil {
				f.cancelled <- struct{}{}
			}
			return Response{Err: &Fault{Code: "CANCELLED"}}
		case <-time.After(5 * time.Second):
			return Response{}
		}
	case "panic":
		panic("boom")
	case "panic.value":
		return Response{Value: func(w Writer) { w.BeginStruct(); w.Member("x"); panic("late boom") }}
	case "whoami":
		return Response{Value: func(w Writer) {
			w.BeginStruct()
			w.Member("remote")
			w.String(c.RemoteAddr)
			w.Member("agent")
			w.String(c.UserAgent)
			w.Member("protocol")
			w.Int(int64(c.Protocol))
			w.EndStruct()
		}}
	}
	return Response{Err: &Fault{Code: "MESSAGE_METHOD_UNKNOWN", Params: []string{c.Method}}}
}

// writeAny writes a decoded value tree.
func writeAny(w Writer, v any) {
	switch v := v.(type) {
	case nil:
		w.String("")
	case string:
		w.String(v)
	case int64:
		w.Int(v)
	case float64:
		w.Float(v)
	case bool:
		w.Bool(v)
	case time.Time:
		w.DateTime(v)
	case []any:
		w.BeginArray()
		for _, e := range v {
			writeAny(w, e)
		}
		w.EndArray()
	case map[string]any:
		w.BeginStruct()
		for _, k := range sortedKeys(v) {
			w.Member(k)
			writeAny(w, v[k])
		}
		w.EndStruct()
	}
}

func newTestServer(t *testing.T, o Options) (*httptest.Server, *fakeDispatcher) {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d := &fakeDispatcher{}
	srv := httptest.NewServer(NewHandler(d, o))
	t.Cleanup(srv.Close)
	return srv, d
}

func post(t *testing.T, url, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(url, "text/xml", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func readAll(t *testing.T, r *http.Response) string {
	t.Helper()
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const pyLogin = `<?xml version='1.0'?>
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

func TestHTTPXMLLogin(t *testing.T) {
	srv, _ := newTestServer(t, Options{})
	for _, path := range []string{"/", "/RPC2", "/xmlrpc", "/json"} {
		resp := post(t, srv.URL+path, pyLogin)
		body := readAll(t, resp)
		if resp.StatusCode != 200 || body != loginSuccessBody {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
		want := map[string]string{
			"Content-Type":                 "text/xml",
			"Access-Control-Allow-Origin":  "*",
			"Access-Control-Allow-Headers": "X-Requested-With",
			"Cache-Control":                "no-cache, no-store",
			"Content-Length":               strconv.Itoa(len(loginSuccessBody)),
		}
		for k, v := range want {
			if got := resp.Header.Values(k); len(got) != 1 || got[0] != v {
				t.Errorf("%s: header %s = %q want %q", path, k, got, v)
			}
		}
	}
}

func TestHTTPJSON(t *testing.T) {
	srv, d := newTestServer(t, Options{})
	tests := []struct{ in, want string }{
		{`{"id":0,"jsonrpc":"2.0","method":"session.login_with_password","params":["root","secret"]}`,
			`{"jsonrpc":"2.0","result":"` + loginRef + `","id":0}`},
		{`{"id":"x","method":"session.login_with_password","params":["root","bad"]}`,
			`{"result":null,"error":["SESSION_AUTHENTICATION_FAILED","root","Authentication failure"],"id":"x"}`},
		{`{"id":5,"jsonrpc":"2.0","method":"session.login_with_password","params":["root","bad"]}`,
			`{"jsonrpc":"2.0","error":{"code":1,"message":"SESSION_AUTHENTICATION_FAILED","data":["root","Authentication failure"]},"id":5}`},
		{`{"id":1,"jsonrpc":"2.0","method":"system.listMethods"}`,
			`{"jsonrpc":"2.0","result":["VM.start","session.logout"],"id":1}`},
		{`{"id":2,"method":"session.logout","params":["s"]}`, `{"result":"","error":null,"id":2}`},
	}
	for _, tc := range tests {
		resp, err := http.Post(srv.URL+"/jsonrpc", "application/json", strings.NewReader(tc.in))
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != 200 || body != tc.want {
			t.Errorf("%s:\n got %d %s\nwant %s", tc.in, resp.StatusCode, body, tc.want)
		}
		if ct := resp.Header.Values("Content-Type"); len(ct) != 1 || ct[0] != "application/json" {
			t.Errorf("content-type %q", ct)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Error("missing CORS header")
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.calls[0].Protocol != JSONRPC2 || d.calls[1].Protocol != JSONRPC1 {
		t.Errorf("protocols %v %v", d.calls[0].Protocol, d.calls[1].Protocol)
	}
}

func TestHTTPCallInfo(t *testing.T) {
	srv, _ := newTestServer(t, Options{})
	req, _ := http.NewRequest("POST", srv.URL+"/jsonrpc/sub", strings.NewReader(`{"id":1,"jsonrpc":"2.0","method":"whoami"}`))
	req.Header.Set("User-Agent", "XenCenter/2023")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Result struct {
			Remote, Agent string
			Protocol      int
		}
	}
	if err := json.Unmarshal([]byte(readAll(t, resp)), &out); err != nil {
		t.Fatal(err)
	}
	if out.Result.Agent != "XenCenter/2023" || !strings.HasPrefix(out.Result.Remote, "127.0.0.1:") || out.Result.Protocol != int(JSONRPC2) {
		t.Errorf("got %+v", out.Result)
	}
}

func TestHTTPMalformed(t *testing.T) {
	srv, _ := newTestServer(t, Options{})
	for _, tc := range []struct{ path, body string }{
		{"/", "<methodCall>"},
		{"/RPC2", "garbage"},
		{"/jsonrpc", `{"method":"m","params":[]}`},
		{"/jsonrpc", `{"id":1,"method":"m"}`},
		{"/jsonrpc", `[{"id":1,"method":"m","params":[]}]`},
		{"/jsonrpc", `{"jsonrpc":"3.0","id":1,"method":"m","params":[]}`},
		{"/jsonrpc", pyLogin},
	} {
		resp := post(t, srv.URL+tc.path, tc.body)
		body := readAll(t, resp)
		if resp.StatusCode != 500 || !strings.Contains(body, "<html>") || !resp.Close || resp.Header.Get("Content-Type") != "text/html" {
			t.Errorf("%s %q: %d close=%v %s", tc.path, tc.body, resp.StatusCode, resp.Close, body)
		}
	}
	// The server still works.
	resp := post(t, srv.URL+"/", pyLogin)
	if body := readAll(t, resp); body != loginSuccessBody {
		t.Errorf("after malformed: %s", body)
	}
}

func TestHTTPOptions(t *testing.T) {
	srv, _ := newTestServer(t, Options{})
	for _, tc := range []struct{ path, reqHeaders, want string }{
		{"/", "", "X-Requested-With"},
		{"/jsonrpc", "content-type", "content-type, X-Requested-With"},
		{"/anything", "a, b", "a, b, X-Requested-With"},
	} {
		req, _ := http.NewRequest("OPTIONS", srv.URL+tc.path, nil)
		if tc.reqHeaders != "" {
			req.Header.Set("Access-Control-Request-Headers", tc.reqHeaders)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != 200 || body != "" ||
			resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
			resp.Header.Get("Access-Control-Allow-Headers") != tc.want ||
			resp.Header.Get("Access-Control-Allow-Methods") != "PUT" {
			t.Errorf("%s: %d %v %q", tc.path, resp.StatusCode, resp.Header, body)
		}
	}
}

func TestHTTPOther(t *testing.T) {
	srv, _ := newTestServer(t, Options{})
	for _, tc := range []struct {
		method string
		want   int
	}{
		// xapi (§1.2): GET falls on the file server (404 for a missing
		// file), PUT/CONNECT have no "/" handler (default_callback 403),
		// methods xapi does not know are 501.
		{"GET", 404},
		{"PUT", 403},
		{"DELETE", 501},
		{"PATCH", 501},
		{"HEAD", 501},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+"/rrd_updates", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != tc.want || !resp.Close || resp.Header.Get("Content-Type") != "text/html" ||
			(tc.method != "HEAD" && !strings.Contains(body, strconv.Itoa(tc.want))) {
			t.Errorf("nil Other %s: %d close=%v %v %q", tc.method, resp.StatusCode, resp.Close, resp.Header, body)
		}
	}
	// CONNECT needs a raw connection.
	rc := dial(t, srv)
	fmt.Fprintf(rc.c, "CONNECT /x HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, err := http.ReadResponse(rc.br, nil); err != nil || resp.StatusCode != 403 {
		t.Errorf("nil Other CONNECT: %v %v", resp, err)
	}
	srv2, _ := newTestServer(t, Options{Other: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "other "+r.Method+" "+r.URL.Path)
	})})
	for _, m := range []string{"GET", "PUT", "HEAD"} {
		req, _ := http.NewRequest(m, srv2.URL+"/rrd_updates", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != 200 || (m != "HEAD" && body != "other "+m+" /rrd_updates") {
			t.Errorf("%s: %d %q", m, resp.StatusCode, body)
		}
	}
}

func TestHTTPTooLarge(t *testing.T) {
	srv, _ := newTestServer(t, Options{MaxBody: 1024})
	big := xmlCall(`<value>` + strings.Repeat("x", 2000) + `</value>`)
	resp := post(t, srv.URL+"/", big)
	readAll(t, resp)
	if resp.StatusCode != 413 || !resp.Close {
		t.Errorf("with Content-Length: %d close=%v", resp.StatusCode, resp.Close)
	}
	// Chunked request without Content-Length: refused before the size
	// matters, like xapi's read_body (see TestHTTPNoContentLength).
	req, _ := http.NewRequest("POST", srv.URL+"/jsonrpc", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if resp.StatusCode != 500 || !resp.Close {
		t.Errorf("chunked: %d close=%v", resp.StatusCode, resp.Close)
	}
	// Exactly at the limit is fine.
	small := xmlCall(`<value>x</value>`)
	small = strings.Replace(small, "<params>", "<params>"+strings.Repeat(" ", 1024-len(small)), 1)
	resp = post(t, srv.URL+"/", small)
	readAll(t, resp)
	if resp.StatusCode != 200 {
		t.Errorf("at limit: %d", resp.StatusCode)
	}
}

func TestHTTPPanic(t *testing.T) {
	srv, _ := newTestServer(t, Options{})
	resp := post(t, srv.URL+"/", strings.Replace(pyLogin, "session.login_with_password", "panic", 1))
	body := readAll(t, resp)
	want := `<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Failure</value></member><member><name>ErrorDescription</name><value><array><data><value>INTERNAL_ERROR</value><value>boom</value></data></array></value></member></struct></value></param></params></methodResponse>`
	if resp.StatusCode != 200 || body != want {
		t.Errorf("got %d %s", resp.StatusCode, body)
	}
	resp, err := http.Post(srv.URL+"/jsonrpc", "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":3,"method":"panic.value"}`))
	if err != nil {
		t.Fatal(err)
	}
	body = readAll(t, resp)
	if want := `{"jsonrpc":"2.0","error":{"code":1,"message":"INTERNAL_ERROR","data":["late boom"]},"id":3}`; body != want {
		t.Errorf("got %s", body)
	}
}

// rawConn sends raw HTTP requests on one TCP connection.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, srv *httptest.Server) *rawConn {
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawConn) do(version, path, extra, body string) (*http.Response, string) {
	rc.t.Helper()
	fmt.Fprintf(rc.c, "POST %s %s\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n%s\r\n%s", path, version, len(body), extra, body)
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		rc.t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatal(err)
	}
	return resp, string(b)
}

func (rc *rawConn) closed() bool {
	_ = rc.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := rc.br.ReadByte()
	return err == io.EOF
}

func TestHTTPKeepAlive(t *testing.T) {
	srv, _ := newTestServer(t, Options{})
	rc := dial(t, srv)
	for i := 0; i < 3; i++ {
		resp, body := rc.do("HTTP/1.1", "/RPC2", "", pyLogin)
		if body != loginSuccessBody || resp.Close {
			t.Fatalf("request %d: close=%v %s", i, resp.Close, body)
		}
	}
	resp, body := rc.do("HTTP/1.1", "/jsonrpc", "", `{"id":1,"jsonrpc":"2.0","method":"session.logout"}`)
	if body != `{"jsonrpc":"2.0","result":"","id":1}` || resp.Close {
		t.Fatalf("json on same conn: %v %s", resp.Close, body)
	}
	// Connection: close ends it.
	resp, _ = rc.do("HTTP/1.1", "/", "Connection: close\r\n", pyLogin)
	if !resp.Close || !rc.closed() {
		t.Error("Connection: close did not close")
	}
	// HTTP/1.0 closes.
	rc = dial(t, srv)
	resp, body = rc.do("HTTP/1.0", "/", "", pyLogin)
	if body != loginSuccessBody || resp.ProtoMinor != 0 || !rc.closed() {
		t.Errorf("HTTP/1.0: proto %s close=%v", resp.Proto, resp.Close)
	}
	// A malformed request closes.
	rc = dial(t, srv)
	resp, _ = rc.do("HTTP/1.1", "/", "", "<bad")
	if resp.StatusCode != 500 || !rc.closed() {
		t.Error("malformed did not close")
	}
}

// TestHTTPLongPoll checks that a blocked call does not hold up others and is
// cancelled when its client goes away.
func TestHTTPLongPoll(t *testing.T) {
	srv, d := newTestServer(t, Options{})
	d.cancelled = make(chan struct{}, 1)
	rc := dial(t, srv)
	body := `{"id":1,"jsonrpc":"2.0","method":"wait"}`
	fmt.Fprintf(rc.c, "POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	// Wait until it is dispatched.
	for i := 0; ; i++ {
		d.mu.Lock()
		n := len(d.calls)
		d.mu.Unlock()
		if n > 0 {
			break
		}
		if i > 500 {
			t.Fatal("wait not dispatched")
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	resp := post(t, srv.URL+"/", pyLogin)
	if readAll(t, resp) != loginSuccessBody || time.Since(start) > 2*time.Second {
		t.Error("other call blocked")
	}
	rc.c.Close()
	select {
	case <-d.cancelled:
	case <-time.After(3 * time.Second):
		t.Error("long poll not cancelled by client disconnect")
	}
}

func TestHTTPStreamingLarge(t *testing.T) {
	srv, _ := newTestServer(t, Options{})
	resp, err := http.Post(srv.URL+"/jsonrpc", "application/json", strings.NewReader(`{"id":1,"jsonrpc":"2.0","method":"big","params":[500]}`))
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.ContentLength != -1 || len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("large response: Content-Length %d, TE %v", resp.ContentLength, resp.TransferEncoding)
	}
	var out struct {
		Result []map[string]any
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Result) != 500 || out.Result[499]["uuid"] == nil {
		t.Errorf("got %d records", len(out.Result))
	}
	// XML too, parsed by an independent decoder.
	resp = post(t, srv.URL+"/", xmlCall(`<value><i4>300</i4></value>`))
	resp.Body.Close()
	resp = post(t, srv.URL+"/", strings.Replace(xmlCall(`<value><i4>300</i4></value>`), "m.x", "big", 1))
	body = readAll(t, resp)
	if resp.ContentLength != -1 || strings.Count(body, "<name>uuid</name>") != 300 || !strings.HasSuffix(body, "</methodResponse>") {
		t.Errorf("xml large: CL %d len %d", resp.ContentLength, len(body))
	}
}

// TestKoloClient uses github.com/kolo/xmlrpc as an independent XML-RPC client.
func TestKoloClient(t *testing.T) {
	srv, _ := newTestServer(t, Options{})
	c, err := xmlrpc.NewClient(srv.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var login struct {
		Status           string   `xmlrpc:"Status"`
		Value            string   `xmlrpc:"Value"`
		ErrorDescription []string `xmlrpc:"ErrorDescription"`
	}
	if err := c.Call("session.login_with_password", []any{"root", "secret", "1.0", "kolo"}, &login); err != nil {
		t.Fatal(err)
	}
	if login.Status != "Success" || login.Value != loginRef {
		t.Errorf("got %+v", login)
	}
	login.Value = ""
	if err := c.Call("session.login_with_password", []any{"root", "wrong"}, &login); err != nil {
		t.Fatal(err)
	}
	if login.Status != "Failure" || len(login.ErrorDescription) != 3 || login.ErrorDescription[0] != "SESSION_AUTHENTICATION_FAILED" {
		t.Errorf("got %+v", login)
	}
	// A record. (kolo cannot decode untyped <value>s into interface{}, so
	// typed targets are used throughout.)
	var rec struct {
		Status string `xmlrpc:"Status"`
		Value  struct {
			NameLabel       string            `xmlrpc:"name_label"`
			IsATemplate     bool              `xmlrpc:"is_a_template"`
			MemoryStaticMax string            `xmlrpc:"memory_static_max"`
			Shadow          float64           `xmlrpc:"HVM_shadow_multiplier"`
			VBDs            []string          `xmlrpc:"VBDs"`
			Platform        map[string]string `xmlrpc:"platform"`
			StartTime       time.Time         `xmlrpc:"start_time"`
			Description     string            `xmlrpc:"name_description"`
		} `xmlrpc:"Value"`
	}
	if err := c.Call("record", nil, &rec); err != nil {
		t.Fatal(err)
	}
	v := rec.Value
	if rec.Status != "Success" || v.NameLabel != "vm-1" || v.IsATemplate || v.MemoryStaticMax != "4294967296" ||
		v.Shadow != 1 || len(v.VBDs) != 2 || v.Platform["device-model"] != "qemu-upstream-uefi" ||
		!v.StartTime.Equal(created) || v.Description != "A test VM with <special> & \"quoted\" text" {
		t.Errorf("record: %+v", rec)
	}
	// Echo of typed params sent by kolo: int, double, boolean, dateTime, struct.
	d := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	in := map[string]any{"k": "v<&>", "n": 12, "f": 1.5, "b": true, "d": d}
	var echoArr struct {
		Status string `xmlrpc:"Status"`
		Value  []struct {
			K string    `xmlrpc:"k"`
			N string    `xmlrpc:"n"`
			F float64   `xmlrpc:"f"`
			B bool      `xmlrpc:"b"`
			D time.Time `xmlrpc:"d"`
		} `xmlrpc:"Value"`
	}
	if err := c.Call("echo", []any{in}, &echoArr); err != nil {
		t.Fatal(err)
	}
	if len(echoArr.Value) != 1 {
		t.Fatalf("echo: %+v", echoArr)
	}
	e := echoArr.Value[0]
	if e.K != "v<&>" || e.N != "12" || e.F != 1.5 || !e.B || !e.D.Equal(d) {
		t.Errorf("echo: %+v", e)
	}
	// system.listMethods is unwrapped.
	var methods []string
	if err := c.Call("system.listMethods", nil, &methods); err != nil {
		t.Fatal(err)
	}
	if len(methods) != 2 || methods[0] != "VM.start" {
		t.Errorf("listMethods: %v", methods)
	}
}

// TestHTTPInvalidUTF8 checks xapi's answer to a parameter string that is not
// UTF-8: an API error (HTTP 200, the request's envelope and id), without
// dispatching; invalid UTF-8 in XML text stays a malformed request.
func TestHTTPInvalidUTF8(t *testing.T) {
	srv, d := newTestServer(t, Options{})
	fault := []any{"INVALID_VALUE", "Invalid UTF-8 string in parameter", "r\uFFFDot"}
	tests := []struct {
		name, path, body string
		status           int
		want             any // the decoded reply (JSON) or a substring (XML)
	}{
		{"v1", "/jsonrpc", "{\"id\":\"a\",\"method\":\"session.login_with_password\",\"params\":[\"r\xf6ot\",\"secret\"]}", 200,
			map[string]any{"result": nil, "error": fault, "id": "a"}},
		{"v2", "/jsonrpc", "{\"id\":7,\"jsonrpc\":\"2.0\",\"method\":\"session.login_with_password\",\"params\":[\"r\xf6ot\",\"secret\"]}", 200,
			map[string]any{"jsonrpc": "2.0", "error": map[string]any{"code": 1.0, "message": "INVALID_VALUE", "data": fault[1:]}, "id": 7.0}},
		{"v2 unknown method", "/jsonrpc", "{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"no.such\",\"params\":{\"k\":\"r\xf6ot\"}}", 200,
			map[string]any{"jsonrpc": "2.0", "error": map[string]any{"code": 1.0, "message": "INVALID_VALUE", "data": fault[1:]}, "id": 1.0}},
		{"xml base64", "/", xmlCall(`<value><base64>cvZvdA==</base64></value>`), 200,
			"<value>INVALID_VALUE</value><value>Invalid UTF-8 string in parameter</value><value>r\uFFFDot</value>"},
		{"xml raw bytes", "/", xmlCall("<value>r\xf6ot</value>"), 500, "invalid UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := post(t, srv.URL+tc.path, tc.body)
			body := readAll(t, resp)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			switch want := tc.want.(type) {
			case string:
				if !strings.Contains(body, want) {
					t.Errorf("body %s\nwant it to contain %s", body, want)
				}
			default:
				var got any
				if err := json.Unmarshal([]byte(body), &got); err != nil {
					t.Fatalf("%v: %s", err, body)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("got  %#v\nwant %#v", got, want)
				}
			}
		})
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.calls) != 0 {
		t.Errorf("dispatched %d calls", len(d.calls))
	}
}

// TestHTTPConnectionHeader checks the connection header xapi sends (§1.3):
// keep-alive while the connection stays open, close when the request asks
// for it, and that the connection really does what the header says.
func TestHTTPConnectionHeader(t *testing.T) {
	const jsonLogout = `{"id":1,"jsonrpc":"2.0","method":"session.logout"}`
	type step struct {
		method, version, path, extra, body string
		want                               string // connection header
	}
	tests := []struct {
		name   string
		steps  []step
		closed bool // the server closes after the last step
	}{
		{"HTTP/1.1 keeps alive", []step{
			{"POST", "HTTP/1.1", "/RPC2", "", pyLogin, "keep-alive"},
			{"POST", "HTTP/1.1", "/jsonrpc", "", jsonLogout, "keep-alive"},
			{"OPTIONS", "HTTP/1.1", "/jsonrpc", "", "", "keep-alive"},
			{"POST", "HTTP/1.1", "/", "", pyLogin, "keep-alive"},
		}, false},
		{"Connection: close", []step{
			{"POST", "HTTP/1.1", "/", "", pyLogin, "keep-alive"},
			{"POST", "HTTP/1.1", "/jsonrpc", "Connection: close\r\n", jsonLogout, "close"},
		}, true},
		{"Connection: keep-alive on 1.1", []step{
			{"POST", "HTTP/1.1", "/", "Connection: keep-alive\r\n", pyLogin, "keep-alive"},
			{"POST", "HTTP/1.1", "/", "Connection: keep-alive\r\n", pyLogin, "keep-alive"},
		}, false},
		{"HTTP/1.0", []step{{"POST", "HTTP/1.0", "/", "", pyLogin, "close"}}, true},
		{"HTTP/1.0 OPTIONS", []step{{"OPTIONS", "HTTP/1.0", "/", "", "", "close"}}, true},
		{"HTTP/1.0 keep-alive", []step{
			{"POST", "HTTP/1.0", "/", "Connection: keep-alive\r\n", pyLogin, "keep-alive"},
			{"POST", "HTTP/1.0", "/jsonrpc", "Connection: Keep-Alive\r\n", jsonLogout, "keep-alive"},
			{"POST", "HTTP/1.0", "/", "", pyLogin, "close"},
		}, true},
		{"HTTP/1.1 streamed reply", []step{
			{"POST", "HTTP/1.1", "/jsonrpc", "", `{"id":1,"jsonrpc":"2.0","method":"big","params":[500]}`, "keep-alive"},
			{"POST", "HTTP/1.1", "/", "", pyLogin, "keep-alive"},
		}, false},
		// An HTTP/1.0 reply without Content-Length ends at EOF: net/http
		// drops the keep-alive header and closes ("" = no header).
		{"HTTP/1.0 keep-alive streamed reply", []step{
			{"POST", "HTTP/1.0", "/jsonrpc", "Connection: keep-alive\r\n", `{"id":1,"jsonrpc":"2.0","method":"big","params":[500]}`, ""},
		}, true},
		{"malformed closes", []step{
			{"POST", "HTTP/1.1", "/", "", pyLogin, "keep-alive"},
			{"POST", "HTTP/1.1", "/", "", "<bad", "close"},
		}, true},
	}
	srv, _ := newTestServer(t, Options{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := dial(t, srv)
			// http.ReadResponse drops "Connection: close", so read the
			// header off the wire.
			var wire bytes.Buffer
			rc.br = bufio.NewReader(io.TeeReader(rc.c, &wire))
			for i, s := range tc.steps {
				wire.Reset()
				fmt.Fprintf(rc.c, "%s %s %s\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n%s", s.method, s.path, s.version, len(s.body), s.extra, s.body)
				resp, err := http.ReadResponse(rc.br, nil)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if _, err := io.ReadAll(resp.Body); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				head, _, _ := strings.Cut(wire.String(), "\r\n\r\n")
				n := strings.Count(strings.ToLower(head), "\r\nconnection:")
				if s.want == "" && n != 0 || s.want != "" && (n != 1 || !strings.Contains(head, "\r\nConnection: "+s.want+"\r\n")) {
					t.Errorf("step %d: want Connection %q\n%s", i, s.want, head)
				}
			}
			if got := rc.closed(); got != tc.closed {
				t.Errorf("closed %v want %v", got, tc.closed)
			}
		})
	}
}

// TestHTTPNoContentLength checks that a request body without Content-Length
// (chunked) is refused like xapi's read_body does ("We require a
// content-length: HTTP header" → 500, connection closed), without dispatch.
func TestHTTPNoContentLength(t *testing.T) {
	srv, d := newTestServer(t, Options{})
	chunk := func(s string) string { return fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(s), s) }
	tests := []struct {
		name, path, extra, body string
		closes                  bool
	}{
		{"xml", "/", "", chunk(pyLogin), true},
		{"json", "/jsonrpc", "", chunk(`{"id":1,"jsonrpc":"2.0","method":"session.logout"}`), true},
		{"empty", "/jsonrpc", "", "0\r\n\r\n", true},
		// The reply comes at once, but net/http reads (up to 256 KiB of) a
		// chunked body before closing, and this client sends none.
		{"expect continue", "/", "Expect: 100-continue\r\n", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := dial(t, srv)
			fmt.Fprintf(rc.c, "POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n%s\r\n%s", tc.path, tc.extra, tc.body)
			resp, err := http.ReadResponse(rc.br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 500 || !resp.Close ||
				resp.Header.Get("Content-Type") != "text/html" || !strings.Contains(string(body), "We require a content-length: HTTP header") {
				t.Errorf("%d %v %s", resp.StatusCode, resp.Header, body)
			}
			if tc.closes && !rc.closed() {
				t.Error("connection not closed")
			}
		})
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.calls) != 0 {
		t.Errorf("dispatched %d calls", len(d.calls))
	}
}
