package sim

import (
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/backends"
	"github.com/xapi-go/xapi-go/backends/backendtest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	backendtest.Run(t, func(t *testing.T) backends.Backend {
		s := New(Config{Seed: 1})
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestConformanceWithLatencyAndDelayedAgent(t *testing.T) {
	t.Parallel()
	backendtest.Run(t, func(t *testing.T) backends.Backend {
		lat := map[backends.Op]time.Duration{}
		for _, op := range backends.Ops {
			lat[op] = 200 * time.Microsecond
		}
		s := New(Config{Seed: 2, Latency: lat, AgentDelay: 2 * time.Millisecond, CPUs: 4, MemoryTotal: 8 * GiB})
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}
