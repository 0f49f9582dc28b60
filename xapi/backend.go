package xapi

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/xapi-go/xapi-go/backends"
	"github.com/xapi-go/xapi-go/backends/guest"
	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

// vmRuntime is the host-local state of VM operations: which VM has an
// operation in flight (xapi's current_operations, enforced in process so that
// a second operation fails at once instead of racing the first), and the
// backend facts the API layer needs.
type vmRuntime struct {
	// mu guards busy and serialises the writes that record a VM's power
	// state, so the backend-event watcher never overwrites the result of an
	// operation with an older view.
	mu   sync.Mutex
	busy map[string]*vmBusy

	features    backends.Features
	hostMetrics string // host_metrics ref of this host
}

// vmBusy is the operation running on one VM.
type vmBusy struct {
	op  datamodel.VMOperations
	ref string // task ref (Async) or the call's own operation ref
	// agent is set when guest-agent data arrived during the operation; the
	// guest metrics are refreshed when it ends.
	agent bool
	// holders counts the operations sharing the claim (see sharedOps)
	holders int
}

// sharedOps may run together on one VM (several clones or copies of one
// template at once, as xapi allows); any other operation runs alone.
var sharedOps = map[datamodel.VMOperations]bool{
	datamodel.VMOperationsClone: true, datamodel.VMOperationsCopy: true, datamodel.VMOperationsExport: true,
}

// MachineResources reports this machine's CPU count, memory and the memory a
// backend should keep for the hypervisor and the control domain, matching the
// host objects created at bootstrap (host_metrics.memory_free starts at
// memTotal - reserved).
func MachineResources() (cpus int, memTotal, reserved int64) {
	m := readMachineInfo()
	return len(m.cpus), m.memTotal, dom0Memory(m.memTotal) + hostMemoryOverhead(m.memTotal)
}

// startBackend records the backend's features, aligns host_metrics' memory
// with the backend's view and starts the watcher that applies backend events
// (guest shutdowns, crashes, guest-agent data) to the database.
func (s *Server) startBackend(ctx context.Context) error {
	b := s.cfg.Backend
	if b == nil {
		return nil
	}
	info, err := b.Host(ctx)
	if err != nil {
		return err
	}
	s.vms.features = info.Features
	if o, ok := s.store.Get(datamodel.HostClass, string(s.hostRef)); ok {
		s.vms.hostMetrics = string(o.(*datamodel.HostRecord).Metrics)
	}
	if s.vms.hostMetrics != "" {
		if _, ok := s.store.Get(datamodel.HostMetricsClass, s.vms.hostMetrics); ok {
			c := datamodel.HostMetricsClass
			if err := s.apply(ctx, mustSet(c, s.vms.hostMetrics, "memory_total", info.MemoryTotal),
				mustSet(c, s.vms.hostMetrics, "memory_free", info.MemoryFree)); err != nil {
				return err
			}
		}
	}
	s.goBackground(s.followAllowedOperations)
	events := b.Watch(s.ctx)
	s.resyncAll(ctx)
	s.goBackground(func(ctx context.Context) {
		for ev := range events {
			s.handleBackendEvent(ctx, ev)
		}
	})
	return nil
}

// begin marks vm as running op for opRef, or fails with
// OTHER_OPERATION_IN_PROGRESS [VM, vm, op, ref] naming the operation already
// running. The check fails fast: xapi would retry for a while, but a client
// gets the same answer from allowed_operations, which is empty while an
// operation runs.
func (r *vmRuntime) begin(vm string, op datamodel.VMOperations, opRef string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.busy[vm]; ok {
		if sharedOps[b.op] && sharedOps[op] {
			b.holders++
			return nil
		}
		return datamodel.ErrOtherOperationInProgress(datamodel.VMClass.Name, vm, string(b.op), b.ref)
	}
	if r.busy == nil {
		r.busy = map[string]*vmBusy{}
	}
	r.busy[vm] = &vmBusy{op: op, ref: opRef, holders: 1}
	return nil
}

// end forgets one operation on vm; when the last sharing one ends it reports
// whether guest-agent data arrived meanwhile. The caller holds r.mu.
func (r *vmRuntime) endLocked(vm string) (agent bool) {
	if b, ok := r.busy[vm]; ok {
		if b.holders--; b.holders > 0 {
			return false
		}
		agent = b.agent
		delete(r.busy, vm)
	}
	return agent
}

// backendError maps a backend failure of an operation on vm to XenAPI's error.
func backendError(call *Call, vm string, err error) error {
	if err == nil {
		return nil
	}
	var bp *backends.BadPowerStateError
	var nm *backends.NotEnoughMemoryError
	switch {
	case errors.As(err, &bp):
		return datamodel.ErrVMBadPowerState(vm, bp.ExpectedString(), bp.Actual.Lower())
	case errors.As(err, &nm):
		return datamodel.ErrHostNotEnoughFreeMemory(strconv.FormatInt(nm.Needed, 10), strconv.FormatInt(nm.Available, 10))
	case errors.Is(err, backends.ErrCancelled), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		if call != nil && call.Task != "" && call.Task != datamodel.TaskRef(datamodel.NullRef) {
			return datamodel.ErrTaskCancelled(string(call.Task))
		}
		return internalf("operation on VM %s cancelled: %v", vm, err)
	case errors.Is(err, backends.ErrNotSupported):
		return datamodel.ErrOperationNotAllowed(err.Error())
	}
	return internalf("%v", err)
}

// domainSpec translates a VM record into what the backend needs to build the
// domain. The hypervisor-level name is the VM's uuid, which keeps names unique
// whatever the name_labels are.
func (s *Server) domainSpec(rec *datamodel.VMRecord) backends.DomainSpec {
	spec := backends.DomainSpec{
		UUID:             rec.UUID,
		Name:             rec.UUID,
		VCPUs:            int(rec.VCPUsAtStartup),
		VCPUsMax:         int(rec.VCPUsMax),
		MemoryStaticMin:  rec.MemoryStaticMin,
		MemoryDynamicMin: rec.MemoryDynamicMin,
		MemoryDynamicMax: rec.MemoryDynamicMax,
		MemoryStaticMax:  rec.MemoryStaticMax,
		Platform:         cloneStrings(rec.Platform),
		Other:            cloneStrings(rec.OtherConfig),
	}
	if isHVM(rec) {
		spec.Boot.Mode = backends.BootBIOS
		if rec.HVMBootParams["firmware"] == "uefi" {
			spec.Boot.Mode = backends.BootUEFI
		}
		spec.Boot.Order = rec.HVMBootParams["order"]
	} else {
		spec.Boot = backends.Boot{Mode: backends.BootDirect, Kernel: rec.PVKernel, Initrd: rec.PVRamdisk, Cmdline: rec.PVArgs}
	}
	for _, vbd := range rec.VBDs {
		o, ok := s.store.Get(datamodel.VBDClass, string(vbd))
		if !ok {
			continue
		}
		v := o.(*datamodel.VBDRecord)
		d := backends.Disk{Device: v.Userdevice, ReadOnly: v.Mode == datamodel.VBDModeRO, CDROM: v.Type == datamodel.VBDTypeCD}
		if vo, ok := s.store.Get(datamodel.VDIClass, string(v.VDI)); ok {
			vdi := vo.(*datamodel.VDIRecord)
			d.Path, d.Size = vdi.Location, vdi.VirtualSize
		}
		spec.Disks = append(spec.Disks, d)
	}
	for _, vif := range rec.VIFs {
		o, ok := s.store.Get(datamodel.VIFClass, string(vif))
		if !ok {
			continue
		}
		v := o.(*datamodel.VIFRecord)
		dev, err := strconv.Atoi(v.Device)
		if err != nil {
			continue
		}
		n := backends.NIC{Device: dev, MAC: v.MAC, MTU: int(v.MTU)}
		if no, ok := s.store.Get(datamodel.NetworkClass, string(v.Network)); ok {
			n.Bridge = no.(*datamodel.NetworkRecord).Bridge
		}
		spec.NICs = append(spec.NICs, n)
	}
	if spec.VCPUsMax < spec.VCPUs {
		spec.VCPUsMax = spec.VCPUs
	}
	return spec
}

// isHVM reports whether the VM boots as an HVM guest.
func isHVM(rec *datamodel.VMRecord) bool {
	switch rec.DomainType {
	case datamodel.DomainTypeHVM:
		return true
	case datamodel.DomainTypePV, datamodel.DomainTypePvh:
		return false
	}
	return rec.HVMBootPolicy != ""
}

func cloneStrings(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// handleBackendEvent applies a domain event the API did not cause itself
// (guest shutdown or reboot, crash, guest-agent data) to the database.
func (s *Server) handleBackendEvent(ctx context.Context, ev backends.Event) {
	if ev.Kind == backends.EventResync {
		s.resyncAll(ctx)
		return
	}
	ref, ok := s.store.RefByUUID(datamodel.VMClass, ev.UUID)
	if !ok {
		return
	}
	switch ev.Kind {
	case backends.EventGuestAgent:
		s.refreshGuestMetrics(ctx, ref)
		return
	case backends.EventRebooted:
		if ev.Reason == "guest" && s.haltAfterReboot(ctx, ref) {
			return
		}
	case backends.EventCrashed:
		if s.afterExit(ctx, ref, ev, crashRestarts) {
			return
		}
	case backends.EventShutdown:
		if ev.Reason == "guest" && s.afterExit(ctx, ref, ev, shutdownRestarts) {
			return
		}
	}
	s.reconcile(ctx, ref)
}

func crashRestarts(rec *datamodel.VMRecord) bool {
	switch rec.ActionsAfterCrash {
	case datamodel.OnCrashBehaviourRestart, datamodel.OnCrashBehaviourCoredumpAndRestart, datamodel.OnCrashBehaviourRenameRestart:
		return true
	}
	return false
}

func shutdownRestarts(rec *datamodel.VMRecord) bool {
	return rec.ActionsAfterShutdown == datamodel.OnNormalExitRestart
}

// afterExit restarts a VM whose domain ended by itself when its actions_after_*
// policy says so; it reports whether it did.
func (s *Server) afterExit(ctx context.Context, ref string, ev backends.Event, restart func(*datamodel.VMRecord) bool) bool {
	o, ok := s.store.Get(datamodel.VMClass, ref)
	if !ok {
		return false
	}
	rec := o.(*datamodel.VMRecord)
	if !restart(rec) || ev.State != backends.Halted {
		return false
	}
	opRef := datamodel.NewRef()
	if err := s.vms.begin(ref, datamodel.VMOperationsStart, opRef); err != nil {
		return false // an API operation owns the VM; it records the outcome
	}
	_, err := s.cfg.Backend.Start(ctx, s.domainSpec(rec), false)
	if err != nil {
		s.log.Warn("restart after domain exit failed", "vm", ref, "event", ev.Kind.String(), "err", err)
	}
	s.vms.mu.Lock()
	agent := s.vms.endLocked(ref)
	s.recordStateLocked(ctx, ref, "")
	s.vms.mu.Unlock()
	if agent {
		s.refreshGuestMetrics(ctx, ref)
	}
	return true
}

// haltAfterReboot stops a VM whose guest rebooted while its
// actions_after_reboot is destroy; it reports whether it did.
func (s *Server) haltAfterReboot(ctx context.Context, ref string) bool {
	o, ok := s.store.Get(datamodel.VMClass, ref)
	if !ok || o.(*datamodel.VMRecord).ActionsAfterReboot != datamodel.OnNormalExitDestroy {
		return false
	}
	rec := o.(*datamodel.VMRecord)
	if err := s.vms.begin(ref, datamodel.VMOperationsHardShutdown, datamodel.NewRef()); err != nil {
		return false
	}
	if err := s.cfg.Backend.Shutdown(ctx, rec.UUID, false); err != nil {
		s.log.Warn("halt after guest reboot failed", "vm", ref, "err", err)
	}
	s.vms.mu.Lock()
	s.vms.endLocked(ref)
	s.recordStateLocked(ctx, ref, "")
	s.vms.mu.Unlock()
	return true
}

// reconcile writes the backend's view of one VM's domain to the database
// unless an API operation is running on it (that operation records the
// outcome when it ends).
func (s *Server) reconcile(ctx context.Context, ref string) {
	s.vms.mu.Lock()
	defer s.vms.mu.Unlock()
	if _, busy := s.vms.busy[ref]; busy {
		return
	}
	s.recordStateLocked(ctx, ref, "")
}

// resyncAll reconciles every VM the backend knows and every VM the database
// thinks is not halted (after missed events, and at start, when a backend
// that lost its domains would otherwise leave them "Running").
func (s *Server) resyncAll(ctx context.Context) {
	refs := map[string]bool{}
	if list, err := s.cfg.Backend.List(ctx); err == nil {
		for _, d := range list {
			if ref, ok := s.store.RefByUUID(datamodel.VMClass, d.UUID); ok {
				refs[ref] = true
			}
		}
	}
	for _, e := range s.store.List(datamodel.VMClass) {
		if rec := e.Obj.(*datamodel.VMRecord); rec.PowerState != datamodel.VMPowerStateHalted && s.vmIsHere(rec) {
			refs[e.Ref] = true
		}
	}
	for ref := range refs {
		s.reconcile(ctx, ref)
		s.refreshGuestMetrics(ctx, ref)
	}
}

// recordStateLocked writes the backend's current state of the VM's domain
// (power state, domid, residence, metrics, host memory) and, when clearOp is
// set, removes that entry of current_operations, in one batch. The caller
// holds s.vms.mu.
func (s *Server) recordStateLocked(ctx context.Context, ref, clearOp string) {
	ctx = context.WithoutCancel(ctx)
	o, ok := s.store.Get(datamodel.VMClass, ref)
	if !ok {
		return
	}
	rec := o.(*datamodel.VMRecord)
	if rec.IsControlDomain {
		return // the host's own domain; no backend runs it
	}
	e := s.vmEdit(ref, rec)
	if clearOp != "" {
		e.clearOp(clearOp)
	}
	st, err := s.cfg.Backend.State(ctx, rec.UUID)
	if errors.Is(err, backends.ErrNotFound) && !s.vmIsHere(rec) {
		// another host runs (or holds the suspended image of) this VM
		if clearOp != "" {
			if err := s.apply(ctx, append(e.ops(), s.hostMemoryOp(ctx)...)...); err != nil {
				s.log.Warn("recording VM state failed", "vm", ref, "err", err)
			}
		}
		return
	}
	if errors.Is(err, backends.ErrNotFound) {
		st, err = backends.DomainState{UUID: rec.UUID, PowerState: backends.Halted, DomID: -1}, nil
	}
	if err != nil {
		s.log.Warn("backend state unavailable", "vm", ref, "err", err)
	} else {
		e.domainState(st)
	}
	ops := append(e.ops(), s.hostMemoryOp(ctx)...)
	if err := s.apply(ctx, ops...); err != nil {
		s.log.Warn("recording VM state failed", "vm", ref, "err", err)
	}
}

// refreshGuestMetrics reads the guest agent's data of a running VM and
// creates or updates its VM_guest_metrics.
func (s *Server) refreshGuestMetrics(ctx context.Context, ref string) {
	s.vms.mu.Lock()
	defer s.vms.mu.Unlock()
	if _, busy := s.vms.busy[ref]; busy {
		s.vms.busy[ref].agent = true
		return
	}
	o, ok := s.store.Get(datamodel.VMClass, ref)
	if !ok {
		return
	}
	rec := o.(*datamodel.VMRecord)
	if rec.PowerState != datamodel.VMPowerStateRunning && rec.PowerState != datamodel.VMPowerStatePaused {
		return
	}
	kv, err := s.cfg.Backend.GuestData(ctx, rec.UUID)
	if err != nil || len(kv) == 0 {
		return
	}
	m := guest.Parse(kv, time.Now().UTC())
	c := datamodel.VMGuestMetricsClass
	var old *datamodel.VMGuestMetricsRecord
	if gm, ok := s.store.Get(c, string(rec.GuestMetrics)); ok {
		old = gm.(*datamodel.VMGuestMetricsRecord)
	}
	g := datamodel.NewVMGuestMetricsRecord()
	if old != nil {
		g = old.Clone().(*datamodel.VMGuestMetricsRecord)
	} else {
		g.UUID = datamodel.NewUUID()
		g.OtherConfig = map[string]string{}
		g.Disks = map[string]string{}
		g.Services = map[string]string{}
	}
	g.OSVersion = m.OSVersion
	g.NetbiosName = m.NetbiosName
	g.PVDriversVersion = m.PVDriversVersion
	g.PVDriversUpToDate = m.PVDriversDetected
	g.PVDriversDetected = m.PVDriversDetected
	g.Networks = m.Networks
	g.Memory = map[string]string{} // COMPAT: xapi leaves it empty
	g.Other = m.Other
	g.Live = m.Live
	g.LastUpdated = m.LastUpdated.Truncate(time.Second)
	g.CanUseHotplugVBD = datamodel.TristateType(m.CanUseHotplugVBD)
	g.CanUseHotplugVIF = datamodel.TristateType(m.CanUseHotplugVIF)
	var ops []store.Op
	if old != nil {
		ops = append(ops, store.Delete(c, string(rec.GuestMetrics)), store.Create(string(rec.GuestMetrics), g))
	} else {
		gref := datamodel.NewRef()
		ops = append(ops, store.Create(gref, g), mustSet(datamodel.VMClass, ref, "guest_metrics", datamodel.VMGuestMetricsRef(gref)))
	}
	if err := s.apply(context.WithoutCancel(ctx), ops...); err != nil {
		s.log.Warn("recording guest metrics failed", "vm", ref, "err", err)
	}
}

// ComputeFreeMemory is the memory available for new VMs on the host: the
// backend's free memory, which already excludes the running domains and their
// overheads.
func (m *hostMessages) ComputeFreeMemory(ctx context.Context, call *Call, host datamodel.HostRef) (int64, error) {
	if _, err := m.s.lookup(datamodel.HostClass, host); err != nil {
		return 0, err
	}
	if m.s.cfg.Backend == nil {
		return 0, errNotImplemented(call.Method.Name)
	}
	if err := m.s.checkHost(host); err != nil {
		return 0, err
	}
	info, err := m.s.cfg.Backend.Host(ctx)
	if err != nil {
		return 0, backendError(call, string(host), err)
	}
	return info.MemoryFree, nil
}

// vmIsHere reports whether this host's backend should have the VM's domain
// (the VM is resident here, or suspended with its image here) or nobody's
// should (it is halted, or the pool has one host).
func (s *Server) vmIsHere(rec *datamodel.VMRecord) bool {
	if s.store.Count(datamodel.HostClass) < 2 {
		return true
	}
	switch rec.PowerState {
	case datamodel.VMPowerStateHalted:
		return true
	case datamodel.VMPowerStateSuspended:
		h := s.suspendHost(rec)
		return h == "" || h == s.hostRef
	}
	return rec.ResidentOn == s.hostRef || rec.ResidentOn == datamodel.NullRef || rec.ResidentOn == ""
}
