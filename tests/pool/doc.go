// Package pool runs pools of real xapid processes on this machine (host
// N serves on 127.0.0.N, all on one port, as a pool's hosts do) and checks
// what a pool promises when its master dies: kill -9 of the raft leader,
// writes through the pool carrying on, every acknowledged write on every
// host, a linearizable history (porcupine), and how long failover takes.
//
// Environment: XAPID_BIN uses that binary instead of building ./cmd/xapid;
// XAPI_POOL_SOAK=1 runs the long versions (5 hosts, 30 kills; XAPI_POOL_KILLS
// and XAPI_POOL_HOSTS override the counts); XAPID_LOG=1 keeps the hosts'
// logs (their directory is printed) instead of showing only their tails on
// failure.
package pool
