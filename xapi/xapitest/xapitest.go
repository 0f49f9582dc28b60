package xapitest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/backends/sim"
	"github.com/xapi-go/xapi-go/store"
	"github.com/xapi-go/xapi-go/xapi"
)

// RootPassword is the root password of test servers.
const RootPassword = "xapi-test-password"

// Server is a running test server.
type Server struct {
	URL   string
	API   *xapi.Server
	Store *store.Store
	HTTP  *httptest.Server
	// Sim is the simulated hypervisor the server's VMs run on (nil when
	// Configure installed another backend).
	Sim *sim.Sim
}

// Options tune a test server.
type Options struct {
	// Users are local users to create before start: name -> role (password = name).
	Users map[string]string
	// Configure, if set, may change the xapi config before the server starts.
	Configure func(*xapi.Config)
	// Sim configures the simulated hypervisor; the zero value is a 64 GiB,
	// 8-CPU host with no latency and a guest agent that reports at once.
	Sim sim.Config
}

// NewServer starts a server that is torn down when the test ends.
func NewServer(t testing.TB, opts Options) *Server {
	t.Helper()
	srv, stop, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return srv
}

// Start starts a server outside of a test; call stop to tear it down.
func Start(opts Options) (srv *Server, stop func(), err error) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, store.Config{NodeID: "node1", BindAddr: "127.0.0.1:0", InMemory: true, Bootstrap: true, Logger: log,
		HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond, LeaderLeaseTimeout: 50 * time.Millisecond})
	if err != nil {
		return nil, nil, fmt.Errorf("store: %w", err)
	}
	auth := xapi.NewMemoryAuth(RootPassword)
	for name, role := range opts.Users {
		if err := auth.AddUser(name, role, name); err != nil {
			_ = st.Close()
			return nil, nil, fmt.Errorf("user %s: %w", name, err)
		}
	}
	simCfg := opts.Sim
	if simCfg.Logger == nil {
		simCfg.Logger = log
	}
	sb := sim.New(simCfg)
	cfg := xapi.Config{Store: st, Auth: auth, Logger: log, Hostname: "testhost", Address: "127.0.0.1", Backend: sb}
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	api, err := xapi.New(ctx, cfg)
	if err != nil {
		_ = sb.Close()
		_ = st.Close()
		return nil, nil, fmt.Errorf("xapi: %w", err)
	}
	hs := httptest.NewServer(api.Handler())
	stop = func() {
		hs.Close()
		_ = api.Close()
		_ = sb.Close()
		_ = st.Close()
	}
	srv = &Server{URL: hs.URL, API: api, Store: st, HTTP: hs}
	if cfg.Backend == sb {
		srv.Sim = sb
	}
	return srv, stop, nil
}
