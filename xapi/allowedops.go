package xapi

import (
	"context"
	"slices"
	"sync"

	"github.com/xapi-go/xapi-go/backends"
	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

// VM allowed_operations: what XenCenter and Xen Orchestra enable their
// buttons from. vmAllowedOperations is a pure function of the record (and of
// what the backend supports); every lifecycle write recomputes it in the
// same batch as the change it follows.

// powerOps maps the backend's operations to the VM operations they implement
// (start_on, resume_on and shutdown share the legality of start, resume and
// hard_shutdown).
var powerOps = []struct {
	op  datamodel.VMOperations
	bop backends.Op
}{
	{datamodel.VMOperationsStart, backends.OpStart},
	{datamodel.VMOperationsStartOn, backends.OpStart},
	{datamodel.VMOperationsPause, backends.OpPause},
	{datamodel.VMOperationsUnpause, backends.OpUnpause},
	{datamodel.VMOperationsCleanShutdown, backends.OpCleanShutdown},
	{datamodel.VMOperationsCleanReboot, backends.OpCleanReboot},
	{datamodel.VMOperationsHardShutdown, backends.OpHardShutdown},
	{datamodel.VMOperationsHardReboot, backends.OpHardReboot},
	{datamodel.VMOperationsSuspend, backends.OpSuspend},
	{datamodel.VMOperationsResume, backends.OpResume},
	{datamodel.VMOperationsResumeOn, backends.OpResume},
	{datamodel.VMOperationsShutdown, backends.OpHardShutdown},
}

// PowerOperations lists the VM operations that change the power state, in
// the model's enum order.
func PowerOperations() []datamodel.VMOperations {
	out := make([]datamodel.VMOperations, len(powerOps))
	for i, p := range powerOps {
		out[i] = p.op
	}
	return out
}

// Record operations allowed besides the power operations, per state.
var (
	// templateOps: a template is cloned, copied, provisioned, exported or
	// destroyed and edited, never started.
	templateOps = []datamodel.VMOperations{
		datamodel.VMOperationsClone, datamodel.VMOperationsCopy, datamodel.VMOperationsProvision,
		datamodel.VMOperationsExport, datamodel.VMOperationsMetadataExport,
		datamodel.VMOperationsChangingDynamicRange, datamodel.VMOperationsChangingStaticRange,
		datamodel.VMOperationsChangingMemoryLimits, datamodel.VMOperationsChangingShadowMemory,
		datamodel.VMOperationsChangingVCPUs, datamodel.VMOperationsChangingNVRAM,
		datamodel.VMOperationsDestroy,
	}
	// controlDomainOps: dom0 only has its memory and data sources managed.
	controlDomainOps = []datamodel.VMOperations{
		datamodel.VMOperationsChangingMemoryLive, datamodel.VMOperationsChangingDynamicRange,
		datamodel.VMOperationsDataSourceOp, datamodel.VMOperationsMetadataExport,
	}
	haltedOps = []datamodel.VMOperations{
		datamodel.VMOperationsSnapshot, datamodel.VMOperationsClone, datamodel.VMOperationsCopy,
		datamodel.VMOperationsProvision, datamodel.VMOperationsExport, datamodel.VMOperationsMetadataExport,
		datamodel.VMOperationsMakeIntoTemplate, datamodel.VMOperationsDestroy,
		datamodel.VMOperationsChangingDynamicRange, datamodel.VMOperationsChangingStaticRange,
		datamodel.VMOperationsChangingMemoryLimits, datamodel.VMOperationsChangingShadowMemory,
		datamodel.VMOperationsChangingVCPUs, datamodel.VMOperationsChangingNVRAM,
		datamodel.VMOperationsCreateVTPM,
	}
	runningOps = []datamodel.VMOperations{
		datamodel.VMOperationsSnapshot, datamodel.VMOperationsCheckpoint, datamodel.VMOperationsMetadataExport,
		datamodel.VMOperationsSendSysrq, datamodel.VMOperationsSendTrigger, datamodel.VMOperationsDataSourceOp,
		datamodel.VMOperationsChangingShadowMemoryLive,
	}
	pausedOps = []datamodel.VMOperations{
		datamodel.VMOperationsMetadataExport, datamodel.VMOperationsDataSourceOp,
	}
	suspendedOps = []datamodel.VMOperations{
		datamodel.VMOperationsSnapshot, datamodel.VMOperationsExport, datamodel.VMOperationsMetadataExport,
	}
)

// vmPowerState converts the model's power state to the backend's.
func vmPowerState(p datamodel.VMPowerState) backends.PowerState {
	switch p {
	case datamodel.VMPowerStateRunning:
		return backends.Running
	case datamodel.VMPowerStatePaused:
		return backends.Paused
	case datamodel.VMPowerStateSuspended:
		return backends.Suspended
	}
	return backends.Halted
}

// modelPowerState converts the backend's power state to the model's.
func modelPowerState(p backends.PowerState) datamodel.VMPowerState {
	switch p {
	case backends.Running:
		return datamodel.VMPowerStateRunning
	case backends.Paused:
		return datamodel.VMPowerStatePaused
	case backends.Suspended:
		return datamodel.VMPowerStateSuspended
	}
	return datamodel.VMPowerStateHalted
}

// vmAllowedOperations computes a VM's allowed_operations: nothing while an
// operation runs (operations on one VM are serialised); for templates the
// record operations; for the control domain its few memory operations; and
// otherwise the power operations legal in the power state that the backend
// supports, plus the record operations xapi allows in that state. Operations
// in blocked_operations are left out. The result is in the enum's order.
func vmAllowedOperations(rec *datamodel.VMRecord, f backends.Features) []datamodel.VMOperations {
	ops := []datamodel.VMOperations{}
	for _, op := range rec.CurrentOperations {
		if !sharedOps[op] {
			return ops // an exclusive operation runs
		}
	}
	switch {
	case rec.IsControlDomain:
		ops = append(ops, controlDomainOps...)
	case rec.IsATemplate || rec.IsASnapshot:
		ops = append(ops, templateOps...)
		if rec.IsASnapshot {
			ops = append(ops, datamodel.VMOperationsRevert) // XenCenter's Revert button
		}
	default:
		state := vmPowerState(rec.PowerState)
		for _, p := range powerOps {
			if backends.OpAllowed(p.bop, state) && f.Supports(p.bop) {
				ops = append(ops, p.op)
			}
		}
		switch state {
		case backends.Halted:
			ops = append(ops, haltedOps...)
			if len(rec.VTPMs) > 0 { // one VTPM per VM (VTPM_MAX_AMOUNT_REACHED)
				ops = slices.DeleteFunc(ops, func(o datamodel.VMOperations) bool { return o == datamodel.VMOperationsCreateVTPM })
			}
		case backends.Running:
			ops = append(ops, runningOps...)
			if f.LiveMemory {
				ops = append(ops, datamodel.VMOperationsChangingDynamicRange, datamodel.VMOperationsChangingMemoryLive)
			}
			if f.LiveVCPUs {
				ops = append(ops, datamodel.VMOperationsChangingVCPUsLive)
			}
		case backends.Paused:
			ops = append(ops, pausedOps...)
			if f.LiveMemory {
				ops = append(ops, datamodel.VMOperationsChangingDynamicRange)
			}
		case backends.Suspended:
			ops = append(ops, suspendedOps...)
		}
	}
	shared := len(rec.CurrentOperations) > 0
	ops = slices.DeleteFunc(ops, func(op datamodel.VMOperations) bool {
		_, blocked := rec.BlockedOperations[op]
		// while clones or copies run, only more of them may start
		return blocked || (shared && !sharedOps[op])
	})
	slices.SortFunc(ops, func(a, b datamodel.VMOperations) int { return vmOperationOrder[a] - vmOperationOrder[b] })
	return slices.Compact(ops)
}

// vmOperationOrder is each vm_operations value's position in the model, used
// to keep allowed_operations in a stable order.
var vmOperationOrder = func() map[datamodel.VMOperations]int {
	out := map[datamodel.VMOperations]int{}
	for i, s := range datamodel.EnumValues["vm_operations"] {
		out[datamodel.VMOperations(s)] = i
	}
	return out
}()

// sameOps reports whether a and b hold the same operations, in any order.
func sameOps(a, b []datamodel.VMOperations) bool {
	if len(a) != len(b) {
		return false
	}
	for _, op := range a {
		if !slices.Contains(b, op) {
			return false
		}
	}
	return true
}

// followAllowedOperations keeps allowed_operations right after writes that do
// not go through the lifecycle code — VM.create, VM.set_is_a_template,
// blocked_operations edits: it watches the store's changes and recomputes the
// field of every VM whose value is stale and that no operation holds. The
// lifecycle code recomputes it synchronously in its own batches.
func (s *Server) followAllowedOperations(ctx context.Context) {
	var (
		mu      sync.Mutex
		pending = map[string]bool{}
		wake    = make(chan struct{}, 1)
	)
	stale := func(o datamodel.Object) bool {
		rec, ok := o.(*datamodel.VMRecord)
		return ok && !sameOps(rec.AllowedOperations, vmAllowedOperations(rec, s.vms.features))
	}
	enqueue := func(ref string) {
		mu.Lock()
		pending[ref] = true
		mu.Unlock()
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	cancel := s.store.Subscribe(func(cs *store.ChangeSet) {
		for i := range cs.Changes {
			ch := &cs.Changes[i]
			if ch.Class == datamodel.VMClass && ch.Kind != store.Del && stale(ch.Obj) {
				enqueue(ch.Ref)
			}
		}
	})
	defer cancel()
	for _, e := range s.store.List(datamodel.VMClass) {
		if stale(e.Obj) {
			enqueue(e.Ref)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
		mu.Lock()
		refs := pending
		pending = map[string]bool{}
		mu.Unlock()
		for ref := range refs {
			s.refreshAllowedOperations(ctx, ref)
		}
	}
}

// refreshAllowedOperations recomputes one VM's allowed_operations unless an
// operation holds the VM (it writes the field itself when it ends).
func (s *Server) refreshAllowedOperations(ctx context.Context, ref string) {
	if !s.store.IsLeader() {
		return
	}
	s.vms.mu.Lock()
	defer s.vms.mu.Unlock()
	if _, busy := s.vms.busy[ref]; busy {
		return
	}
	o, ok := s.store.Get(datamodel.VMClass, ref)
	if !ok {
		return
	}
	rec := o.(*datamodel.VMRecord)
	if len(rec.CurrentOperations) > 0 {
		return // an operation on another host holds it
	}
	allowed := vmAllowedOperations(rec, s.vms.features)
	if sameOps(allowed, rec.AllowedOperations) {
		return
	}
	if err := s.applyAsLeader(ctx, mustSet(datamodel.VMClass, ref, "allowed_operations", allowed)); err != nil {
		s.log.Debug("allowed_operations not updated", "vm", ref, "err", err)
	}
}
