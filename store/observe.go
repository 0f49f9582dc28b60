package store

import (
	"context"

	"github.com/hashicorp/raft"
)

// ClusterEventKind is the kind of a ClusterEvent.
type ClusterEventKind uint8

const (
	// LeaderChanged: a leader was elected (LeaderID) or none is known ("").
	LeaderChanged ClusterEventKind = iota + 1
	// PeerUnreachable: this leader failed to heartbeat PeerID.
	PeerUnreachable
	// PeerReachable: this leader reaches PeerID again.
	PeerReachable
	// LeaderReady: this replica leads and has applied everything committed
	// before its term (IsLeader is now true).
	LeaderReady
)

// ClusterEvent is a change in the cluster as this replica sees it.
type ClusterEvent struct {
	Kind     ClusterEventKind
	LeaderID string
	PeerID   string
}

// WatchCluster calls fn for every cluster event until ctx ends. fn runs on
// its own goroutine, one event at a time; events that arrive while it is busy
// are queued (a bounded queue; the oldest are dropped when it overflows, so fn
// should re-read the state it cares about rather than count events).
func (s *Store) WatchCluster(ctx context.Context, fn func(ClusterEvent)) {
	ch := make(chan raft.Observation, 256)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation:
			return true
		}
		return false
	})
	s.raft.RegisterObserver(obs)
	ready := s.onReady(ch)
	go func() {
		defer s.raft.DeregisterObserver(obs)
		defer ready()
		for {
			select {
			case <-ctx.Done():
				return
			case o := <-ch:
				switch d := o.Data.(type) {
				case raft.LeaderObservation:
					fn(ClusterEvent{Kind: LeaderChanged, LeaderID: string(d.LeaderID)})
				case raft.FailedHeartbeatObservation:
					fn(ClusterEvent{Kind: PeerUnreachable, PeerID: string(d.PeerID)})
				case raft.ResumedHeartbeatObservation:
					fn(ClusterEvent{Kind: PeerReachable, PeerID: string(d.PeerID)})
				case readyObservation:
					fn(ClusterEvent{Kind: LeaderReady, LeaderID: s.cfg.NodeID})
				}
			}
		}
	}()
}

// WaitReady waits until a leader is known and this replica has applied what
// the cluster had committed (bounded by StartupTimeout; a member that finds no
// leader in that time returns nil and serves possibly stale state). Open does
// this itself except for a new member that has no state yet.
func (s *Store) WaitReady(ctx context.Context) error { return s.waitReady(ctx) }

// Voter reports whether id is a voting member in the latest configuration.
func (s *Store) Voter(id string) bool {
	ms, err := s.Members()
	if err != nil {
		return false
	}
	for _, m := range ms {
		if m.ID == id {
			return m.Voter
		}
	}
	return false
}

// readyObservation is what notifyReady sends WatchCluster's channels.
type readyObservation struct{}

// onReady registers ch for LeaderReady; the returned func unregisters it.
func (s *Store) onReady(ch chan raft.Observation) func() {
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	if s.readyChs == nil {
		s.readyChs = map[chan raft.Observation]bool{}
	}
	s.readyChs[ch] = true
	return func() {
		s.readyMu.Lock()
		delete(s.readyChs, ch)
		s.readyMu.Unlock()
	}
}

func (s *Store) notifyReady() {
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	for ch := range s.readyChs {
		select {
		case ch <- raft.Observation{Data: readyObservation{}}:
		default:
		}
	}
}
