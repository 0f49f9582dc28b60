package xapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xapi-go/xapi-go/backends"
	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/rpc"
	"github.com/xapi-go/xapi-go/rrd"
	"github.com/xapi-go/xapi-go/store"
)

// Config configures a Server.
type Config struct {
	Store    *store.Store
	Auth     *Auth
	Logger   *slog.Logger
	Hostname string // host.name_label / hostname on first start
	Address  string // management address shown as host.address
	Port     int    // API port (for information only)
	// Impl overrides explicit message implementations (tests); nil means the built-in ones.
	Impl *Impl
	// Override, if set, may replace parts of the built-in implementation (tests).
	Override func(impl *Impl)
	// EventMaxChanges bounds the event buffer's retained changes
	// (0: events.DefaultMaxChanges).
	EventMaxChanges int
	// Other serves non-RPC HTTP requests other than the stats handlers
	// (/rrd_updates, /host_rrd(s), /vm_rrd(s)); nil means 404.
	Other http.Handler
	// StatsInterval is how often the backend is sampled into the stats
	// archives (default 1 s).
	StatsInterval time.Duration
	// AuthFailureDelay is how long a failed login waits before answering
	// (xapi: 5 s); zero means no delay.
	AuthFailureDelay time.Duration
	// SessionTimeout expires sessions inactive for longer (default 24 h).
	SessionTimeout time.Duration
	// Backend runs this host's domains; nil leaves the VM power operations
	// unimplemented.
	Backend backends.Backend
	// PeerURL maps another host's management address (host.address) to the
	// base URL of its API. Default: http://ADDRESS:Port — every host of a
	// pool serves the API on the same port, as clients that follow
	// HOST_IS_SLAVE replace only the host name.
	PeerURL func(address string) string
	// Restart is called, on its own goroutine, when this host must restart on
	// fresh replicated state: after pool.join (r.Join set) or after it was
	// ejected (r.Join nil: start again as a one-host pool). The owner closes
	// the Server and the store, deletes the store's data, and starts again
	// (see JoinPool). Nil: pool.join and pool.eject of this host are refused.
	Restart func(r Restart)
	// VoterReplaceAfter is how long a raft voter must be unreachable before
	// the leader gives its vote to a live non-voter (default 30 s).
	VoterReplaceAfter time.Duration
}

// Server is the XenAPI server of one host.
type Server struct {
	cfg     Config
	store   *store.Store
	auth    *Auth
	log     *slog.Logger
	methods *methodSet
	impl    *Impl
	handler http.Handler
	rrd     *rrd.Store

	hostRef datamodel.HostRef
	poolRef datamodel.PoolRef
	tasks   runningTasks
	// taskProbation holds the progress of pending tasks past the pending
	// timeout at the last task GC; one that has not moved since is hung.
	taskProbation map[string]float64
	// sessionCapMu serializes the session cap's runs
	sessionCapMu sync.Mutex
	events       *eventHub
	vms          vmRuntime
	cluster      clusterState
	// peerSessions are pool sessions on other hosts, for forwarded calls
	peerSessions poolSessions
	local        localSessions
	// emergency: the pool's database is not available; only the
	// emergency calls are served (see emergencyCalls)
	emergency atomic.Bool

	mu        sync.Mutex
	closed    bool
	bg        sync.WaitGroup
	ctx       context.Context
	cancel    context.CancelFunc
	listNames []string
}

// New creates the server and bootstraps this host's objects on first start.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("xapi: no store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Auth == nil {
		cfg.Auth = &Auth{}
	}
	ms, err := buildMethods()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, store: cfg.Store, auth: cfg.Auth, log: cfg.Logger, methods: ms}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.impl = cfg.Impl
	if s.impl == nil {
		s.impl = s.builtinImpl()
	}
	if cfg.Override != nil {
		cfg.Override(s.impl)
	}
	for _, m := range ms.list {
		s.listNames = append(s.listNames, m.Name)
		if m.Async {
			s.listNames = append(s.listNames, "Async."+m.Name)
		}
	}
	s.listNames = append(s.listNames, "system.listMethods")
	sort.Strings(s.listNames)
	s.initEvents()
	s.store.SetForwarder(s.forwardBatch)
	s.rrd = rrd.NewStore(rrd.StoreOptions{})
	api := rpc.NewHandler(s, rpc.Options{Other: s.httpHandlers(), Logger: cfg.Logger})
	internal := s.internalHandlers()
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/internal/") {
			internal.ServeHTTP(w, r)
			return
		}
		if v := r.Header.Get(minIndexHeader); v != "" {
			// a call forwarded by the master: catch up with what it saw
			if n, err := strconv.ParseUint(v, 10, 64); err == nil {
				ctx, cancel := context.WithTimeout(r.Context(), masterWait)
				_ = s.store.WaitApplied(ctx, n)
				cancel()
			}
		}
		api.ServeHTTP(w, r)
	})
	if !s.store.Bootstrapped() && s.store.Count(datamodel.PoolClass) == 0 {
		// A replica that is not new but has not got the pool's objects:
		// its pool has no quorum (a restarted replica applies the log
		// only once a leader confirms it). Serve the emergency calls and
		// finish starting when the database arrives.
		s.emergency.Store(true)
		s.log.Warn("the pool's database is not available (no quorum?): serving emergency calls only until it is")
		s.goBackground(func(ctx context.Context) {
			for s.store.Count(datamodel.PoolClass) == 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
			if err := s.start(ctx); err != nil {
				s.log.Error("could not start after the database arrived", "err", err)
				return
			}
			s.emergency.Store(false)
		})
		return s, nil
	}
	if err := s.start(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// start finds (or on a first start creates) this host's objects and starts
// the host's background work.
func (s *Server) start(ctx context.Context) error {
	cfg := s.cfg
	if err := s.bootstrap(ctx); err != nil {
		return fmt.Errorf("xapi: bootstrap: %w", err)
	}
	timeout := cfg.SessionTimeout
	if timeout <= 0 {
		timeout = sessionInactiveTimeout
	}
	s.goBackground(func(ctx context.Context) { s.sessionGC(ctx, timeout) })
	// every host keeps its credentials in step with the pool's replicated copy
	s.goBackground(s.runAuthSync)
	if !s.store.IsLeader() {
		// a member announces it is up (and caught up) by writing its own
		// liveness; the leader promotes live non-voters to voters
		if err := s.apply(ctx, s.liveOps(s.hostRef, true)...); err != nil {
			s.log.Warn("could not record this host as live", "err", err)
		}
	}
	if err := s.startBackend(ctx); err != nil {
		return fmt.Errorf("xapi: backend: %w", err)
	}
	s.goBackground(s.runClusterDuties)
	if b := cfg.Backend; b != nil {
		interval := cfg.StatsInterval
		if interval <= 0 {
			interval = time.Second
		}
		s.goBackground(func(ctx context.Context) { s.runStats(ctx, b, s.rrd, interval) })
	}
	return nil
}

// Handler serves the API over HTTP.
func (s *Server) Handler() http.Handler { return s.handler }

// Store returns the server's store.
func (s *Server) Store() *store.Store { return s.store }

// HostRef is this host's reference.
func (s *Server) HostRef() datamodel.HostRef { return s.hostRef }

// Close stops background work. The store is closed by its owner.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.bg.Wait()
	return nil
}

// Call is the context of one API call, passed to message implementations.
type Call struct {
	Server     *Server
	Method     *Method
	Session    datamodel.SessionRef // null for calls without a session
	SessionRec *datamodel.SessionRecord
	Task       datamodel.TaskRef // the task of an Async call, or null
	UserAgent  string
	RemoteAddr string
	// raw are the call's parameters as they came (wire values, without the
	// session), for forwarding it to another host.
	raw []any
}

// Dispatch implements rpc.Dispatcher.
func (s *Server) Dispatch(ctx context.Context, rc *rpc.Call) rpc.Response {
	res, err := s.dispatch(ctx, rc)
	if err != nil {
		f := s.toFault(rc.Method, err)
		return rpc.Response{Err: &rpc.Fault{Code: f.Code, Params: f.Params}}
	}
	return res
}

func (s *Server) dispatch(ctx context.Context, rc *rpc.Call) (rpc.Response, error) {
	name := rc.Method
	if name == "system.listMethods" {
		names := s.listNames
		return rpc.Response{Raw: true, Value: func(w rpc.Writer) {
			w.BeginArray()
			for _, n := range names {
				w.String(n)
			}
			w.EndArray()
		}}, nil
	}
	async := false
	if rest, ok := strings.CutPrefix(name, "Async."); ok {
		name, async = rest, true
	}
	m := s.methods.lookup(name)
	if s.emergency.Load() && (m == nil || !emergencyCalls[m.Name]) {
		return rpc.Response{}, datamodel.ErrHostStillBooting()
	}
	if m == nil {
		// xapi validates the session first when there is one.
		if len(rc.Params) > 0 {
			if _, err := s.checkSession(ctx, rc.Params[0]); err != nil {
				return rpc.Response{}, err
			}
		}
		return rpc.Response{}, datamodel.ErrMessageMethodUnknown(rc.Method)
	}
	if async && !m.Async {
		return rpc.Response{}, datamodel.NewError("Fault", "No async mode for this operation (rpc: "+m.Name+")")
	}
	params := rc.Params
	received := len(params)
	if m.Session {
		received--
	}
	total := len(m.Params)
	if received < m.required || (m.required == total && received != total) {
		return rpc.Response{}, countMismatch(m.Name, m.required, received)
	}
	call := &Call{Server: s, Method: m, Session: datamodel.SessionRef(datamodel.NullRef), Task: datamodel.TaskRef(datamodel.NullRef), UserAgent: rc.UserAgent, RemoteAddr: rc.RemoteAddr}
	if m.Session {
		sess, err := s.checkSession(ctx, params[0])
		if err != nil {
			return rpc.Response{}, err
		}
		call.Session, call.SessionRec = sess.ref, sess.rec
		params = params[1:]
	}
	call.raw = params
	if m.State == "removed" {
		return rpc.Response{}, datamodel.ErrMessageRemoved()
	}
	args := make([]any, total)
	for i := range m.Params {
		p := &m.Params[i]
		if i >= len(params) {
			args[i] = p.def
			continue
		}
		v, err := p.Type.Decode(params[i])
		if err != nil {
			return rpc.Response{}, paramError(p.Name, err)
		}
		args[i] = v
	}
	if err := s.authorize(call, m, args); err != nil {
		return rpc.Response{}, err
	}
	if async {
		task, err := s.startAsync(ctx, call, args)
		if err != nil {
			return rpc.Response{}, err
		}
		return rpc.Response{Value: func(w rpc.Writer) { w.String(string(task)) }}, nil
	}
	out, err := s.run(ctx, call, args)
	if err != nil {
		return rpc.Response{}, err
	}
	return rpc.Response{Value: resultWriter(m, out)}, nil
}

// run executes a method with decoded arguments.
func (s *Server) run(ctx context.Context, call *Call, args []any) (any, error) {
	m := call.Method
	if m.Implicit != "" {
		return s.runImplicit(ctx, call, args)
	}
	r, err := s.routeFor(ctx, call, args)
	if err != nil {
		return nil, err
	}
	if r != nil {
		return s.forward(ctx, m, r)
	}
	return m.Call(ctx, s.impl, call, args)
}

// resultWriter turns a typed result into a writer; void results write nothing.
func resultWriter(m *Method, out any) func(w rpc.Writer) {
	switch r := out.(type) {
	case ResultFunc:
		return func(w rpc.Writer) { r(w) }
	case nil:
		if m.Result == nil {
			return nil
		}
	}
	if m.Result == nil {
		return nil
	}
	t := m.Result
	return func(w rpc.Writer) { t.Write(w, out) }
}

// emergencyCalls are the calls a host serves while its pool's database is
// not available (xapi's emergency mode).
var emergencyCalls = map[string]bool{
	"session.slave_local_login":               true,
	"session.slave_local_login_with_password": true,
	"session.local_logout":                    true,
	"pool.emergency_transition_to_master":     true,
	"pool.emergency_reset_master":             true,
	"host.is_in_emergency_mode":               true,
}
