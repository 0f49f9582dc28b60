package xapi

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

const (
	// maxVoters is how many hosts vote in raft; more hosts are non-voters
	// that still hold the whole database.
	maxVoters = 5
	// defaultVoterReplaceAfter is how long a voter must be unreachable
	// before a live non-voter takes its vote (a host that is only
	// restarting keeps it); Config.VoterReplaceAfter overrides it.
	defaultVoterReplaceAfter = 30 * time.Second
	// placementInterval is how often the leader reviews voter placement.
	placementInterval = 2 * time.Second
)

// clusterState is what the leader tracks about the other replicas.
type clusterState struct {
	mu          sync.Mutex
	unreachable map[string]time.Time // raft id → since when heartbeats fail
}

// runClusterDuties follows raft leadership: the host that becomes leader
// takes the pool master's duties (pool.master, liveness, orphaned tasks,
// voter placement).
func (s *Server) runClusterDuties(ctx context.Context) {
	events := make(chan store.ClusterEvent, 256)
	s.store.WatchCluster(ctx, func(ev store.ClusterEvent) {
		select {
		case events <- ev:
		default:
		}
	})
	tick := time.NewTicker(placementInterval)
	defer tick.Stop()
	wasLeader := false
	for {
		leader := s.store.IsLeader()
		if leader && !wasLeader {
			s.onLeadership(ctx)
		}
		wasLeader = leader
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			switch ev.Kind {
			case store.PeerUnreachable:
				s.peerReachable(ctx, ev.PeerID, false)
			case store.PeerReachable:
				s.peerReachable(ctx, ev.PeerID, true)
			}
		case <-tick.C:
			if leader {
				s.placeVoters(ctx)
				s.failTasksOfLongGone(ctx)
			}
		}
	}
}

// onLeadership makes this host the pool master in the database and cleans up
// after the previous one.
func (s *Server) onLeadership(ctx context.Context) {
	s.cluster.mu.Lock()
	s.cluster.unreachable = map[string]time.Time{}
	s.cluster.mu.Unlock()
	var ops []store.Op
	if o, ok := s.store.Get(datamodel.PoolClass, string(s.poolRef)); ok && o.(*datamodel.PoolRecord).Master != s.hostRef {
		ops = append(ops, mustSet(datamodel.PoolClass, string(s.poolRef), "master", s.hostRef))
		s.log.Info("this host is now the pool master", "previous", o.(*datamodel.PoolRecord).Master)
	}
	ops = append(ops, s.liveOps(s.hostRef, true)...)
	if err := s.applyAsLeader(ctx, ops...); err != nil {
		s.log.Warn("could not record the new pool master", "err", err)
	}
	for _, e := range s.store.List(datamodel.VMClass) {
		s.refreshAllowedOperations(ctx, e.Ref)
	}
	s.failOrphanedTasks(ctx)
}

// liveOps sets host_metrics.live of host, if it differs.
func (s *Server) liveOps(host datamodel.HostRef, live bool) []store.Op {
	o, ok := s.store.Get(datamodel.HostClass, string(host))
	if !ok {
		return nil
	}
	m := string(o.(*datamodel.HostRecord).Metrics)
	mo, ok := s.store.Get(datamodel.HostMetricsClass, m)
	if !ok || mo.(*datamodel.HostMetricsRecord).Live == live {
		return nil
	}
	return []store.Op{
		mustSet(datamodel.HostMetricsClass, m, "live", live),
		mustSet(datamodel.HostMetricsClass, m, "last_updated", time.Now().UTC()),
	}
}

// peerReachable records what the leader's heartbeats say about a replica.
func (s *Server) peerReachable(ctx context.Context, id string, ok bool) {
	s.cluster.mu.Lock()
	if s.cluster.unreachable == nil {
		s.cluster.unreachable = map[string]time.Time{}
	}
	_, was := s.cluster.unreachable[id]
	if ok {
		delete(s.cluster.unreachable, id)
	} else if !was {
		s.cluster.unreachable[id] = time.Now()
	}
	s.cluster.mu.Unlock()
	if !s.store.IsLeader() {
		return
	}
	if ref, found := s.store.RefByUUID(datamodel.HostClass, id); found {
		if ops := s.liveOps(datamodel.HostRef(ref), ok); len(ops) > 0 {
			if err := s.applyAsLeader(ctx, ops...); err != nil {
				s.log.Debug("host liveness not recorded", "host", id, "err", err)
			}
		}
		if !ok {
			s.failTasksOf(ctx, datamodel.HostRef(ref))
		}
	}
}

// placeVoters keeps up to maxVoters voters: it promotes live non-voters (a
// non-voter is live once it has caught up and written host_metrics.live) and
// gives the vote of a voter unreachable for voterReplaceAfter to a live
// non-voter.
func (s *Server) placeVoters(ctx context.Context) {
	ms, err := s.store.Members()
	if err != nil {
		return
	}
	s.cluster.mu.Lock()
	down := map[string]time.Duration{}
	for id, since := range s.cluster.unreachable {
		down[id] = time.Since(since)
	}
	s.cluster.mu.Unlock()
	var voters, candidates []store.Member
	for _, m := range ms {
		switch {
		case m.Voter:
			voters = append(voters, m)
		case !m.Staging && s.memberLive(m.ID) && down[m.ID] == 0:
			candidates = append(candidates, m)
		}
	}
	for _, c := range candidates {
		if len(voters) < maxVoters {
			if err := s.store.AddVoter(ctx, c.ID, c.Addr); err != nil {
				s.log.Warn("could not promote a replica to voter", "id", c.ID, "err", err)
				return
			}
			s.log.Info("promoted a replica to voter", "id", c.ID)
			voters = append(voters, c)
			continue
		}
		// replace a voter that has been unreachable for long
		for i, v := range voters {
			if d := down[v.ID]; d >= s.voterReplaceAfter() {
				if err := s.store.AddVoter(ctx, c.ID, c.Addr); err != nil {
					return
				}
				if err := s.store.DemoteVoter(ctx, v.ID); err != nil {
					s.log.Warn("could not demote an unreachable voter", "id", v.ID, "err", err)
					return
				}
				s.log.Warn("moved the vote of an unreachable host", "from", v.ID, "to", c.ID, "down_for", d.Round(time.Second))
				voters[i] = c
				break
			}
		}
	}
}

// memberLive reports host_metrics.live of the host with uuid id.
func (s *Server) memberLive(id string) bool {
	ref, ok := s.store.RefByUUID(datamodel.HostClass, id)
	if !ok {
		return false
	}
	o, _ := s.store.Get(datamodel.HostClass, ref)
	return s.hostLive(o.(*datamodel.HostRecord))
}

// failOrphanedTasks ends the pending tasks of operations that no host runs
// any more: the new master asks every host which tasks it runs; a host that
// does not answer has lost its tasks.
func (s *Server) failOrphanedTasks(ctx context.Context) {
	byHost := map[datamodel.HostRef]bool{}
	for _, e := range s.store.List(datamodel.TaskClass) {
		t := e.Obj.(*datamodel.TaskRecord)
		if isOperationTask(t) {
			byHost[t.ResidentOn] = true
		}
	}
	for h := range byHost {
		s.failTasksOf(ctx, h)
	}
}

// isOperationTask tells the tasks of Async calls (which a host runs) from
// the ones clients make with task.create.
func isOperationTask(t *datamodel.TaskRecord) bool {
	return (t.Status == datamodel.TaskStatusTypePending || t.Status == datamodel.TaskStatusTypeCancelling) &&
		strings.HasPrefix(t.NameLabel, "Async.")
}

// failTasksOf ends as failed (HOST_OFFLINE [host]) the operation tasks
// resident on host that host does not run.
func (s *Server) failTasksOf(ctx context.Context, host datamodel.HostRef) {
	var running []string
	if host == s.hostRef {
		running = s.tasks.refs()
	} else {
		o, ok := s.store.Get(datamodel.HostClass, string(host))
		if ok {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			rep, err := postInternal(cctx, s.auth.PoolSecret(), s.peerURL(o.(*datamodel.HostRecord).Address), pathRunningTasks, nil, nil)
			cancel()
			switch {
			case err == nil:
				_ = json.Unmarshal(rep.Data, &running)
			case !refused(err):
				// slow or cut off, not known to be dead: its tasks may
				// still finish; look again when it is reachable or gone
				return
			}
		}
	}
	s.failTasks(ctx, host, running)
}

// failTasks ends as failed (HOST_OFFLINE [host]) the operation tasks
// resident on host that are not in running.
func (s *Server) failTasks(ctx context.Context, host datamodel.HostRef, running []string) {
	c := datamodel.TaskClass
	for _, e := range s.store.List(c) {
		t := e.Obj.(*datamodel.TaskRecord)
		if t.ResidentOn != host || !isOperationTask(t) || slices.Contains(running, e.Ref) {
			continue
		}
		err := s.applyAsLeader(ctx, mustCheck(c, e.Ref, "status", t.Status),
			mustSet(c, e.Ref, "status", datamodel.TaskStatusTypeFailure),
			mustSet(c, e.Ref, "error_info", []string{datamodel.CodeHostOffline, string(host)}),
			mustSet(c, e.Ref, "finished", time.Now().UTC()),
			mustSet(c, e.Ref, "allowed_operations", []datamodel.TaskAllowedOperations{}))
		if err == nil {
			s.log.Warn("task ended: the host running it is gone", "task", e.Ref, "host", host)
		}
	}
}

func (s *Server) voterReplaceAfter() time.Duration {
	if s.cfg.VoterReplaceAfter > 0 {
		return s.cfg.VoterReplaceAfter
	}
	return defaultVoterReplaceAfter
}

// refused reports a connection refused: nothing listens there (the host's
// process is gone), as opposed to a host that is slow or cut off.
func refused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}

// failTasksOfLongGone ends the operation tasks of hosts unreachable for as
// long as it takes to move their vote: a host cut off (not known dead) keeps
// its tasks for a while, but none stays pending for ever.
func (s *Server) failTasksOfLongGone(ctx context.Context) {
	s.cluster.mu.Lock()
	var gone []string
	for id, since := range s.cluster.unreachable {
		if time.Since(since) >= s.voterReplaceAfter() {
			gone = append(gone, id)
		}
	}
	s.cluster.mu.Unlock()
	for _, id := range gone {
		if ref, ok := s.store.RefByUUID(datamodel.HostClass, id); ok {
			s.failTasks(ctx, datamodel.HostRef(ref), nil)
		}
	}
}
