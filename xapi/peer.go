package xapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/rpc"
	"github.com/xapi-go/xapi-go/store"
)

// Hosts of a pool talk to each other in two ways: XenAPI calls (JSON-RPC,
// with a session from session.slave_login or, while joining, the user's
// session on the master), and a few internal HTTP endpoints under /internal/
// that carry raft-level requests. The internal endpoints take the pool secret
// in the header below and are never used by clients.
const (
	poolSecretHeader = "X-Xapi-Go-Pool-Secret"
	sessionHeader    = "X-Xapi-Go-Session"
	pathApply        = "/internal/apply"      // a write batch from a member (leader only)
	pathJoinObjects  = "/internal/join"       // a joining host's objects (session of a pool admin)
	pathAddMember    = "/internal/member"     // a joined host's raft id and address (leader only)
	pathRunningTasks = "/internal/tasks"      // the tasks running on this host
	pathEjected      = "/internal/ejected"    // tells a host it left the pool
	pathRejoin       = "/internal/rejoin"     // tells a host to join a recovered master
	pathMigrateIn    = "/internal/migrate-in" // a destination of VM.pool_migrate takes a VM over
	maxInternalBody  = 64 << 20               // a joining host's objects fit easily
	peerDialTimeout  = 500 * time.Millisecond
)

// peerClient is the HTTP client for calls between hosts: short dial timeout
// (a dead host must be noticed quickly), keep-alive connections.
var peerClient = &http.Client{Transport: &http.Transport{
	DialContext:         (&net.Dialer{Timeout: peerDialTimeout, KeepAlive: 30 * time.Second}).DialContext,
	MaxIdleConnsPerHost: 64,
	IdleConnTimeout:     90 * time.Second,
}}

// peerURL is the API base URL of the host with the given management address.
func (s *Server) peerURL(address string) string {
	if s.cfg.PeerURL != nil {
		return s.cfg.PeerURL(address)
	}
	port := s.cfg.Port
	if port == 0 {
		port = 80
	}
	return "http://" + net.JoinHostPort(address, strconv.Itoa(port))
}

// hostURLByID is the API URL of the host whose uuid (= raft node id) is id.
func (s *Server) hostURLByID(id string) (string, bool) {
	ref, ok := s.store.RefByUUID(datamodel.HostClass, id)
	if !ok {
		return "", false
	}
	o, ok := s.store.Get(datamodel.HostClass, ref)
	if !ok {
		return "", false
	}
	return s.peerURL(o.(*datamodel.HostRecord).Address), true
}

// errPeerUnreachable wraps failures to reach another host at all.
var errPeerUnreachable = errors.New("host unreachable")

// peerCall makes a XenAPI call (JSON-RPC) on another host and decodes the
// result into out (if not nil). A XenAPI failure comes back as *datamodel.Error.
func peerCall(ctx context.Context, url, method string, out any, params ...any) error {
	return peerCallAt(ctx, url, 0, method, out, params...)
}

// minIndexHeader asks the host that receives a call to apply the database up
// to this raft index before it runs the call: a call forwarded by the
// master must see what the master saw.
const minIndexHeader = "X-Xapi-Go-Min-Index"

// peerCallAt is peerCall for a call that must see the database as of index
// (0: any).
func peerCallAt(ctx context.Context, url string, index uint64, method string, out any, params ...any) error {
	var h http.Header
	if index > 0 {
		h = http.Header{minIndexHeader: {strconv.FormatUint(index, 10)}}
	}
	res, err := rpc.InvokeWithHeader(ctx, peerClient, url, h, method, params...)
	var f *rpc.Fault
	switch {
	case errors.As(err, &f):
		return datamodel.NewError(f.Code, f.Params...)
	case errors.Is(err, rpc.ErrTransport):
		return fmt.Errorf("%w: %w", errPeerUnreachable, err)
	case err != nil:
		return err
	}
	if out != nil {
		return json.Unmarshal(res, out)
	}
	return nil
}

// internalReply is the JSON answer of the internal endpoints.
type internalReply struct {
	Index uint64   `json:"index,omitempty"`
	Error []string `json:"error,omitempty"`
	// Leader is the API URL of the leader when the request needs the leader
	// and this host does not lead (HTTP 503).
	Leader string          `json:"leader,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
}

func (r *internalReply) err() error {
	if len(r.Error) == 0 {
		return nil
	}
	return datamodel.NewError(r.Error[0], r.Error[1:]...)
}

// errNotLeaderHere is an internal reply saying this host does not lead.
type errNotLeaderHere struct{ leader string }

func (e *errNotLeaderHere) Error() string { return "not the pool master (master: " + e.leader + ")" }

// postInternal sends body to an internal endpoint of the host at url, with
// the pool secret (if not empty) and the given headers.
func postInternal(ctx context.Context, secret, url, path string, body []byte, header map[string]string) (*internalReply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if secret != "" {
		req.Header.Set(poolSecretHeader, secret)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := peerClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errPeerUnreachable, err)
	}
	defer resp.Body.Close()
	var r internalReply
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxInternalBody)).Decode(&r); err != nil {
		return nil, fmt.Errorf("%s%s: HTTP %d: %v", url, path, resp.StatusCode, err)
	}
	if resp.StatusCode == http.StatusServiceUnavailable {
		return &r, &errNotLeaderHere{leader: r.Leader}
	}
	return &r, nil
}

// forwardBatch is the store's Forwarder: it sends a write batch to the leader.
func (s *Server) forwardBatch(ctx context.Context, leaderID, _ string, batch []byte) (uint64, error) {
	url, ok := s.hostURLByID(leaderID)
	if !ok {
		return 0, fmt.Errorf("%w: leader %s has no host object yet", store.ErrRetry, leaderID)
	}
	r, err := postInternal(ctx, s.auth.PoolSecret(), url, pathApply, batch, nil)
	var nl *errNotLeaderHere
	switch {
	case errors.As(err, &nl), errors.Is(err, errPeerUnreachable):
		// safe to send again even if it reached the leader: the batch's
		// id makes a second copy a no-op
		return 0, fmt.Errorf("%w: %v", store.ErrRetry, err)
	case err != nil:
		return 0, err
	}
	return r.Index, r.err()
}

// internalHandlers serves the /internal/ endpoints.
func (s *Server) internalHandlers() http.Handler {
	mux := http.NewServeMux()
	// secret guards an endpoint with the pool secret; the join endpoint
	// (bySession) takes a pool admin's session on the master instead.
	guard := func(bySession bool, h func(w http.ResponseWriter, r *http.Request, body []byte) (*internalReply, int)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				http.Error(w, "POST only", http.StatusMethodNotAllowed)
				return
			}
			if !bySession && !s.auth.checkPoolSecret(r.Header.Get(poolSecretHeader)) {
				writeInternal(w, http.StatusForbidden, &internalReply{Error: []string{datamodel.CodeSessionAuthenticationFailed, "", "pool secret mismatch"}})
				return
			}
			body, err := io.ReadAll(io.LimitReader(r.Body, maxInternalBody))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			rep, code := h(w, r, body)
			writeInternal(w, code, rep)
		}
	}
	mux.Handle(pathApply, guard(false, s.serveApply))
	mux.Handle(pathJoinObjects, guard(true, s.serveJoinObjects))
	mux.Handle(pathAddMember, guard(false, s.serveAddMember))
	mux.Handle(pathRunningTasks, guard(false, s.serveRunningTasks))
	mux.Handle(pathEjected, guard(false, s.serveEjected))
	mux.Handle(pathRejoin, guard(false, s.serveRejoin))
	mux.Handle(pathMigrateIn, guard(false, s.serveMigrateIn))
	return mux
}

func writeInternal(w http.ResponseWriter, code int, r *internalReply) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(r)
}

// notLeaderReply answers a leader-only request on a host that does not lead.
func (s *Server) notLeaderReply() (*internalReply, int) {
	_, id := s.store.Leader()
	url, _ := s.hostURLByID(id)
	return &internalReply{Leader: url}, http.StatusServiceUnavailable
}

// errorReply turns an error into an internal reply.
func errorReply(err error) *internalReply {
	var de *datamodel.Error
	if errors.As(err, &de) {
		return &internalReply{Error: append([]string{de.Code}, de.Params...)}
	}
	return &internalReply{Error: []string{datamodel.CodeInternalError, err.Error()}}
}

func (s *Server) serveApply(_ http.ResponseWriter, r *http.Request, body []byte) (*internalReply, int) {
	if !s.store.IsLeader() {
		return s.notLeaderReply()
	}
	idx, err := s.store.ApplyEncoded(r.Context(), body)
	if errors.Is(err, store.ErrNotLeader) {
		return s.notLeaderReply()
	}
	rep := &internalReply{Index: idx}
	if err != nil {
		e := errorReply(err)
		rep.Error = e.Error
	}
	return rep, http.StatusOK
}

// serveRunningTasks lists the tasks whose operations run on this host.
func (s *Server) serveRunningTasks(http.ResponseWriter, *http.Request, []byte) (*internalReply, int) {
	b, _ := json.Marshal(s.tasks.refs())
	return &internalReply{Data: b}, http.StatusOK
}
