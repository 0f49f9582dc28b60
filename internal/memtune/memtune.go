package memtune

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Policy sets the soft memory limit from the live heap:
// max(Floor, live×Factor + Slack).
type Policy struct {
	Floor  uint64  // lowest limit, bytes
	Factor float64 // multiple of the live heap, ≥ 1.25
	Slack  uint64  // added bytes for stacks, runtime metadata and bursts
}

// Default fits the API server: 1.5× the live heap plus 16 MiB, at least 128 MiB.
var Default = Policy{Floor: 128 << 20, Factor: 1.5, Slack: 16 << 20}

// Limit is the soft memory limit for a live heap of live bytes.
func (p Policy) Limit(live uint64) int64 {
	f := max(p.Factor, 1.25)
	l := float64(live)*f + float64(p.Slack)
	if l < float64(p.Floor) {
		l = float64(p.Floor)
	}
	if l >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(l)
}

var started sync.Once

// Start applies p after every garbage collection for the life of the process
// (no timer: it runs only when the collector does). It does nothing when the
// environment sets GOMEMLIMIT, and only the first call has an effect.
func Start(p Policy) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	started.Do(func() {
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		var arm func()
		arm = func() {
			// A sentinel that only the next collection frees; its cleanup
			// runs after that collection and arms the next one.
			s := new([16]byte)
			runtime.AddCleanup(s, func(struct{}) {
				metrics.Read(sample)
				if sample[0].Value.Kind() == metrics.KindUint64 {
					debug.SetMemoryLimit(p.Limit(sample[0].Value.Uint64()))
				}
				arm()
			}, struct{}{})
		}
		debug.SetMemoryLimit(p.Limit(0))
		arm()
	})
}
