package memtune

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPolicyLimit(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Policy
		live uint64
		want int64
	}{
		{"floor for a small heap", Default, 10 << 20, 128 << 20},
		{"margin above a large heap", Default, 200 << 20, 200<<20*3/2 + int64(Default.Slack)},
		{"factor below 1.25 is raised", Policy{Factor: 1}, 100 << 20, 125 << 20},
		{"huge heap saturates", Policy{Factor: 2}, math.MaxUint64 / 2, math.MaxInt64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.Limit(tc.live); got != tc.want {
				t.Fatalf("Limit(%d) = %d, want %d", tc.live, got, tc.want)
			}
		})
	}
}

// TestStartFollowsLiveHeap: after collections the limit tracks the live heap.
func TestStartFollowsLiveHeap(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	p := Policy{Floor: 1 << 20, Factor: 1.5, Slack: 0}
	Start(p)
	keep := make([][]byte, 0, 64)
	for range 64 {
		keep = append(keep, make([]byte, 1<<20)) // 64 MiB live
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // cleanups run on their own goroutine
		if lim := debug.SetMemoryLimit(-1); lim >= 64<<20*3/2 && lim < 1<<40 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("memory limit %d did not follow a 64 MiB live heap", debug.SetMemoryLimit(-1))
		}
	}
	runtime.KeepAlive(keep)
}
