package store

import (
	"log/slog"
	"net"
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
