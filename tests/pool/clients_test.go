package pool_test

// Real XenAPI clients across a master failover: Xen Orchestra's npm
// `xen-api` connector (tests/clients/xenapi_failover.mjs) and XenAPI.py from
// Debian's python3-os-xenapi (tests/clients/xenapi_pool.py), each driven over
// its stdin/stdout while this file kills the pool master with kill -9.
//
// Like tests/clients, the tests skip when a client is not installed, unless
// XAPI_CLIENT_TESTS_REQUIRED is set: then a missing client fails. Install
// them with `apt-get install python3-os-xenapi` and
// `npm ci --prefix tests/clients`. XAPI_PYTHON picks the python interpreter.
// XAPI_XENAPI_NO_FAILOVER=1 runs TestNpmXenAPIFailover without the script's
// failover handler, to show that xen-api 4.7.6 alone stays on the dead
// master (see xenapi_failover.mjs).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/internal/clientenv"
)

// clientsDir is tests/clients.
func clientsDir(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test source")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "clients"))
}

// cliScript is a client script talking with the test over lines on its
// stdin and stdout.
type cliScript struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	start time.Time

	mu  sync.Mutex
	out strings.Builder // stdout and stderr, as they came

	done    chan struct{}
	waitErr error
}

func startScript(t *testing.T, dir, bin, script string, args ...string) *cliScript {
	t.Helper()
	s := &cliScript{t: t, name: script, lines: make(chan string, 1<<16), done: make(chan struct{}), start: time.Now()}
	s.cmd = exec.Command(bin, append([]string{script}, args...)...)
	s.cmd.Dir = dir
	s.cmd.Env = append(os.Environ(), "NODE_ENV=test", "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1")
	var err error
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("%s %s: %v", bin, script, err)
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			s.record("", sc.Text())
			select {
			case s.lines <- sc.Text():
			default:
			}
		}
	}()
	go func() {
		defer readers.Done()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			s.record("stderr: ", sc.Text())
		}
	}()
	go func() {
		readers.Wait()
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		t.Logf("%s output:\n%s", script, s.output())
	})
	return s
}

func (s *cliScript) record(prefix, line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(&s.out, "%7.2fs %s%s\n", time.Since(s.start).Seconds(), prefix, line)
}

func (s *cliScript) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// expect waits for a stdout line starting with prefix and returns the rest.
// A FAIL line, the script's exit or the timeout end the test.
func (s *cliScript) expect(prefix string, timeout time.Duration) string {
	s.t.Helper()
	// match returns the rest of a line that starts with prefix; a FAIL line fails the test
	match := func(line string) (string, bool) {
		s.t.Helper()
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			return strings.TrimSpace(rest), true
		}
		if strings.HasPrefix(line, "FAIL ") {
			s.t.Fatalf("%s: %s", s.name, line)
		}
		return "", false
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case line := <-s.lines:
			if rest, ok := match(line); ok {
				return rest
			}
		case <-s.done:
			// the lines it printed before exiting are all in s.lines now
			for {
				select {
				case line := <-s.lines:
					if rest, ok := match(line); ok {
						return rest
					}
				default:
					s.t.Fatalf("%s exited (%v) without printing %q", s.name, s.waitErr, prefix)
				}
			}
		case <-timer.C:
			s.t.Fatalf("%s printed no %q line within %s", s.name, prefix, timeout)
		}
	}
}

func (s *cliScript) send(line string) {
	s.t.Helper()
	if _, err := io.WriteString(s.stdin, line+"\n"); err != nil {
		s.t.Fatalf("%s: writing %q to its stdin: %v", s.name, line, err)
	}
}

// wait waits for the script to exit and requires exit status 0.
func (s *cliScript) wait(timeout time.Duration) {
	s.t.Helper()
	select {
	case <-s.done:
		if s.waitErr != nil {
			s.t.Fatalf("%s: %v", s.name, s.waitErr)
		}
	case <-time.After(timeout):
		s.t.Fatalf("%s did not exit within %s", s.name, timeout)
	}
}

// stableMaster waits until the same host has answered logins as the master
// for a second (a loaded machine can make the pool elect another master
// soon after it formed) and returns it.
func stableMaster(t *testing.T, c *cluster, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last, since := -1, time.Now()
	for {
		m, err := c.master(context.Background())
		if err != nil || m != last {
			last, since = m, time.Now()
		} else if time.Since(since) >= time.Second {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stable pool master within %s (last: host%d, %v)", timeout, last+1, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// poolWriter makes changes through the pool with one user session, as a
// client does across a failover: it follows HOST_IS_SLAVE, and after a
// transport error tries the next host with the same session.
type poolWriter struct {
	c    *cluster
	sess string

	mu    sync.Mutex
	url   string
	next  int
	stats map[string]int
}

func (w *poolWriter) count(k string) {
	w.mu.Lock()
	w.stats[k]++
	w.mu.Unlock()
}

func (w *poolWriter) currentURL() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.url
}

// call makes a call with the session, until it is answered by the master
// or ctx ends. Answers other than HOST_IS_SLAVE and HOST_STILL_BOOTING are
// returned. A call retried after a transport error may have been applied
// already.
func (w *poolWriter) call(ctx context.Context, method string, params ...any) (json.RawMessage, error) {
	for {
		url := w.currentURL()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		raw, err := call(cctx, url, method, append([]any{w.sess}, params...)...)
		cancel()
		if err == nil {
			return raw, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var f *fault
		switch {
		case errors.As(err, &f) && f.Code == "HOST_IS_SLAVE" && len(f.Params) == 1:
			w.count("HOST_IS_SLAVE followed")
			w.mu.Lock()
			w.url = fmt.Sprintf("http://%s:%d", f.Params[0], w.c.port)
			w.mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		case errors.As(err, &f) && f.Code == "HOST_STILL_BOOTING":
			w.count("HOST_STILL_BOOTING")
			time.Sleep(50 * time.Millisecond)
		case errors.As(err, &f):
			return nil, err
		default:
			w.count("transport error, next host")
			w.mu.Lock()
			w.next = (w.next + 1) % len(w.c.hosts)
			w.url = w.c.hosts[w.next].url
			w.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// run changes the VMs (name_description, other_config), creates and
// destroys networks and sets the pool's name_description until ctx ends.
func (w *poolWriter) run(ctx context.Context, vms []string, pool string) (unexpected []string) {
	var nets []string
	for i := 0; ctx.Err() == nil; i++ {
		vm := vms[i%len(vms)]
		var err error
		switch i % 4 {
		case 0, 2:
			_, err = w.call(ctx, "VM.set_name_description", vm, fmt.Sprintf("w%d", i))
		case 1:
			k := fmt.Sprintf("k%d", i%3)
			if _, err = w.call(ctx, "VM.remove_from_other_config", vm, k); err == nil {
				_, err = w.call(ctx, "VM.add_to_other_config", vm, k, fmt.Sprintf("v%d", i))
			}
		case 3:
			if i%12 != 3 {
				_, err = w.call(ctx, "pool.set_name_description", pool, fmt.Sprintf("p%d", i))
				break
			}
			var ref string
			var raw json.RawMessage
			raw, err = w.call(ctx, "network.create", map[string]any{
				"name_label": fmt.Sprintf("failover-net-%d", i), "name_description": "",
				"other_config": map[string]string{"i": fmt.Sprint(i)}, "MTU": 1500, "tags": []string{},
			})
			if err == nil && json.Unmarshal(raw, &ref) == nil {
				nets = append(nets, ref)
			}
			if err == nil && len(nets) > 3 {
				_, err = w.call(ctx, "network.destroy", nets[0])
				nets = nets[1:]
			}
		}
		var f *fault
		switch {
		case err == nil:
			w.count("ok")
		case ctx.Err() != nil:
		case errors.As(err, &f) && (f.Code == "MAP_DUPLICATE_KEY" || f.Code == "HANDLE_INVALID"):
			// a retry of a call that had been applied before the kill
			w.count(f.Code + " (retried call)")
		default:
			unexpected = append(unexpected, fmt.Sprintf("write %d: %v", i, err))
		}
		time.Sleep(2 * time.Millisecond)
	}
	return unexpected
}

func (w *poolWriter) statsString() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var keys []string
	for k := range w.stats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %d; ", k, w.stats[k])
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// TestNpmXenAPIFailover: the npm xen-api client connected to the master,
// watching events, finds the new master after the master is killed (with
// the application-level help xen-api 4.7.6 needs: see xenapi_failover.mjs),
// and its object cache for VM, host, pool and network ends equal to
// get_all_records from the new master, while this test writes through the
// pool before, during and after the failover and restarts the old master.
func TestNpmXenAPIFailover(t *testing.T) {
	dir := clientsDir(t)
	node, why := clientenv.Node(dir)
	if node == "" {
		clientenv.Missing(t, why)
	}
	t0 := time.Now()
	c := newCluster(t, 3)
	ctx := context.Background()
	m := stableMaster(t, c, 20*time.Second)
	t.Logf("pool of 3 up in %s; master host%d", time.Since(t0).Round(time.Millisecond), m+1)
	sess, err := login(ctx, c.hosts[m].url)
	if err != nil {
		t.Fatal(err)
	}
	w := &poolWriter{c: c, sess: sess, url: c.hosts[m].url, next: m, stats: map[string]int{}}

	// three VMs to change, cloned from a template
	var all map[string]struct {
		IsATemplate     bool `json:"is_a_template"`
		IsControlDomain bool `json:"is_control_domain"`
	}
	if raw, err := w.call(ctx, "VM.get_all_records"); err != nil || json.Unmarshal(raw, &all) != nil {
		t.Fatalf("VM.get_all_records: %v", err)
	}
	var templates []string
	for ref, v := range all {
		if v.IsATemplate && !v.IsControlDomain {
			templates = append(templates, ref)
		}
	}
	if len(templates) == 0 {
		t.Fatal("no VM template in the pool")
	}
	sort.Strings(templates)
	var vms []string
	for i := range 3 {
		var ref string
		raw, err := w.call(ctx, "VM.clone", templates[0], fmt.Sprintf("failover-vm-%d", i))
		if err != nil || json.Unmarshal(raw, &ref) != nil {
			t.Fatalf("VM.clone: %v %s", err, raw)
		}
		vms = append(vms, ref)
	}
	var pools []string
	if raw, err := w.call(ctx, "pool.get_all"); err != nil || json.Unmarshal(raw, &pools) != nil || len(pools) != 1 {
		t.Fatalf("pool.get_all: %v %v", err, pools)
	}

	s := startScript(t, dir, node, "xenapi_failover.mjs", c.hosts[m].url, "root", rootPassword)
	s.expect("READY", 30*time.Second)

	wctx, stopWriter := context.WithCancel(ctx)
	defer stopWriter()
	writerDone := make(chan []string, 1)
	go func() { writerDone <- w.run(wctx, vms, pools[0]) }()

	time.Sleep(1500 * time.Millisecond)
	// kill the master the client is connected to (on a loaded machine the
	// pool may have elected another one meanwhile; the client follows)
	m = -1
	failoversBefore := 0
	for deadline := time.Now().Add(10 * time.Second); ; {
		s.send("WHERE")
		at := strings.Fields(s.expect("AT", 5*time.Second))
		if len(at) != 6 {
			t.Fatalf("xenapi_failover.mjs answered WHERE with %q", at)
		}
		failoversBefore, _ = strconv.Atoi(at[3])
		cur, err := c.master(ctx)
		if err == nil && at[1] == "connected" && at[2] == "idle" && c.hosts[cur].ip == at[0] {
			m = cur
			break
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("note: the client is %v, the master is host%d: killing the master anyway", at, cur+1)
			m = cur
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.kill9(m)
	killed := time.Now()
	s.send("KILLED " + c.hosts[m].ip)
	nm, err := c.waitNewMaster(m, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("host%d killed; host%d is master after %s", m+1, nm+1, time.Since(killed).Round(time.Millisecond))
	if os.Getenv("XAPI_XENAPI_NO_FAILOVER") == "1" {
		// the script installed no failover handler: show that xen-api
		// 4.7.6 stays on the killed master, also once it is back as a member
		time.Sleep(5 * time.Second)
		s.send("WHERE")
		t.Logf("5 s after the kill, xen-api on its own: AT %s", s.expect("AT", 5*time.Second))
		c.start(m)
		c.waitAnswering(m, 30*time.Second)
		time.Sleep(5 * time.Second)
		s.send("WHERE")
		at := strings.Fields(s.expect("AT", 5*time.Second))
		t.Logf("host%d restarted as a member; 5 s later, xen-api on its own: AT %s", m+1, strings.Join(at, " "))
		if len(at) < 1 || at[0] != c.hosts[m].ip {
			t.Errorf("xen-api moved to %v on its own", at)
		}
		return
	}
	for {
		fo := strings.Fields(s.expect("FAILED-OVER", time.Until(killed.Add(40*time.Second))))
		if len(fo) != 2 {
			t.Fatalf("xenapi_failover.mjs printed FAILED-OVER %q", fo)
		}
		if n, _ := strconv.Atoi(fo[1]); n <= failoversBefore {
			continue // a reconnection from before the kill
		}
		t.Logf("xen-api reconnected to %s %s after the kill (the new master was host%d)", fo[0], time.Since(killed).Round(time.Millisecond), nm+1)
		if fo[0] == c.hosts[m].ip {
			t.Errorf("xen-api reconnected to the killed host %s", fo[0])
		}
		break
	}

	time.Sleep(1500 * time.Millisecond) // writes the reconnected client must see
	c.start(m)
	c.waitAnswering(m, 30*time.Second)
	t.Logf("host%d restarted, answering %s after the kill", m+1, time.Since(killed).Round(time.Millisecond))
	time.Sleep(time.Second)
	stopWriter()
	if bad := <-writerDone; len(bad) > 0 {
		t.Errorf("%d writes failed, first: %s", len(bad), strings.Join(bad[:min(len(bad), 5)], "; "))
	}

	// last writes, acknowledged, that the cache must show
	expected := map[string]string{}
	for i, vm := range vms {
		d := fmt.Sprintf("final-%d-%d", i, time.Now().UnixNano())
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, err := w.call(cctx, "VM.set_name_description", vm, d)
		cancel()
		if err != nil {
			t.Fatalf("final write: %v", err)
		}
		expected[vm] = d
	}
	t.Logf("writer: %s", w.statsString())
	cur := stableMaster(t, c, 20*time.Second)
	if cur != nm {
		t.Logf("note: the master changed again, host%d -> host%d", nm+1, cur+1)
	}
	b, _ := json.Marshal(expected)
	s.send("CHECK " + c.hosts[cur].ip + " " + string(b))
	t.Logf("xen-api: %s", s.expect("PASS", 30*time.Second))
	s.wait(10 * time.Second)
}

// TestXenAPIPyHostIsSlave: XenAPI.py's login on a member raises
// HOST_IS_SLAVE [master address], which the script follows; after kill -9 of
// the master its calls fail at the transport level, it finds the new master
// through the other members' addresses (following HOST_IS_SLAVE) and carries
// on with the same session: a read, a write, and event.from from a token
// taken before the kill.
func TestXenAPIPyHostIsSlave(t *testing.T) {
	dir := clientsDir(t)
	python, why := clientenv.Python()
	if python == "" {
		clientenv.Missing(t, why)
	}
	t0 := time.Now()
	c := newCluster(t, 3)
	ctx := context.Background()
	m := stableMaster(t, c, 20*time.Second)
	t.Logf("pool of 3 up in %s; master host%d", time.Since(t0).Round(time.Millisecond), m+1)
	var urls []string // a member's first
	for i := 1; i <= len(c.hosts); i++ {
		urls = append(urls, c.hosts[(m+i)%len(c.hosts)].url)
	}
	s := startScript(t, dir, python, "xenapi_pool.py", strings.Join(urls, ","), "root", rootPassword)
	ready := strings.Fields(s.expect("READY", 30*time.Second))
	if len(ready) == 0 {
		t.Fatal("READY without the master's address")
	}
	// kill the master the script logged in to (on a loaded machine the pool
	// may have elected another one meanwhile: then the script sees
	// HOST_IS_SLAVE rather than a transport error on its old Session)
	for deadline := time.Now().Add(10 * time.Second); ; {
		cur, err := c.master(ctx)
		if err == nil && c.hosts[cur].ip == ready[0] {
			m = cur
			break
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("note: XenAPI.py logged in at %s, the master is host%d now: killing it", ready[0], cur+1)
			m = cur
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.kill9(m)
	killed := time.Now()
	s.send("KILLED " + c.hosts[m].ip)
	fo := strings.Fields(s.expect("FAILED-OVER", 40*time.Second))
	t.Logf("XenAPI.py found the new master %v %s after the kill", fo, time.Since(killed).Round(time.Millisecond))
	t.Logf("XenAPI.py: %s", s.expect("PASS", 30*time.Second))
	s.wait(10 * time.Second)
	if len(fo) == 0 || fo[0] == c.hosts[m].ip {
		t.Errorf("XenAPI.py continued on %v, the killed host is %s", fo, c.hosts[m].ip)
	}
	if nm, err := c.master(ctx); err == nil && len(fo) > 0 && fo[0] != c.hosts[nm].ip {
		t.Logf("note: XenAPI.py continued on %s, the master is host%d now", fo[0], nm+1)
	}
}
