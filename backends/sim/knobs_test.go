package sim

import (
	"context"
	"errors"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/xapi-go/xapi-go/backends"
	"github.com/xapi-go/xapi-go/backends/backendtest"
	"github.com/xapi-go/xapi-go/backends/guest"
)

func newSim(t *testing.T, cfg Config) *Sim {
	t.Helper()
	s := New(cfg)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func spec(t *testing.T, name string) backends.DomainSpec {
	return backendtest.DefaultSpec(t, backendtest.NewUUID(), name)
}

// nextEvent returns the next event for uuid that is not a guest-agent event.
func nextEvent(t *testing.T, ch <-chan backends.Event, uuid string) backends.Event {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev := <-ch:
			if ev.UUID == uuid && ev.Kind != backends.EventGuestAgent {
				return ev
			}
		case <-timeout:
			t.Fatal("no event")
		}
	}
}

func TestGuestActions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		act        func(s *Sim, uuid string) error
		kind       backends.EventKind
		reason     string
		state      backends.PowerState
		console    string
		newDomID   bool
		memoryFree bool
	}{
		{"crash", (*Sim).Crash, backends.EventCrashed, "crash", backends.Halted, "Kernel panic", false, true},
		{"guest shutdown", (*Sim).GuestShutdown, backends.EventShutdown, "guest", backends.Halted, "Power down", false, true},
		{"guest reboot", (*Sim).GuestReboot, backends.EventRebooted, "guest", backends.Running, "Restarting", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := newSim(t, Config{})
			ch := s.Watch(ctx)
			sp := spec(t, "")
			domid, err := s.Start(ctx, sp, false)
			if err != nil {
				t.Fatal(err)
			}
			nextEvent(t, ch, sp.UUID)
			used := s.MemoryUsed()
			if err := tt.act(s, sp.UUID); err != nil {
				t.Fatal(err)
			}
			ev := nextEvent(t, ch, sp.UUID)
			if ev.Kind != tt.kind || ev.Reason != tt.reason || ev.State != tt.state {
				t.Fatalf("event %+v", ev)
			}
			st, _ := s.State(ctx, sp.UUID)
			if st.PowerState != tt.state || (st.DomID != domid) != (tt.newDomID || !tt.state.Active()) {
				t.Fatalf("state %+v (old domid %d)", st, domid)
			}
			if got := s.MemoryUsed(); (got == 0) != tt.memoryFree || (!tt.memoryFree && got != used) {
				t.Fatalf("memory used %d (was %d)", got, used)
			}
			lines, _ := s.Console(ctx, sp.UUID)
			if !strings.Contains(strings.Join(lines, "\n"), tt.console) {
				t.Fatalf("console %q lacks %q", lines, tt.console)
			}
			// Not running any more (or paused): the knob is refused.
			if tt.state == backends.Halted {
				if err := tt.act(s, sp.UUID); !errors.Is(err, backends.ErrBadPowerState) {
					t.Fatalf("second %s: %v", tt.name, err)
				}
			}
			if err := tt.act(s, "nope"); !errors.Is(err, backends.ErrNotFound) {
				t.Fatalf("unknown domain: %v", err)
			}
		})
	}
}

func TestFailNext(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newSim(t, Config{})
	boom := errors.New("boom")
	s.FailNext(backends.OpStart, boom)
	sp := spec(t, "")
	if _, err := s.Start(ctx, sp, false); !errors.Is(err, boom) {
		t.Fatalf("Start: %v, want boom", err)
	}
	if _, err := s.State(ctx, sp.UUID); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("failed start left %v", err)
	}
	if s.MemoryUsed() != 0 {
		t.Fatal("failed start leaked memory")
	}
	if _, err := s.Start(ctx, sp, false); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	s.FailNext(backends.OpSuspend, boom)
	if err := s.Suspend(ctx, sp.UUID); !errors.Is(err, boom) {
		t.Fatalf("Suspend: %v", err)
	}
	if st, _ := s.State(ctx, sp.UUID); st.PowerState != backends.Running {
		t.Fatalf("failed suspend changed state to %v", st.PowerState)
	}
}

func TestHangHonoursContextAndCrashWins(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s := New(Config{})
		defer s.Close()
		sp := spec(t, "")
		if _, err := s.Start(ctx, sp, false); err != nil {
			t.Fatal(err)
		}
		s.SetLatency(backends.OpCleanShutdown, time.Minute)
		done := make(chan error, 1)
		go func() { done <- s.Shutdown(ctx, sp.UUID, true) }()
		synctest.Wait()
		// The guest crashes while the clean shutdown is in flight.
		if err := s.Crash(sp.UUID); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		err := <-done
		var bad *backends.BadPowerStateError
		if !errors.As(err, &bad) || bad.Actual != backends.Halted {
			t.Fatalf("shutdown racing a crash: %v", err)
		}
		// Latency is honoured, and a deadline cuts it short.
		if _, err := s.Start(ctx, sp, false); err != nil {
			t.Fatal(err)
		}
		tctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		start := time.Now()
		if err := s.Shutdown(tctx, sp.UUID, true); !errors.Is(err, backends.ErrCancelled) || time.Since(start) != time.Second {
			t.Fatalf("Shutdown = %v after %v", err, time.Since(start))
		}
		start = time.Now()
		if err := s.Shutdown(ctx, sp.UUID, true); err != nil || time.Since(start) != time.Minute {
			t.Fatalf("Shutdown = %v after %v", err, time.Since(start))
		}
	})
}

func TestOperationsOnOneDomainSerialize(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s := New(Config{Latency: map[backends.Op]time.Duration{backends.OpPause: time.Second}})
		defer s.Close()
		sp := spec(t, "")
		if _, err := s.Start(ctx, sp, false); err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, 2)
		go func() { errs <- s.Pause(ctx, sp.UUID) }()
		synctest.Wait()
		go func() { errs <- s.Pause(ctx, sp.UUID) }()
		first, second := <-errs, <-errs
		if first != nil || !errors.Is(second, backends.ErrBadPowerState) {
			t.Fatalf("pause, pause = %v, %v", first, second)
		}
		// While an op holds the domain, queries still answer.
		go func() { errs <- s.Unpause(ctx, sp.UUID) }()
		if _, err := s.List(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	})
}

func TestAgentPublishesAfterDelay(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s := New(Config{AgentDelay: 2 * time.Second})
		defer s.Close()
		ch := s.Watch(ctx)
		sp := spec(t, "")
		if _, err := s.Start(ctx, sp, true); err != nil { // paused: the agent cannot run
			t.Fatal(err)
		}
		<-ch // started
		time.Sleep(3 * time.Second)
		if tree, _ := s.GuestData(ctx, sp.UUID); len(tree) != 0 {
			t.Fatalf("paused guest published %v", tree)
		}
		if err := s.Unpause(ctx, sp.UUID); err != nil {
			t.Fatal(err)
		}
		if ev := <-ch; ev.Kind != backends.EventUnpaused {
			t.Fatalf("event %v", ev.Kind)
		}
		if ev := <-ch; ev.Kind != backends.EventGuestAgent {
			t.Fatalf("event %v, want guest agent at unpause", ev.Kind)
		}
		// A reboot clears the tree; it comes back AgentDelay later.
		if err := s.Reboot(ctx, sp.UUID, false); err != nil {
			t.Fatal(err)
		}
		if tree, _ := s.GuestData(ctx, sp.UUID); len(tree) != 0 {
			t.Fatal("tree survived a reboot")
		}
		time.Sleep(1999 * time.Millisecond)
		if tree, _ := s.GuestData(ctx, sp.UUID); len(tree) != 0 {
			t.Fatal("agent published early")
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if tree, _ := s.GuestData(ctx, sp.UUID); len(tree) == 0 {
			t.Fatal("agent did not publish after AgentDelay")
		}
		// Shut down before the timer fires: nothing is published later.
		if err := s.Reboot(ctx, sp.UUID, false); err != nil {
			t.Fatal(err)
		}
		if err := s.Shutdown(ctx, sp.UUID, false); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		if tree, _ := s.GuestData(ctx, sp.UUID); len(tree) != 0 {
			t.Fatal("halted domain got agent data")
		}
	})
}

func TestAgentTree(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tests := []struct {
		name       string
		mutate     func(*backends.DomainSpec)
		wantName   string
		wantDistro string
		windows    bool
		noAgent    bool
	}{
		{"debian default", func(*backends.DomainSpec) {}, "Debian GNU/Linux 12 (bookworm)", "debian", false, false},
		{"ubuntu", func(sp *backends.DomainSpec) { sp.Other["install-distro"] = "ubuntujammy" }, "Ubuntu 22.04.5 LTS", "ubuntu", false, false},
		{"rhel", func(sp *backends.DomainSpec) { sp.Other["install-distro"] = "rhel9" }, "Rocky Linux 9.4 (Blue Onyx)", "rocky", false, false},
		{"windows by viridian", func(sp *backends.DomainSpec) {
			delete(sp.Other, "install-distro")
			sp.Platform["viridian"] = "true"
		}, `Microsoft Windows Server 2022 Standard|C:\Windows|\Device\Harddisk0\Partition2`, "", true, false},
		{"no agent", func(sp *backends.DomainSpec) { sp.Other["sim-agent"] = "none" }, "", "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSim(t, Config{})
			sp := spec(t, "My VM_1")
			tt.mutate(&sp)
			if _, err := s.Start(ctx, sp, false); err != nil {
				t.Fatal(err)
			}
			tree, err := s.GuestData(ctx, sp.UUID)
			if err != nil {
				t.Fatal(err)
			}
			if tt.noAgent {
				if len(tree) != 0 {
					t.Fatalf("agentless guest has %v", tree)
				}
				return
			}
			m := guest.Parse(tree, time.Now())
			if m.OSVersion["name"] != tt.wantName || m.OSVersion["distro"] != tt.wantDistro || !m.Live || !m.PVDriversDetected {
				t.Fatalf("metrics %+v", m)
			}
			want := map[string]string{
				"0/ip": "10.18.52.86", "0/ipv4/0": "10.18.52.86",
				"1/ip": "10.171.205.239", "1/ipv4/0": "10.171.205.239",
			}
			if tt.windows {
				want["0/ipv6/0"] = "fe80::16:3eff:fe12:3456"
				want["1/ipv6/0"] = "fe80::16:3eff:feab:cdef"
				if m.PVDriversVersion["xenbus"] == "" || m.NetbiosName["host_name"] != "MY-VM-1" || m.CanUseHotplugVIF != guest.Yes {
					t.Fatalf("windows metrics %+v", m)
				}
			} else {
				want["0/ipv6/0"] = "fd00::16:3eff:fe12:3456"
				want["0/ipv6/1"] = "fe80::16:3eff:fe12:3456"
				want["1/ipv6/0"] = "fd00::16:3eff:feab:cdef"
				want["1/ipv6/1"] = "fe80::16:3eff:feab:cdef"
				if m.OSVersion["uname"] == "" || m.Other["feature-balloon"] != "1" {
					t.Fatalf("linux metrics %+v", m)
				}
			}
			if !maps.Equal(m.Networks, want) {
				t.Fatalf("networks %v, want %v", m.Networks, want)
			}
			if m.MemoryTotal <= 0 || m.MemoryFree <= 0 || m.MemoryFree > m.MemoryTotal || m.MemoryTotal > sp.MemoryDynamicMax {
				t.Fatalf("memory free %d total %d", m.MemoryFree, m.MemoryTotal)
			}
		})
	}
}

func TestAddrsFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mac            string
		v4, ula, local string
	}{
		{"02:16:3e:12:34:56", "10.18.52.86", "fd00::16:3eff:fe12:3456", "fe80::16:3eff:fe12:3456"},
		{"aa:bb:cc:00:00:00", "10.0.0.1", "fd00::a8bb:ccff:fe00:0", "fe80::a8bb:ccff:fe00:0"},
		{"00:00:00:ff:ff:ff", "10.255.255.254", "fd00::200:ff:feff:ffff", "fe80::200:ff:feff:ffff"},
	}
	for _, tt := range tests {
		v4, ula, ll := addrsFor("u", backends.NIC{MAC: tt.mac})
		if v4 != tt.v4 || ula != tt.ula || ll != tt.local {
			t.Errorf("%s: %s %s %s", tt.mac, v4, ula, ll)
		}
	}
	a, _, _ := addrsFor("u", backends.NIC{MAC: "bogus", Device: 1})
	b, _, _ := addrsFor("u", backends.NIC{MAC: "bogus", Device: 1})
	c, _, _ := addrsFor("u", backends.NIC{MAC: "bogus", Device: 2})
	if a != b || a == c || !strings.HasPrefix(a, "10.") {
		t.Errorf("hashed addresses %s %s %s", a, b, c)
	}
}

// fakeClock is a manual clock for deterministic samples.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestDeterministic(t *testing.T) {
	t.Parallel()
	run := func(seed uint64) (samples []backends.Sample, tree map[string]string, domids []int) {
		clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		s := newSim(t, Config{Seed: seed, Now: clk.now})
		ctx := t.Context()
		a := backendtest.DefaultSpec(t, "00000000-0000-4000-8000-000000000001", "a")
		b := backendtest.DefaultSpec(t, "00000000-0000-4000-8000-000000000002", "b")
		b.VCPUs = 2
		for _, sp := range []backends.DomainSpec{a, b} {
			id, err := s.Start(ctx, sp, false)
			if err != nil {
				t.Fatal(err)
			}
			domids = append(domids, id)
		}
		for range 5 {
			clk.t = clk.t.Add(time.Second)
			sm, err := s.Sample(ctx)
			if err != nil {
				t.Fatal(err)
			}
			samples = append(samples, sm)
		}
		tree, _ = s.GuestData(ctx, a.UUID)
		return samples, tree, domids
	}
	s1, t1, d1 := run(7)
	s2, t2, d2 := run(7)
	s3, _, _ := run(8)
	if !slices.Equal(d1, []int{1, 2}) || !slices.Equal(d1, d2) {
		t.Fatalf("domids %v %v", d1, d2)
	}
	if !maps.Equal(t1, t2) {
		t.Fatal("agent trees differ for the same seed")
	}
	same := func(a, b []backends.Sample) bool {
		for i := range a {
			if !slices.Equal(a[i].Host.PCPUSeconds, b[i].Host.PCPUSeconds) {
				return false
			}
			for j := range a[i].Domains {
				x, y := a[i].Domains[j], b[i].Domains[j]
				if !slices.Equal(x.VCPUSeconds, y.VCPUSeconds) || !slices.Equal(x.VIFs, y.VIFs) || !slices.Equal(x.VBDs, y.VBDs) || x.MemoryInternalFree != y.MemoryInternalFree {
					return false
				}
			}
		}
		return true
	}
	if !same(s1, s2) {
		t.Fatal("samples differ for the same seed")
	}
	if same(s1, s3) {
		t.Fatal("samples identical for different seeds")
	}
	// Plausibility: load between 0 and 1 per vCPU, counters moving.
	last := s1[len(s1)-1]
	for _, d := range last.Domains {
		for _, c := range d.VCPUSeconds {
			if c <= 0 || c > 5 {
				t.Fatalf("vcpu seconds %v after 5 s", d.VCPUSeconds)
			}
		}
		if d.VIFs[0].RxBytes == 0 || d.VBDs[0].WriteBytes == 0 || d.MemoryInternalFree <= 0 {
			t.Fatalf("counters did not move: %+v", d)
		}
	}
}

func TestPausedDomainAccruesNoCPU(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Unix(0, 0)}
	s := newSim(t, Config{Now: clk.now})
	ctx := t.Context()
	sp := spec(t, "")
	if _, err := s.Start(ctx, sp, true); err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(time.Minute)
	sm, _ := s.Sample(ctx)
	if len(sm.Domains) != 1 || sm.Domains[0].VCPUSeconds[0] != 0 || sm.Domains[0].MemoryInternalFree != -1 {
		t.Fatalf("paused sample %+v", sm.Domains)
	}
	for _, c := range sm.Host.PCPUSeconds {
		if c < 0.02*60-1e-9 || c > 0.02*60+1e-9 {
			t.Fatalf("idle host pcpu seconds %v", sm.Host.PCPUSeconds)
		}
	}
}

func TestTooManyVCPUs(t *testing.T) {
	t.Parallel()
	s := newSim(t, Config{CPUs: 2})
	sp := spec(t, "")
	sp.VCPUsMax = 3
	if _, err := s.Start(t.Context(), sp, false); !errors.Is(err, backends.ErrInvalid) {
		t.Fatalf("Start: %v", err)
	}
}

func TestSetGuestData(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newSim(t, Config{AgentDelay: -1})
	sp := spec(t, "")
	if err := s.SetGuestData(sp.UUID, nil); !errors.Is(err, backends.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := s.Start(ctx, sp, false); err != nil {
		t.Fatal(err)
	}
	if h, _ := s.Host(ctx); h.Features.GuestAgent {
		t.Fatal("agent feature on with AgentDelay < 0")
	}
	if tree, _ := s.GuestData(ctx, sp.UUID); len(tree) != 0 {
		t.Fatal("agent published although disabled")
	}
	in := map[string]string{"data/updated": "1", "attr/vif/0/ipv4/0": "192.0.2.1"}
	if err := s.SetGuestData(sp.UUID, in); err != nil {
		t.Fatal(err)
	}
	in["data/os_name"] = "mutated"
	tree, _ := s.GuestData(ctx, sp.UUID)
	if len(tree) != 2 || tree["attr/vif/0/ipv4/0"] != "192.0.2.1" {
		t.Fatalf("tree %v", tree)
	}
	if err := s.Shutdown(ctx, sp.UUID, false); err != nil {
		t.Fatal(err)
	}
	if err := s.SetGuestData(sp.UUID, in); !errors.Is(err, backends.ErrBadPowerState) {
		t.Fatal(err)
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	// Not parallel: it counts goroutines.
	before := runtime.NumGoroutine()
	for range 10 {
		s := New(Config{AgentDelay: time.Hour})
		ctx, cancel := context.WithCancel(context.Background())
		_ = s.Watch(ctx)
		_ = s.Watch(context.Background())
		sp := spec(t, "")
		if _, err := s.Start(ctx, sp, false); err != nil {
			t.Fatal(err)
		}
		s.HangNext(backends.OpHardShutdown)
		done := make(chan error, 1)
		go func() { done <- s.Shutdown(context.Background(), sp.UUID, false) }()
		time.Sleep(time.Millisecond)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, backends.ErrClosed) {
			t.Fatalf("hung op after Close: %v", err)
		}
		cancel()
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after Close, %d before\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestEventOrderWithImmediateAgent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newSim(t, Config{})
	ch := s.Watch(ctx)
	sp := spec(t, "")
	if _, err := s.Start(ctx, sp, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Reboot(ctx, sp.UUID, true); err != nil {
		t.Fatal(err)
	}
	want := []backends.EventKind{backends.EventStarted, backends.EventGuestAgent, backends.EventRebooted, backends.EventGuestAgent}
	for i, k := range want {
		if ev := <-ch; ev.Kind != k {
			t.Fatalf("event %d = %v, want %v", i, ev.Kind, k)
		}
	}
}

// TestProgressReported: an operation of 100 ms or more reports its progress
// in fifths through backends.WithProgress, at the right times; a shorter one
// reports none.
func TestProgressReported(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := New(Config{})
		defer s.Close()
		sp := spec(t, "")
		type report struct {
			p  float64
			at time.Duration
		}
		var got []report
		start := time.Now()
		ctx := backends.WithProgress(t.Context(), func(p float64) { got = append(got, report{p, time.Since(start)}) })
		s.SetLatency(backends.OpStart, time.Second)
		if _, err := s.Start(ctx, sp, false); err != nil {
			t.Fatal(err)
		}
		want := []report{{0.2, 200 * time.Millisecond}, {0.4, 400 * time.Millisecond}, {0.6, 600 * time.Millisecond}, {0.8, 800 * time.Millisecond}}
		if !slices.Equal(got, want) {
			t.Fatalf("progress %v, want %v", got, want)
		}
		got = nil
		s.SetLatency(backends.OpHardShutdown, 50*time.Millisecond)
		if err := s.Shutdown(ctx, sp.UUID, false); err != nil {
			t.Fatal(err)
		}
		if len(got) != 0 {
			t.Fatalf("a 50 ms operation reported %v", got)
		}
	})
}
