package store

import (
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// netAddr is a net.Addr for an advertised "host:port".
type netAddr struct{ s string }

func (a *netAddr) Network() string { return "tcp" }
func (a *netAddr) String() string  { return a.s }

const (
	tcpMaxPool = 3
	// tcpTimeout bounds raft RPC writes; snapshot installs to a slow follower
	// get a multiple of it from raft.
	tcpTimeout = 10 * time.Second
)

func newTCPTransport(bind string, adv *netAddr, log *slog.Logger) (*raft.NetworkTransport, error) {
	var a net.Addr
	if adv != nil {
		a = adv
	}
	return raft.NewTCPTransportWithLogger(bind, a, tcpMaxPool, tcpTimeout, newHCLog(log, "raft-net"))
}

// watchedTransport wraps the raft transport to read the leader's commit index
// off incoming AppendEntries requests. A follower learns from it how far it
// must apply before it is caught up (raft exposes only the follower's own,
// capped, commit index). Every index a leader declares committed is committed,
// so the maximum seen is a safe target.
type watchedTransport struct {
	raft.Transport
	out          chan raft.RPC
	leaderCommit atomic.Uint64
	stop         chan struct{}
	done         chan struct{}
}

func watchTransport(t raft.Transport) *watchedTransport {
	w := &watchedTransport{Transport: t, out: make(chan raft.RPC), stop: make(chan struct{}), done: make(chan struct{})}
	go w.run(t.Consumer())
	return w
}

// Consumer returns the RPCs of the wrapped transport, after inspection.
func (w *watchedTransport) Consumer() <-chan raft.RPC { return w.out }

func (w *watchedTransport) run(in <-chan raft.RPC) {
	defer close(w.done)
	for {
		select {
		case rpc := <-in:
			if ae, ok := rpc.Command.(*raft.AppendEntriesRequest); ok {
				for c := w.leaderCommit.Load(); ae.LeaderCommitIndex > c; c = w.leaderCommit.Load() {
					if w.leaderCommit.CompareAndSwap(c, ae.LeaderCommitIndex) {
						break
					}
				}
			}
			select {
			case w.out <- rpc:
			case <-w.stop:
				return
			}
		case <-w.stop:
			return
		}
	}
}

// close stops the forwarding goroutine (after raft has shut down); it does not
// close the wrapped transport.
func (w *watchedTransport) close() error {
	close(w.stop)
	<-w.done
	return nil
}

// raftTransport returns w as raft should see it: with pre-vote support if the
// wrapped transport has it.
func (w *watchedTransport) raftTransport() raft.Transport {
	if pv, ok := w.Transport.(raft.WithPreVote); ok {
		return &watchedPreVoteTransport{watchedTransport: w, pv: pv}
	}
	return w
}

type watchedPreVoteTransport struct {
	*watchedTransport
	pv raft.WithPreVote
}

// RequestPreVote forwards to the wrapped transport.
func (w *watchedPreVoteTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return w.pv.RequestPreVote(id, target, args, resp)
}
