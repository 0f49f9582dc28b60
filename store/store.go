package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/xapi-go/xapi-go/datamodel"
)

// Config configures a Store. Zero durations take the defaults below, which are
// chosen for a loaded 2-core host (see the comments on each).
type Config struct {
	// DataDir holds badger (DataDir/raft) and the snapshots (DataDir/snapshots).
	// Unused when InMemory.
	DataDir string
	// NodeID is this host's raft server ID; it must be unique in the pool and
	// stable across restarts.
	NodeID string
	// BindAddr is the raft TCP address (ignored when Transport is set).
	// Default "127.0.0.1:0".
	BindAddr string
	// AdvertiseAddr is the address other hosts reach BindAddr at, if it differs
	// (e.g. BindAddr "0.0.0.0:9000").
	AdvertiseAddr string
	// Transport, if set, is used instead of a TCP transport (in-process test
	// clusters: raft.NewInmemTransport). The caller keeps ownership of it.
	Transport raft.Transport
	// InMemory keeps the log, stable store and snapshots in memory (tests).
	InMemory bool
	// Bootstrap bootstraps a one-node cluster when there is no state yet.
	Bootstrap bool
	// Recover makes this replica's existing state a one-node cluster before
	// it starts (raft's RecoverCluster): for a pool that lost its quorum for
	// good and continues from this replica. Entries it never received are
	// lost; the other hosts must be wiped and join again.
	Recover bool
	// Logger receives the store's, raft's and badger's logs. Default: slog.Default().
	Logger *slog.Logger

	// HeartbeatTimeout is how long a follower waits for the leader before
	// starting an election (raft randomises it to 1–2×). Default 100 ms, so a
	// dead master is replaced in about 0.2 s (kill -9 to the first write
	// through a survivor: p50 0.2 s, p99 0.41 s on a 2-core machine). It is
	// safe under load because the leader heartbeats every HeartbeatTimeout/10
	// (10 ms) from its own goroutine, apart from disk writes: a follower
	// starts an election only after ten heartbeats in a row went missing
	// (docs/pool.md has the soak that checks it).
	HeartbeatTimeout time.Duration
	// ElectionTimeout is how long a candidate waits before retrying. Default 100 ms.
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout is how long a leader stays leader without reaching a
	// quorum. Default 100 ms (must not exceed HeartbeatTimeout).
	LeaderLeaseTimeout time.Duration
	// CommitTimeout bounds how long followers wait to learn of a commit when
	// no further writes come. Default 20 ms (raft: 50 ms): followers publish
	// events and serve reads, so they should lag little; the cost is an idle
	// AppendEntries per follower every 20–40 ms.
	CommitTimeout time.Duration
	// ApplyTimeout bounds Apply when its ctx has no deadline. Default 30 s.
	// Forward, if set, carries a batch applied on a replica that does not
	// lead to the leader (see Forwarder); SetForwarder sets it later.
	Forward      Forwarder
	ApplyTimeout time.Duration
	// StartupTimeout bounds how long Open waits for a leader and for the
	// replica to catch up. A single-node store that cannot elect itself in that
	// time fails to open; a member of a larger cluster that finds no leader
	// opens anyway (stale reads, Apply returns ErrNotLeader) and logs a
	// warning. Default 60 s.
	StartupTimeout time.Duration
	// SnapshotThreshold is how many log entries trigger a snapshot. Default
	// 16384: snapshots of a large pool are tens of MB of JSON, so not too often;
	// a restart replays at most about this many entries plus TrailingLogs.
	SnapshotThreshold uint64
	// SnapshotInterval is how often raft checks the threshold. Default 2 min.
	SnapshotInterval time.Duration
	// TrailingLogs is how many entries are kept after a snapshot, so a follower
	// that was briefly away catches up from the log rather than a snapshot
	// install. Default 10240.
	TrailingLogs uint64
	// SnapshotRetain is how many snapshots are kept on disk. Default 2.
	SnapshotRetain int
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.HeartbeatTimeout, 100*time.Millisecond)
	def(&c.ElectionTimeout, 100*time.Millisecond)
	def(&c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	def(&c.CommitTimeout, 20*time.Millisecond)
	def(&c.ApplyTimeout, 30*time.Second)
	def(&c.StartupTimeout, 60*time.Second)
	def(&c.SnapshotInterval, 2*time.Minute)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 16384
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.SnapshotRetain <= 0 {
		c.SnapshotRetain = 2
	}
	if c.BindAddr == "" {
		c.BindAddr = "127.0.0.1:0"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// ErrNotLeader is matched (errors.Is) by the *NotLeaderError that Apply
// returns on a replica that is not the raft leader.
var ErrNotLeader = errors.New("store: not the raft leader")

// NotLeaderError says which host leads (empty if none is known); the API layer
// turns it into HOST_IS_SLAVE or forwards the call.
type NotLeaderError struct {
	LeaderAddr string
	LeaderID   string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderAddr == "" {
		return "store: not the raft leader (no leader known)"
	}
	return fmt.Sprintf("store: not the raft leader (leader %s at %s)", e.LeaderID, e.LeaderAddr)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// ErrLeadershipLost reports that leadership was lost while a batch was in
// flight: it may or may not have been committed.
var ErrLeadershipLost = errors.New("store: leadership lost while applying; outcome unknown")

// ErrClosed is returned by Apply after Close.
var ErrClosed = errors.New("store: closed")

// maxEntrySize bounds an encoded batch; raft entries should stay small.
const maxEntrySize = 32 << 20

// Store is one host's replica of the pool database.
type Store struct {
	cfg   Config
	log   *slog.Logger
	fsm   *fsm
	raft  *raft.Raft
	trans raft.Transport
	watch *watchedTransport // wraps trans
	logs  raft.LogStore

	closers   []func() error // run in reverse order by Close
	closeOnce sync.Once
	closeErr  error

	fwdMu sync.Mutex // guards cfg.Forward

	readyTerm atomic.Uint64 // the term this replica leads in and has caught up for (IsLeader)
	nudge     chan struct{} // see nudgeFollowers
	readyMu   sync.Mutex
	readyChs  map[chan raft.Observation]bool // WatchCluster\'s, for LeaderReady
	// bootstrapped: this Open created a new one-node cluster
	bootstrapped bool
	shutdown     chan struct{} // closed by Close
	leaderDone   chan struct{} // closed when followLeadership ends
}

// Open starts the replica. With existing state it restores the latest
// snapshot, replays the log and waits until every committed entry is applied
// (single node: until it leads again and a barrier has passed) before
// returning. A node with no state and Bootstrap false returns at once and
// waits to be added to a cluster.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg.setDefaults()
	if cfg.NodeID == "" {
		return nil, errors.New("store: NodeID is required")
	}
	s := &Store{cfg: cfg, log: cfg.Logger.With("component", "store", "node_id", cfg.NodeID), fsm: newFSM(cfg.Logger.With("component", "store")),
		shutdown: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			_ = s.Close()
		}
	}()

	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
	)
	if cfg.InMemory {
		m := raft.NewInmemStore()
		logs, stable, snaps = m, m, raft.NewInmemSnapshotStore()
	} else {
		if cfg.DataDir == "" {
			return nil, errors.New("store: DataDir is required unless InMemory")
		}
		dir := filepath.Join(cfg.DataDir, "raft")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		bs, err := openBadgerStore(dir, cfg.Logger, 5*time.Minute)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		s.closers = append(s.closers, bs.Close)
		logs, stable = bs, bs
		fss, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, cfg.SnapshotRetain, newHCLog(cfg.Logger, "raft-snapshot"))
		if err != nil {
			return nil, fmt.Errorf("store: snapshot store: %w", err)
		}
		snaps = fss
	}

	if cfg.Transport != nil {
		s.trans = cfg.Transport
	} else {
		var adv *netAddr
		if cfg.AdvertiseAddr != "" {
			adv = &netAddr{cfg.AdvertiseAddr}
		}
		t, err := newTCPTransport(cfg.BindAddr, adv, cfg.Logger)
		if err != nil {
			return nil, fmt.Errorf("store: raft transport on %s: %w", cfg.BindAddr, err)
		}
		s.closers = append(s.closers, t.Close)
		s.trans = t
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = min(cfg.LeaderLeaseTimeout, cfg.HeartbeatTimeout)
	rc.CommitTimeout = cfg.CommitTimeout
	// raft's largest batch: a replica that comes back after many writes
	// catches up in big appends (the default 64 makes pipelined catch-up
	// crawl at 64 entries per CommitTimeout)
	rc.MaxAppendEntries = 1024
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.BatchApplyCh = true
	rc.Logger = newHCLog(cfg.Logger, "raft")

	s.logs = logs
	hasState, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if cfg.Recover && hasState {
		conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: rc.LocalID, Address: s.trans.LocalAddr()}}}
		if err := raft.RecoverCluster(rc, newFSM(cfg.Logger), logs, stable, snaps, s.trans, conf); err != nil {
			return nil, fmt.Errorf("store: recover: %w", err)
		}
		s.log.Warn("recovered the cluster as this one node", "addr", s.trans.LocalAddr())
	}
	s.watch = watchTransport(s.trans)
	s.closers = append(s.closers, s.watch.close)
	r, err := raft.NewRaft(rc, s.fsm, logs, stable, snaps, s.watch.raftTransport())
	if err != nil {
		return nil, fmt.Errorf("store: start raft: %w", err)
	}
	s.raft = r
	s.leaderDone = make(chan struct{})
	go s.followLeadership(r.LeaderCh())
	s.nudge = make(chan struct{}, 1)
	go s.nudgeFollowers()
	if !hasState && cfg.Bootstrap {
		conf := raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter, ID: rc.LocalID, Address: s.trans.LocalAddr(),
		}}}
		if err := r.BootstrapCluster(conf).Error(); err != nil {
			return nil, fmt.Errorf("store: bootstrap: %w", err)
		}
		s.log.Info("bootstrapped a one-node cluster", "addr", s.trans.LocalAddr())
		s.bootstrapped = true
	}
	if hasState || cfg.Bootstrap {
		if err := s.waitReady(ctx); err != nil {
			return nil, err
		}
	}
	ok = true
	s.log.Info("store open", "applied_index", s.AppliedIndex(), "leader", s.IsLeader())
	return s, nil
}

// waitReady waits for a leader and for this replica to apply everything the
// cluster has committed. On the leader a barrier proves it; a follower waits
// for the first AppendEntries from a leader (which carries the leader's commit
// index, see watchedTransport) and then until it has applied up to that index.
// A leader that backs off from a replica it could not reach may take a while
// (raft backs off up to about 10 s) to send it; StartupTimeout bounds the wait.
func (s *Store) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartupTimeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.raft.State() == raft.Leader {
			dl, _ := ctx.Deadline()
			err := s.leaderBarrier(time.Until(dl))
			if err == nil {
				return nil
			}
			if !errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, raft.ErrLeadershipLost) {
				return fmt.Errorf("store: startup barrier: %w", err)
			}
		} else if lc := s.watch.leaderCommit.Load(); lc > 0 && s.raft.AppliedIndex() >= lc &&
			s.AppliedIndex() >= s.lastCommandAtOrBelow(lc) {
			// raft's applied index counts entries handed to the FSM
			// goroutine, and entries other than commands never reach the
			// FSM: check the FSM has the last command up to lc.
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			if cerr := context.Cause(ctx); !errors.Is(cerr, context.DeadlineExceeded) || s.singleVoter() {
				return fmt.Errorf("store: waiting for raft leadership and catch-up: %w", cerr)
			}
			s.log.Warn("not caught up with a raft leader at startup; serving possibly stale state",
				"applied_index", s.AppliedIndex(), "leader_commit_seen", s.watch.leaderCommit.Load())
			return nil
		}
	}
}

// lastCommandAtOrBelow returns the index of the last command entry at or below
// index that the FSM has not applied yet, or the FSM's applied index if there
// is none (entries already compacted into a snapshot count as applied).
func (s *Store) lastCommandAtOrBelow(index uint64) uint64 {
	applied := s.AppliedIndex()
	for i := index; i > applied; i-- {
		var l raft.Log
		if err := s.logs.GetLog(i, &l); err != nil {
			return applied
		}
		if l.Type == raft.LogCommand {
			return i
		}
	}
	return applied
}

func (s *Store) singleVoter() bool {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	voters := 0
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			voters++
		}
	}
	return voters <= 1
}

// Close shuts raft down and closes the log store and the transport (unless the
// caller supplied the transport).
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.shutdown)
		var errs []error
		if s.raft != nil {
			if err := s.raft.Shutdown().Error(); err != nil {
				errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
			}
		}
		for i := len(s.closers) - 1; i >= 0; i-- {
			if err := s.closers[i](); err != nil {
				errs = append(errs, err)
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// Apply submits a batch of operations through raft and waits until it is
// applied on this replica (so a following read sees it). It returns the raft
// index of the entry. If an operation does not fit the state, nothing of the
// batch is applied and the *datamodel.Error is returned (with the index: the
// entry is still consumed). On a replica that does not lead, the batch goes
// to the leader through Config.Forward (waiting out an election, up to the
// apply timeout) and Apply returns once this replica has applied it too;
// without a Forward it returns a *NotLeaderError.
func (s *Store) Apply(ctx context.Context, ops ...Op) (uint64, error) {
	if len(ops) == 0 {
		return s.AppliedIndex(), nil
	}
	if s.forwarder() == nil {
		data, err := encodeBatch(ops)
		if err != nil {
			return 0, err
		}
		return s.applyLocal(ctx, data)
	}
	// a batch that may travel to another host carries an id, so that it
	// can be sent again when its fate is unknown
	var id batchID
	_, _ = rand.Read(id[:])
	data, err := encodeBatchID(id, ops)
	if err != nil {
		return 0, err
	}
	return s.applyData(ctx, data)
}

// applyLocal submits an encoded batch to raft on the leader.
func (s *Store) applyLocal(ctx context.Context, data []byte) (uint64, error) {
	if s.raft.State() != raft.Leader {
		return 0, s.notLeader()
	}
	if len(data) > maxEntrySize {
		return 0, internalError("write batch too large (%d bytes)", len(data))
	}
	if id, hasID, _, err := splitBatch(data); err == nil && hasID {
		if prev, ok := s.fsm.batches.get(id); ok {
			if prev.err != nil {
				return prev.index, prev.err
			}
			return prev.index, nil
		}
	}
	timeout := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return 0, ctx.Err()
		}
	}
	f := s.raft.Apply(data, timeout)
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		return 0, fmt.Errorf("store: apply: %w (the batch may still be applied)", ctx.Err())
	}
	switch {
	case err == nil:
	case errors.Is(err, raft.ErrNotLeader):
		return 0, s.notLeader()
	case errors.Is(err, raft.ErrLeadershipLost):
		return 0, ErrLeadershipLost
	case errors.Is(err, raft.ErrRaftShutdown):
		return 0, ErrClosed
	case errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return 0, errTransferring
	default:
		return 0, fmt.Errorf("store: apply: %w", err)
	}
	select {
	case s.nudge <- struct{}{}:
	default:
	}
	if derr, ok := f.Response().(*datamodel.Error); ok && derr != nil {
		return f.Index(), derr
	}
	return f.Index(), nil
}

// nudgeFollowers tells followers of new commits quickly. A follower learns
// the commit index from the leader's next AppendEntries, which raft sends
// when there is a new entry or after CommitTimeout: a lone write would reach
// other hosts' events and reads 20–40 ms late. After writes commit, the
// leader appends a barrier entry, whose replication carries the new commit
// index; writes that commit while a barrier is in flight share the next one.
// (Waiting a little for a write that would carry it anyway does not pay:
// Go's timers below a millisecond round up to one on an idle host.)
func (s *Store) nudgeFollowers() {
	for {
		select {
		case <-s.shutdown:
			return
		case <-s.nudge:
		}
		if s.raft.State() != raft.Leader {
			continue
		}
		if err := s.raft.Barrier(s.cfg.ApplyTimeout).Error(); errors.Is(err, raft.ErrRaftShutdown) {
			return
		}
	}
}

func (s *Store) notLeader() error {
	addr, id := s.raft.LeaderWithID()
	return &NotLeaderError{LeaderAddr: string(addr), LeaderID: string(id)}
}

// Get returns the record ref of class c.
func (s *Store) Get(c *datamodel.Class, ref string) (datamodel.Object, bool) {
	return s.fsm.get(c, ref)
}

// RefByUUID returns the ref of the record of class c with that uuid.
func (s *Store) RefByUUID(c *datamodel.Class, uuid string) (string, bool) {
	return s.fsm.refByUUID(c, uuid)
}

// RefsByName returns the refs of the records of class c with that name_label,
// sorted.
func (s *Store) RefsByName(c *datamodel.Class, nameLabel string) []string {
	return s.fsm.refsByName(c, nameLabel)
}

// List returns every record of class c (in no particular order). The slice is
// the caller's; the records are shared and must not be changed.
func (s *Store) List(c *datamodel.Class) []Entry { return s.fsm.list(c) }

// ListConsistent returns the entries of the given classes as of one raft
// index, and that index: every change with a higher index is not reflected.
// event.from with an empty token uses it to pair a full load with a token.
func (s *Store) ListConsistent(classes []*datamodel.Class) (uint64, map[*datamodel.Class][]Entry) {
	return s.fsm.listConsistent(classes)
}

// Count returns the number of records of class c.
func (s *Store) Count(c *datamodel.Class) int { return s.fsm.count(c) }

// AppliedIndex is the raft index of the last command entry applied to this
// replica's tables.
func (s *Store) AppliedIndex() uint64 { return s.fsm.applied.Load() }

// IsLeader tells whether this replica is the raft leader (the pool master).
//
// A replica that has just won an election leads only once it has applied
// everything committed before (a barrier): until then it might serve reads
// that miss acknowledged writes.
func (s *Store) IsLeader() bool {
	return s.raft.State() == raft.Leader && s.readyTerm.Load() == s.raft.CurrentTerm()
}

// leaderBarrier waits until everything committed before this leader's term
// is applied here, then marks the term ready (see IsLeader).
func (s *Store) leaderBarrier(timeout time.Duration) error {
	term := s.raft.CurrentTerm()
	if err := s.raft.Barrier(timeout).Error(); err != nil {
		return err
	}
	if s.raft.State() == raft.Leader && s.raft.CurrentTerm() == term {
		s.readyTerm.Store(term)
	}
	return nil
}

// followLeadership runs the barrier that makes a new leader ready.
func (s *Store) followLeadership(ch <-chan bool) {
	defer close(s.leaderDone)
	for {
		select {
		case <-s.shutdown:
			return
		case lead := <-ch:
			for lead && s.raft.State() == raft.Leader && !s.IsLeader() {
				if err := s.leaderBarrier(s.cfg.ApplyTimeout); errors.Is(err, raft.ErrRaftShutdown) {
					return
				}
			}
			if lead && s.IsLeader() {
				s.notifyReady()
			}
		}
	}
}

// Leader returns the leader's raft address and server ID ("" if unknown).
func (s *Store) Leader() (addr, id string) {
	a, i := s.raft.LeaderWithID()
	return string(a), string(i)
}

// Raft returns the raft handle, for membership changes and leadership transfer.
func (s *Store) Raft() *raft.Raft { return s.raft }

// LocalAddr is this replica's raft address.
func (s *Store) LocalAddr() string { return string(s.trans.LocalAddr()) }

// NodeID is this replica's raft server ID.
func (s *Store) NodeID() string { return s.cfg.NodeID }

// Subscribe registers fn to be called after each applied entry, with its
// change set, in index order, on the applier goroutine. fn must be quick and
// must not call Apply (which waits for the applier). The ChangeSet and its
// records must not be modified. cancel unregisters fn.
func (s *Store) Subscribe(fn func(*ChangeSet)) (cancel func()) { return s.fsm.subscribe(fn) }

// Bootstrapped reports whether Open created a new one-node cluster (a first
// start), as opposed to opening existing or joining state.
func (s *Store) Bootstrapped() bool { return s.bootstrapped }
