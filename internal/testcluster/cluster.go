package testcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/xapi-go/xapi-go/backends/sim"
	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/rpc"
	"github.com/xapi-go/xapi-go/store"
	"github.com/xapi-go/xapi-go/xapi"
)

// RootPassword is root's password on every host of a test cluster.
const RootPassword = "testcluster-password"

// Options tune a cluster.
type Options struct {
	// Hosts is the number of hosts (default 3).
	Hosts int
	// Verbose sends the hosts' logs to the test log (default: discarded).
	Verbose bool
	// Sim configures every host's simulated hypervisor.
	Sim sim.Config
	// SnapshotThreshold and TrailingLogs, if set, make raft snapshot (and
	// truncate its log) early, checked every 100 ms.
	SnapshotThreshold, TrailingLogs uint64
}

// Cluster is a pool of in-process hosts.
type Cluster struct {
	t     testing.TB
	opts  Options
	log   *slog.Logger
	Hosts []*Host
}

// Host is one in-process host: a store with an on-disk log and an in-memory
// raft transport, an API server and an HTTP test server whose URL survives
// restarts.
type Host struct {
	c       *Cluster
	Index   int
	ID      string // raft node id = host uuid
	Address string // host.address (a name PeerURL maps to URL)
	URL     string
	dataDir string
	raftAdr raft.ServerAddress
	hs      *httptest.Server
	addr    string // the API's listen address, kept across restarts
	frozen  atomic.Pointer[chan struct{}]
	handler atomic.Pointer[http.Handler]

	mu    sync.Mutex
	up    bool
	trans *raft.InmemTransport
	st    *store.Store
	api   *xapi.Server
	sim   *sim.Sim
	auth  *xapi.Auth
	// restarts counts completed restarts (after join, eject or recovery)
	restarts atomic.Int32
	recover  bool // the next start recovers a one-node cluster
}

// New starts opts.Hosts hosts, each a one-host pool, and joins hosts 1..n-1
// to host 0's pool with pool.join; it returns once every host is live and
// a voter (up to five).
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Hosts == 0 {
		opts.Hosts = 3
	}
	c := &Cluster{t: t, opts: opts}
	if opts.Verbose {
		c.log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	} else {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for i := range opts.Hosts {
		h := &Host{c: c, Index: i, ID: datamodel.NewUUID(), Address: fmt.Sprintf("10.77.0.%d", i+1), dataDir: t.TempDir()}
		h.raftAdr = raft.ServerAddress(fmt.Sprintf("raft-%d", i))
		h.hs = httptest.NewServer(http.HandlerFunc(h.serveHTTP))
		h.URL = h.hs.URL
		h.addr = h.hs.Listener.Addr().String()
		h.auth = xapi.NewMemoryAuth(RootPassword)
		c.Hosts = append(c.Hosts, h)
	}
	t.Cleanup(c.Close)
	for _, h := range c.Hosts {
		if err := h.start(true, nil); err != nil {
			t.Fatalf("start host %d: %v", h.Index, err)
		}
	}
	master := c.Hosts[0]
	for _, h := range c.Hosts[1:] {
		if err := c.Join(h, master); err != nil {
			t.Fatalf("join host %d: %v", h.Index, err)
		}
	}
	c.WaitStable(60 * time.Second)
	return c
}

// Join makes h join the pool of master with pool.join and waits until h
// has restarted as a member.
func (c *Cluster) Join(h, master *Host) error {
	before := h.restarts.Load()
	s, err := h.Login()
	if err != nil {
		return err
	}
	if _, err := h.Call("pool.join", s, master.Address, "root", RootPassword); err != nil {
		return err
	}
	return h.waitRestart(before, 60*time.Second)
}

func (h *Host) waitRestart(before int32, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for h.restarts.Load() == before {
		if time.Now().After(deadline) {
			return fmt.Errorf("host %d did not restart within %v", h.Index, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (h *Host) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if ch := h.frozen.Load(); ch != nil {
		// a silent host: the request hangs until it thaws or gives up
		select {
		case <-*ch:
		case <-r.Context().Done():
			return
		}
	}
	p := h.handler.Load()
	if p == nil && strings.HasPrefix(r.URL.Path, "/internal/") {
		// a host that is (re)starting; a dead process would refuse the
		// connection, which callers retry the same way
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"leader":""}`))
		return
	}
	if p == nil {
		// a host that is down: the connection fails as with a dead process
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		http.Error(w, "host down", http.StatusServiceUnavailable)
		return
	}
	(*p).ServeHTTP(w, r)
}

// peerURL maps a test host's address to its URL.
func (c *Cluster) peerURL(address string) string {
	for _, h := range c.Hosts {
		if h.Address == address {
			return h.URL
		}
	}
	return "http://" + address + ":1"
}

// connect (re)connects h's transport with every host that is up.
func (c *Cluster) connect(h *Host) {
	for _, o := range c.Hosts {
		if o == h {
			continue
		}
		o.mu.Lock()
		if o.up && o.trans != nil {
			o.trans.Connect(h.raftAdr, h.trans)
			h.trans.Connect(o.raftAdr, o.trans)
		}
		o.mu.Unlock()
	}
}

func (h *Host) storeConfig(bootstrap bool) store.Config {
	return store.Config{
		NodeID: h.ID, DataDir: h.dataDir, Transport: h.trans, Bootstrap: bootstrap,
		Logger: h.c.log.With("host", h.Index),
		// generous timeouts: tests run under the race detector on busy
		// 2-core machines, and a spurious election would fail a test that
		// expects a given master
		HeartbeatTimeout: time.Second, ElectionTimeout: time.Second,
		LeaderLeaseTimeout: time.Second, CommitTimeout: 5 * time.Millisecond,
		StartupTimeout:    10 * time.Second,
		SnapshotThreshold: h.c.opts.SnapshotThreshold, TrailingLogs: h.c.opts.TrailingLogs,
		SnapshotInterval: snapshotInterval(h.c.opts.SnapshotThreshold),
	}
}

func snapshotInterval(threshold uint64) time.Duration {
	if threshold > 0 {
		return 100 * time.Millisecond
	}
	return 0
}

// start opens h's store (bootstrapping a one-host pool if asked and there is
// no state; joining if join is set) and its API server.
func (h *Host) start(bootstrap bool, join *xapi.JoinInfo) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h.mu.Lock()
	_, h.trans = raft.NewInmemTransportWithTimeout(h.raftAdr, 2*time.Second)
	h.up = true
	h.mu.Unlock()
	h.c.connect(h)
	cfg := h.storeConfig(bootstrap && join == nil)
	cfg.Recover, h.recover = h.recover, false
	st, err := store.Open(ctx, cfg)
	if err != nil {
		return err
	}
	if join != nil {
		if err := xapi.JoinPool(ctx, st, h.auth, *join); err != nil {
			_ = st.Close()
			return err
		}
	}
	simCfg := h.c.opts.Sim
	simCfg.Logger = h.c.log.With("host", h.Index, "component", "sim")
	simCfg.Hostname = fmt.Sprintf("host%d", h.Index)
	sb := sim.New(simCfg)
	api, err := xapi.New(ctx, xapi.Config{
		Store: st, Auth: h.auth, Logger: h.c.log.With("host", h.Index), Hostname: simCfg.Hostname,
		Address: h.Address, Backend: sb, PeerURL: h.c.peerURL,
		Restart:           func(r xapi.Restart) { h.restart(r) },
		VoterReplaceAfter: 2 * time.Second,
	})
	if err != nil {
		_ = sb.Close()
		_ = st.Close()
		return err
	}
	h.mu.Lock()
	h.st, h.api, h.sim = st, api, sb
	h.mu.Unlock()
	var hd http.Handler = api.Handler()
	h.handler.Store(&hd)
	return nil
}

// restart is the owner's side of xapi's Config.Restart.
func (h *Host) restart(r xapi.Restart) {
	time.Sleep(50 * time.Millisecond) // let the reply of the call that caused it go out
	h.stop()
	if r.Recover {
		h.recover = true
		if err := h.start(false, nil); err != nil {
			h.c.t.Errorf("host %d: recover: %v", h.Index, err)
			return
		}
		h.restarts.Add(1)
		return
	}
	if err := store.Wipe(h.dataDir); err != nil {
		h.c.t.Errorf("host %d: wipe: %v", h.Index, err)
		return
	}
	if r.Join != nil {
		h.ID = r.Join.NodeID
	}
	if err := h.start(true, r.Join); err != nil {
		h.c.t.Errorf("host %d: restart: %v", h.Index, err)
		return
	}
	h.restarts.Add(1)
}

// stop takes h down: its API stops answering, its raft replica leaves the
// network and closes.
func (h *Host) stop() {
	h.handler.Store(nil)
	h.mu.Lock()
	api, st, sb, tr := h.api, h.st, h.sim, h.trans
	h.api, h.st, h.sim, h.up = nil, nil, nil, false
	h.mu.Unlock()
	if tr != nil {
		for _, o := range h.c.Hosts {
			o.mu.Lock()
			if o != h && o.trans != nil {
				o.trans.Disconnect(h.raftAdr)
			}
			o.mu.Unlock()
		}
		tr.DisconnectAll()
	}
	if api != nil {
		_ = api.Close()
	}
	if sb != nil {
		_ = sb.Close()
	}
	if st != nil {
		_ = st.Close()
	}
	if tr != nil {
		_ = tr.Close()
	}
}

// Kill stops h abruptly (as far as the rest of the pool can tell): its API
// refuses connections, as a dead process's port does.
func (h *Host) Kill() {
	h.stop()
	h.hs.CloseClientConnections()
	_ = h.hs.Listener.Close()
}

// Restart starts a killed host again from its data directory, on the same
// API address.
func (h *Host) Restart() error {
	ln, err := net.Listen("tcp", h.addr)
	if err != nil {
		return err
	}
	h.hs = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(h.serveHTTP)}}
	h.hs.Start()
	return h.start(false, nil)
}

// Up reports whether h runs.
func (h *Host) Up() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.up && h.st != nil
}

// Store is h's store (nil while down).
func (h *Host) Store() *store.Store {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.st
}

// API is h's API server (nil while down).
func (h *Host) API() *xapi.Server {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.api
}

// Sim is h's simulated hypervisor (nil while down).
func (h *Host) Sim() *sim.Sim {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sim
}

// Close stops every host.
func (c *Cluster) Close() {
	for _, h := range c.Hosts {
		h.stop()
		h.hs.Close()
	}
}

// Others returns the hosts other than h.
func (c *Cluster) Others(h *Host) []*Host {
	var out []*Host
	for _, o := range c.Hosts {
		if o != h {
			out = append(out, o)
		}
	}
	return out
}

// Leader returns the host that leads (nil if none of the running hosts does).
func (c *Cluster) Leader() *Host {
	for _, h := range c.Hosts {
		if st := h.Store(); st != nil && st.IsLeader() {
			return h
		}
	}
	return nil
}

// WaitLeader waits until a running host leads and returns it.
func (c *Cluster) WaitLeader(timeout time.Duration) *Host {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if l := c.Leader(); l != nil {
			return l
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("no leader within %v", timeout)
	return nil
}

// WaitStable waits until a leader is known, every running host is a live
// voter (up to five) and every running replica has applied the leader's
// last index.
func (c *Cluster) WaitStable(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var why string
	for time.Now().Before(deadline) {
		why = c.unstable()
		if why == "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("cluster not stable within %v: %s", timeout, why)
}

func (c *Cluster) unstable() string {
	l := c.Leader()
	if l == nil {
		return "no leader"
	}
	lst := l.Store()
	ms, err := lst.Members()
	if err != nil {
		return err.Error()
	}
	voters := 0
	for _, m := range ms {
		if m.Voter {
			voters++
		}
	}
	up := 0
	for _, h := range c.Hosts {
		st := h.Store()
		if st == nil {
			continue
		}
		up++
		if st.AppliedIndex() < lst.AppliedIndex() {
			return fmt.Sprintf("host %d at %d, leader at %d", h.Index, st.AppliedIndex(), lst.AppliedIndex())
		}
		ref, ok := lst.RefByUUID(datamodel.HostClass, h.ID)
		if !ok {
			return fmt.Sprintf("host %d not in the database", h.Index)
		}
		ho, _ := lst.Get(datamodel.HostClass, ref)
		mo, ok := lst.Get(datamodel.HostMetricsClass, string(ho.(*datamodel.HostRecord).Metrics))
		if !ok || !mo.(*datamodel.HostMetricsRecord).Live {
			return fmt.Sprintf("host %d not live", h.Index)
		}
	}
	if want := min(up, 5); voters < want {
		return fmt.Sprintf("%d voters, want %d", voters, want)
	}
	if p, ok := lst.Get(datamodel.PoolClass, poolRef(lst)); !ok || string(p.(*datamodel.PoolRecord).Master) != string(l.API().HostRef()) {
		return "pool.master does not name the leader yet"
	}
	return ""
}

func poolRef(st *store.Store) string {
	if ps := st.List(datamodel.PoolClass); len(ps) > 0 {
		return ps[0].Ref
	}
	return ""
}

// Partition cuts the raft links between the two groups.
func (c *Cluster) Partition(a, b []*Host) {
	for _, x := range a {
		for _, y := range b {
			x.mu.Lock()
			y.mu.Lock()
			if x.trans != nil && y.trans != nil {
				x.trans.Disconnect(y.raftAdr)
				y.trans.Disconnect(x.raftAdr)
			}
			y.mu.Unlock()
			x.mu.Unlock()
		}
	}
}

// Heal reconnects every running host with every other.
func (c *Cluster) Heal() {
	for _, h := range c.Hosts {
		h.mu.Lock()
		up := h.up && h.trans != nil
		h.mu.Unlock()
		if up {
			c.connect(h)
		}
	}
}

// Error is a XenAPI failure returned by Call.
type Error = rpc.Fault

// Call makes a JSON-RPC call on h and decodes the result generically.
func (h *Host) Call(method string, params ...any) (any, error) {
	res, err := rpc.Invoke(context.Background(), nil, h.URL, method, params...)
	if err != nil {
		return nil, err
	}
	var out any
	if err := json.Unmarshal(res, &out); err != nil {
		return nil, fmt.Errorf("%s on host %d: %v", method, h.Index, err)
	}
	return out, nil
}

// Login logs in as root on h.
func (h *Host) Login() (string, error) {
	s, err := h.Call("session.login_with_password", "root", RootPassword, "1.0", "testcluster")
	if err != nil {
		return "", err
	}
	return s.(string), nil
}

// PoolLogin opens a pool (host-to-host) session on h, which members accept.
func (h *Host) PoolLogin() (string, error) {
	s, err := h.Call("session.slave_login", datamodel.NullRef, h.auth.PoolSecret())
	if err != nil {
		return "", err
	}
	return s.(string), nil
}

// Dump returns every record of the classes given, as JSON, from h's replica.
func (h *Host) Dump(classes ...*datamodel.Class) map[string]string {
	st := h.Store()
	out := map[string]string{}
	for _, c := range classes {
		for _, e := range st.List(c) {
			out[e.Ref] = string(datamodel.MarshalRecord(e.Obj))
		}
	}
	return out
}

// Freeze makes h silent without killing it: its raft links are cut and its
// API accepts connections but does not answer, like a host behind a dead
// network. Thaw undoes it.
func (h *Host) Freeze() {
	ch := make(chan struct{})
	h.frozen.Store(&ch)
	h.c.Partition([]*Host{h}, h.c.Others(h))
}

// Thaw ends Freeze.
func (h *Host) Thaw() {
	if ch := h.frozen.Swap(nil); ch != nil {
		close(*ch)
	}
	h.c.Heal()
}
