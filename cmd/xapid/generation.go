package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/xapi-go/xapi-go/backends/sim"
	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/rpc"
	"github.com/xapi-go/xapi-go/store"
	"github.com/xapi-go/xapi-go/xapi"
)

// genEnv is what every generation of a host shares.
type genEnv struct {
	opts    *serveOptions
	log     *slog.Logger
	auth    *xapi.Auth // pool.join adopts the pool's credentials into it
	apiPort int
}

// restartPlan says how the next generation starts: on the existing state
// (zero value), as a new member of a pool (join), as a fresh one-host pool
// after pool.eject (eject), or on the existing state made a one-node raft
// cluster (recover: pool.emergency_transition_to_master).
type restartPlan struct {
	join    *joinMarker
	eject   bool
	recover bool
}

// planFor turns a restart request into a plan.
func planFor(r xapi.Restart) restartPlan {
	switch {
	case r.Join != nil:
		return restartPlan{join: &joinMarker{JoinInfo: *r.Join}}
	case r.Recover:
		return restartPlan{recover: true}
	default:
		return restartPlan{eject: true}
	}
}

// generation is one store + API server of a host.
type generation struct {
	log     *slog.Logger
	st      *store.Store
	srv     *xapi.Server
	backend *sim.Sim
	restart chan xapi.Restart // Config.Restart's requests
}

// close stops the API server, the backend and the store, in that order.
func (g *generation) close() error {
	var errs []error
	if g.srv != nil {
		if err := g.srv.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing API server: %w", err))
		}
	}
	if g.backend != nil {
		_ = g.backend.Close()
	}
	if g.st != nil {
		if err := g.st.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing store: %w", err))
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		g.log.Error("closing", "err", err)
	}
	return err
}

// startGeneration prepares the data dir as plan says, opens the store (for a
// join: wiped, without bootstrap, then added to the pool by its leader) and
// starts the API server. *nodeID is updated when a join gives the host its
// pool uuid as node id.
func startGeneration(ctx context.Context, env *genEnv, nodeID *string, plan restartPlan) (g *generation, err error) {
	o, log := env.opts, env.log
	bootstrap := true
	switch {
	case plan.join != nil:
		m := plan.join
		if !m.Wiped {
			// the marker goes first: a crash after the wipe must not leave
			// a host that bootstraps a one-host pool of its own
			if err := writeJoinMarker(o.DataDir, m); err != nil {
				return nil, err
			}
			if err := store.Wipe(o.DataDir); err != nil {
				return nil, fmt.Errorf("wiping the replica: %w", err)
			}
			m.Wiped = true
			if err := writeJoinMarker(o.DataDir, m); err != nil {
				return nil, err
			}
		}
		if err := writeNodeID(o.DataDir, m.NodeID); err != nil {
			return nil, err
		}
		*nodeID = m.NodeID
		bootstrap = false
	case plan.eject:
		if err := writeFileDurable(filepath.Join(o.DataDir, ejectMarkerFile), nil); err != nil {
			return nil, err
		}
		if err := store.Wipe(o.DataDir); err != nil {
			return nil, fmt.Errorf("wiping the replica: %w", err)
		}
	}

	gen := &generation{log: log, restart: make(chan xapi.Restart, 1)}
	g = gen
	defer func() {
		if err != nil {
			// g may be nil here (return nil, err): close what was opened
			_ = gen.close()
		}
	}()
	g.st, err = store.Open(ctx, store.Config{
		DataDir:       o.DataDir,
		NodeID:        *nodeID,
		BindAddr:      o.RaftAddr,
		AdvertiseAddr: raftAdvertiseAddr(o.RaftAddr, o.Address),
		Bootstrap:     bootstrap,
		Recover:       plan.recover,
		Logger:        log,
	})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	switch {
	case plan.join != nil:
		log.Info("joining the pool", "master", plan.join.MasterURL, "node_id", *nodeID)
		t0 := time.Now()
		if err := xapi.JoinPool(ctx, g.st, env.auth, plan.join.JoinInfo); err != nil {
			return nil, fmt.Errorf("joining the pool at %s: %w", plan.join.MasterURL, err)
		}
		if err := removeMarker(o.DataDir, joinMarkerFile); err != nil {
			return nil, err
		}
		log.Info("joined the pool: replica caught up", "took", time.Since(t0).Round(time.Millisecond))
	case plan.eject:
		if err := removeMarker(o.DataDir, ejectMarkerFile); err != nil {
			return nil, err
		}
	}

	g.backend = newSimBackend(o.Hostname, log.With("component", "sim"))
	g.srv, err = xapi.New(ctx, xapi.Config{
		Backend:  g.backend,
		Store:    g.st,
		Auth:     env.auth,
		Logger:   log.With("component", "xapi"),
		Hostname: o.Hostname,
		Address:  o.Address,
		Port:     env.apiPort,
		// a failed login waits before answering, as xapi's does
		AuthFailureDelay: 5 * time.Second,
		Restart: func(r xapi.Restart) {
			if r.Join != nil {
				// record the join at once: pool.join has answered (or is
				// answering), so a crash from now on must resume it
				if err := writeJoinMarker(o.DataDir, &joinMarker{JoinInfo: *r.Join}); err != nil {
					log.Error("recording the pending join", "err", err)
				}
			}
			select {
			case g.restart <- r:
			default: // a restart is already pending
			}
		},
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// swapHandler serves HTTP with the current generation's handler and counts
// the calls in flight on each, so that a generation ends only once its calls
// have been answered.
type swapHandler struct {
	mu  sync.RWMutex
	cur *genHandler
}

type genHandler struct {
	h  http.Handler
	wg sync.WaitGroup
}

func newSwapHandler(h http.Handler) *swapHandler {
	return &swapHandler{cur: &genHandler{h: h}}
}

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	g := s.cur
	g.wg.Add(1)
	s.mu.RUnlock()
	defer g.wg.Done()
	g.h.ServeHTTP(w, r)
}

// swap makes h serve new calls and returns the previous handler.
func (s *swapHandler) swap(h http.Handler) *genHandler {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur
	s.cur = &genHandler{h: h}
	return old
}

// wait waits until the handler's calls are done, at most timeout (0: do not
// wait); it reports whether they are.
func (g *genHandler) wait(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	if timeout <= 0 {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// bootingHandler answers while no generation serves: every XenAPI call fails
// with HOST_STILL_BOOTING (clients try another host of the pool), and the
// internal endpoints answer 503 without a leader (the other hosts retry).
func bootingHandler(log *slog.Logger) http.Handler {
	rpcH := rpc.NewHandler(bootingDispatcher{}, rpc.Options{Logger: log})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/internal/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("{}\n"))
			return
		}
		if r.Method == http.MethodPost || r.Method == http.MethodOptions {
			rpcH.ServeHTTP(w, r)
			return
		}
		http.Error(w, "host still booting", http.StatusServiceUnavailable)
	})
}

type bootingDispatcher struct{}

func (bootingDispatcher) Dispatch(context.Context, *rpc.Call) rpc.Response {
	e := datamodel.ErrHostStillBooting()
	return rpc.Response{Err: &rpc.Fault{Code: e.Code, Params: e.Params}}
}
