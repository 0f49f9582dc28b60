// Package benchload drives closed-loop write benchmarks and reports their
// latency percentiles, so that the store, the pool and etcd are measured by
// the same code.
package benchload
