package xapi

import (
	"context"
	"errors"
	"slices"

	"github.com/xapi-go/xapi-go/backends"
	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

// destroyVM implements VM.destroy: the VM must be Halted (templates are;
// snapshots, checkpoints included, may be destroyed in any power state),
// never the control domain. It removes the VM record, its
// VBDs, VIFs, consoles, VM_metrics and VM_guest_metrics, and every reference
// other records hold to them (VDI.VBDs, network.VIFs, host.resident_VMs, the
// parent's children, snapshot links) in one batch. Disks (VDIs) are kept, as
// xapi keeps them. The backend forgets the VM's domain first, if it knows it.
func destroyVM(s *Server, ctx context.Context, call *Call, ref string) error {
	o, ok := s.store.Get(datamodel.VMClass, ref)
	if !ok {
		return datamodel.ErrHandleInvalid(datamodel.VMClass.Name, ref)
	}
	rec := o.(*datamodel.VMRecord)
	if rec.IsControlDomain {
		return datamodel.ErrOperationNotAllowed("Operations on the control domain are not allowed")
	}
	if reason, ok := rec.BlockedOperations[datamodel.VMOperationsDestroy]; ok {
		return datamodel.ErrOperationBlocked(ref, reason)
	}
	if err := s.vms.begin(ref, datamodel.VMOperationsDestroy, operationRef(call)); err != nil {
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
	if !rec.IsASnapshot && rec.PowerState != datamodel.VMPowerStateHalted {
		return datamodel.ErrVMBadPowerState(ref, "halted", vmPowerState(rec.PowerState).Lower())
	}
	if b := s.cfg.Backend; b != nil && !rec.IsASnapshot {
		if err := b.Destroy(ctx, rec.UUID); err != nil && !errors.Is(err, backends.ErrNotFound) {
			return backendError(call, ref, err)
		}
	}
	// The batch is built under the lock device creation takes, so that a
	// VBD or VIF created meanwhile goes with the VM.
	s.vms.mu.Lock()
	defer s.vms.mu.Unlock()
	if o, ok = s.store.Get(datamodel.VMClass, ref); !ok {
		return datamodel.ErrHandleInvalid(datamodel.VMClass.Name, ref)
	}
	return s.apply(context.WithoutCancel(ctx), s.vmDestroyOps(ref, o.(*datamodel.VMRecord))...)
}

// vmDestroyOps is the batch that removes the VM ref and what belongs to it.
func (s *Server) vmDestroyOps(ref string, rec *datamodel.VMRecord) []store.Op {
	b := &refBatch{s: s}
	vm := datamodel.VMRef(ref)
	for _, vbd := range rec.VBDs {
		b.vbdGone(string(vbd))
	}
	for _, vif := range rec.VIFs {
		b.vifGone(string(vif))
	}
	for _, c := range rec.Consoles {
		b.del(datamodel.ConsoleClass, string(c))
	}
	// a VM's VTPMs and their secret contents go with it, as in xapi
	for _, v := range rec.VTPMs {
		if o, ok := s.store.Get(datamodel.VTPMClass, string(v)); ok {
			b.del(datamodel.SecretClass, string(o.(*datamodel.VTPMRecord).Contents))
		}
		b.del(datamodel.VTPMClass, string(v))
	}
	b.del(datamodel.VMMetricsClass, string(rec.Metrics))
	b.del(datamodel.VMGuestMetricsClass, string(rec.GuestMetrics))
	for _, e := range s.store.List(datamodel.HostClass) {
		if slices.Contains(e.Obj.(*datamodel.HostRecord).ResidentVMs, vm) {
			b.setRemove(datamodel.HostClass, e.Ref, "resident_VMs", vm)
		}
	}
	// Children move to the destroyed VM's parent.
	parent := datamodel.VMRef(datamodel.NullRef)
	if _, ok := s.store.Get(datamodel.VMClass, string(rec.Parent)); ok && rec.Parent != vm {
		parent = rec.Parent
		b.setRemove(datamodel.VMClass, string(parent), "children", vm)
	}
	for _, child := range rec.Children {
		if _, ok := s.store.Get(datamodel.VMClass, string(child)); ok && child != vm {
			b.set(datamodel.VMClass, string(child), "parent", parent)
			if parent != datamodel.VMRef(datamodel.NullRef) {
				b.setAdd(datamodel.VMClass, string(parent), "children", child)
			}
		}
	}
	if rec.IsASnapshot {
		b.setRemove(datamodel.VMClass, string(rec.SnapshotOf), "snapshots", vm)
	}
	for _, snap := range rec.Snapshots {
		b.set(datamodel.VMClass, string(snap), "snapshot_of", datamodel.VMRef(datamodel.NullRef))
	}
	b.del(datamodel.VMClass, ref) // last: earlier writes may name it
	return b.ops
}

// refBatch builds a batch of writes that skips records that do not exist
// (dangling references are not an error when cleaning up).
type refBatch struct {
	s   *Server
	ops []store.Op
}

func (b *refBatch) exists(c *datamodel.Class, ref string) bool {
	_, ok := b.s.store.Get(c, ref)
	return ok
}

func (b *refBatch) del(c *datamodel.Class, ref string) {
	if b.exists(c, ref) {
		b.ops = append(b.ops, store.Delete(c, ref))
	}
}

func (b *refBatch) set(c *datamodel.Class, ref, field string, v any) {
	if b.exists(c, ref) {
		b.ops = append(b.ops, mustSet(c, ref, field, v))
	}
}

func (b *refBatch) setAdd(c *datamodel.Class, ref, field string, v any) {
	if b.exists(c, ref) {
		b.ops = append(b.ops, mustSetAdd(c, ref, field, v))
	}
}

func (b *refBatch) setRemove(c *datamodel.Class, ref, field string, v any) {
	if b.exists(c, ref) {
		op, err := store.SetRemove(c, ref, field, v)
		if err != nil {
			panic(err)
		}
		b.ops = append(b.ops, op)
	}
}

// vbdGone removes a VBD, its metrics and its VDI's reference to it.
func (b *refBatch) vbdGone(ref string) {
	o, ok := b.s.store.Get(datamodel.VBDClass, ref)
	if !ok {
		return
	}
	r := o.(*datamodel.VBDRecord)
	b.del(datamodel.VBDClass, ref)
	b.del(datamodel.VBDMetricsClass, string(r.Metrics))
	b.setRemove(datamodel.VDIClass, string(r.VDI), "VBDs", datamodel.VBDRef(ref))
}

// vifGone removes a VIF, its metrics and its network's reference to it.
func (b *refBatch) vifGone(ref string) {
	o, ok := b.s.store.Get(datamodel.VIFClass, ref)
	if !ok {
		return
	}
	r := o.(*datamodel.VIFRecord)
	b.del(datamodel.VIFClass, ref)
	b.del(datamodel.VIFMetricsClass, string(r.Metrics))
	b.setRemove(datamodel.NetworkClass, string(r.Network), "VIFs", datamodel.VIFRef(ref))
}
