package pool_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/rpc"
)

const rootPassword = "pool-test-Secret-1"

// xapidBin is the binary under test, built once by TestMain.
var xapidBin string

func TestMain(m *testing.M) {
	code := func() int {
		if p := os.Getenv("XAPID_BIN"); p != "" {
			xapidBin = p
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "xapid-pool-test")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
		xapidBin = filepath.Join(dir, "xapid")
		cmd := exec.Command("go", "build", "-o", xapidBin, "./cmd/xapid")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build ./cmd/xapid: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// hostIP is the loopback address of host i (0-based).
func hostIP(i int) string { return fmt.Sprintf("127.0.0.%d", i+1) }

// requireLoopbackAliases skips when 127.0.0.2.. cannot be bound (not Linux).
func requireLoopbackAliases(tb testing.TB, n int) {
	tb.Helper()
	for i := range n {
		l, err := net.Listen("tcp", hostIP(i)+":0")
		if err != nil {
			tb.Skipf("cannot listen on %s (%v): these tests need 127.0.0.1..%d on the loopback interface", hostIP(i), err, n)
		}
		l.Close()
	}
}

// freePoolPort returns a port P such that P (API) and P+1 (raft) are free on
// the addresses of all n hosts.
func freePoolPort(tb testing.TB, n int) int {
	tb.Helper()
	for range 200 {
		p := 20000 + rand.IntN(30000)
		ok := true
		var ls []net.Listener
		for i := range n {
			for _, port := range []int{p, p + 1} {
				l, err := net.Listen("tcp", net.JoinHostPort(hostIP(i), strconv.Itoa(port)))
				if err != nil {
					ok = false
					break
				}
				ls = append(ls, l)
			}
			if !ok {
				break
			}
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return p
		}
	}
	tb.Fatal("no port free on all pool addresses")
	return 0
}

// hostProc is one xapid process (and its restarts).
type hostProc struct {
	idx     int
	ip      string
	url     string
	dataDir string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// cluster is a pool of xapid processes.
type cluster struct {
	tb     testing.TB
	port   int
	dir    string
	hosts  []*hostProc
	secret string // the pool secret, for session.slave_login
}

// newCluster starts n hosts and joins hosts 2..n to host 1's pool.
func newCluster(tb testing.TB, n int) *cluster {
	tb.Helper()
	c := startHosts(tb, n)
	for i := 1; i < n; i++ {
		c.join(i)
	}
	c.settle()
	return c
}

// startHosts starts n one-host pools and waits until they answer.
func startHosts(tb testing.TB, n int) *cluster {
	tb.Helper()
	requireLoopbackAliases(tb, n)
	dir := tb.TempDir()
	if os.Getenv("XAPID_LOG") != "" {
		d, err := os.MkdirTemp("", "xapid-pool-logs")
		if err != nil {
			tb.Fatal(err)
		}
		dir = d
		tb.Logf("host data and logs under %s (kept)", dir)
	}
	c := &cluster{tb: tb, port: freePoolPort(tb, n), dir: dir}
	for i := range n {
		h := &hostProc{
			idx:     i,
			ip:      hostIP(i),
			url:     fmt.Sprintf("http://%s:%d", hostIP(i), c.port),
			dataDir: filepath.Join(dir, fmt.Sprintf("host%d", i+1)),
			logPath: filepath.Join(dir, fmt.Sprintf("host%d.log", i+1)),
		}
		c.hosts = append(c.hosts, h)
	}
	tb.Cleanup(c.cleanup)
	for i := range n {
		c.start(i)
	}
	for i := range n {
		c.waitAnswering(i, 90*time.Second)
	}
	return c
}

// join makes host i join host 1's pool with `xapid pool-join`, extra
// arguments appended.
func (c *cluster) join(i int, extra ...string) {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"pool-join", "--url", c.hosts[i].url,
		"--master", c.hosts[0].ip, "--password", rootPassword, "--wait", "90s"}, extra...)
	out, err := exec.CommandContext(ctx, xapidBin, args...).CombinedOutput()
	if err != nil {
		c.tb.Fatalf("xapid pool-join host%d: %v\n%s", i+1, err, out)
	}
}

// settle waits until the pool is healthy and every host votes, and reads
// the pool secret.
func (c *cluster) settle() {
	c.tb.Helper()
	c.waitHealthy(2 * time.Minute)
	c.waitVoters(30 * time.Second)
	b, err := os.ReadFile(filepath.Join(c.hosts[0].dataDir, "auth.json"))
	if err != nil {
		c.tb.Fatal(err)
	}
	var a struct {
		PoolSecret string `json:"pool_secret"`
	}
	if err := json.Unmarshal(b, &a); err != nil || a.PoolSecret == "" {
		c.tb.Fatalf("no pool_secret in auth.json (%v)", err)
	}
	c.secret = a.PoolSecret
}

// waitVoters waits until the master (host 1) has promoted every joined host
// to a raft voter. Until then the pool cannot elect a new master without
// host 1: the leader promotes a joined host at its next voter review (every
// 2 s), while host_metrics.live is true from the start (pool.join carries
// the joining host's record over), so liveness does not show it. The API does
// not show raft membership; host 1's log does.
func (c *cluster) waitVoters(timeout time.Duration) {
	c.tb.Helper()
	// whichever host leads promotes; the master may move while the pool forms
	re := regexp.MustCompile(`msg="promoted a replica to voter".* id=([0-9a-f-]+)`)
	want := len(c.hosts) - 1
	deadline := time.Now().Add(timeout)
	for {
		promoted := map[string]bool{}
		for _, h := range c.hosts {
			b, _ := os.ReadFile(h.logPath)
			for _, m := range re.FindAllStringSubmatch(string(b), -1) {
				promoted[m[1]] = true
			}
		}
		if len(promoted) >= want {
			return
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("%d of %d joined hosts promoted to voters within %s", len(promoted), want, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// start starts host i (again) with its data dir and flags.
func (c *cluster) start(i int) {
	c.tb.Helper()
	h := c.hosts[i]
	logf, err := os.OpenFile(h.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.tb.Fatal(err)
	}
	fmt.Fprintf(logf, "==== start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(xapidBin, "serve",
		"--data-dir", h.dataDir,
		"--listen", fmt.Sprintf("%s:%d", h.ip, c.port),
		"--hostname", fmt.Sprintf("host%d", i+1),
		"--root-password", rootPassword,
		"--log-level", "info",
		"--shutdown-timeout", "3s")
	cmd.Env = append(os.Environ(), "XAPI_ROOT_PASSWORD=")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	h.mu.Lock()
	h.cmd, h.done = cmd, done
	h.mu.Unlock()
}

// running reports whether host i's process runs.
func (c *cluster) running(i int) bool {
	h := c.hosts[i]
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done == nil {
		return false
	}
	select {
	case <-h.done:
		return false
	default:
		return true
	}
}

// kill9 kills host i with SIGKILL and waits until it is gone.
func (c *cluster) kill9(i int) {
	c.tb.Helper()
	h := c.hosts[i]
	h.mu.Lock()
	cmd, done := h.cmd, h.done
	h.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	if f, err := os.OpenFile(h.logPath, os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
		fmt.Fprintf(f, "==== kill -9 %s\n", time.Now().Format(time.RFC3339Nano))
		f.Close()
	}
}

func (c *cluster) cleanup() {
	for i, h := range c.hosts {
		h.mu.Lock()
		cmd, done := h.cmd, h.done
		h.mu.Unlock()
		if cmd != nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		}
		if c.tb.Failed() {
			b, _ := os.ReadFile(h.logPath)
			c.tb.Logf("host%d log (tail):\n%s", i+1, tail(string(b), 80))
		}
	}
}

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// waitAnswering waits until host i answers session.login_with_password as a
// host that has started: with a session (the master) or HOST_IS_SLAVE.
func (c *cluster) waitAnswering(i int, timeout time.Duration) {
	c.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if !c.running(i) {
			b, _ := os.ReadFile(c.hosts[i].logPath)
			c.tb.Fatalf("host%d exited\n%s", i+1, tail(string(b), 60))
		}
		_, err := call(context.Background(), c.hosts[i].url, "session.login_with_password", "root", rootPassword, "1.0", "pool-test")
		var f *fault
		if err == nil || errors.As(err, &f) && f.Code == "HOST_IS_SLAVE" {
			return
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("host%d did not start within %s (last: %v)", i+1, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitHealthy waits until every host runs and answers, and the master lists
// every host as live.
func (c *cluster) waitHealthy(timeout time.Duration) {
	c.tb.Helper()
	deadline := time.Now().Add(timeout)
	for i := range c.hosts {
		c.waitAnswering(i, time.Until(deadline))
	}
	var last string
	for {
		m, err := c.master(context.Background())
		if err == nil {
			live, n, err := liveHosts(context.Background(), c.hosts[m].url, m)
			if err == nil && live == len(c.hosts) && n == len(c.hosts) {
				return
			}
			last = fmt.Sprintf("%d hosts, %d live, err %v", n, live, err)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("pool not healthy within %s: %s", timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// master returns the index of the host that is pool master now (the one
// that accepts session.login_with_password).
func (c *cluster) master(ctx context.Context) (int, error) {
	var lastErr error
	for i := range c.hosts {
		_, err := call(ctx, c.hosts[i].url, "session.login_with_password", "root", rootPassword, "1.0", "pool-test")
		if err == nil {
			return i, nil
		}
		lastErr = err
	}
	return -1, fmt.Errorf("no host accepts a login: %w", lastErr)
}

// waitNewMaster waits until a host other than old accepts logins as the
// pool master and returns it.
func (c *cluster) waitNewMaster(old int, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		for i := range c.hosts {
			if i == old {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := call(ctx, c.hosts[i].url, "session.login_with_password", "root", rootPassword, "1.0", "pool-test")
			cancel()
			if err == nil {
				return i, nil
			}
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("no new master within %s of killing host%d", timeout, old+1)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// liveHosts counts the live hosts and all hosts the master at url knows.
func liveHosts(ctx context.Context, url string, _ int) (live, all int, err error) {
	sess, err := login(ctx, url)
	if err != nil {
		return 0, 0, err
	}
	var hosts map[string]struct {
		Metrics string `json:"metrics"`
	}
	if err := callInto(ctx, url, &hosts, "host.get_all_records", sess); err != nil {
		return 0, 0, err
	}
	for _, h := range hosts {
		var ok bool
		if err := callInto(ctx, url, &ok, "host_metrics.get_live", sess, h.Metrics); err != nil {
			return 0, 0, err
		}
		if ok {
			live++
		}
	}
	return live, len(hosts), nil
}

func login(ctx context.Context, url string) (string, error) {
	var s string
	err := callInto(ctx, url, &s, "session.login_with_password", "root", rootPassword, "1.0", "pool-test")
	return s, err
}

// slaveLogin opens a pool session on the host at url, master or not.
func (c *cluster) slaveLogin(ctx context.Context, url string) (string, error) {
	var s string
	err := callInto(ctx, url, &s, "session.slave_login", "OpaqueRef:NULL", c.secret)
	return s, err
}

// fault is a XenAPI failure.
type fault = rpc.Fault

// httpClient: writes wait out an election on a member (a few seconds).
var httpClient = &http.Client{
	Timeout: 15 * time.Second,
	Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
	},
}

// call makes one JSON-RPC call.
func call(ctx context.Context, url, method string, params ...any) (json.RawMessage, error) {
	return rpc.Invoke(ctx, httpClient, url, method, params...)
}

func callInto(ctx context.Context, url string, out any, method string, params ...any) error {
	raw, err := call(ctx, url, method, params...)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, out)
}

// isDialError reports a failure to connect: the request was surely not sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
