package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// WaitApplied waits until this replica has applied the entry at index (for
// read-your-writes on a replica other than the one that applied the write).
func (s *Store) WaitApplied(ctx context.Context, index uint64) error {
	return s.fsm.waitApplied(ctx, index)
}

func (s *Store) membershipTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Millisecond)
	}
	return s.cfg.ApplyTimeout
}

func (s *Store) membershipErr(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader):
		return s.notLeader()
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	}
	return fmt.Errorf("store: %s: %w", what, err)
}

// AddVoter adds (or promotes) a voting member; leader only.
func (s *Store) AddVoter(ctx context.Context, id, addr string) error {
	f := s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, s.membershipTimeout(ctx))
	return s.membershipErr("add voter "+id, f.Error())
}

// AddNonvoter adds a member that receives every entry but does not vote;
// leader only.
func (s *Store) AddNonvoter(ctx context.Context, id, addr string) error {
	f := s.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, s.membershipTimeout(ctx))
	return s.membershipErr("add non-voter "+id, f.Error())
}

// RemoveServer removes a member; leader only.
func (s *Store) RemoveServer(ctx context.Context, id string) error {
	f := s.raft.RemoveServer(raft.ServerID(id), 0, s.membershipTimeout(ctx))
	return s.membershipErr("remove server "+id, f.Error())
}

// TransferLeadership hands leadership to the member id, or to the most
// up-to-date voter when id is empty; leader only.
func (s *Store) TransferLeadership(ctx context.Context, id, addr string) error {
	var f raft.Future
	if id == "" {
		f = s.raft.LeadershipTransfer()
	} else {
		f = s.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr))
	}
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return s.membershipErr("leadership transfer", err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Member is one server of the raft configuration.
type Member struct {
	ID      string
	Addr    string
	Voter   bool
	Leader  bool
	Staging bool
}

// Members lists the servers of the current raft configuration.
func (s *Store) Members() ([]Member, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, s.membershipErr("get configuration", err)
	}
	_, lid := s.raft.LeaderWithID()
	var out []Member
	for _, srv := range f.Configuration().Servers {
		out = append(out, Member{
			ID: string(srv.ID), Addr: string(srv.Address),
			Voter: srv.Suffrage == raft.Voter, Staging: srv.Suffrage == raft.Staging,
			Leader: srv.ID == lid,
		})
	}
	return out, nil
}

// DemoteVoter turns a voting member into a non-voter; leader only.
func (s *Store) DemoteVoter(ctx context.Context, id string) error {
	f := s.raft.DemoteVoter(raft.ServerID(id), 0, s.membershipTimeout(ctx))
	return s.membershipErr("demote voter "+id, f.Error())
}
