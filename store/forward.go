package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
)

// Forwarder carries an encoded write batch from a replica that does not lead
// to the leader (leaderID, leaderAddr as raft knows them) and returns the
// raft index the leader applied it at, and the batch's *datamodel.Error if it
// did not fit the state. It returns an error wrapping ErrRetry when Apply
// should send the batch again once a leader is known: the leader could not
// be reached or no longer leads, or the connection broke before an answer.
// Batches carry an id that replicas remember, so one sent twice takes
// effect once.
type Forwarder func(ctx context.Context, leaderID, leaderAddr string, batch []byte) (uint64, error)

// errTransferring: the leader hands leadership over and takes no writes.
var errTransferring = errors.New("store: leadership transfer in progress")

// ErrRetry marks a forwarding failure after which the batch was surely not
// applied.
var ErrRetry = errors.New("store: batch not applied; retry with the current leader")

// SetForwarder sets Config.Forward after Open (the forwarder usually needs
// the API server, which needs the store).
func (s *Store) SetForwarder(f Forwarder) {
	s.fwdMu.Lock()
	s.cfg.Forward = f
	s.fwdMu.Unlock()
}

func (s *Store) forwarder() Forwarder {
	s.fwdMu.Lock()
	defer s.fwdMu.Unlock()
	return s.cfg.Forward
}

// ApplyEncoded applies a batch in the form a Forwarder carries; it is what the
// leader runs for a forwarded batch. It never forwards again.
func (s *Store) ApplyEncoded(ctx context.Context, batch []byte) (uint64, error) {
	if _, err := decodeBatch(batch); err != nil {
		return 0, internalError("forwarded batch: %v", err)
	}
	return s.applyLocal(ctx, batch)
}

// applyData applies an encoded batch here if this replica leads, or through
// the leader. While there is no leader (an election after a failure) it
// waits, polling every few milliseconds (a new leader is used within 5 ms
// of its election), until the apply timeout.
func (s *Store) applyData(ctx context.Context, data []byte) (uint64, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.ApplyTimeout)
		defer cancel()
	}
	backoff := 2 * time.Millisecond
	for {
		var idx uint64
		var err error
		addr, id := s.raft.LeaderWithID()
		switch {
		case s.raft.State() == raft.Leader:
			idx, err = s.applyLocal(ctx, data)
			// the batch has an id: after a lost leadership it may be
			// sent again, and takes effect once
			if !errors.Is(err, ErrNotLeader) && !errors.Is(err, errTransferring) && !errors.Is(err, ErrLeadershipLost) {
				return idx, err
			}
		case id != "" && string(id) != s.cfg.NodeID:
			idx, err = s.forwarder()(ctx, string(id), string(addr), data)
			if !errors.Is(err, ErrRetry) {
				if idx > 0 {
					if werr := s.fsm.waitApplied(ctx, idx); werr != nil {
						return idx, werr
					}
				}
				return idx, err
			}
			s.log.Debug("forwarding a write failed; retrying", "leader", id, "err", err)
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return 0, errors.Join(err, ctx.Err())
			}
			return 0, s.notLeader()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Millisecond)
	}
}

// Wipe deletes the replicated state kept under dataDir (the raft log, stable
// store and snapshots) so that a store opened there next starts empty, as a
// host does after it joined or left a pool. The store must be closed.
func Wipe(dataDir string) error {
	for _, d := range []string{"raft", "snapshots"} {
		if err := os.RemoveAll(filepath.Join(dataDir, d)); err != nil {
			return err
		}
	}
	return nil
}

// ApplyHere applies a batch only if this replica leads, never through
// another host: for the leader's own bookkeeping, which must not land late
// after this replica has lost the leadership.
func (s *Store) ApplyHere(ctx context.Context, ops ...Op) (uint64, error) {
	if len(ops) == 0 {
		return s.AppliedIndex(), nil
	}
	data, err := encodeBatch(ops)
	if err != nil {
		return 0, err
	}
	return s.applyLocal(ctx, data)
}
