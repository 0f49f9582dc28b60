package backendtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/backends"
	"github.com/xapi-go/xapi-go/backends/guest"
)

// Hanger is implemented by backends that can make their next operation of
// a kind block until its context is done (the simulator does).
type Hanger interface {
	HangNext(op backends.Op)
}

// Options tunes the suite for a backend.
type Options struct {
	// Spec returns a bootable spec for the given uuid and name (default
	// DefaultSpec). Real backends override it to point at real disks.
	Spec func(t *testing.T, uuid, name string) backends.DomainSpec
	// Timeout bounds waits for events and guest data (default 10 s).
	Timeout time.Duration
}

// DefaultSpec is a small domain: 1 vCPU (2 max), 256 MiB (128–256 dynamic,
// 512 static max), two NICs and two disks.
func DefaultSpec(t *testing.T, uuid, name string) backends.DomainSpec {
	return backends.DomainSpec{
		UUID:             uuid,
		Name:             name,
		VCPUs:            1,
		VCPUsMax:         2,
		MemoryStaticMin:  64 << 20,
		MemoryDynamicMin: 128 << 20,
		MemoryDynamicMax: 256 << 20,
		MemoryStaticMax:  512 << 20,
		Boot:             backends.Boot{Mode: backends.BootBIOS, Order: "cd"},
		Platform:         map[string]string{"acpi": "1", "apic": "true"},
		Other:            map[string]string{"install-distro": "debianbookworm"},
		Disks: []backends.Disk{
			{Device: "0", Path: "/dev/null", Size: 8 << 30},
			{Device: "3", Path: "/dev/null", Size: 1 << 30, ReadOnly: true, CDROM: true},
		},
		NICs: []backends.NIC{
			{Device: 0, MAC: "02:16:3e:12:34:56", Bridge: "xenbr0"},
			{Device: 1, MAC: "02:16:3e:ab:cd:ef", Bridge: "xenbr1"},
		},
	}
}

var uuidSeq atomic.Uint64

// NewUUID returns a fresh, well-formed UUID unique within the process.
func NewUUID() string {
	n := uuidSeq.Add(1)
	return fmt.Sprintf("5eb0c0de-0000-4000-8000-%012x", n)
}

type suite struct {
	newBackend func(t *testing.T) backends.Backend
	opts       Options
}

// Run runs the conformance suite with default options.
func Run(t *testing.T, newBackend func(t *testing.T) backends.Backend) {
	RunWithOptions(t, newBackend, Options{})
}

// RunConformance is Run, under the name the architecture notes use.
func RunConformance(t *testing.T, newBackend func(t *testing.T) backends.Backend) {
	Run(t, newBackend)
}

// RunWithOptions runs the conformance suite.
func RunWithOptions(t *testing.T, newBackend func(t *testing.T) backends.Backend, opts Options) {
	if opts.Spec == nil {
		opts.Spec = DefaultSpec
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	s := &suite{newBackend: newBackend, opts: opts}
	tests := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"HostInfo", s.testHostInfo},
		{"Lifecycle", s.testLifecycle},
		{"StartPausedResumePaused", s.testPausedVariants},
		{"IllegalTransitions", s.testIllegalTransitions},
		{"NotFound", s.testNotFound},
		{"InvalidSpec", s.testInvalidSpec},
		{"NameConflict", s.testNameConflict},
		{"MemoryAccounting", s.testMemory},
		{"LiveChanges", s.testLiveChanges},
		{"Events", s.testEvents},
		{"Metrics", s.testMetrics},
		{"GuestAgent", s.testGuestAgent},
		{"CancelledContext", s.testCancelledContext},
		{"CancelMidOperation", s.testCancelMidOperation},
		{"Concurrent", s.testConcurrent},
		{"Close", s.testClose},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t)
		})
	}
}

func (s *suite) backend(t *testing.T) backends.Backend {
	t.Helper()
	b := s.newBackend(t)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func (s *suite) spec(t *testing.T, name string) backends.DomainSpec {
	return s.opts.Spec(t, NewUUID(), name)
}

func ctxFor(t *testing.T) context.Context {
	return t.Context()
}

// mustState fails unless uuid is in power state want.
func mustState(t *testing.T, b backends.Backend, uuid string, want backends.PowerState) backends.DomainState {
	t.Helper()
	st, err := b.State(ctxFor(t), uuid)
	if err != nil {
		t.Fatalf("State(%s): %v", uuid, err)
	}
	if st.PowerState != want {
		t.Fatalf("State(%s) = %v, want %v", uuid, st.PowerState, want)
	}
	if st.Active() && st.DomID <= 0 {
		t.Fatalf("State(%s): power state %v with domid %d", uuid, st.PowerState, st.DomID)
	}
	if !st.Active() && st.DomID != -1 {
		t.Fatalf("State(%s): inactive domain has domid %d, want -1", uuid, st.DomID)
	}
	return st
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func mustStart(t *testing.T, b backends.Backend, spec backends.DomainSpec, paused bool) int {
	t.Helper()
	domid, err := b.Start(ctxFor(t), spec, paused)
	if err != nil {
		t.Fatalf("Start(%s, paused=%v): %v", spec.UUID, paused, err)
	}
	if domid < 0 {
		t.Fatalf("Start(%s) domid = %d", spec.UUID, domid)
	}
	return domid
}

// do performs op on uuid with the given context.
func do(ctx context.Context, b backends.Backend, op backends.Op, spec backends.DomainSpec) error {
	uuid := spec.UUID
	switch op {
	case backends.OpStart:
		_, err := b.Start(ctx, spec, false)
		return err
	case backends.OpCleanShutdown:
		return b.Shutdown(ctx, uuid, true)
	case backends.OpHardShutdown:
		return b.Shutdown(ctx, uuid, false)
	case backends.OpCleanReboot:
		return b.Reboot(ctx, uuid, true)
	case backends.OpHardReboot:
		return b.Reboot(ctx, uuid, false)
	case backends.OpSuspend:
		return b.Suspend(ctx, uuid)
	case backends.OpResume:
		return b.Resume(ctx, uuid, false)
	case backends.OpPause:
		return b.Pause(ctx, uuid)
	case backends.OpUnpause:
		return b.Unpause(ctx, uuid)
	case backends.OpSetMemoryTarget:
		return b.SetMemoryTarget(ctx, uuid, spec.MemoryDynamicMin)
	case backends.OpSetVCPUs:
		return b.SetVCPUs(ctx, uuid, spec.MaxVCPUs())
	case backends.OpDestroy:
		return b.Destroy(ctx, uuid)
	}
	return fmt.Errorf("unknown op %q", op)
}

// Do performs op on spec's domain with default arguments (the memory
// target is spec.MemoryDynamicMin, the vCPU count spec.MaxVCPUs()). It is
// exported for property tests of individual backends.
func Do(ctx context.Context, b backends.Backend, op backends.Op, spec backends.DomainSpec) error {
	return do(ctx, b, op, spec)
}

// bring puts a fresh domain into state want and returns its spec.
func (s *suite) bring(t *testing.T, b backends.Backend, want backends.PowerState) backends.DomainSpec {
	t.Helper()
	spec := s.spec(t, "")
	ctx := ctxFor(t)
	mustStart(t, b, spec, want == backends.Paused)
	switch want {
	case backends.Halted:
		must(t, "hard shutdown", b.Shutdown(ctx, spec.UUID, false))
	case backends.Suspended:
		must(t, "suspend", b.Suspend(ctx, spec.UUID))
	}
	mustState(t, b, spec.UUID, want)
	return spec
}

func (s *suite) testHostInfo(t *testing.T) {
	b := s.backend(t)
	h, err := b.Host(ctxFor(t))
	must(t, "Host", err)
	if h.CPUs < 1 || h.MemoryTotal <= 0 || h.MemoryFree < 0 || h.MemoryFree > h.MemoryTotal || h.Hostname == "" {
		t.Fatalf("implausible host info %+v", h)
	}
	if got := b.MemoryOverhead(s.spec(t, "")); got < 0 {
		t.Fatalf("MemoryOverhead = %d", got)
	}
	l, err := b.List(ctxFor(t))
	must(t, "List", err)
	if len(l) != 0 {
		t.Fatalf("fresh backend lists %d domains", len(l))
	}
}

func (s *suite) testLifecycle(t *testing.T) {
	b := s.backend(t)
	ctx := ctxFor(t)
	h, err := b.Host(ctx)
	must(t, "Host", err)
	spec := s.spec(t, "lifecycle")

	before := time.Now()
	domid := mustStart(t, b, spec, false)
	st := mustState(t, b, spec.UUID, backends.Running)
	if st.DomID != domid || st.VCPUs != spec.VCPUs || st.MemoryTarget != spec.MemoryDynamicMax || st.StartTime.IsZero() || st.Name != spec.DomainName() {
		t.Fatalf("after start: %+v (domid %d), spec %+v", st, domid, spec)
	}
	if st.StartTime.Before(before.Add(-time.Hour)) {
		t.Fatalf("start time %v long before %v", st.StartTime, before)
	}

	steps := []struct {
		name string
		op   func() error
		want backends.PowerState
	}{
		{"pause", func() error { return b.Pause(ctx, spec.UUID) }, backends.Paused},
		{"unpause", func() error { return b.Unpause(ctx, spec.UUID) }, backends.Running},
		{"clean reboot", func() error { return b.Reboot(ctx, spec.UUID, true) }, backends.Running},
		{"hard reboot", func() error { return b.Reboot(ctx, spec.UUID, false) }, backends.Running},
		{"pause again", func() error { return b.Pause(ctx, spec.UUID) }, backends.Paused},
		{"hard reboot paused", func() error { return b.Reboot(ctx, spec.UUID, false) }, backends.Running},
		{"clean shutdown", func() error { return b.Shutdown(ctx, spec.UUID, true) }, backends.Halted},
		{"restart", func() error { _, err := b.Start(ctx, spec, false); return err }, backends.Running},
		{"hard shutdown", func() error { return b.Shutdown(ctx, spec.UUID, false) }, backends.Halted},
		{"start again", func() error { _, err := b.Start(ctx, spec, false); return err }, backends.Running},
	}
	if h.Features.Suspend {
		steps = append(steps,
			struct {
				name string
				op   func() error
				want backends.PowerState
			}{"suspend", func() error { return b.Suspend(ctx, spec.UUID) }, backends.Suspended},
			struct {
				name string
				op   func() error
				want backends.PowerState
			}{"resume", func() error { return b.Resume(ctx, spec.UUID, false) }, backends.Running},
			struct {
				name string
				op   func() error
				want backends.PowerState
			}{"suspend again", func() error { return b.Suspend(ctx, spec.UUID) }, backends.Suspended},
			struct {
				name string
				op   func() error
				want backends.PowerState
			}{"hard shutdown suspended", func() error { return b.Shutdown(ctx, spec.UUID, false) }, backends.Halted},
		)
	}
	for _, step := range steps {
		if err := step.op(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		mustState(t, b, spec.UUID, step.want)
	}
	must(t, "destroy", b.Destroy(ctx, spec.UUID))
	if _, err := b.State(ctx, spec.UUID); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("State after Destroy: %v, want ErrNotFound", err)
	}
	if h2, err := b.Host(ctx); err == nil && h.Features.MemoryAccounting && h2.MemoryFree != h.MemoryFree {
		t.Fatalf("free memory %d after everything stopped, want %d", h2.MemoryFree, h.MemoryFree)
	}
}

func (s *suite) testPausedVariants(t *testing.T) {
	b := s.backend(t)
	ctx := ctxFor(t)
	h, err := b.Host(ctx)
	must(t, "Host", err)
	spec := s.spec(t, "")
	mustStart(t, b, spec, true)
	mustState(t, b, spec.UUID, backends.Paused)
	must(t, "unpause", b.Unpause(ctx, spec.UUID))
	mustState(t, b, spec.UUID, backends.Running)
	if !h.Features.Suspend {
		return
	}
	must(t, "suspend", b.Suspend(ctx, spec.UUID))
	must(t, "resume paused", b.Resume(ctx, spec.UUID, true))
	mustState(t, b, spec.UUID, backends.Paused)
	must(t, "hard shutdown paused", b.Shutdown(ctx, spec.UUID, false))
	mustState(t, b, spec.UUID, backends.Halted)
	// Destroy is legal from every state.
	for _, ps := range []backends.PowerState{backends.Running, backends.Paused, backends.Suspended, backends.Halted} {
		sp := s.bring(t, b, ps)
		must(t, "destroy from "+ps.String(), b.Destroy(ctx, sp.UUID))
		if _, err := b.State(ctx, sp.UUID); !errors.Is(err, backends.ErrNotFound) {
			t.Fatalf("after destroy from %v: %v", ps, err)
		}
	}
}

func (s *suite) testIllegalTransitions(t *testing.T) {
	b := s.backend(t)
	h, err := b.Host(ctxFor(t))
	must(t, "Host", err)
	for _, from := range backends.PowerStates {
		if from == backends.Suspended && !h.Features.Suspend {
			continue
		}
		for _, op := range backends.Ops {
			if backends.OpAllowed(op, from) || !h.Features.Supports(op) {
				continue
			}
			t.Run(fmt.Sprintf("%s_from_%s", op, from), func(t *testing.T) {
				spec := s.bring(t, b, from)
				before := mustState(t, b, spec.UUID, from)
				err := do(ctxFor(t), b, op, spec)
				var bad *backends.BadPowerStateError
				if !errors.As(err, &bad) || !errors.Is(err, backends.ErrBadPowerState) {
					t.Fatalf("%s from %v: err = %v, want *BadPowerStateError", op, from, err)
				}
				if bad.Actual != from || !slices.Equal(bad.Expected, backends.RequiredStates(op)) || bad.UUID != spec.UUID {
					t.Fatalf("%s from %v: got %+v, want expected %v actual %v", op, from, bad, backends.RequiredStates(op), from)
				}
				after := mustState(t, b, spec.UUID, from)
				if after.DomID != before.DomID {
					t.Fatalf("domid changed %d -> %d by a refused %s", before.DomID, after.DomID, op)
				}
			})
		}
	}
}

func (s *suite) testNotFound(t *testing.T) {
	b := s.backend(t)
	ctx := ctxFor(t)
	spec := s.spec(t, "")
	for _, op := range backends.Ops {
		if op == backends.OpStart {
			continue
		}
		if err := do(ctx, b, op, spec); !errors.Is(err, backends.ErrNotFound) {
			t.Errorf("%s on unknown domain: %v, want ErrNotFound", op, err)
		}
	}
	if _, err := b.State(ctx, spec.UUID); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("State: %v", err)
	}
	if _, err := b.GuestData(ctx, spec.UUID); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("GuestData: %v", err)
	}
	if cr, ok := b.(backends.ConsoleReader); ok {
		if _, err := cr.Console(ctx, spec.UUID); !errors.Is(err, backends.ErrNotFound) {
			t.Errorf("Console: %v", err)
		}
	}
}

func (s *suite) testInvalidSpec(t *testing.T) {
	b := s.backend(t)
	tests := []struct {
		name   string
		mutate func(*backends.DomainSpec)
	}{
		{"no uuid", func(sp *backends.DomainSpec) { sp.UUID = "" }},
		{"no vcpus", func(sp *backends.DomainSpec) { sp.VCPUs = 0 }},
		{"vcpus above max", func(sp *backends.DomainSpec) { sp.VCPUsMax = 1; sp.VCPUs = 2 }},
		{"dynamic max above static max", func(sp *backends.DomainSpec) { sp.MemoryDynamicMax = sp.MemoryStaticMax + 1 }},
		{"dynamic min above dynamic max", func(sp *backends.DomainSpec) { sp.MemoryDynamicMin = sp.MemoryDynamicMax + 1 }},
		{"duplicate nic", func(sp *backends.DomainSpec) { sp.NICs = append(sp.NICs, sp.NICs[0]) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := s.spec(t, "")
			tt.mutate(&spec)
			if _, err := b.Start(ctxFor(t), spec, false); !errors.Is(err, backends.ErrInvalid) {
				t.Fatalf("Start: %v, want ErrInvalid", err)
			}
			if spec.UUID != "" {
				if _, err := b.State(ctxFor(t), spec.UUID); !errors.Is(err, backends.ErrNotFound) {
					t.Fatalf("State after refused start: %v", err)
				}
			}
		})
	}
	spec := s.spec(t, "")
	mustStart(t, b, spec, false)
	if err := b.SetVCPUs(ctxFor(t), spec.UUID, spec.MaxVCPUs()+1); !errors.Is(err, backends.ErrInvalid) && !errors.Is(err, backends.ErrNotSupported) {
		t.Fatalf("SetVCPUs above max: %v", err)
	}
	if err := b.SetMemoryTarget(ctxFor(t), spec.UUID, spec.MemoryStaticMax+1); !errors.Is(err, backends.ErrInvalid) && !errors.Is(err, backends.ErrNotSupported) {
		t.Fatalf("SetMemoryTarget above static max: %v", err)
	}
}

func (s *suite) testNameConflict(t *testing.T) {
	b := s.backend(t)
	ctx := ctxFor(t)
	a := s.spec(t, "twin")
	c := s.spec(t, "twin")
	mustStart(t, b, a, false)
	if _, err := b.Start(ctx, c, false); !errors.Is(err, backends.ErrAlreadyExists) {
		t.Fatalf("second domain named twin: %v, want ErrAlreadyExists", err)
	}
	must(t, "shutdown", b.Shutdown(ctx, a.UUID, false))
	mustStart(t, b, c, false) // a halted domain does not hold its name
	// Restarting the same uuid is not a conflict with itself.
	must(t, "reboot", b.Reboot(ctx, c.UUID, false))
}

func (s *suite) testMemory(t *testing.T) {
	b := s.backend(t)
	ctx := ctxFor(t)
	h, err := b.Host(ctx)
	must(t, "Host", err)
	if !h.Features.MemoryAccounting {
		t.Skip("backend does not account memory")
	}
	// A domain that cannot fit.
	big := s.spec(t, "")
	big.MemoryDynamicMax = h.MemoryFree + 1
	big.MemoryStaticMax = big.MemoryDynamicMax
	_, err = b.Start(ctx, big, false)
	var nem *backends.NotEnoughMemoryError
	if !errors.As(err, &nem) || !errors.Is(err, backends.ErrNotEnoughMemory) {
		t.Fatalf("oversized start: %v, want *NotEnoughMemoryError", err)
	}
	if nem.Needed != big.MemoryDynamicMax+b.MemoryOverhead(big) || nem.Available != h.MemoryFree {
		t.Fatalf("got needed %d available %d, want %d and %d", nem.Needed, nem.Available, big.MemoryDynamicMax+b.MemoryOverhead(big), h.MemoryFree)
	}
	if _, err := b.State(ctx, big.UUID); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("refused start left a domain behind: %v", err)
	}

	// Accounting: a running domain uses dynamic max + overhead.
	spec := s.spec(t, "")
	mustStart(t, b, spec, false)
	h2, err := b.Host(ctx)
	must(t, "Host", err)
	if used := h.MemoryFree - h2.MemoryFree; used != spec.MemoryDynamicMax+b.MemoryOverhead(spec) {
		t.Fatalf("start used %d bytes, want %d", used, spec.MemoryDynamicMax+b.MemoryOverhead(spec))
	}
	// Fill the host up, leaving less than another domain needs.
	third := s.spec(t, "")
	needThird := third.MemoryDynamicMax + b.MemoryOverhead(third)
	filler := s.spec(t, "")
	filler.MemoryStaticMax = h2.MemoryFree
	x := h2.MemoryFree - b.MemoryOverhead(filler) - needThird/2
	filler.MemoryStaticMin, filler.MemoryDynamicMin, filler.MemoryDynamicMax, filler.MemoryStaticMax = 0, x, x, x
	mustStart(t, b, filler, false)
	if h3, _ := b.Host(ctx); h3.MemoryFree >= needThird {
		t.Fatalf("filler left %d bytes free, want less than %d", h3.MemoryFree, needThird)
	}
	if _, err := b.Start(ctx, third, false); !errors.Is(err, backends.ErrNotEnoughMemory) {
		t.Fatalf("start on a full host: %v", err)
	}
	// Suspend frees memory; resume needs it back.
	if h.Features.Suspend {
		must(t, "suspend", b.Suspend(ctx, spec.UUID))
		mustStart(t, b, third, false)
		if err := b.Resume(ctx, spec.UUID, false); !errors.Is(err, backends.ErrNotEnoughMemory) {
			t.Fatalf("resume on a full host: %v", err)
		}
		mustState(t, b, spec.UUID, backends.Suspended)
		must(t, "shutdown third", b.Shutdown(ctx, third.UUID, false))
		must(t, "resume", b.Resume(ctx, spec.UUID, false))
	}
	must(t, "destroy filler", b.Destroy(ctx, filler.UUID))
	must(t, "destroy spec", b.Destroy(ctx, spec.UUID))
	h3, err := b.Host(ctx)
	must(t, "Host", err)
	if h3.MemoryFree != h.MemoryFree {
		t.Fatalf("free memory %d at the end, want %d", h3.MemoryFree, h.MemoryFree)
	}
}

func (s *suite) testLiveChanges(t *testing.T) {
	b := s.backend(t)
	ctx := ctxFor(t)
	h, err := b.Host(ctx)
	must(t, "Host", err)
	spec := s.spec(t, "")
	mustStart(t, b, spec, false)
	if h.Features.LiveVCPUs {
		must(t, "SetVCPUs", b.SetVCPUs(ctx, spec.UUID, 2))
		if st := mustState(t, b, spec.UUID, backends.Running); st.VCPUs != 2 {
			t.Fatalf("VCPUs = %d after SetVCPUs(2)", st.VCPUs)
		}
	} else if err := b.SetVCPUs(ctx, spec.UUID, 2); !errors.Is(err, backends.ErrNotSupported) {
		t.Fatalf("SetVCPUs without LiveVCPUs: %v, want ErrNotSupported", err)
	}
	if h.Features.LiveMemory {
		before, _ := b.Host(ctx)
		must(t, "SetMemoryTarget", b.SetMemoryTarget(ctx, spec.UUID, spec.MemoryDynamicMin))
		if st := mustState(t, b, spec.UUID, backends.Running); st.MemoryTarget != spec.MemoryDynamicMin {
			t.Fatalf("MemoryTarget = %d, want %d", st.MemoryTarget, spec.MemoryDynamicMin)
		}
		if h.Features.MemoryAccounting {
			after, _ := b.Host(ctx)
			if got, want := after.MemoryFree-before.MemoryFree, spec.MemoryDynamicMax-spec.MemoryDynamicMin; got != want {
				t.Fatalf("ballooning down freed %d bytes, want %d", got, want)
			}
		}
		must(t, "pause", b.Pause(ctx, spec.UUID))
		must(t, "SetMemoryTarget paused", b.SetMemoryTarget(ctx, spec.UUID, spec.MemoryDynamicMax))
	}
}

// lifecycleKinds are the event kinds the Events test tracks.
func isLifecycle(k backends.EventKind) bool {
	return k != backends.EventGuestAgent && k != backends.EventChanged
}

func (s *suite) testEvents(t *testing.T) {
	b := s.backend(t)
	ctx := ctxFor(t)
	h, err := b.Host(ctx)
	must(t, "Host", err)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := b.Watch(wctx)
	spec := s.spec(t, "")
	type step struct {
		op    func() error
		kind  backends.EventKind
		state backends.PowerState
	}
	steps := []step{
		{func() error { _, err := b.Start(ctx, spec, false); return err }, backends.EventStarted, backends.Running},
		{func() error { return b.Pause(ctx, spec.UUID) }, backends.EventPaused, backends.Paused},
		{func() error { return b.Unpause(ctx, spec.UUID) }, backends.EventUnpaused, backends.Running},
		{func() error { return b.Reboot(ctx, spec.UUID, true) }, backends.EventRebooted, backends.Running},
		{func() error { return b.Reboot(ctx, spec.UUID, false) }, backends.EventRebooted, backends.Running},
	}
	if h.Features.Suspend {
		steps = append(steps,
			step{func() error { return b.Suspend(ctx, spec.UUID) }, backends.EventSuspended, backends.Suspended},
			step{func() error { return b.Resume(ctx, spec.UUID, false) }, backends.EventResumed, backends.Running})
	}
	steps = append(steps,
		step{func() error { return b.Shutdown(ctx, spec.UUID, true) }, backends.EventShutdown, backends.Halted},
		step{func() error { _, err := b.Start(ctx, spec, true); return err }, backends.EventStarted, backends.Paused},
		step{func() error { return b.Shutdown(ctx, spec.UUID, false) }, backends.EventShutdown, backends.Halted},
		step{func() error { return b.Destroy(ctx, spec.UUID) }, backends.EventDestroyed, backends.Halted},
	)
	timer := time.NewTimer(s.opts.Timeout)
	defer timer.Stop()
	for i, st := range steps {
		if err := st.op(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		for {
			var ev backends.Event
			select {
			case e, ok := <-ch:
				if !ok {
					t.Fatalf("step %d: watch channel closed", i)
				}
				ev = e
			case <-timer.C:
				t.Fatalf("step %d: no %v event within %v", i, st.kind, s.opts.Timeout)
			}
			if ev.UUID != spec.UUID || !isLifecycle(ev.Kind) {
				continue
			}
			if ev.Kind != st.kind || ev.State != st.state {
				t.Fatalf("step %d: event %v/%v, want %v/%v", i, ev.Kind, ev.State, st.kind, st.state)
			}
			if ev.State.Active() != (ev.DomID > 0) || ev.Time.IsZero() {
				t.Fatalf("step %d: event %+v has inconsistent domid or time", i, ev)
			}
			break
		}
	}
	cancel()
	for range ch { // the channel closes once ctx is done
	}
}

func (s *suite) testMetrics(t *testing.T) {
	b := s.backend(t)
	ctx := ctxFor(t)
	run := s.spec(t, "")
	run.VCPUs = 2
	halted := s.spec(t, "")
	mustStart(t, b, run, false)
	mustStart(t, b, halted, false)
	must(t, "shutdown", b.Shutdown(ctx, halted.UUID, false))

	find := func(sm backends.Sample, uuid string) *backends.DomainSample {
		for i := range sm.Domains {
			if sm.Domains[i].UUID == uuid {
				return &sm.Domains[i]
			}
		}
		return nil
	}
	first, err := b.Sample(ctx)
	must(t, "Sample", err)
	time.Sleep(20 * time.Millisecond)
	second, err := b.Sample(ctx)
	must(t, "Sample", err)
	h, _ := b.Host(ctx)
	for _, sm := range []backends.Sample{first, second} {
		if len(sm.Host.PCPUSeconds) != h.CPUs || sm.Host.MemoryTotal != h.MemoryTotal || sm.Time.IsZero() {
			t.Fatalf("host sample %+v for host %+v", sm.Host, h)
		}
		if find(sm, halted.UUID) != nil {
			t.Fatal("halted domain sampled")
		}
		d := find(sm, run.UUID)
		if d == nil {
			t.Fatal("running domain not sampled")
		}
		if len(d.VCPUSeconds) != 2 || len(d.VIFs) != len(run.NICs) || len(d.VBDs) != len(run.Disks) || d.MemoryActual <= 0 || d.DomID <= 0 {
			t.Fatalf("domain sample %+v", d)
		}
		for i, n := range run.NICs {
			if d.VIFs[i].Device != n.Device {
				t.Fatalf("vif %d device %d, want %d", i, d.VIFs[i].Device, n.Device)
			}
		}
		for i, dk := range run.Disks {
			if d.VBDs[i].Device != dk.Device {
				t.Fatalf("vbd %d device %q, want %q", i, d.VBDs[i].Device, dk.Device)
			}
		}
	}
	a, c := find(first, run.UUID), find(second, run.UUID)
	for i := range a.VCPUSeconds {
		if c.VCPUSeconds[i] < a.VCPUSeconds[i] {
			t.Fatalf("vcpu %d time went backwards", i)
		}
	}
	for i := range a.VIFs {
		if c.VIFs[i].RxBytes < a.VIFs[i].RxBytes || c.VIFs[i].TxBytes < a.VIFs[i].TxBytes {
			t.Fatalf("vif %d counters went backwards", i)
		}
	}
	for i := range first.Host.PCPUSeconds {
		if second.Host.PCPUSeconds[i] < first.Host.PCPUSeconds[i] {
			t.Fatalf("pcpu %d time went backwards", i)
		}
	}
}

func (s *suite) testGuestAgent(t *testing.T) {
	b := s.backend(t)
	ctx := ctxFor(t)
	h, err := b.Host(ctx)
	must(t, "Host", err)
	if !h.Features.GuestAgent {
		t.Skip("backend has no guest agent")
	}
	spec := s.spec(t, "")
	mustStart(t, b, spec, false)
	deadline := time.Now().Add(s.opts.Timeout)
	var tree map[string]string
	for {
		tree, err = b.GuestData(ctx, spec.UUID)
		must(t, "GuestData", err)
		if _, ok := tree[guest.KeyUpdated]; ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no guest agent data within %v (tree %v)", s.opts.Timeout, tree)
		}
		time.Sleep(5 * time.Millisecond)
	}
	m := guest.Parse(tree, time.Now())
	if !m.Live || !m.PVDriversDetected || m.OSVersion["name"] == "" || m.PVDriversVersion["major"] == "" {
		t.Fatalf("guest metrics %+v from tree %v", m, tree)
	}
	for _, n := range spec.NICs {
		if m.Networks[fmt.Sprint(n.Device)+"/ip"] == "" {
			t.Fatalf("no IP for vif %d in %v", n.Device, m.Networks)
		}
	}
	must(t, "shutdown", b.Shutdown(ctx, spec.UUID, false))
	tree, err = b.GuestData(ctx, spec.UUID)
	must(t, "GuestData", err)
	if len(tree) != 0 {
		t.Fatalf("halted domain has guest data %v", tree)
	}
}

func (s *suite) testCancelledContext(t *testing.T) {
	b := s.backend(t)
	h, err := b.Host(ctxFor(t))
	must(t, "Host", err)
	cctx, cancel := context.WithCancel(ctxFor(t))
	cancel()
	for _, from := range backends.PowerStates {
		if from == backends.Suspended && !h.Features.Suspend {
			continue
		}
		spec := s.bring(t, b, from)
		before := mustState(t, b, spec.UUID, from)
		for _, op := range backends.AllowedOps(from) {
			if !h.Features.Supports(op) {
				continue
			}
			err := do(cctx, b, op, spec)
			if !errors.Is(err, backends.ErrCancelled) || !errors.Is(err, context.Canceled) {
				t.Errorf("%s from %v with a cancelled context: %v, want ErrCancelled", op, from, err)
			}
			after := mustState(t, b, spec.UUID, from)
			if after.DomID != before.DomID || after.VCPUs != before.VCPUs || after.MemoryTarget != before.MemoryTarget {
				t.Errorf("%s with a cancelled context changed %+v into %+v", op, before, after)
			}
		}
	}
	if _, err := b.Start(cctx, s.spec(t, ""), false); !errors.Is(err, backends.ErrCancelled) {
		t.Errorf("Start of a new domain with a cancelled context: %v", err)
	}
	l, err := b.List(ctxFor(t))
	must(t, "List", err)
	if len(l) != 4 && h.Features.Suspend || len(l) != 3 && !h.Features.Suspend {
		t.Errorf("List has %d domains after cancelled operations", len(l))
	}
}

func (s *suite) testCancelMidOperation(t *testing.T) {
	b := s.backend(t)
	hb, ok := b.(Hanger)
	if !ok {
		t.Skip("backend cannot hang operations")
	}
	ctx := ctxFor(t)
	h0, err := b.Host(ctx)
	must(t, "Host", err)

	// A hung start of a new domain leaves nothing behind.
	spec := s.spec(t, "")
	hb.HangNext(backends.OpStart)
	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	_, err = b.Start(tctx, spec, false)
	cancel()
	if !errors.Is(err, backends.ErrCancelled) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hung start: %v, want ErrCancelled and DeadlineExceeded", err)
	}
	if _, err := b.State(ctx, spec.UUID); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("cancelled start left %v", err)
	}
	if h, _ := b.Host(ctx); h.MemoryFree != h0.MemoryFree {
		t.Fatalf("cancelled start leaked memory: free %d, want %d", h.MemoryFree, h0.MemoryFree)
	}

	// A hung shutdown leaves the domain running; other calls still work.
	mustStart(t, b, spec, false)
	hb.HangNext(backends.OpCleanShutdown)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Shutdown(cctx, spec.UUID, true) }()
	time.Sleep(10 * time.Millisecond)
	if _, err := b.List(ctx); err != nil {
		t.Fatalf("List during a hung op: %v", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, backends.ErrCancelled) {
		t.Fatalf("hung shutdown: %v", err)
	}
	mustState(t, b, spec.UUID, backends.Running)
	must(t, "shutdown after cancel", b.Shutdown(ctx, spec.UUID, true))
}

func (s *suite) testConcurrent(t *testing.T) {
	b := s.backend(t)
	ctx := ctxFor(t)
	h0, err := b.Host(ctx)
	must(t, "Host", err)
	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			spec := s.spec(t, "")
			for range 5 {
				if _, err := b.Start(ctx, spec, false); err != nil {
					errs <- err
					return
				}
				if _, err := b.Sample(ctx); err != nil {
					errs <- err
					return
				}
				if err := b.Shutdown(ctx, spec.UUID, false); err != nil {
					errs <- err
					return
				}
			}
			if err := b.Destroy(ctx, spec.UUID); err != nil {
				errs <- err
			}
		})
	}
	// Racing operations on one domain: each one either succeeds or is
	// refused with a power-state error.
	shared := s.spec(t, "")
	mustStart(t, b, shared, false)
	for _, op := range []backends.Op{backends.OpPause, backends.OpUnpause, backends.OpHardReboot, backends.OpPause, backends.OpUnpause} {
		wg.Go(func() {
			if err := do(ctx, b, op, shared); err != nil && !errors.Is(err, backends.ErrBadPowerState) {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	must(t, "destroy shared", b.Destroy(ctx, shared.UUID))
	if h, _ := b.Host(ctx); h0.Features.MemoryAccounting && h.MemoryFree != h0.MemoryFree {
		t.Fatalf("free memory %d after concurrent run, want %d", h.MemoryFree, h0.MemoryFree)
	}
	if l, _ := b.List(ctx); len(l) != 0 {
		t.Fatalf("%d domains left", len(l))
	}
}

func (s *suite) testClose(t *testing.T) {
	b := s.newBackend(t)
	ch := b.Watch(ctxFor(t))
	must(t, "Close", b.Close())
	must(t, "second Close", b.Close())
	select {
	case _, ok := <-ch:
		for ok {
			_, ok = <-ch
		}
	case <-time.After(s.opts.Timeout):
		t.Fatal("Watch channel not closed by Close")
	}
	if _, err := b.Start(ctxFor(t), s.spec(t, ""), false); !errors.Is(err, backends.ErrClosed) {
		t.Fatalf("Start after Close: %v, want ErrClosed", err)
	}
}
