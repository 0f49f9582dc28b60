// Package memtune keeps a daemon's resident memory close to what its live
// data needs. Go's default collector lets the heap grow to twice the live
// heap and hands freed pages back to the OS slowly, so a burst of requests
// leaves the process holding far more than it uses. After every collection
// Start sets the runtime's soft memory limit to a margin above the live heap,
// which makes the collector run a little earlier and the scavenger return
// memory promptly. The limit always stays well above the live heap, so the
// collector never thrashes; an explicit GOMEMLIMIT in the environment wins.
package memtune
