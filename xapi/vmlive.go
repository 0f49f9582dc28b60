package xapi

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/xapi-go/xapi-go/backends"
	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

// Memory and vCPU settings of a VM. Each setter runs as a VM operation
// (changing_dynamic_range, changing_static_range, changing_memory_limits,
// changing_VCPUs, changing_VCPUs_live) like the power operations: it claims
// the VM, checks the power state (VM_BAD_POWER_STATE [vm, expected,
// actual]), records the operation in current_operations, and writes the new
// values, the backend's resulting domain state and the end of the operation
// in one batch.
//
// Memory limits must satisfy static_min ≤ dynamic_min ≤ dynamic_max ≤
// static_max; otherwise the call fails with MEMORY_CONSTRAINT_VIOLATION_ORDER
// (no parameters), as xapi does on a pool with dynamic memory control. A
// running VM's new dynamic range goes to the backend as its balloon target:
// the VM gets dynamic_max when the host has the memory (what xapi's
// ballooning daemon does on an uncontended host), or the change fails with
// HOST_NOT_ENOUGH_FREE_MEMORY and nothing is written. The control domain is
// not run by the backend; its settings are not changed here.

// vcpuLimits are the INVALID_VALUE reasons xapi gives for vCPU counts.
const (
	vcpuStartupLimit = "VCPU values must satisfy: 0 < VCPUs_at_startup ≤ VCPUs_max"
	vcpuLiveLimit    = "VCPU values must satisfy: 0 < VCPUs ≤ VCPUs_max"
)

// vmSettingOp runs one settings operation on vm, legal in the power states
// listed (templates and snapshots count as halted). body sees the current
// record and an editor whose writes, with body's own ops, are applied in the
// batch that ends the operation; nothing body wrote is applied if it fails.
func (s *Server) vmSettingOp(ctx context.Context, call *Call, vm datamodel.VMRef, op datamodel.VMOperations, states []backends.PowerState,
	body func(ctx context.Context, rec *datamodel.VMRecord, e *vmEditor) ([]store.Op, error)) error {
	ref := string(vm)
	o, ok := s.store.Get(datamodel.VMClass, ref)
	if !ok {
		return datamodel.ErrHandleInvalid(datamodel.VMClass.Name, ref)
	}
	rec := o.(*datamodel.VMRecord)
	if rec.IsControlDomain {
		return datamodel.ErrOperationNotAllowed("Operations on the control domain are not allowed")
	}
	if reason, ok := rec.BlockedOperations[op]; ok {
		return datamodel.ErrOperationBlocked(ref, reason)
	}
	opRef := operationRef(call)
	if err := s.vms.begin(ref, op, opRef); err != nil {
		return err
	}
	defer func() {
		s.vms.mu.Lock()
		s.vms.endLocked(ref)
		s.vms.mu.Unlock()
	}()
	if o, ok = s.store.Get(datamodel.VMClass, ref); !ok {
		return datamodel.ErrHandleInvalid(datamodel.VMClass.Name, ref)
	}
	rec = o.(*datamodel.VMRecord)
	state := vmPowerState(rec.PowerState)
	if !slices.Contains(states, state) {
		bp := &backends.BadPowerStateError{Expected: states, Actual: state}
		return datamodel.ErrVMBadPowerState(ref, bp.ExpectedString(), state.Lower())
	}
	if state.Active() && s.cfg.Backend == nil {
		return errNotImplemented(call.Method.Name)
	}
	if err := s.markOperation(ctx, ref, rec, opRef, op); err != nil {
		return err
	}
	if o, ok = s.store.Get(datamodel.VMClass, ref); !ok {
		return datamodel.ErrHandleInvalid(datamodel.VMClass.Name, ref)
	}
	rec = o.(*datamodel.VMRecord)
	e := s.vmEdit(ref, rec)
	ops, err := body(ctx, rec, e)
	if err != nil {
		e = s.vmEdit(ref, rec)
		ops = nil
	}
	e.clearOp(opRef)
	s.vms.mu.Lock()
	aerr := s.apply(context.WithoutCancel(ctx), append(ops, e.ops()...)...)
	s.vms.mu.Unlock()
	if aerr != nil && err == nil {
		err = aerr
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

// liveState reads the backend's view of the VM's domain after a live change
// into e, with the host's free memory.
func (s *Server) liveState(ctx context.Context, rec *datamodel.VMRecord, e *vmEditor) []store.Op {
	ctx = context.WithoutCancel(ctx)
	if st, err := s.cfg.Backend.State(ctx, rec.UUID); err == nil {
		e.domainState(st)
	}
	return s.hostMemoryOp(ctx)
}

// memoryLimits is a VM's four memory settings.
type memoryLimits struct{ staticMin, dynamicMin, dynamicMax, staticMax int64 }

func limitsOf(rec *datamodel.VMRecord) memoryLimits {
	return memoryLimits{rec.MemoryStaticMin, rec.MemoryDynamicMin, rec.MemoryDynamicMax, rec.MemoryStaticMax}
}

// check enforces static_min ≤ dynamic_min ≤ dynamic_max ≤ static_max.
func (l memoryLimits) check() error {
	if l.staticMin < 0 || l.staticMin > l.dynamicMin || l.dynamicMin > l.dynamicMax || l.dynamicMax > l.staticMax {
		return datamodel.ErrMemoryConstraintViolationOrder()
	}
	return nil
}

// setAll writes l to the VM record being edited.
func (l memoryLimits) setAll(e *vmEditor) {
	e.set("memory_static_min", l.staticMin)
	e.set("memory_dynamic_min", l.dynamicMin)
	e.set("memory_dynamic_max", l.dynamicMax)
	e.set("memory_static_max", l.staticMax)
}

var (
	haltedOnly  = []backends.PowerState{backends.Halted}
	runningOnly = []backends.PowerState{backends.Running}
)

// setDynamicRange implements VM.set_memory_dynamic_range and its one-bound
// variants; pick chooses the new (min, max) from the current record.
func (s *Server) setDynamicRange(ctx context.Context, call *Call, vm datamodel.VMRef, pick func(rec *datamodel.VMRecord) (int64, int64)) error {
	states := []backends.PowerState{backends.Halted}
	if s.vms.features.LiveMemory {
		states = append(states, backends.Running, backends.Paused)
	}
	return s.vmSettingOp(ctx, call, vm, datamodel.VMOperationsChangingDynamicRange, states,
		func(ctx context.Context, rec *datamodel.VMRecord, e *vmEditor) ([]store.Op, error) {
			l := limitsOf(rec)
			l.dynamicMin, l.dynamicMax = pick(rec)
			if err := l.check(); err != nil {
				return nil, err
			}
			l.setAll(e)
			if !vmPowerState(rec.PowerState).Active() {
				return nil, nil
			}
			err := s.cfg.Backend.SetMemoryTarget(ctx, rec.UUID, l.dynamicMax)
			if errors.Is(err, backends.ErrInvalid) {
				return nil, datamodel.ErrMemoryConstraintViolationOrder()
			}
			if err != nil {
				return nil, err
			}
			return s.liveState(ctx, rec, e), nil
		})
}

func (m *vmMessages) SetMemoryDynamicRange(ctx context.Context, call *Call, self datamodel.VMRef, min int64, max int64) error {
	return m.s.setDynamicRange(ctx, call, self, func(*datamodel.VMRecord) (int64, int64) { return min, max })
}

func (m *vmMessages) SetMemoryDynamicMin(ctx context.Context, call *Call, self datamodel.VMRef, value int64) error {
	return m.s.setDynamicRange(ctx, call, self, func(rec *datamodel.VMRecord) (int64, int64) { return value, rec.MemoryDynamicMax })
}

func (m *vmMessages) SetMemoryDynamicMax(ctx context.Context, call *Call, self datamodel.VMRef, value int64) error {
	return m.s.setDynamicRange(ctx, call, self, func(rec *datamodel.VMRecord) (int64, int64) { return rec.MemoryDynamicMin, value })
}

// setHaltedLimits implements the memory setters of a halted VM: op is the
// operation, pick computes the new limits from the current ones.
func (s *Server) setHaltedLimits(ctx context.Context, call *Call, vm datamodel.VMRef, op datamodel.VMOperations, pick func(l memoryLimits) memoryLimits) error {
	return s.vmSettingOp(ctx, call, vm, op, haltedOnly,
		func(ctx context.Context, rec *datamodel.VMRecord, e *vmEditor) ([]store.Op, error) {
			l := pick(limitsOf(rec))
			if err := l.check(); err != nil {
				return nil, err
			}
			l.setAll(e)
			return nil, nil
		})
}

func (m *vmMessages) SetMemoryStaticRange(ctx context.Context, call *Call, self datamodel.VMRef, min int64, max int64) error {
	return m.s.setHaltedLimits(ctx, call, self, datamodel.VMOperationsChangingStaticRange, func(l memoryLimits) memoryLimits {
		l.staticMin, l.staticMax = min, max
		return l
	})
}

func (m *vmMessages) SetMemoryStaticMin(ctx context.Context, call *Call, self datamodel.VMRef, value int64) error {
	return m.s.setHaltedLimits(ctx, call, self, datamodel.VMOperationsChangingStaticRange, func(l memoryLimits) memoryLimits {
		l.staticMin = value
		return l
	})
}

func (m *vmMessages) SetMemoryStaticMax(ctx context.Context, call *Call, self datamodel.VMRef, value int64) error {
	return m.s.setHaltedLimits(ctx, call, self, datamodel.VMOperationsChangingStaticRange, func(l memoryLimits) memoryLimits {
		l.staticMax = value
		return l
	})
}

func (m *vmMessages) SetMemoryLimits(ctx context.Context, call *Call, self datamodel.VMRef, staticMin int64, staticMax int64, dynamicMin int64, dynamicMax int64) error {
	return m.s.setHaltedLimits(ctx, call, self, datamodel.VMOperationsChangingMemoryLimits, func(memoryLimits) memoryLimits {
		return memoryLimits{staticMin, dynamicMin, dynamicMax, staticMax}
	})
}

// SetMemory gives a halted VM value bytes: static_max, dynamic_min and
// dynamic_max all become value, static_min stays.
func (m *vmMessages) SetMemory(ctx context.Context, call *Call, self datamodel.VMRef, value int64) error {
	return m.s.setHaltedLimits(ctx, call, self, datamodel.VMOperationsChangingMemoryLimits, func(l memoryLimits) memoryLimits {
		l.dynamicMin, l.dynamicMax, l.staticMax = value, value, value
		return l
	})
}

// SetVCPUsNumberLive changes the number of vCPUs of a running VM, within
// [1, VCPUs_max]; VCPUs_at_startup follows, as in xapi.
func (m *vmMessages) SetVCPUsNumberLive(ctx context.Context, call *Call, self datamodel.VMRef, nvcpu int64) error {
	s := m.s
	if _, err := s.existing(datamodel.VMClass, self); err != nil {
		return err
	}
	if s.cfg.Backend != nil && !s.vms.features.LiveVCPUs {
		return datamodel.ErrOperationNotAllowed("the host's hypervisor does not support " + string(datamodel.VMOperationsChangingVCPUsLive))
	}
	return s.vmSettingOp(ctx, call, self, datamodel.VMOperationsChangingVCPUsLive, runningOnly,
		func(ctx context.Context, rec *datamodel.VMRecord, e *vmEditor) ([]store.Op, error) {
			if nvcpu < 1 || nvcpu > rec.VCPUsMax {
				return nil, datamodel.ErrInvalidValue(vcpuLiveLimit, strconv.FormatInt(nvcpu, 10))
			}
			err := s.cfg.Backend.SetVCPUs(ctx, rec.UUID, int(nvcpu))
			if errors.Is(err, backends.ErrInvalid) {
				return nil, datamodel.ErrInvalidValue(vcpuLiveLimit, strconv.FormatInt(nvcpu, 10))
			}
			if err != nil {
				return nil, err
			}
			e.set("VCPUs_at_startup", nvcpu)
			return s.liveState(ctx, rec, e), nil
		})
}

// SetVCPUsMax sets the most vCPUs a halted VM may have; it must not be below
// VCPUs_at_startup.
func (m *vmMessages) SetVCPUsMax(ctx context.Context, call *Call, self datamodel.VMRef, value int64) error {
	return m.s.vmSettingOp(ctx, call, self, datamodel.VMOperationsChangingVCPUs, haltedOnly,
		func(ctx context.Context, rec *datamodel.VMRecord, e *vmEditor) ([]store.Op, error) {
			if value < 1 || value < rec.VCPUsAtStartup {
				return nil, datamodel.ErrInvalidValue(vcpuStartupLimit, strconv.FormatInt(value, 10))
			}
			e.set("VCPUs_max", value)
			return nil, nil
		})
}

// SetVCPUsAtStartup sets how many vCPUs a halted VM boots with, within
// [1, VCPUs_max].
func (m *vmMessages) SetVCPUsAtStartup(ctx context.Context, call *Call, self datamodel.VMRef, value int64) error {
	return m.s.vmSettingOp(ctx, call, self, datamodel.VMOperationsChangingVCPUs, haltedOnly,
		func(ctx context.Context, rec *datamodel.VMRecord, e *vmEditor) ([]store.Op, error) {
			if value < 1 || value > rec.VCPUsMax {
				return nil, datamodel.ErrInvalidValue(vcpuStartupLimit, strconv.FormatInt(value, 10))
			}
			e.set("VCPUs_at_startup", value)
			return nil, nil
		})
}

// Host evacuation. A VM prevents the evacuation of its host when it cannot
// be live-migrated elsewhere. The pool has one host, so there is never
// anywhere to go: as xapi does when no other enabled host exists, every VM
// resident on the host (running or paused; not the control domain) maps to
// [NO_HOSTS_AVAILABLE, vm]. Residency is read from the VMs' resident_on.

// evacuationBlockers maps each VM resident on host to why it cannot move.
func (s *Server) evacuationBlockers(host datamodel.HostRef) (map[datamodel.VMRef][]string, error) {
	if _, err := s.lookup(datamodel.HostClass, host); err != nil {
		return nil, err
	}
	out := map[datamodel.VMRef][]string{}
	for _, e := range s.store.List(datamodel.VMClass) {
		rec := e.Obj.(*datamodel.VMRecord)
		if rec.IsControlDomain || rec.ResidentOn != host {
			continue
		}
		out[datamodel.VMRef(e.Ref)] = []string{datamodel.CodeNoHostsAvailable, e.Ref}
	}
	return out, nil
}

func (m *hostMessages) GetVMsWhichPreventEvacuation(ctx context.Context, call *Call, self datamodel.HostRef) (map[datamodel.VMRef][]string, error) {
	return m.s.evacuationBlockers(self)
}

// AssertCanEvacuate fails with CANNOT_EVACUATE_HOST, whose one parameter
// lists the blockers as "code,params…" joined by "|" (xapi's encoding),
// when a VM cannot move.
func (m *hostMessages) AssertCanEvacuate(ctx context.Context, call *Call, host datamodel.HostRef) error {
	blockers, err := m.s.evacuationBlockers(host)
	if err != nil || len(blockers) == 0 {
		return err
	}
	list := make([]string, 0, len(blockers))
	for _, b := range blockers {
		list = append(list, strings.Join(b, ","))
	}
	slices.Sort(list)
	return datamodel.ErrCannotEvacuateHost(strings.Join(list, "|"))
}
