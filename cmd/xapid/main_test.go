package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/rpc"
)

// syncBuffer is the stderr of an in-process xapid.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// inProcess is `xapid serve` run through run() in this process.
type inProcess struct {
	stderr *syncBuffer
	cancel context.CancelFunc
	done   chan int // the exit code
}

func startInProcess(t *testing.T, args ...string) *inProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &inProcess{stderr: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() { p.done <- run(ctx, append([]string{"serve"}, args...), &bytes.Buffer{}, p.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Error("xapid did not stop within 30s of the cancel")
		}
		if t.Failed() {
			t.Logf("xapid stderr:\n%s", p.stderr.String())
		}
	})
	return p
}

var servingLine = regexp.MustCompile(`msg="serving XenAPI" url=(\S+)/ `)

// waitServing waits until n "serving XenAPI" lines are logged and returns their
// URLs; it fails if run returns first.
func (p *inProcess) waitServing(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := servingLine.FindAllStringSubmatch(p.stderr.String(), -1); len(m) >= n {
			urls := make([]string, len(m))
			for i, x := range m {
				urls[i] = x[1]
			}
			return urls
		}
		select {
		case code := <-p.done:
			p.done <- code
			t.Fatalf("xapid exited with %d before serving:\n%s", code, p.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %d \"serving XenAPI\" lines within 60s:\n%s", n, p.stderr.String())
		}
	}
}

// stop cancels the server and requires exit code 0.
func (p *inProcess) stop(t *testing.T) {
	t.Helper()
	p.cancel()
	p.wantExit(t, 0, 30*time.Second, "after cancel")
}

// wantExit waits up to within for the server to exit, with code want.
func (p *inProcess) wantExit(t *testing.T, want int, within time.Duration, when string) {
	t.Helper()
	select {
	case code := <-p.done:
		p.done <- code
		if code != want {
			t.Errorf("exit code %d %s, want %d", code, when, want)
		}
	case <-time.After(within):
		t.Fatalf("xapid still running %v %s", within, when)
	}
}

var testClient = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // self-signed
}

func loginWith(url, password string) (string, error) {
	raw, err := rpc.Invoke(context.Background(), testClient, url, "session.login_with_password", "root", password)
	if err != nil {
		return "", err
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", err
	}
	return s, nil
}

// First start with neither --root-password nor $XAPI_ROOT_PASSWORD: a
// password is generated into DATA/root-password (mode 0600), its path is
// printed on stderr, and it logs in.
func TestFirstStartGeneratesRootPassword(t *testing.T) {
	t.Setenv(envRootPassword, "")
	data := filepath.Join(t.TempDir(), "data")
	p := startInProcess(t, "--data-dir", data, "--listen", "127.0.0.1:0", "--hostname", "first-start")
	urls := p.waitServing(t, 1)

	pwPath := filepath.Join(data, "root-password")
	st, err := os.Stat(pwPath)
	if err != nil {
		t.Fatalf("root password file: %v", err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("%s mode %o, want 600", pwPath, perm)
	}
	if want := "it is stored in " + pwPath + "\n"; !strings.Contains(p.stderr.String(), want) {
		t.Errorf("stderr does not name the password file (want %q)", want)
	}
	b, err := os.ReadFile(pwPath)
	if err != nil {
		t.Fatal(err)
	}
	pw := strings.TrimSpace(string(b))
	if len(pw) < 16 {
		t.Errorf("generated password %q is short", pw)
	}
	s, err := loginWith(urls[0], pw)
	if err != nil {
		t.Fatalf("login with the generated password: %v", err)
	}
	if !strings.HasPrefix(s, "OpaqueRef:") {
		t.Errorf("session %q", s)
	}
	if strings.Contains(p.stderr.String(), pw) {
		t.Error("the generated password itself is in the log")
	}
	p.stop(t)
}

// freePortRun finds n consecutive free loopback ports.
func freePortRun(t *testing.T, n int) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := l.Addr().(*net.TCPAddr).Port
		ls := []net.Listener{l}
		ok := base+n-1 <= 65535
		for i := 1; ok && i < n; i++ {
			li, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, li)
		}
		for _, li := range ls {
			li.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}

// --tls-listen on listen port+1 (where raft would go by default): raft takes
// port+2, both URLs serve, and "serving XenAPI" comes after the store is up.
func TestServeTLSOnRaftDefaultPort(t *testing.T) {
	t.Setenv(envRootPassword, "")
	port := freePortRun(t, 3)
	p := startInProcess(t, "--data-dir", t.TempDir(), "--root-password", "pw-clash-1",
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--tls-listen", fmt.Sprintf("127.0.0.1:%d", port+1))
	urls := p.waitServing(t, 2)
	want := []string{fmt.Sprintf("http://127.0.0.1:%d", port), fmt.Sprintf("https://127.0.0.1:%d", port+1)}
	if strings.Join(urls, " ") != strings.Join(want, " ") {
		t.Errorf("serving %q, want %q", urls, want)
	}
	log := p.stderr.String()
	if raft := fmt.Sprintf("raft=127.0.0.1:%d ", port+2); !strings.Contains(log, raft) {
		t.Errorf("log lacks %q", raft)
	}
	if i, j := strings.Index(log, `msg="store open"`), strings.Index(log, `msg="serving XenAPI"`); i < 0 || j < i {
		t.Errorf("\"serving XenAPI\" (at %d) logged before \"store open\" (at %d)", j, i)
	}
	for _, u := range urls {
		if _, err := loginWith(u, "pw-clash-1"); err != nil {
			t.Errorf("login on %s: %v", u, err)
		}
	}
	p.stop(t)
}

// A busy raft port fails the start without ever logging "serving XenAPI".
func TestServeBusyRaftPort(t *testing.T) {
	t.Setenv(envRootPassword, "")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	p := startInProcess(t, "--data-dir", t.TempDir(), "--root-password", "pw-busy-1",
		"--listen", "127.0.0.1:0", "--raft-addr", busy.Addr().String())
	p.wantExit(t, 1, 60*time.Second, "after starting on a busy raft port")
	log := p.stderr.String()
	if strings.Contains(log, "serving XenAPI") {
		t.Errorf("\"serving XenAPI\" logged although the raft port was busy:\n%s", log)
	}
	if !strings.Contains(log, "address already in use") {
		t.Errorf("the error does not say the address is in use:\n%s", log)
	}
}
