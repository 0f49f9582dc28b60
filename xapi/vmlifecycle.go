package xapi

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xapi-go/xapi-go/backends"
	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

// VM power operations. Each one follows xapi's with_vm_operation:
//
//  1. checks that need no lock: the VM exists, is not a template
//     (VM_IS_TEMPLATE) nor the control domain (OPERATION_NOT_ALLOWED), and
//     the operation is not in blocked_operations (OPERATION_BLOCKED);
//  2. claims the VM: a second operation while one runs fails at once with
//     OTHER_OPERATION_IN_PROGRESS [VM, vm, op, task] — xapi retries for up to
//     two hours instead; failing fast keeps clients responsive and they
//     already see an empty allowed_operations while an operation runs;
//  3. checks the power state (VM_BAD_POWER_STATE [vm, expected, actual]);
//  4. records current_operations[task] = op and the recomputed
//     allowed_operations in one batch;
//  5. calls the backend with the call's context (task.cancel cancels it);
//  6. writes the backend's resulting state — power_state, domid,
//     resident_on, VM_metrics, host_metrics.memory_free — removes the
//     current operation and recomputes allowed_operations, in one batch.

// vmEditor accumulates the writes of one batch about a VM, keeping a working
// copy of the record so that allowed_operations can be recomputed from the
// state the batch leads to.
type vmEditor struct {
	s       *Server
	ref     string
	rec     *datamodel.VMRecord // working copy
	list    []store.Op
	touched bool
	// srDelta is what the batch changes in SRs' accounting: sr →
	// [virtual_allocation, physical_utilisation] (see chargeSR).
	srDelta map[string][2]int64
}

func (s *Server) vmEdit(ref string, rec *datamodel.VMRecord) *vmEditor {
	return &vmEditor{s: s, ref: ref, rec: rec.Clone().(*datamodel.VMRecord)}
}

// setObj appends a Set of field on obj (class c, ref) unless it already holds v.
func setObj(list []store.Op, c *datamodel.Class, ref string, obj datamodel.Object, field string, v any) []store.Op {
	f, ok := c.FieldByName(field)
	if !ok {
		panic("xapi: no field " + c.Name + "." + field)
	}
	if obj != nil && reflect.DeepEqual(obj.Field(f.Index), v) {
		return list
	}
	if obj != nil {
		if err := obj.SetField(f.Index, v); err != nil {
			panic(err)
		}
	}
	return append(list, mustSet(c, ref, field, v))
}

func (e *vmEditor) set(field string, v any) *vmEditor {
	n := len(e.list)
	e.list = setObj(e.list, datamodel.VMClass, e.ref, e.rec, field, v)
	e.touched = e.touched || len(e.list) > n
	return e
}

// addOp records opRef → op in current_operations.
func (e *vmEditor) addOp(opRef string, op datamodel.VMOperations) *vmEditor {
	m := make(map[string]datamodel.VMOperations, len(e.rec.CurrentOperations)+1)
	for k, v := range e.rec.CurrentOperations {
		m[k] = v
	}
	m[opRef] = op
	e.rec.CurrentOperations = m
	mo, err := store.MapPut(datamodel.VMClass, e.ref, "current_operations", opRef, op)
	if err != nil {
		panic(err)
	}
	e.list = append(e.list, mo)
	e.touched = true
	return e
}

// clearOp removes opRef from current_operations.
func (e *vmEditor) clearOp(opRef string) *vmEditor {
	if _, ok := e.rec.CurrentOperations[opRef]; !ok {
		return e
	}
	m := make(map[string]datamodel.VMOperations, len(e.rec.CurrentOperations))
	for k, v := range e.rec.CurrentOperations {
		if k != opRef {
			m[k] = v
		}
	}
	e.rec.CurrentOperations = m
	mo, err := store.MapRemove(datamodel.VMClass, e.ref, "current_operations", opRef)
	if err != nil {
		panic(err)
	}
	e.list = append(e.list, mo)
	e.touched = true
	return e
}

// domainState records the backend's view of the VM's domain: power state,
// domid, residence, memory, VM_metrics; guest metrics go when the domain does.
func (e *vmEditor) domainState(st backends.DomainState) *vmEditor {
	s := e.s
	now := time.Now().UTC()
	active := st.PowerState.Active()
	e.set("power_state", modelPowerState(st.PowerState))
	domid := int64(-1)
	resident := datamodel.HostRef(datamodel.NullRef)
	if active {
		domid = int64(st.DomID)
		resident = s.hostRef
	}
	e.set("domid", domid)
	// host.resident_VMs is the other end of VM.resident_on
	if prev := e.rec.ResidentOn; prev != resident {
		if _, ok := s.store.Get(datamodel.HostClass, string(prev)); ok {
			e.list = append(e.list, setRemoveOp(datamodel.HostClass, string(prev), "resident_VMs", datamodel.VMRef(e.ref)))
		}
		if _, ok := s.store.Get(datamodel.HostClass, string(resident)); ok {
			e.list = append(e.list, mustSetAdd(datamodel.HostClass, string(resident), "resident_VMs", datamodel.VMRef(e.ref)))
		}
	}
	e.set("resident_on", resident)
	e.set("scheduled_to_be_resident_on", datamodel.HostRef(datamodel.NullRef))
	e.devicesAttached(active)
	e.suspendImage(st.PowerState == backends.Suspended)
	e.set("memory_target", st.MemoryTarget)
	if active && s.cfg.Backend != nil {
		e.set("memory_overhead", s.cfg.Backend.MemoryOverhead(s.domainSpec(e.rec)))
	}
	if !active && e.rec.GuestMetrics != datamodel.VMGuestMetricsRef(datamodel.NullRef) {
		if _, ok := s.store.Get(datamodel.VMGuestMetricsClass, string(e.rec.GuestMetrics)); ok {
			e.list = append(e.list, store.Delete(datamodel.VMGuestMetricsClass, string(e.rec.GuestMetrics)))
		}
		e.set("guest_metrics", datamodel.VMGuestMetricsRef(datamodel.NullRef))
	}
	// VM_metrics, created when the VM has none (VM.create does not make one).
	c := datamodel.VMMetricsClass
	mref := string(e.rec.Metrics)
	var m *datamodel.VMMetricsRecord
	if o, ok := s.store.Get(c, mref); ok {
		m = o.(*datamodel.VMMetricsRecord).Clone().(*datamodel.VMMetricsRecord)
	} else {
		m = newVMMetrics(now)
		mref = datamodel.NewRef()
		e.list = append(e.list, store.Create(mref, m))
		e.set("metrics", datamodel.VMMetricsRef(mref))
	}
	var ml []store.Op
	set := func(field string, v any) { ml = setObj(ml, c, mref, m, field, v) }
	set("memory_actual", st.MemoryActual)
	set("VCPUs_number", int64(st.VCPUs))
	util := map[int64]float64{}
	cpu := map[int64]int64{}
	for i := range st.VCPUs {
		util[int64(i)] = 0
		cpu[int64(i)] = int64(i)
	}
	set("VCPUs_utilisation", util)
	set("VCPUs_CPU", cpu)
	set("state", []string{})
	if active {
		set("start_time", st.StartTime.UTC().Truncate(time.Second))
		hvm := isHVM(e.rec)
		set("hvm", hvm)
		dt := e.rec.DomainType
		if dt == datamodel.DomainTypeUnspecified {
			dt = datamodel.DomainTypePV
			if hvm {
				dt = datamodel.DomainTypeHVM
			}
		}
		set("current_domain_type", dt)
	} else {
		set("current_domain_type", datamodel.DomainTypeUnspecified)
	}
	if len(ml) > 0 {
		set("last_updated", now.Truncate(time.Second))
	}
	e.list = append(e.list, ml...)
	return e
}

func newVMMetrics(now time.Time) *datamodel.VMMetricsRecord {
	r := datamodel.NewVMMetricsRecord()
	r.UUID = datamodel.NewUUID()
	r.VCPUsUtilisation = map[int64]float64{}
	r.VCPUsCPU = map[int64]int64{}
	r.VCPUsFlags = map[int64][]string{}
	r.VCPUsParams = map[string]string{}
	r.State = []string{}
	r.InstallTime = now.Truncate(time.Second)
	r.LastUpdated = datamodel.Epoch
	r.OtherConfig = map[string]string{}
	r.CurrentDomainType = datamodel.DomainTypeUnspecified
	r.NUMANodeMemory = map[int64]int64{}
	return r
}

// ops returns the batch, with the SR accounting charged by it and
// allowed_operations recomputed when the VM record changed.
func (e *vmEditor) ops() []store.Op {
	e.flushSRCharges()
	if e.touched {
		allowed := vmAllowedOperations(e.rec, e.s.vms.features)
		if !sameOps(allowed, e.rec.AllowedOperations) {
			e.rec.AllowedOperations = allowed
			e.list = append(e.list, mustSet(datamodel.VMClass, e.ref, "allowed_operations", allowed))
		}
		e.touched = false
	}
	return e.list
}

// chargeSR adds virt bytes to sr's virtual_allocation and phys bytes to its
// physical_utilisation (negative: gives them back) in the batch. Charges
// are summed per SR and written once by ops, so that several writers of one
// batch (a revert's disks, a suspend image going) do not overwrite each
// other's figures. No SR_FULL check: callers that can fail check first.
func (e *vmEditor) chargeSR(sr string, virt, phys int64) {
	if e.srDelta == nil {
		e.srDelta = map[string][2]int64{}
	}
	d := e.srDelta[sr]
	d[0] += virt
	d[1] += phys
	e.srDelta[sr] = d
}

func (e *vmEditor) flushSRCharges() {
	for sr, d := range e.srDelta {
		o, ok := e.s.store.Get(datamodel.SRClass, sr)
		if !ok || d == [2]int64{} {
			continue
		}
		r := o.(*datamodel.SRRecord)
		if d[0] != 0 {
			e.list = append(e.list, mustSet(datamodel.SRClass, sr, "virtual_allocation", max(0, r.VirtualAllocation+d[0])))
		}
		if d[1] != 0 {
			e.list = append(e.list, mustSet(datamodel.SRClass, sr, "physical_utilisation", max(0, r.PhysicalUtilisation+d[1])))
		}
	}
	e.srDelta = nil
}

// hostMemoryOp sets host_metrics.memory_free to the backend's free memory.
func (s *Server) hostMemoryOp(ctx context.Context) []store.Op {
	if s.vms.hostMetrics == "" || s.cfg.Backend == nil {
		return nil
	}
	info, err := s.cfg.Backend.Host(ctx)
	if err != nil {
		return nil
	}
	o, ok := s.store.Get(datamodel.HostMetricsClass, s.vms.hostMetrics)
	if !ok {
		return nil
	}
	hm := o.(*datamodel.HostMetricsRecord)
	if hm.MemoryFree == info.MemoryFree {
		return nil
	}
	return []store.Op{mustSet(datamodel.HostMetricsClass, s.vms.hostMetrics, "memory_free", info.MemoryFree)}
}

// operationRef is the key of the call's entry in current_operations: its
// task, or a fresh reference for a synchronous call.
func operationRef(call *Call) string {
	if call != nil && call.Task != "" && call.Task != datamodel.TaskRef(datamodel.NullRef) {
		return string(call.Task)
	}
	return datamodel.NewRef()
}

// vmPowerOperation runs one power operation (see the comment at the top).
// bop is the backend operation whose legality the power state must satisfy;
// run calls the backend.
func (s *Server) vmPowerOperation(ctx context.Context, call *Call, vm datamodel.VMRef, op datamodel.VMOperations, bop backends.Op,
	run func(ctx context.Context, rec *datamodel.VMRecord) error) error {
	if s.cfg.Backend == nil {
		return errNotImplemented(call.Method.Name)
	}
	ref := string(vm)
	o, ok := s.store.Get(datamodel.VMClass, ref)
	if !ok {
		return datamodel.ErrHandleInvalid(datamodel.VMClass.Name, ref)
	}
	rec := o.(*datamodel.VMRecord)
	if err := checkVMOperable(ref, rec, op); err != nil {
		return err
	}
	opRef := operationRef(call)
	if err := s.vms.begin(ref, op, opRef); err != nil {
		return err
	}
	release := func() {
		s.vms.mu.Lock()
		s.vms.endLocked(ref)
		s.vms.mu.Unlock()
	}
	if o, ok = s.store.Get(datamodel.VMClass, ref); !ok {
		release()
		return datamodel.ErrHandleInvalid(datamodel.VMClass.Name, ref)
	}
	rec = o.(*datamodel.VMRecord)
	if err := backends.CheckPowerState(rec.UUID, bop, vmPowerState(rec.PowerState)); err != nil {
		release()
		return backendError(call, ref, err)
	}
	if !s.vms.features.Supports(bop) {
		release()
		return datamodel.ErrOperationNotAllowed("the host's hypervisor does not support " + string(op))
	}
	if err := s.markOperation(ctx, ref, rec, opRef, op); err != nil {
		release()
		return err
	}
	// the backend's progress becomes the task's (for Async calls)
	err := run(backends.WithProgress(ctx, func(p float64) { _ = call.SetProgress(ctx, p) }), rec)
	s.vms.mu.Lock()
	agent := s.vms.endLocked(ref)
	s.recordStateLocked(ctx, ref, opRef)
	s.vms.mu.Unlock()
	if agent {
		s.refreshGuestMetrics(ctx, ref)
	}
	if err != nil {
		var de *datamodel.Error
		if errors.As(err, &de) {
			return de
		}
		return backendError(call, ref, err)
	}
	return nil
}

// markOperation records opRef → op in current_operations with the emptied
// allowed_operations; s.vms.mu orders it with the other allowed_operations
// writers.
func (s *Server) markOperation(ctx context.Context, ref string, rec *datamodel.VMRecord, opRef string, op datamodel.VMOperations) error {
	s.vms.mu.Lock()
	defer s.vms.mu.Unlock()
	return s.apply(ctx, s.vmEdit(ref, rec).addOp(opRef, op).ops()...)
}

// checkVMOperable rejects power operations on snapshots (VM_IS_SNAPSHOT),
// templates (VM_IS_TEMPLATE) and the control domain, and blocked operations
// (OPERATION_BLOCKED [vm, reason]).
func checkVMOperable(ref string, rec *datamodel.VMRecord, op datamodel.VMOperations) error {
	switch {
	case rec.IsASnapshot:
		return datamodel.ErrVMIsSnapshot(ref)
	case rec.IsATemplate:
		return datamodel.ErrVMIsTemplate(ref)
	case rec.IsControlDomain:
		return datamodel.ErrOperationNotAllowed("Operations on the control domain are not allowed")
	}
	if reason, ok := rec.BlockedOperations[op]; ok {
		return datamodel.ErrOperationBlocked(ref, reason)
	}
	return nil
}

// checkHost accepts a host that can take VMs: it exists (HANDLE_INVALID),
// is live (HOST_OFFLINE) and enabled (HOST_DISABLED).
func (s *Server) checkHost(host datamodel.HostRef) error {
	o, ok := s.store.Get(datamodel.HostClass, string(host))
	if !ok {
		return datamodel.ErrHandleInvalid(datamodel.HostClass.Name, string(host))
	}
	rec := o.(*datamodel.HostRecord)
	if host != s.hostRef && !s.hostLive(rec) {
		return datamodel.ErrHostOffline(string(host))
	}
	if !rec.Enabled {
		return datamodel.ErrHostDisabled(string(host))
	}
	return nil
}

// startVM boots the VM on this host (where VM.start's routing placed it, or
// VM.start_on's host). The host must pass VM.assert_can_boot_here's checks
// (an error of assertCanBootHere otherwise), and the backend's free memory
// must cover its memory_dynamic_max plus the hypervisor overhead, otherwise
// the start fails with HOST_NOT_ENOUGH_FREE_MEMORY [needed, available]
// before anything is built.
func (s *Server) startVM(ctx context.Context, ref string, rec *datamodel.VMRecord, paused bool) error {
	if err := s.assertCanBootHere(ctx, ref, rec, s.hostRef); err != nil {
		return err
	}
	b := s.cfg.Backend
	spec := s.domainSpec(rec)
	info, err := b.Host(ctx)
	if err != nil {
		return err
	}
	if needed := s.vmStartMemory(rec); needed > info.MemoryFree {
		return datamodel.ErrHostNotEnoughFreeMemory(strconv.FormatInt(needed, 10), strconv.FormatInt(info.MemoryFree, 10))
	}
	_, err = b.Start(ctx, spec, paused)
	if errors.Is(err, backends.ErrInvalid) {
		return datamodel.ErrOperationNotAllowed(err.Error())
	}
	return err
}

func (m *vmMessages) Start(ctx context.Context, call *Call, vm datamodel.VMRef, startPaused bool, force bool) error {
	return m.s.vmPowerOperation(ctx, call, vm, datamodel.VMOperationsStart, backends.OpStart, func(ctx context.Context, rec *datamodel.VMRecord) error {
		return m.s.startVM(ctx, string(vm), rec, startPaused)
	})
}

func (m *vmMessages) StartOn(ctx context.Context, call *Call, vm datamodel.VMRef, host datamodel.HostRef, startPaused bool, force bool) error {
	if err := m.s.checkHost(host); err != nil {
		return err
	}
	return m.s.vmPowerOperation(ctx, call, vm, datamodel.VMOperationsStartOn, backends.OpStart, func(ctx context.Context, rec *datamodel.VMRecord) error {
		return m.s.startVM(ctx, string(vm), rec, startPaused)
	})
}

func (m *vmMessages) CleanShutdown(ctx context.Context, call *Call, vm datamodel.VMRef) error {
	return m.s.vmPowerOperation(ctx, call, vm, datamodel.VMOperationsCleanShutdown, backends.OpCleanShutdown, func(ctx context.Context, rec *datamodel.VMRecord) error {
		return m.s.cfg.Backend.Shutdown(ctx, rec.UUID, true)
	})
}

func (m *vmMessages) HardShutdown(ctx context.Context, call *Call, vm datamodel.VMRef) error {
	return m.s.vmPowerOperation(ctx, call, vm, datamodel.VMOperationsHardShutdown, backends.OpHardShutdown, func(ctx context.Context, rec *datamodel.VMRecord) error {
		return m.s.cfg.Backend.Shutdown(ctx, rec.UUID, false)
	})
}

// Shutdown is a clean shutdown of a running VM that falls back to a hard
// shutdown when the clean one fails (and a hard shutdown of a paused or
// suspended VM).
func (m *vmMessages) Shutdown(ctx context.Context, call *Call, vm datamodel.VMRef) error {
	return m.s.vmPowerOperation(ctx, call, vm, datamodel.VMOperationsShutdown, backends.OpHardShutdown, func(ctx context.Context, rec *datamodel.VMRecord) error {
		b := m.s.cfg.Backend
		if rec.PowerState == datamodel.VMPowerStateRunning {
			err := b.Shutdown(ctx, rec.UUID, true)
			if err == nil || ctx.Err() != nil {
				return err
			}
		}
		return b.Shutdown(ctx, rec.UUID, false)
	})
}

func (m *vmMessages) CleanReboot(ctx context.Context, call *Call, vm datamodel.VMRef) error {
	return m.s.vmPowerOperation(ctx, call, vm, datamodel.VMOperationsCleanReboot, backends.OpCleanReboot, func(ctx context.Context, rec *datamodel.VMRecord) error {
		return m.s.cfg.Backend.Reboot(ctx, rec.UUID, true)
	})
}

func (m *vmMessages) HardReboot(ctx context.Context, call *Call, vm datamodel.VMRef) error {
	return m.s.vmPowerOperation(ctx, call, vm, datamodel.VMOperationsHardReboot, backends.OpHardReboot, func(ctx context.Context, rec *datamodel.VMRecord) error {
		return m.s.cfg.Backend.Reboot(ctx, rec.UUID, false)
	})
}

func (m *vmMessages) Suspend(ctx context.Context, call *Call, vm datamodel.VMRef) error {
	return m.s.vmPowerOperation(ctx, call, vm, datamodel.VMOperationsSuspend, backends.OpSuspend, func(ctx context.Context, rec *datamodel.VMRecord) error {
		return m.s.cfg.Backend.Suspend(ctx, rec.UUID)
	})
}

func (m *vmMessages) Resume(ctx context.Context, call *Call, vm datamodel.VMRef, startPaused bool, force bool) error {
	return m.s.vmPowerOperation(ctx, call, vm, datamodel.VMOperationsResume, backends.OpResume, func(ctx context.Context, rec *datamodel.VMRecord) error {
		return m.s.cfg.Backend.Resume(ctx, rec.UUID, startPaused)
	})
}

func (m *vmMessages) ResumeOn(ctx context.Context, call *Call, vm datamodel.VMRef, host datamodel.HostRef, startPaused bool, force bool) error {
	if err := m.s.checkHost(host); err != nil {
		return err
	}
	return m.s.vmPowerOperation(ctx, call, vm, datamodel.VMOperationsResumeOn, backends.OpResume, func(ctx context.Context, rec *datamodel.VMRecord) error {
		return m.s.cfg.Backend.Resume(ctx, rec.UUID, startPaused)
	})
}

func (m *vmMessages) Pause(ctx context.Context, call *Call, vm datamodel.VMRef) error {
	return m.s.vmPowerOperation(ctx, call, vm, datamodel.VMOperationsPause, backends.OpPause, func(ctx context.Context, rec *datamodel.VMRecord) error {
		return m.s.cfg.Backend.Pause(ctx, rec.UUID)
	})
}

func (m *vmMessages) Unpause(ctx context.Context, call *Call, vm datamodel.VMRef) error {
	return m.s.vmPowerOperation(ctx, call, vm, datamodel.VMOperationsUnpause, backends.OpUnpause, func(ctx context.Context, rec *datamodel.VMRecord) error {
		return m.s.cfg.Backend.Unpause(ctx, rec.UUID)
	})
}

// vmStartMemory is what starting the VM needs: memory_dynamic_max plus the
// hypervisor's overhead.
func (s *Server) vmStartMemory(rec *datamodel.VMRecord) int64 {
	spec := s.domainSpec(rec)
	return spec.MemoryDynamicMax + s.cfg.Backend.MemoryOverhead(spec)
}

// assertCanBootHere checks that the VM could start on host, in the order of
// xapi's Xapi_vm_helpers.assert_can_boot_here:
//
//   - the VM is not a template, snapshot or the control domain;
//   - its basic parameters are sane (validateBootParams);
//   - the host is live (HOST_NOT_LIVE, no parameters) and enabled
//     (HOST_DISABLED [host]);
//   - the host provides the VM's hardware_platform_version
//     (VM_HOST_INCOMPATIBLE_VIRTUAL_HARDWARE_PLATFORM_VERSION [host,
//     "[v1; v2]", vm, version]);
//   - the host sees the SR of every disk and of a suspended VM's image
//     (VM_REQUIRES_SR [vm, sr]) and has a PIF on the network of every VIF
//     (VM_REQUIRES_NETWORK [vm, network]; a network without PIFs is an
//     internal one, available everywhere here);
//   - an HVM guest needs a host with an "hvm" capability (VM_HVM_REQUIRED [vm]);
//   - the host has at least VCPUs_max physical CPUs (HOST_NOT_ENOUGH_PCPUS
//     [vcpus, pcpus]);
//   - unless the VM already runs, the host has the memory
//     (HOST_NOT_ENOUGH_FREE_MEMORY [needed, available]).
func (s *Server) assertCanBootHere(ctx context.Context, ref string, rec *datamodel.VMRecord, host datamodel.HostRef) error {
	o, ok := s.store.Get(datamodel.HostClass, string(host))
	if !ok {
		return datamodel.ErrHandleInvalid(datamodel.HostClass.Name, string(host))
	}
	hrec := o.(*datamodel.HostRecord)
	if err := checkVMOperable(ref, rec, datamodel.VMOperationsStart); err != nil {
		return err
	}
	if err := validateBootParams(rec); err != nil {
		return err
	}
	if host != s.hostRef && !s.hostLive(hrec) {
		return datamodel.ErrHostNotLive()
	}
	if !hrec.Enabled {
		return datamodel.ErrHostDisabled(string(host))
	}
	if !slices.Contains(hrec.VirtualHardwarePlatformVersions, rec.HardwarePlatformVersion) {
		vs := make([]string, len(hrec.VirtualHardwarePlatformVersions))
		for i, v := range hrec.VirtualHardwarePlatformVersions {
			vs[i] = strconv.FormatInt(v, 10)
		}
		return datamodel.ErrVMHostIncompatibleVirtualHardwarePlatformVersion(string(host), "["+strings.Join(vs, "; ")+"]",
			ref, strconv.FormatInt(rec.HardwarePlatformVersion, 10))
	}
	var vdis []string
	for _, vbd := range rec.VBDs {
		if o, ok := s.store.Get(datamodel.VBDClass, string(vbd)); ok && !o.(*datamodel.VBDRecord).Empty {
			vdis = append(vdis, string(o.(*datamodel.VBDRecord).VDI))
		}
	}
	if rec.PowerState == datamodel.VMPowerStateSuspended {
		vdis = append(vdis, string(rec.SuspendVDI))
	}
	for _, vdi := range vdis {
		vo, ok := s.store.Get(datamodel.VDIClass, vdi)
		if !ok {
			continue
		}
		sr := string(vo.(*datamodel.VDIRecord).SR)
		if !s.srOnHost(sr, host) {
			return datamodel.ErrVMRequiresSR(ref, sr)
		}
	}
	if net := s.networkMissing(rec, host); net != "" {
		return datamodel.ErrVMRequiresNetwork(ref, net)
	}
	if needsHVM(rec) && !slices.ContainsFunc(hrec.Capabilities, func(c string) bool { return strings.Contains(c, "hvm") }) {
		return datamodel.ErrVMHVMRequired(ref)
	}
	if pcpus := s.hostPCPUs(ctx, host, hrec); pcpus > 0 && rec.VCPUsMax > pcpus {
		return datamodel.ErrHostNotEnoughPcpus(strconv.FormatInt(rec.VCPUsMax, 10), strconv.FormatInt(pcpus, 10))
	}
	if vmPowerState(rec.PowerState).Active() {
		return nil
	}
	if host == s.hostRef {
		if _, err := s.cfg.Backend.Host(ctx); err != nil {
			return backendError(nil, ref, err)
		}
	}
	if needed, free := s.vmStartMemory(rec), s.hostFreeMemory(ctx, host); needed > free {
		return datamodel.ErrHostNotEnoughFreeMemory(strconv.FormatInt(needed, 10), strconv.FormatInt(free, 10))
	}
	return nil
}

// validateBootParams is xapi's validate_basic_parameters: VCPUs_max and
// VCPUs_at_startup at least 1 (INVALID_VALUE [field, value]) and
// VCPUs_at_startup ≤ VCPUs_max (VALUE_NOT_SUPPORTED [field, value, reason]);
// memory limits that can be coerced into order (MEMORY_CONSTRAINT_VIOLATION,
// sent with no parameters as xapi does: static_max ≥ static_min and
// dynamic_max ≥ dynamic_min); HVM_shadow_multiplier ≥ 1 (INVALID_VALUE);
// and an actions_after_crash the server can honour (VALUE_NOT_SUPPORTED).
func validateBootParams(rec *datamodel.VMRecord) error {
	switch {
	case rec.VCPUsMax < 1:
		return datamodel.ErrInvalidValue("VCPUs_max", strconv.FormatInt(rec.VCPUsMax, 10))
	case rec.VCPUsAtStartup < 1:
		return datamodel.ErrInvalidValue("VCPUs-at-startup", strconv.FormatInt(rec.VCPUsAtStartup, 10))
	case rec.VCPUsAtStartup > rec.VCPUsMax:
		return datamodel.ErrValueNotSupported("VCPUs-at-startup", strconv.FormatInt(rec.VCPUsAtStartup, 10), "value greater than VCPUs-max")
	case rec.MemoryStaticMax < rec.MemoryStaticMin || rec.MemoryDynamicMax < rec.MemoryDynamicMin:
		return &datamodel.Error{Code: datamodel.CodeMemoryConstraintViolation, Params: []string{}}
	case rec.HVMShadowMultiplier < 1:
		return datamodel.ErrInvalidValue("HVM_shadow_multiplier", ocamlFloat(rec.HVMShadowMultiplier))
	}
	const field = "VM.actions_after_crash"
	switch v := rec.ActionsAfterCrash; v {
	case datamodel.OnCrashBehaviourRenameRestart:
		return datamodel.ErrValueNotSupported(field, string(v), "option would leak a domain; VMs and not domains are managed by this API")
	case datamodel.OnCrashBehaviourCoredumpAndDestroy, datamodel.OnCrashBehaviourCoredumpAndRestart:
		if needsHVM(rec) {
			return datamodel.ErrValueNotSupported(field, string(v), "cannot invoke a coredump of an HVM or PV-in-PVH domain")
		}
	}
	return nil
}

// ocamlFloat formats f as OCaml's string_of_float does ("%.12g", with a
// trailing "." when that looks like an integer).
func ocamlFloat(f float64) string {
	out := strconv.FormatFloat(f, 'g', 12, 64)
	if !strings.ContainsAny(out, ".eEn") {
		out += "."
	}
	return out
}

// needsHVM reports whether the VM boots as an HVM or PV-in-PVH guest, which
// needs a host with hardware virtualisation.
func needsHVM(rec *datamodel.VMRecord) bool {
	return isHVM(rec) || rec.DomainType == datamodel.DomainTypePVInPvh
}

// networkMissing returns the network of one of the VM's VIFs that has PIFs
// but none on host, or "".
func (s *Server) networkMissing(rec *datamodel.VMRecord, host datamodel.HostRef) string {
	for _, vif := range rec.VIFs {
		vo, ok := s.store.Get(datamodel.VIFClass, string(vif))
		if !ok {
			continue
		}
		net := string(vo.(*datamodel.VIFRecord).Network)
		no, ok := s.store.Get(datamodel.NetworkClass, net)
		if !ok || len(no.(*datamodel.NetworkRecord).PIFs) == 0 {
			continue
		}
		if !slices.ContainsFunc(no.(*datamodel.NetworkRecord).PIFs, func(pif datamodel.PIFRef) bool {
			p, ok := s.store.Get(datamodel.PIFClass, string(pif))
			return ok && p.(*datamodel.PIFRecord).Host == host
		}) {
			return net
		}
	}
	return ""
}

// hostPCPUs is the number of physical CPUs VMs can use on host: the
// backend's count here, cpu_info:cpu_count elsewhere (0: unknown).
func (s *Server) hostPCPUs(ctx context.Context, host datamodel.HostRef, hrec *datamodel.HostRecord) int64 {
	if host == s.hostRef && s.cfg.Backend != nil {
		if info, err := s.cfg.Backend.Host(ctx); err == nil {
			return int64(info.CPUs)
		}
	}
	n, _ := strconv.ParseInt(hrec.CPUInfo["cpu_count"], 10, 64)
	return n
}

// srOnHost reports whether sr has a PBD on host.
func (s *Server) srOnHost(sr string, host datamodel.HostRef) bool {
	o, ok := s.store.Get(datamodel.SRClass, sr)
	if !ok {
		return false
	}
	for _, pbd := range o.(*datamodel.SRRecord).PBDs {
		if p, ok := s.store.Get(datamodel.PBDClass, string(pbd)); ok && p.(*datamodel.PBDRecord).Host == host {
			return true
		}
	}
	return false
}

func (m *vmMessages) AssertCanBootHere(ctx context.Context, call *Call, self datamodel.VMRef, host datamodel.HostRef) error {
	if m.s.cfg.Backend == nil {
		return errNotImplemented(call.Method.Name)
	}
	o, err := m.s.lookup(datamodel.VMClass, self)
	if err != nil {
		return err
	}
	if _, err := m.s.lookup(datamodel.HostClass, host); err != nil {
		return err
	}
	return m.s.assertCanBootHere(ctx, string(self), o.(*datamodel.VMRecord), host)
}

// GetPossibleHosts lists the hosts the VM could boot on: this host, if
// VM.assert_can_boot_here passes.
func (m *vmMessages) GetPossibleHosts(ctx context.Context, call *Call, vm datamodel.VMRef) ([]datamodel.HostRef, error) {
	if m.s.cfg.Backend == nil {
		return nil, errNotImplemented(call.Method.Name)
	}
	o, err := m.s.lookup(datamodel.VMClass, vm)
	if err != nil {
		return nil, err
	}
	out := []datamodel.HostRef{}
	for _, e := range m.s.store.List(datamodel.HostClass) {
		if m.s.assertCanBootHere(ctx, string(vm), o.(*datamodel.VMRecord), datamodel.HostRef(e.Ref)) == nil {
			out = append(out, datamodel.HostRef(e.Ref))
		}
	}
	return out, nil
}

// Device positions a VM may use: disks 0–254 (0–3 for an HVM guest without
// PV drivers, which only has emulated IDE), NICs 0–6.
const (
	maxVBDDevicePV  = 254
	maxVBDDeviceHVM = 3
	maxVIFDevice    = 6
)

func (m *vmMessages) GetAllowedVBDDevices(ctx context.Context, call *Call, vm datamodel.VMRef) ([]string, error) {
	o, err := m.s.lookup(datamodel.VMClass, vm)
	if err != nil {
		return nil, err
	}
	rec := o.(*datamodel.VMRecord)
	top := maxVBDDevicePV
	if isHVM(rec) {
		top = maxVBDDeviceHVM
		if g, ok := m.s.store.Get(datamodel.VMGuestMetricsClass, string(rec.GuestMetrics)); ok && g.(*datamodel.VMGuestMetricsRecord).PVDriversDetected {
			top = maxVBDDevicePV
		}
	}
	used := map[string]bool{}
	for _, vbd := range rec.VBDs {
		if b, ok := m.s.store.Get(datamodel.VBDClass, string(vbd)); ok {
			used[b.(*datamodel.VBDRecord).Userdevice] = true
		}
	}
	return freeDevices(top, used), nil
}

func (m *vmMessages) GetAllowedVIFDevices(ctx context.Context, call *Call, vm datamodel.VMRef) ([]string, error) {
	o, err := m.s.lookup(datamodel.VMClass, vm)
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for _, vif := range o.(*datamodel.VMRecord).VIFs {
		if v, ok := m.s.store.Get(datamodel.VIFClass, string(vif)); ok {
			used[v.(*datamodel.VIFRecord).Device] = true
		}
	}
	return freeDevices(maxVIFDevice, used), nil
}

func freeDevices(top int, used map[string]bool) []string {
	out := []string{}
	for i := 0; i <= top; i++ {
		if d := strconv.Itoa(i); !used[d] {
			out = append(out, d)
		}
	}
	return out
}

// devicesAttached makes the VM's VBDs and VIFs attached while its domain is
// active and detached otherwise, recomputing their allowed operations.
func (e *vmEditor) devicesAttached(active bool) {
	s := e.s
	for _, ref := range e.rec.VBDs {
		o, ok := s.store.Get(datamodel.VBDClass, string(ref))
		if !ok {
			continue
		}
		r := o.Clone().(*datamodel.VBDRecord)
		e.list = setObj(e.list, datamodel.VBDClass, string(ref), r, "currently_attached", active)
		e.list = setObj(e.list, datamodel.VBDClass, string(ref), r, "allowed_operations", vbdAllowedOperations(r, e.rec))
	}
	for _, ref := range e.rec.VIFs {
		o, ok := s.store.Get(datamodel.VIFClass, string(ref))
		if !ok {
			continue
		}
		r := o.Clone().(*datamodel.VIFRecord)
		e.list = setObj(e.list, datamodel.VIFClass, string(ref), r, "currently_attached", active)
		e.list = setObj(e.list, datamodel.VIFClass, string(ref), r, "allowed_operations", vifAllowedOperations(r, e.rec))
	}
}

// suspendImage gives a suspended VM a suspend VDI (the record of its memory
// image, sized memory_static_max and fully written, on the pool's
// suspend_image_SR) and removes it when the VM leaves Suspended. The image
// is charged to the SR's virtual_allocation and physical_utilisation while
// it exists (through chargeSR: other writes of the same batch may charge the
// SR too).
func (e *vmEditor) suspendImage(suspended bool) {
	s := e.s
	cur := string(e.rec.SuspendVDI)
	old, has := s.store.Get(datamodel.VDIClass, cur)
	switch {
	case suspended && !has:
		sr := s.suspendSR()
		if sr == "" {
			return
		}
		ref := datamodel.NewRef()
		v := s.newVDI("Suspend image of "+e.rec.NameLabel, e.rec.MemoryStaticMax, datamodel.VDITypeSuspend, sr, "")
		v.VBDs = []datamodel.VBDRef{}
		v.PhysicalUtilisation = v.VirtualSize
		e.list = append(e.list, store.Create(ref, v), mustSetAdd(datamodel.SRClass, sr, "VDIs", datamodel.VDIRef(ref)))
		e.chargeSR(sr, v.VirtualSize, v.PhysicalUtilisation)
		e.set("suspend_VDI", datamodel.VDIRef(ref))
	case !suspended && has:
		v := old.(*datamodel.VDIRecord)
		sr := string(v.SR)
		e.list = append(e.list, store.Delete(datamodel.VDIClass, cur))
		if _, ok := s.store.Get(datamodel.SRClass, sr); ok {
			e.list = append(e.list, setRemoveOp(datamodel.SRClass, sr, "VDIs", datamodel.VDIRef(cur)))
			e.chargeSR(sr, -v.VirtualSize, -v.PhysicalUtilisation)
		}
		e.set("suspend_VDI", datamodel.VDIRef(datamodel.NullRef))
	}
}

// suspendSR is the pool's suspend_image_SR, or its default SR, or "".
func (s *Server) suspendSR() string {
	for _, p := range s.store.List(datamodel.PoolClass) {
		pool := p.Obj.(*datamodel.PoolRecord)
		for _, sr := range []datamodel.SRRef{pool.SuspendImageSR, pool.DefaultSR} {
			if _, ok := s.store.Get(datamodel.SRClass, string(sr)); ok {
				return string(sr)
			}
		}
	}
	return ""
}
