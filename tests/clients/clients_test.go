// Package clients_test runs unchanged real XenAPI clients against the built
// xapid binary: XenAPI.py from Debian's python3-os-xenapi (XML-RPC) and Xen
// Orchestra's npm `xen-api` connector (JSON-RPC and XML-RPC, over HTTP and
// HTTPS).
//
// The tests skip when a client is not installed, unless
// XAPI_CLIENT_TESTS_REQUIRED is set (CI sets it): then a missing client fails.
// Install them with `apt-get install python3-os-xenapi` and
// `npm ci --prefix tests/clients`.
//
// Environment: XAPID_BIN uses that binary instead of building ./cmd/xapid;
// XAPI_PYTHON picks the python interpreter; XAPID_LOG=1 streams the server log.
package clients_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/internal/clientenv"
	"github.com/xapi-go/xapi-go/rpc"
)

const (
	rootUser     = "root"
	rootPassword = "conformance-Secret-1"
)

// repoRoot is the module root (this file is in tests/clients).
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test source")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// xapidBinary builds cmd/xapid into a temporary directory (or uses XAPID_BIN).
func xapidBinary(t *testing.T, root string) string {
	t.Helper()
	if p := os.Getenv("XAPID_BIN"); p != "" {
		return p
	}
	bin := filepath.Join(t.TempDir(), "xapid")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/xapid")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/xapid: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// lockedBuffer collects the server's output.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// daemon is a running xapid.
type daemon struct {
	cmd      *exec.Cmd
	out      *lockedBuffer
	done     chan struct{}
	waitErr  error
	HTTPURL  string
	HTTPSURL string
}

// startDaemon starts xapid on free loopback ports and waits until it answers.
// An empty password starts it without --root-password (keep the stored one).
func startDaemon(t *testing.T, bin, dataDir, password string) *daemon {
	t.Helper()
	httpPort, tlsPort, raftPort := freePort(t), freePort(t), freePort(t)
	args := []string{
		"--data-dir", dataDir,
		"--listen", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--tls-listen", fmt.Sprintf("127.0.0.1:%d", tlsPort),
		"--raft-addr", fmt.Sprintf("127.0.0.1:%d", raftPort),
		"--hostname", "conformance-host",
		"--log-level", "debug",
	}
	if password != "" {
		args = append(args, "--root-password", password)
	}
	d := &daemon{
		out:      &lockedBuffer{},
		done:     make(chan struct{}),
		HTTPURL:  fmt.Sprintf("http://127.0.0.1:%d", httpPort),
		HTTPSURL: fmt.Sprintf("https://127.0.0.1:%d", tlsPort),
	}
	d.cmd = exec.Command(bin, args...)
	d.cmd.Env = append(os.Environ(), "XAPI_ROOT_PASSWORD=")
	var w io.Writer = d.out
	if os.Getenv("XAPID_LOG") != "" {
		w = io.MultiWriter(d.out, os.Stderr)
	}
	d.cmd.Stdout, d.cmd.Stderr = w, w
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.waitErr = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("xapid output:\n%s", tail(d.out.String(), 200))
		}
	})

	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-d.done:
			t.Fatalf("xapid exited before answering: %v\n%s", d.waitErr, tail(d.out.String(), 200))
		default:
		}
		if _, err := jsonCall(d.HTTPURL, "system.listMethods"); err == nil {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("xapid did not answer system.listMethods on %s within 90s\n%s", d.HTTPURL, tail(d.out.String(), 200))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop sends SIGTERM and requires a clean exit.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
		if d.waitErr != nil {
			t.Errorf("xapid did not exit cleanly on SIGTERM: %v\n%s", d.waitErr, tail(d.out.String(), 60))
		}
	case <-time.After(30 * time.Second):
		t.Errorf("xapid still running 30s after SIGTERM")
	}
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// jsonCall makes one JSON-RPC 2.0 call and returns the result, or an error
// for a transport problem or an API failure.
func jsonCall(baseURL, method string, params ...any) (json.RawMessage, error) {
	return rpc.Invoke(context.Background(), jsonClient, baseURL, method, params...)
}

var jsonClient = &http.Client{Timeout: 10 * time.Second}

// runClient runs a client script, logging its output, and fails on a non-zero
// exit. It returns the script's output.
func runClient(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NODE_ENV=test")
	out, err := cmd.CombinedOutput()
	t.Logf("%s %s:\n%s", filepath.Base(name), strings.Join(args[:2], " "), out)
	if ctx.Err() != nil {
		t.Fatalf("%s timed out after 3 minutes", filepath.Base(args[0]))
	}
	if err != nil {
		t.Fatalf("%s failed: %v (its output is above)", filepath.Base(args[0]), err)
	}
	return string(out)
}

// sessionRefLine is how a client script reports a session ref it used.
var sessionRefLine = regexp.MustCompile(`(?m)^session-ref (OpaqueRef:[0-9a-fA-F-]+)\s*$`)

// sessionRefs collects the session refs the scripts print and the Go code
// uses, to check that none of them is ever written to the server's log.
type sessionRefs struct {
	mu   sync.Mutex
	refs []string
}

func (s *sessionRefs) add(refs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs = append(s.refs, refs...)
}

func (s *sessionRefs) fromOutput(out string) {
	for _, m := range sessionRefLine.FindAllStringSubmatch(out, -1) {
		s.add(m[1])
	}
}

func (s *sessionRefs) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.refs...)
}

// login logs in over JSON-RPC and returns the session ref.
func login(t *testing.T, url string) string {
	t.Helper()
	raw, err := jsonCall(url, "session.login_with_password", rootUser, rootPassword)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || !strings.HasPrefix(s, "OpaqueRef:") {
		t.Fatalf("login returned %s", raw)
	}
	return s
}

// refUUIDs is the ref -> uuid map of every record of a class.
func refUUIDs(t *testing.T, url, sess, class string) map[string]string {
	t.Helper()
	raw, err := jsonCall(url, class+".get_all_records", sess)
	if err != nil {
		t.Fatalf("%s.get_all_records: %v", class, err)
	}
	var recs map[string]struct {
		UUID string `json:"uuid"`
	}
	if err := json.Unmarshal(raw, &recs); err != nil {
		t.Fatalf("%s.get_all_records: %v", class, err)
	}
	m := make(map[string]string, len(recs))
	for ref, r := range recs {
		m[ref] = r.UUID
	}
	return m
}

func certSHA256(t *testing.T, httpsURL string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(httpsURL, "https://"), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // self-signed on purpose
	if err != nil {
		t.Fatalf("TLS dial %s: %v", httpsURL, err)
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].Raw)
	return hex.EncodeToString(sum[:])
}

func TestRealClients(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "tests", "clients")
	python, noPython := clientenv.Python()
	node, noNode := clientenv.Node(dir)
	if python == "" && node == "" {
		clientenv.Missing(t, noPython+"; "+noNode)
	}
	bin := xapidBinary(t, repoRoot(t))
	dataDir := t.TempDir()
	d := startDaemon(t, bin, dataDir, rootPassword)
	var refs sessionRefs

	t.Run("XenAPI.py", func(t *testing.T) {
		if python == "" {
			clientenv.Missing(t, noPython)
		}
		// The schema's public fields and types, to check every record against.
		fields := filepath.Join(t.TempDir(), "schema-fields.json")
		out, err := exec.Command(bin, "schema-fields").Output()
		if err != nil {
			t.Fatalf("xapid schema-fields: %v", err)
		}
		if err := os.WriteFile(fields, out, 0o644); err != nil {
			t.Fatal(err)
		}
		refs.fromOutput(runClient(t, dir, python, "xenapi_conformance.py", d.HTTPURL, rootUser, rootPassword, fields))
	})
	t.Run("xen-api/http", func(t *testing.T) {
		if node == "" {
			clientenv.Missing(t, noNode)
		}
		runClient(t, dir, node, "xenapi_npm.mjs", d.HTTPURL, rootUser, rootPassword, "json-rpc", "xml-rpc", "auto")
	})
	t.Run("xen-api/https", func(t *testing.T) {
		if node == "" {
			clientenv.Missing(t, noNode)
		}
		runClient(t, dir, node, "xenapi_npm.mjs", d.HTTPSURL, rootUser, rootPassword, "json-rpc", "xml-rpc")
	})

	// Tasks and events: XenAPI.py polls an Async task and runs an event.next
	// loop; xen-api's object cache stays equal to get_all_records through
	// 10,000 changes made by another client, and callAsync reports results.
	t.Run("XenAPI.py/events", func(t *testing.T) {
		if python == "" {
			clientenv.Missing(t, noPython)
		}
		runClient(t, dir, python, "xenapi_events.py", d.HTTPURL, rootUser, rootPassword)
	})
	t.Run("xen-api/events/json-rpc", func(t *testing.T) {
		if node == "" {
			clientenv.Missing(t, noNode)
		}
		runClient(t, dir, node, "xenapi_events.mjs", d.HTTPURL, rootUser, rootPassword, "10000", "json-rpc")
	})
	t.Run("xen-api/events/xml-rpc", func(t *testing.T) {
		if node == "" {
			clientenv.Missing(t, noNode)
		}
		runClient(t, dir, node, "xenapi_events.mjs", d.HTTPURL, rootUser, rootPassword, "2000", "xml-rpc")
	})

	// A VM's life cycle on the simulated hypervisor: made from a template,
	// started, rebooted, suspended, resumed, shut down and destroyed, with its
	// guest metrics from the simulated agent. XenAPI.py polls Async tasks;
	// xen-api's object cache must show each power state after barrier().
	t.Run("XenAPI.py/vm", func(t *testing.T) {
		if python == "" {
			clientenv.Missing(t, noPython)
		}
		runClient(t, dir, python, "xenapi_vm.py", d.HTTPURL, rootUser, rootPassword)
	})
	t.Run("xen-api/vm", func(t *testing.T) {
		if node == "" {
			clientenv.Missing(t, noNode)
		}
		runClient(t, dir, node, "xenapi_vm.mjs", d.HTTPURL, rootUser, rootPassword, "json-rpc")
	})
	t.Run("xen-api/vm/xml-rpc", func(t *testing.T) {
		if node == "" {
			clientenv.Missing(t, noNode)
		}
		runClient(t, dir, node, "xenapi_vm.mjs", d.HTTPURL, rootUser, rootPassword, "xml-rpc")
	})

	// No session ref ever reaches the server's log (at debug level, which
	// logs every call): a session ref is a bearer credential. Besides the
	// scripts' sessions, one from Go makes a good call, a failing one and a
	// bad-ref call, then logs out and is used once more.
	t.Run("session refs not logged", func(t *testing.T) {
		s := login(t, d.HTTPURL)
		refs.add(s)
		if _, err := jsonCall(d.HTTPURL, "pool.get_all_records", s); err != nil {
			t.Fatal(err)
		}
		bad := "OpaqueRef:00000000-0000-0000-0000-00000000dead"
		if _, err := jsonCall(d.HTTPURL, "VM.get_record", s, bad); err == nil || !strings.Contains(err.Error(), "HANDLE_INVALID") {
			t.Errorf("VM.get_record(bad ref): want HANDLE_INVALID, got %v", err)
		}
		if _, err := jsonCall(d.HTTPURL, "VM.set_name_label", s); err == nil {
			t.Error("VM.set_name_label with a missing argument: no error")
		}
		if _, err := jsonCall(d.HTTPURL, "session.logout", s); err != nil {
			t.Fatal(err)
		}
		if _, err := jsonCall(d.HTTPURL, "pool.get_all", s); err == nil || !strings.Contains(err.Error(), "SESSION_INVALID") {
			t.Errorf("call after logout: want SESSION_INVALID, got %v", err)
		}
		used := refs.list()
		if python != "" && len(used) < 3 {
			t.Errorf("only %d session refs collected (xenapi_conformance.py prints its own as `session-ref REF`): %q", len(used), used)
		}
		log := d.out.String()
		if !strings.Contains(log, "level=DEBUG") {
			t.Fatalf("the server log has no debug lines; the check needs --log-level debug")
		}
		for _, r := range used {
			if strings.Contains(log, r) || strings.Contains(log, strings.TrimPrefix(r, "OpaqueRef:")) {
				i := strings.Index(log, strings.TrimPrefix(r, "OpaqueRef:"))
				line := log[strings.LastIndex(log[:i], "\n")+1:]
				if j := strings.IndexByte(line, '\n'); j >= 0 {
					line = line[:j]
				}
				t.Errorf("session ref %s appears in the server log:\n%s", r, line)
			}
		}
		t.Logf("checked %d session refs against %d bytes of debug log", len(used), len(log))
	})

	// A restart keeps the TLS certificate (clients pin its thumbprint), the
	// root password (no --root-password given now) and the pool's identity.
	t.Run("restart", func(t *testing.T) {
		thumb := certSHA256(t, d.HTTPSURL)
		s := login(t, d.HTTPURL)
		pools1, err := jsonCall(d.HTTPURL, "pool.get_all", s)
		if err != nil {
			t.Fatal(err)
		}
		// a renamed VM and a new VDI must come back as they were
		vms := refUUIDs(t, d.HTTPURL, s, "VM")
		var vm string
		for ref := range vms {
			if vm == "" || ref < vm {
				vm = ref
			}
		}
		newName := "renamed before restart " + vms[vm]
		if _, err := jsonCall(d.HTTPURL, "VM.set_name_label", s, vm, newName); err != nil {
			t.Fatal(err)
		}
		srs := refUUIDs(t, d.HTTPURL, s, "SR")
		var sr string
		for ref := range srs {
			if sr == "" || ref < sr {
				sr = ref
			}
		}
		if _, err := jsonCall(d.HTTPURL, "VDI.create", s, map[string]any{
			"SR": sr, "name_label": "kept across restart", "virtual_size": "1048576", "type": "user",
			"sharable": false, "read_only": false, "other_config": map[string]string{},
		}); err != nil {
			t.Fatalf("VDI.create: %v", err)
		}
		classes := []string{"host", "VM", "SR", "network", "PIF", "VDI"}
		before := map[string]map[string]string{}
		for _, c := range classes {
			before[c] = refUUIDs(t, d.HTTPURL, s, c)
			if len(before[c]) == 0 {
				t.Errorf("no %s record before the restart: nothing to compare", c)
			}
		}
		d.stop(t)

		d2 := startDaemon(t, bin, dataDir, "")
		if got := certSHA256(t, d2.HTTPSURL); got != thumb {
			t.Errorf("certificate changed across restart: sha256 %s -> %s", thumb, got)
		}
		sess, err := jsonCall(d2.HTTPURL, "session.login_with_password", rootUser, rootPassword)
		if err != nil {
			t.Fatalf("login after restart without --root-password: %v", err)
		}
		_ = json.Unmarshal(sess, &s)
		pools2, err := jsonCall(d2.HTTPURL, "pool.get_all", s)
		if err != nil {
			t.Fatal(err)
		}
		if string(pools1) != string(pools2) {
			t.Errorf("pool refs changed across restart: %s -> %s", pools1, pools2)
		}
		for _, c := range classes {
			after := refUUIDs(t, d2.HTTPURL, s, c)
			if !maps.Equal(before[c], after) {
				t.Errorf("%s ref -> uuid changed across restart:\nbefore %v\nafter  %v", c, before[c], after)
			}
		}
		raw, err := jsonCall(d2.HTTPURL, "VM.get_name_label", s, vm)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		_ = json.Unmarshal(raw, &got)
		if got != newName {
			t.Errorf("VM %s name_label after restart: %q, want %q", vm, got, newName)
		}
		d2.stop(t)
	})
}
