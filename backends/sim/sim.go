package sim

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/xapi-go/xapi-go/backends"
)

// Sim is a simulated hypervisor. Create it with New; it is safe for
// concurrent use.
type Sim struct {
	cfg Config
	bus *backends.Broadcaster
	// done is closed by Close; it ends latency waits.
	done chan struct{}

	// mu guards everything below and every domain's fields except lock.
	// Lock order: a domain's op lock, then mu. Never wait for an op lock
	// while holding mu.
	mu        sync.Mutex
	closed    bool
	doms      map[string]*domain
	nextDomID int
	used      int64 // memory counted against the host, bytes
	failNext  map[backends.Op][]error
	hangNext  map[backends.Op]int
	host      hostStats
}

// domain is one known (or being created) domain.
type domain struct {
	uuid string
	// lock serializes operations on the domain (capacity 1).
	lock chan struct{}

	// The fields below are guarded by Sim.mu.
	held     bool // lock is held
	waiters  int  // goroutines waiting for lock
	defined  bool // a Start has committed; invisible before
	removed  bool // destroyed, or an abandoned creation
	starting string
	spec     backends.DomainSpec
	state    backends.PowerState
	domid    int
	start    time.Time
	vcpus    int
	target   int64
	mem      int64  // memory counted in Sim.used
	gen      uint64 // bumped on every build and teardown
	agent    map[string]string
	agentDue bool // agent publish pending until unpause
	timer    *time.Timer
	stats    *domStats
	console  []string
}

// New returns a simulated host configured by cfg (see Config for defaults).
func New(cfg Config) *Sim {
	cfg = cfg.withDefaults()
	s := &Sim{
		cfg:       cfg,
		bus:       backends.NewBroadcaster(cfg.EventBuffer),
		done:      make(chan struct{}),
		doms:      map[string]*domain{},
		nextDomID: 1,
		failNext:  map[backends.Op][]error{},
		hangNext:  map[backends.Op]int{},
	}
	s.host.init(cfg.CPUs, cfg.Now())
	return s
}

var _ backends.Backend = (*Sim)(nil)
var _ backends.ConsoleReader = (*Sim)(nil)

// Host implements backends.Backend.
func (s *Sim) Host(ctx context.Context) (backends.HostInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return backends.HostInfo{}, backends.ErrClosed
	}
	return backends.HostInfo{
		Hostname:     s.cfg.Hostname,
		Hypervisor:   "sim",
		Version:      "4.17.0-sim",
		CPUs:         s.cfg.CPUs,
		CPUModel:     "Simulated CPU @ 2.40GHz",
		CPUVendor:    "GenuineIntel",
		CPUSpeedMHz:  s.cfg.CPUSpeedMHz,
		MemoryTotal:  s.cfg.MemoryTotal,
		MemoryFree:   s.freeLocked(),
		Capabilities: []string{"xen-3.0-x86_64", "hvm-3.0-x86_32", "hvm-3.0-x86_32p", "hvm-3.0-x86_64"},
		Features: backends.Features{
			Suspend: true, LiveVCPUs: true, LiveMemory: true, GuestAgent: s.cfg.AgentDelay >= 0,
			MemoryAccounting: true,
		},
	}, nil
}

// MemoryOverhead implements backends.Backend.
func (s *Sim) MemoryOverhead(spec backends.DomainSpec) int64 {
	return s.cfg.OverheadBase + int64(spec.MaxVCPUs())*s.cfg.OverheadPerVCPU + spec.MemoryStaticMax/256
}

func (s *Sim) freeLocked() int64 { return s.cfg.MemoryTotal - s.cfg.HostReserved - s.used }

// Close implements backends.Backend.
func (s *Sim) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	for _, d := range s.doms {
		d.stopTimer()
	}
	s.mu.Unlock()
	s.bus.Close()
	return nil
}

// Watch implements backends.Backend.
func (s *Sim) Watch(ctx context.Context) <-chan backends.Event { return s.bus.Watch(ctx) }

// ---------------------------------------------------------------------------
// Fault knobs.

// FailNext makes the next operation of kind op fail with err (before it
// changes anything). Calls queue up.
func (s *Sim) FailNext(op backends.Op, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext[op] = append(s.failNext[op], err)
}

// HangNext makes the next operation of kind op block until its context is
// done (it then fails with backends.ErrCancelled, changing nothing).
func (s *Sim) HangNext(op backends.Op) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hangNext[op]++
}

// SetLatency sets the time operations of kind op take.
func (s *Sim) SetLatency(op backends.Op, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.Latency[op] = d
}

// Crash makes an active domain crash: it becomes Halted and an
// EventCrashed is published.
func (s *Sim) Crash(uuid string) error {
	return s.guestAction(uuid, func(d *domain, now time.Time) {
		s.console(d, "Kernel panic - not syncing: Fatal exception")
		s.teardown(d, backends.Halted)
		s.publish(d, backends.EventCrashed, "crash", now)
	})
}

// GuestShutdown makes a running guest power itself off (Halted,
// EventShutdown with reason "guest").
func (s *Sim) GuestShutdown(uuid string) error {
	return s.guestAction(uuid, func(d *domain, now time.Time) {
		s.console(d, "reboot: Power down")
		s.teardown(d, backends.Halted)
		s.publish(d, backends.EventShutdown, "guest", now)
	})
}

// GuestReboot makes a running guest reboot itself (new domid,
// EventRebooted with reason "guest").
func (s *Sim) GuestReboot(uuid string) error {
	return s.guestAction(uuid, func(d *domain, now time.Time) {
		s.console(d, "reboot: Restarting system")
		s.rebuild(d, now)
		s.publish(d, backends.EventRebooted, "guest", now)
	})
}

func (s *Sim) guestAction(uuid string, f func(d *domain, now time.Time)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return backends.ErrClosed
	}
	d := s.doms[uuid]
	if d == nil || !d.defined {
		return backends.NotFound(uuid)
	}
	if d.state != backends.Running {
		return &backends.BadPowerStateError{UUID: uuid, Op: "guest_action",
			Expected: []backends.PowerState{backends.Running}, Actual: d.state}
	}
	f(d, s.cfg.Now())
	return nil
}

// SetGuestData replaces an active domain's agent tree (nil clears it) and
// publishes an EventGuestAgent.
func (s *Sim) SetGuestData(uuid string, tree map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.doms[uuid]
	if d == nil || !d.defined {
		return backends.NotFound(uuid)
	}
	if !d.state.Active() {
		return &backends.BadPowerStateError{UUID: uuid, Op: "set_guest_data",
			Expected: []backends.PowerState{backends.Paused, backends.Running}, Actual: d.state}
	}
	d.agent = maps.Clone(tree)
	d.agentDue = false
	s.publish(d, backends.EventGuestAgent, "", s.cfg.Now())
	return nil
}

// ---------------------------------------------------------------------------
// Locking and the operation skeleton.

// acquire returns the domain with its op lock held. With create set, an
// unknown uuid gets a new, not yet defined record.
func (s *Sim) acquire(ctx context.Context, uuid string, create bool) (*domain, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, backends.ErrClosed
		}
		d := s.doms[uuid]
		if d == nil || (!d.defined && !create) {
			if !create {
				s.mu.Unlock()
				return nil, backends.NotFound(uuid)
			}
			d = &domain{uuid: uuid, lock: make(chan struct{}, 1), domid: -1}
			s.doms[uuid] = d
		}
		d.waiters++
		s.mu.Unlock()

		var err error
		select {
		case d.lock <- struct{}{}:
		case <-ctx.Done():
			err = backends.Cancelled(ctx)
		case <-s.done:
			err = backends.ErrClosed
		}

		s.mu.Lock()
		d.waiters--
		if err != nil {
			s.gcLocked(d)
			s.mu.Unlock()
			return nil, err
		}
		d.held = true
		if d.removed {
			d.held = false
			<-d.lock
			s.mu.Unlock()
			continue
		}
		if !d.defined && !create {
			d.held = false
			s.gcLocked(d)
			<-d.lock
			s.mu.Unlock()
			return nil, backends.NotFound(uuid)
		}
		s.mu.Unlock()
		return d, nil
	}
}

// release drops the op lock, forgetting an abandoned creation.
func (s *Sim) release(d *domain) {
	s.mu.Lock()
	d.held = false
	d.starting = ""
	s.gcLocked(d)
	s.mu.Unlock()
	<-d.lock
}

// gcLocked removes a record no Start ever committed once nobody uses it.
func (s *Sim) gcLocked(d *domain) {
	if !d.defined && !d.removed && !d.held && d.waiters == 0 {
		d.removed = true
		if s.doms[d.uuid] == d {
			delete(s.doms, d.uuid)
		}
	}
}

// plan is what an operation does once its preconditions hold.
type plan struct {
	// reserve is memory held against the host while the operation runs.
	reserve int64
	// commit applies the operation; it runs under mu.
	commit func(now time.Time)
}

// run executes op on the domain held by the caller: power-state check,
// op-specific preparation, fault knobs, latency, then commit. If the
// domain's state changes while the op waits (a crash), the op fails with
// a *BadPowerStateError.
func (s *Sim) run(ctx context.Context, d *domain, op backends.Op, prepare func() (plan, error)) error {
	s.mu.Lock()
	if err := backends.CheckPowerState(d.uuid, op, d.state); err != nil {
		s.mu.Unlock()
		return err
	}
	p, err := prepare()
	if err != nil {
		s.mu.Unlock()
		return err
	}
	if p.reserve > 0 {
		if free := s.freeLocked(); p.reserve > free {
			s.mu.Unlock()
			return &backends.NotEnoughMemoryError{Needed: p.reserve, Available: max(free, 0)}
		}
	}
	if errs := s.failNext[op]; len(errs) > 0 {
		s.failNext[op] = errs[1:]
		s.mu.Unlock()
		return fmt.Errorf("%s of domain %s: %w", op, d.uuid, errs[0])
	}
	hang := false
	if s.hangNext[op] > 0 {
		s.hangNext[op]--
		hang = true
	}
	latency := s.cfg.Latency[op]
	s.used += p.reserve
	state0, gen0 := d.state, d.gen
	s.mu.Unlock()

	werr := s.wait(ctx, latency, hang)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.used -= p.reserve
	switch {
	case werr != nil:
		return werr
	case s.closed:
		return backends.ErrClosed
	case d.state != state0 || d.gen != gen0:
		return &backends.BadPowerStateError{UUID: d.uuid, Op: op, Expected: backends.RequiredStates(op), Actual: d.state}
	}
	p.commit(s.cfg.Now())
	s.cfg.Logger.Debug("sim operation", "op", string(op), "vm_uuid", d.uuid, "power_state", d.state.String(), "domid", d.domid)
	return nil
}

func (s *Sim) wait(ctx context.Context, latency time.Duration, hang bool) error {
	if hang {
		select {
		case <-ctx.Done():
			return backends.Cancelled(ctx)
		case <-s.done:
			return backends.ErrClosed
		}
	}
	if latency <= 0 {
		if ctx.Err() != nil {
			return backends.Cancelled(ctx)
		}
		return nil
	}
	// an operation long enough to watch reports its progress in fifths
	steps := 1
	if latency >= progressMinLatency {
		steps = 5
	}
	for i := 1; i <= steps; i++ {
		t := time.NewTimer(latency / time.Duration(steps))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return backends.Cancelled(ctx)
		case <-s.done:
			t.Stop()
			return backends.ErrClosed
		}
		if i < steps {
			backends.ReportProgress(ctx, float64(i)/float64(steps))
		}
	}
	return nil
}

// progressMinLatency is the shortest operation that reports progress.
const progressMinLatency = 100 * time.Millisecond

// withDomain acquires uuid, runs op on it and releases it.
func (s *Sim) withDomain(ctx context.Context, uuid string, op backends.Op, prepare func(d *domain) (plan, error)) error {
	if err := ctx.Err(); err != nil {
		return backends.Cancelled(ctx)
	}
	d, err := s.acquire(ctx, uuid, false)
	if err != nil {
		return err
	}
	defer s.release(d)
	return s.run(ctx, d, op, func() (plan, error) { return prepare(d) })
}

// ---------------------------------------------------------------------------
// Lifecycle.

// Start implements backends.Backend.
func (s *Sim) Start(ctx context.Context, spec backends.DomainSpec, paused bool) (int, error) {
	if err := spec.Validate(); err != nil {
		return -1, err
	}
	if spec.MaxVCPUs() > s.cfg.CPUs {
		return -1, backends.Invalidf("domain %s: %d vcpus exceed the host's %d cpus", spec.UUID, spec.MaxVCPUs(), s.cfg.CPUs)
	}
	if err := ctx.Err(); err != nil {
		return -1, backends.Cancelled(ctx)
	}
	spec = spec.Clone()
	d, err := s.acquire(ctx, spec.UUID, true)
	if err != nil {
		return -1, err
	}
	defer s.release(d)
	name := spec.DomainName()
	domid := -1
	err = s.run(ctx, d, backends.OpStart, func() (plan, error) {
		for _, o := range s.doms {
			if o == d {
				continue
			}
			busy := o.starting == name || (o.defined && o.state != backends.Halted && o.spec.DomainName() == name)
			if busy {
				return plan{}, fmt.Errorf("domain name %q is used by %s: %w", name, o.uuid, backends.ErrAlreadyExists)
			}
		}
		d.starting = name
		need := spec.MemoryDynamicMax + s.MemoryOverhead(spec)
		return plan{reserve: need, commit: func(now time.Time) {
			d.spec = spec
			d.defined = true
			d.target = spec.MemoryDynamicMax
			s.build(d, paused, now)
			s.setMem(d, need)
			domid = d.domid
			s.publish(d, backends.EventStarted, "", now)
		}}, nil
	})
	if err != nil {
		return -1, err
	}
	return domid, nil
}

// Shutdown implements backends.Backend.
func (s *Sim) Shutdown(ctx context.Context, uuid string, clean bool) error {
	op := backends.ShutdownOp(clean)
	reason := "hard"
	if clean {
		reason = "clean"
	}
	return s.withDomain(ctx, uuid, op, func(d *domain) (plan, error) {
		return plan{commit: func(now time.Time) {
			if clean {
				s.console(d, "reboot: Power down")
			}
			s.teardown(d, backends.Halted)
			s.publish(d, backends.EventShutdown, reason, now)
		}}, nil
	})
}

// Reboot implements backends.Backend.
func (s *Sim) Reboot(ctx context.Context, uuid string, clean bool) error {
	op := backends.RebootOp(clean)
	reason := "hard"
	if clean {
		reason = "clean"
	}
	return s.withDomain(ctx, uuid, op, func(d *domain) (plan, error) {
		return plan{commit: func(now time.Time) {
			if clean {
				s.console(d, "reboot: Restarting system")
			}
			s.rebuild(d, now)
			s.publish(d, backends.EventRebooted, reason, now)
		}}, nil
	})
}

// Suspend implements backends.Backend.
func (s *Sim) Suspend(ctx context.Context, uuid string) error {
	return s.withDomain(ctx, uuid, backends.OpSuspend, func(d *domain) (plan, error) {
		return plan{commit: func(now time.Time) {
			s.console(d, "PM: suspend entry (s2idle)")
			s.teardown(d, backends.Suspended)
			s.publish(d, backends.EventSuspended, "", now)
		}}, nil
	})
}

// Resume implements backends.Backend.
func (s *Sim) Resume(ctx context.Context, uuid string, paused bool) error {
	return s.withDomain(ctx, uuid, backends.OpResume, func(d *domain) (plan, error) {
		need := d.target + s.MemoryOverhead(d.spec)
		return plan{reserve: need, commit: func(now time.Time) {
			s.build(d, paused, now)
			s.setMem(d, need)
			s.console(d, "PM: suspend exit")
			s.publish(d, backends.EventResumed, "", now)
		}}, nil
	})
}

// Pause implements backends.Backend.
func (s *Sim) Pause(ctx context.Context, uuid string) error {
	return s.withDomain(ctx, uuid, backends.OpPause, func(d *domain) (plan, error) {
		return plan{commit: func(now time.Time) {
			d.state = backends.Paused
			s.publish(d, backends.EventPaused, "", now)
		}}, nil
	})
}

// Unpause implements backends.Backend.
func (s *Sim) Unpause(ctx context.Context, uuid string) error {
	return s.withDomain(ctx, uuid, backends.OpUnpause, func(d *domain) (plan, error) {
		return plan{commit: func(now time.Time) {
			d.state = backends.Running
			s.publish(d, backends.EventUnpaused, "", now)
		}}, nil
	})
}

// SetMemoryTarget implements backends.Backend.
func (s *Sim) SetMemoryTarget(ctx context.Context, uuid string, target int64) error {
	return s.withDomain(ctx, uuid, backends.OpSetMemoryTarget, func(d *domain) (plan, error) {
		if target < d.spec.MemoryStaticMin || target > d.spec.MemoryStaticMax || target <= 0 {
			return plan{}, backends.Invalidf("memory target %d outside [%d, %d]", target, d.spec.MemoryStaticMin, d.spec.MemoryStaticMax)
		}
		grow := max(target-d.target, 0)
		return plan{reserve: grow, commit: func(now time.Time) {
			d.target = target
			s.setMem(d, target+s.MemoryOverhead(d.spec))
			s.publish(d, backends.EventChanged, "memory", now)
		}}, nil
	})
}

// SetVCPUs implements backends.Backend.
func (s *Sim) SetVCPUs(ctx context.Context, uuid string, n int) error {
	return s.withDomain(ctx, uuid, backends.OpSetVCPUs, func(d *domain) (plan, error) {
		if n < 1 || n > d.spec.MaxVCPUs() {
			return plan{}, backends.Invalidf("vcpus %d outside [1, %d]", n, d.spec.MaxVCPUs())
		}
		return plan{commit: func(now time.Time) {
			d.vcpus = n
			d.stats.resize(n)
			s.publish(d, backends.EventChanged, "vcpus", now)
		}}, nil
	})
}

// Destroy implements backends.Backend.
func (s *Sim) Destroy(ctx context.Context, uuid string) error {
	return s.withDomain(ctx, uuid, backends.OpDestroy, func(d *domain) (plan, error) {
		return plan{commit: func(now time.Time) {
			s.teardown(d, backends.Halted)
			d.removed = true
			delete(s.doms, d.uuid)
			s.publish(d, backends.EventDestroyed, "", now)
		}}, nil
	})
}

// build makes d an active domain with a fresh domid. Caller sets memory.
func (s *Sim) build(d *domain, paused bool, now time.Time) {
	d.gen++
	d.domid = s.nextDomID
	s.nextDomID++
	d.start = now
	d.vcpus = d.spec.VCPUs
	if d.target == 0 {
		d.target = d.spec.MemoryDynamicMax
	}
	d.state = backends.Running
	if paused {
		d.state = backends.Paused
	}
	d.stats = newDomStats(s.cfg.Seed, d.uuid, d.domid, d.spec, now)
	d.agent = nil
	d.agentDue = false
	for _, l := range bootLines(profileFor(d.spec), d.spec, d.domid) {
		s.console(d, l)
	}
	s.scheduleAgent(d, now)
}

// rebuild reboots d: a new Running domain keeping the memory target.
func (s *Sim) rebuild(d *domain, now time.Time) {
	target, mem := d.target, d.mem
	s.teardown(d, backends.Halted)
	d.target = target
	s.build(d, false, now)
	s.setMem(d, mem)
}

// teardown makes d inactive in state to, releasing its memory.
func (s *Sim) teardown(d *domain, to backends.PowerState) {
	d.gen++
	d.stopTimer()
	d.state = to
	d.domid = -1
	d.start = time.Time{}
	d.vcpus = 0
	d.agent = nil
	d.agentDue = false
	d.stats = nil
	s.setMem(d, 0)
	if to == backends.Halted {
		d.target = 0
	}
}

func (d *domain) stopTimer() {
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}

func (s *Sim) setMem(d *domain, mem int64) {
	s.used += mem - d.mem
	d.mem = mem
}

// publish announces a change to d. A guest agent whose publish is due (it
// could not run while the domain was paused, or AgentDelay is 0) publishes
// right after the lifecycle event that lets it run.
func (s *Sim) publish(d *domain, kind backends.EventKind, reason string, now time.Time) {
	s.bus.Publish(backends.Event{Kind: kind, UUID: d.uuid, DomID: d.domid, State: d.state, Reason: reason, Time: now})
	if d.agentDue && d.state == backends.Running && kind != backends.EventGuestAgent {
		s.publishAgent(d, now)
	}
}

func (s *Sim) console(d *domain, line string) {
	d.console = append(d.console, line)
	if over := len(d.console) - s.cfg.ConsoleLines; over > 0 {
		d.console = slices.Delete(d.console, 0, over)
	}
}

// ---------------------------------------------------------------------------
// Queries.

func (d *domain) snapshot() backends.DomainState {
	st := backends.DomainState{
		UUID: d.uuid, Name: d.spec.DomainName(), PowerState: d.state, DomID: d.domid,
		StartTime: d.start, VCPUs: d.vcpus,
	}
	if d.state.Active() {
		st.MemoryActual = d.target
		st.MemoryTarget = d.target
	}
	return st
}

// State implements backends.Backend.
func (s *Sim) State(ctx context.Context, uuid string) (backends.DomainState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return backends.DomainState{}, backends.ErrClosed
	}
	d := s.doms[uuid]
	if d == nil || !d.defined {
		return backends.DomainState{}, backends.NotFound(uuid)
	}
	return d.snapshot(), nil
}

// List implements backends.Backend.
func (s *Sim) List(ctx context.Context) ([]backends.DomainState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, backends.ErrClosed
	}
	out := make([]backends.DomainState, 0, len(s.doms))
	for _, d := range s.doms {
		if d.defined {
			out = append(out, d.snapshot())
		}
	}
	slices.SortFunc(out, func(a, b backends.DomainState) int { return cmp.Compare(a.UUID, b.UUID) })
	return out, nil
}

// GuestData implements backends.Backend.
func (s *Sim) GuestData(ctx context.Context, uuid string) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, backends.ErrClosed
	}
	d := s.doms[uuid]
	if d == nil || !d.defined {
		return nil, backends.NotFound(uuid)
	}
	out := maps.Clone(d.agent)
	if out == nil {
		out = map[string]string{}
	}
	return out, nil
}

// Console implements backends.ConsoleReader.
func (s *Sim) Console(ctx context.Context, uuid string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, backends.ErrClosed
	}
	d := s.doms[uuid]
	if d == nil || !d.defined {
		return nil, backends.NotFound(uuid)
	}
	return slices.Clone(d.console), nil
}

// MemoryUsed reports the memory, in bytes, counted against the host for
// domains (a test hook for memory accounting invariants).
func (s *Sim) MemoryUsed() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}
