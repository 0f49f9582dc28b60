package rrd

import (
	"bufio"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func newTestHandler(t *testing.T) (*httptest.Server, int64) {
	t.Helper()
	s := NewStore(StoreOptions{})
	t0 := time.Unix(1_700_000_000, 0)
	for i := 0; i <= 30; i++ {
		ts := t0.Add(time.Duration(i) * time.Second)
		s.AddHost(ts, map[string]float64{"cpu0": 0.5, "memory_free_kib": 1000})
		s.AddVM("vm-1", ts, map[string]float64{"cpu0": 0.25, "memory": 1 << 30})
	}
	h := NewHandler(s, HandlerOptions{
		HostUUID: func() string { return "host-1" },
		Authorize: func(r *http.Request) error {
			if r.URL.Query().Get("session_id") != "good" {
				return errors.New("SESSION_INVALID")
			}
			return nil
		},
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, t0.Unix()
}

func TestHandlerUpdatesXMLAndJSON(t *testing.T) {
	srv, t0 := newTestHandler(t)
	get := func(path string, accept string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	q := fmt.Sprintf("/rrd_updates?session_id=good&start=%d&cf=AVERAGE&interval=5&host=true", t0)
	resp, body := get(q, "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/xml" || resp.ContentLength != int64(len(body)) {
		t.Fatalf("xml: %d %v %d/%d", resp.StatusCode, resp.Header, resp.ContentLength, len(body))
	}
	var x struct {
		Meta struct {
			Step   int      `xml:"step"`
			Legend []string `xml:"legend>entry"`
		} `xml:"meta"`
	}
	if err := xml.Unmarshal(body, &x); err != nil {
		t.Fatalf("xml: %v\n%s", err, body)
	}
	if x.Meta.Step != 5 || !contains(x.Meta.Legend, "AVERAGE:host:host-1:cpu0") || !contains(x.Meta.Legend, "AVERAGE:vm:vm-1:memory") {
		t.Fatalf("xml meta: %+v", x.Meta)
	}
	resp, body = get(q+"&json=true", "")
	var j struct {
		Meta struct {
			Step   int      `json:"step"`
			Legend []string `json:"legend"`
		} `json:"meta"`
		Data []struct {
			T      int64    `json:"t"`
			Values []string `json:"values"`
		} `json:"data"`
	}
	if resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("json content type %q", resp.Header.Get("Content-Type"))
	}
	if err := json.Unmarshal(body, &j); err != nil {
		t.Fatalf("json: %v\n%s", err, body)
	}
	if j.Meta.Step != 5 || len(j.Data) == 0 || len(j.Data[0].Values) != len(j.Meta.Legend) {
		t.Fatalf("json: %+v", j)
	}
	// errors
	if resp, _ := get("/rrd_updates?session_id=bad&start=0", ""); resp.StatusCode != 403 {
		t.Fatalf("bad session: %d", resp.StatusCode)
	}
	if resp, _ := get("/rrd_updates?session_id=good", ""); resp.StatusCode != 400 {
		t.Fatalf("missing start: %d", resp.StatusCode)
	}
	if resp, _ := get("/vm_rrd?session_id=good&uuid=nope", ""); resp.StatusCode != 404 {
		t.Fatalf("unknown vm: %d", resp.StatusCode)
	}
	if resp, body := get("/vm_rrds?session_id=good&uuid=vm-1", ""); resp.StatusCode != 200 || !strings.Contains(string(body), "<rrd>") {
		t.Fatalf("vm dump: %d %.100s", resp.StatusCode, body)
	}
	if resp, body := get("/host_rrd?session_id=good&json=true", ""); resp.StatusCode != 200 || !json.Valid(body) {
		t.Fatalf("host dump json: %d %.100s", resp.StatusCode, body)
	}
}

// XenCenter's raw HTTP/1.0 request without Accept header, read until close.
func TestHandlerHTTP10ReadUntilClose(t *testing.T) {
	srv, t0 := newTestHandler(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /rrd_updates?session_id=good&start=%d&cf=AVERAGE&interval=5&host=true HTTP/1.0\r\n\r\n", t0)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	all, err := io.ReadAll(bufio.NewReader(conn)) // returns only when the server closes
	if err != nil {
		t.Fatalf("read until close: %v", err)
	}
	s := string(all)
	if !strings.HasPrefix(s, "HTTP/1.") || !strings.Contains(s, " 200 ") || !strings.Contains(s, "<xport>") {
		t.Fatalf("reply: %.300s", s)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
