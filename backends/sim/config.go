package sim

import (
	"log/slog"
	"time"

	"github.com/xapi-go/xapi-go/backends"
)

// Sizes used by the defaults.
const (
	KiB int64 = 1 << 10
	MiB int64 = 1 << 20
	GiB int64 = 1 << 30
)

// Config configures a simulated host. Zero fields take the defaults listed
// on each field, so Config{} is a fast host suitable for tests: no latency
// and a guest agent that publishes as soon as a domain is built.
type Config struct {
	// Hostname defaults to "sim-host".
	Hostname string
	// CPUs is the number of physical CPUs (default 8). It is also the most
	// vCPUs one domain may have.
	CPUs int
	// CPUSpeedMHz defaults to 2400.
	CPUSpeedMHz int
	// MemoryTotal is the host's memory in bytes (default 64 GiB).
	MemoryTotal int64
	// HostReserved is memory, in bytes, never available to domains (the
	// hypervisor and control domain; default 1 GiB).
	HostReserved int64
	// OverheadBase and OverheadPerVCPU make up a domain's memory overhead
	// (defaults 4 MiB and 1 MiB), plus 1/256 of its static max for page
	// tables.
	OverheadBase    int64
	OverheadPerVCPU int64
	// Latency is the time each operation takes (default 0 for all).
	Latency map[backends.Op]time.Duration
	// AgentDelay is the time from a domain being built to its guest agent's
	// first publish. 0 publishes at once; a negative value disables the
	// agent for every domain.
	AgentDelay time.Duration
	// ConsoleLines is how many console lines a domain keeps (default 200).
	ConsoleLines int
	// Seed makes the simulated guests' behaviour reproducible.
	Seed uint64
	// Now is the clock (default time.Now). Samples and timestamps use it;
	// latencies and AgentDelay use real (or synctest) timers.
	Now func() time.Time
	// Logger defaults to a logger that discards.
	Logger *slog.Logger
	// EventBuffer is the per-subscriber event backlog (default
	// backends.DefaultEventBuffer).
	EventBuffer int
}

// DefaultConfig is a realistic host: 16 CPUs, 128 GiB, operations that take
// about as long as on a small Xen host, and an agent that reports 2 s after
// boot.
func DefaultConfig() Config {
	return Config{
		CPUs:        16,
		MemoryTotal: 128 * GiB,
		Latency: map[backends.Op]time.Duration{
			backends.OpStart:         800 * time.Millisecond,
			backends.OpCleanShutdown: 1500 * time.Millisecond,
			backends.OpHardShutdown:  300 * time.Millisecond,
			backends.OpCleanReboot:   2 * time.Second,
			backends.OpHardReboot:    1 * time.Second,
			backends.OpSuspend:       1200 * time.Millisecond,
			backends.OpResume:        900 * time.Millisecond,
			backends.OpPause:         20 * time.Millisecond,
			backends.OpUnpause:       20 * time.Millisecond,
			backends.OpDestroy:       300 * time.Millisecond,
		},
		AgentDelay: 2 * time.Second,
	}
}

func (c Config) withDefaults() Config {
	if c.Hostname == "" {
		c.Hostname = "sim-host"
	}
	if c.CPUs <= 0 {
		c.CPUs = 8
	}
	if c.CPUSpeedMHz <= 0 {
		c.CPUSpeedMHz = 2400
	}
	if c.MemoryTotal <= 0 {
		c.MemoryTotal = 64 * GiB
	}
	if c.HostReserved <= 0 {
		c.HostReserved = 1 * GiB
	}
	if c.OverheadBase <= 0 {
		c.OverheadBase = 4 * MiB
	}
	if c.OverheadPerVCPU <= 0 {
		c.OverheadPerVCPU = 1 * MiB
	}
	if c.ConsoleLines <= 0 {
		c.ConsoleLines = 200
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	lat := make(map[backends.Op]time.Duration, len(c.Latency))
	for k, v := range c.Latency {
		lat[k] = v
	}
	c.Latency = lat
	return c
}
