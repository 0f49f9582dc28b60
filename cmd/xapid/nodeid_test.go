package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/xapi"
)

func TestResolveNodeIDFlagWins(t *testing.T) {
	dir := t.TempDir()
	if err := writeNodeID(dir, "stored-id"); err != nil {
		t.Fatal(err)
	}
	id, src, err := resolveNodeID(dir, "flag-id", "h1")
	if err != nil || id != "flag-id" || src != nodeIDFromFlag {
		t.Fatalf("got %q %q %v, want the flag's id", id, src, err)
	}
	// the flag does not overwrite the stored id
	if got, _ := readNodeID(dir); got != "stored-id" {
		t.Errorf("stored id = %q after a flag override", got)
	}
}

func TestResolveNodeIDStored(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, nodeIDFile), []byte("  abc-123 \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// a raft dir does not matter once the id is stored
	if err := os.Mkdir(filepath.Join(dir, "raft"), 0o700); err != nil {
		t.Fatal(err)
	}
	id, src, err := resolveNodeID(dir, "", "h1")
	if err != nil || id != "abc-123" || src != nodeIDFromFile {
		t.Fatalf("got %q %q %v, want the stored id", id, src, err)
	}
}

func TestResolveNodeIDNew(t *testing.T) {
	dir := t.TempDir()
	id, src, err := resolveNodeID(dir, "", "h1")
	if err != nil || src != nodeIDNew || !datamodel.IsUUID(id) {
		t.Fatalf("got %q %q %v, want a new uuid", id, src, err)
	}
	if got, _ := readNodeID(dir); got != id {
		t.Fatalf("stored id = %q, want %q", got, id)
	}
	again, src, err := resolveNodeID(dir, "", "h1")
	if err != nil || again != id || src != nodeIDFromFile {
		t.Fatalf("second start: got %q %q %v, want %q from the file", again, src, err, id)
	}
}

func TestResolveNodeIDLegacy(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "raft"), 0o700); err != nil {
		t.Fatal(err)
	}
	id, src, err := resolveNodeID(dir, "", "oldhost")
	if err != nil || id != "oldhost" || src != nodeIDFromLegacy {
		t.Fatalf("got %q %q %v, want the hostname for a data dir with a raft log", id, src, err)
	}
	// kept from now on, even if the host name changes
	id, src, err = resolveNodeID(dir, "", "renamed")
	if err != nil || id != "oldhost" || src != nodeIDFromFile {
		t.Fatalf("got %q %q %v, want the stored legacy id", id, src, err)
	}
	empty := t.TempDir()
	if err := os.Mkdir(filepath.Join(empty, "raft"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := resolveNodeID(empty, "", ""); err == nil {
		t.Error("legacy data dir without a host name: want an error")
	}
}

func TestParseServeFlagsNodeIDNotDefaulted(t *testing.T) {
	o, err := parseServeFlags([]string{"--data-dir", "d", "--hostname", "h1"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.NodeID != "" {
		t.Errorf("NodeID = %q, want empty (resolved from the data dir at start)", o.NodeID)
	}
}

func TestJoinMarker(t *testing.T) {
	dir := t.TempDir()
	if m, err := readJoinMarker(dir); err != nil || m != nil {
		t.Fatalf("no marker: got %v %v", m, err)
	}
	want := &joinMarker{JoinInfo: xapi.JoinInfo{MasterURL: "http://127.0.0.1:8080", NodeID: datamodel.NewUUID()}}
	if err := writeJoinMarker(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := readJoinMarker(dir)
	if err != nil || got == nil || *got != *want {
		t.Fatalf("got %+v %v, want %+v", got, err, want)
	}
	// the file holds the JoinInfo's JSON fields
	b, _ := os.ReadFile(filepath.Join(dir, joinMarkerFile))
	for _, f := range []string{`"master_url"`, `"node_id"`, `"wiped": false`} {
		if !strings.Contains(string(b), f) {
			t.Errorf("marker %s lacks %s", b, f)
		}
	}
	want.Wiped = true
	if err := writeJoinMarker(dir, want); err != nil {
		t.Fatal(err)
	}
	if got, _ := readJoinMarker(dir); got == nil || !got.Wiped {
		t.Fatalf("after rewrite: %+v", got)
	}
	if err := removeMarker(dir, joinMarkerFile); err != nil {
		t.Fatal(err)
	}
	if m, err := readJoinMarker(dir); err != nil || m != nil {
		t.Fatalf("after remove: got %v %v", m, err)
	}
	if err := removeMarker(dir, joinMarkerFile); err != nil {
		t.Errorf("removing a missing marker: %v", err)
	}
	// no temporary files left behind
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		t.Errorf("left in the data dir: %s", e.Name())
	}
}

func TestJoinMarkerInvalid(t *testing.T) {
	for _, content := range []string{"{", `{"master_url":"http://x"}`, `{"node_id":"n"}`} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, joinMarkerFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if m, err := readJoinMarker(dir); err == nil {
			t.Errorf("%s: got %+v, want an error", content, m)
		}
	}
}

func TestEjectMarker(t *testing.T) {
	dir := t.TempDir()
	if hasMarker(dir, ejectMarkerFile) {
		t.Fatal("marker before writing it")
	}
	if err := writeFileDurable(filepath.Join(dir, ejectMarkerFile), nil); err != nil {
		t.Fatal(err)
	}
	if !hasMarker(dir, ejectMarkerFile) {
		t.Fatal("marker missing after writing it")
	}
	if err := removeMarker(dir, ejectMarkerFile); err != nil || hasMarker(dir, ejectMarkerFile) {
		t.Fatalf("remove: %v", err)
	}
}

// TestSwapHandler: a swap waits for the calls in flight on the previous
// handler, and new calls go to the new one.
func TestSwapHandler(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = io.WriteString(w, "old")
	})
	sh := newSwapHandler(slow)
	srv := httptest.NewServer(sh)
	defer srv.Close()
	oldReply := make(chan string, 1)
	go func() {
		resp, err := http.Get(srv.URL)
		if err != nil {
			oldReply <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		oldReply <- string(b)
	}()
	<-started
	old := sh.swap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "new") }))
	if old.wait(50 * time.Millisecond) {
		t.Fatal("wait returned while a call was in flight")
	}
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "new" {
		t.Errorf("after swap: %q, want the new handler", b)
	}
	close(release)
	if !old.wait(5 * time.Second) {
		t.Fatal("wait did not return once the call was done")
	}
	if r := <-oldReply; r != "old" {
		t.Errorf("call in flight got %q, want its reply from the old handler", r)
	}
}

func TestBootingHandler(t *testing.T) {
	srv := httptest.NewServer(bootingHandler(newLogger(io.Discard, 0)))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/jsonrpc", "application/json",
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"session.login_with_password","params":["root","x"]}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "HOST_STILL_BOOTING") {
		t.Errorf("JSON-RPC while booting: %s", b)
	}
	resp, err = http.Post(srv.URL+"/internal/apply", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("internal endpoint while booting: HTTP %d, want 503", resp.StatusCode)
	}
}

func TestPlanFor(t *testing.T) {
	info := &xapi.JoinInfo{MasterURL: "http://m", NodeID: "n"}
	if p := planFor(xapi.Restart{Join: info}); p.join == nil || p.join.JoinInfo != *info || p.join.Wiped || p.eject || p.recover {
		t.Errorf("join: %+v", p)
	}
	if p := planFor(xapi.Restart{}); !p.eject || p.join != nil || p.recover {
		t.Errorf("eject: %+v", p)
	}
	// recovering keeps the replica: it must never be taken for an eject (which wipes it)
	if p := planFor(xapi.Restart{Recover: true}); !p.recover || p.eject || p.join != nil {
		t.Errorf("recover: %+v", p)
	}
}
