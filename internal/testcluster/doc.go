// Package testcluster runs a pool of in-process hosts for tests: each host
// has its own store (on-disk log, raft over an in-memory transport), its own
// simulated hypervisor and API server behind an HTTP test server. Hosts form
// the pool with the real pool.join; tests kill and restart hosts, partition
// and heal the raft network, and talk to hosts over JSON-RPC.
package testcluster
