package xapi

import (
	"context"
	"slices"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

// vbdMessages implements the explicit messages of class VBD built so far.
//
// The backends attach a VM's disks when its domain is built and have no
// hotplug call, so plug and unplug record the device's state
// (currently_attached) for a running VM without changing the domain.
type vbdMessages struct {
	UnimplementedVBDMessages
	s *Server
}

// deviceWrite runs fn and applies the writes it returns in one batch,
// serialised with the other device and VM-state writes so that checks such
// as device uniqueness hold when the batch commits.
func (s *Server) deviceWrite(ctx context.Context, fn func() ([]store.Op, error)) error {
	s.vms.mu.Lock()
	defer s.vms.mu.Unlock()
	ops, err := fn()
	if err != nil {
		return err
	}
	return s.apply(context.WithoutCancel(ctx), ops...)
}

// vbdAllowedOperations computes a VBD's allowed_operations from its state and
// its VM's power state: plug or unplug only while the VM runs, insert or
// eject for CD drives.
func vbdAllowedOperations(r *datamodel.VBDRecord, vm *datamodel.VMRecord) []datamodel.VBDOperations {
	ops := []datamodel.VBDOperations{}
	if len(r.CurrentOperations) > 0 {
		return ops
	}
	if vm != nil && vm.PowerState == datamodel.VMPowerStateRunning {
		if r.CurrentlyAttached {
			if r.Unpluggable {
				ops = append(ops, datamodel.VBDOperationsUnplug)
			}
			ops = append(ops, datamodel.VBDOperationsUnplugForce)
		} else {
			ops = append(ops, datamodel.VBDOperationsPlug)
		}
	} else if vm != nil && vm.PowerState == datamodel.VMPowerStateHalted {
		ops = append(ops, datamodel.VBDOperationsAttach)
	}
	if r.Type == datamodel.VBDTypeCD {
		if r.Empty {
			ops = append(ops, datamodel.VBDOperationsInsert)
		} else {
			ops = append(ops, datamodel.VBDOperationsEject)
		}
	}
	return ops
}

// createVBD implements VBD.create: the VM must exist, the VDI too unless
// the VBD is an empty CD drive, CD drives are read-only, userdevice
// "autodetect" takes the lowest free position and a position in use fails
// with DEVICE_ALREADY_EXISTS [userdevice]. The VBD is added to VM.VBDs and
// VDI.VBDs in the same batch.
func createVBD(s *Server, ctx context.Context, call *Call, o datamodel.Object) (string, error) {
	r := o.(*datamodel.VBDRecord).Clone().(*datamodel.VBDRecord)
	ref := datamodel.NewRef()
	err := s.deviceWrite(ctx, func() ([]store.Op, error) {
		vo, ok := s.store.Get(datamodel.VMClass, string(r.VM))
		if !ok {
			return nil, datamodel.ErrHandleInvalid(datamodel.VMClass.Name, string(r.VM))
		}
		vm := vo.(*datamodel.VMRecord)
		if r.Type == datamodel.VBDTypeCD && r.Mode == datamodel.VBDModeRW {
			return nil, datamodel.ErrVBDCdsMustBeReadonly()
		}
		if r.Type == datamodel.VBDTypeCD && (r.Empty || r.VDI == datamodel.VDIRef(datamodel.NullRef) || r.VDI == "") {
			r.Empty = true
			r.VDI = datamodel.VDIRef(datamodel.NullRef)
		} else {
			r.Empty = false
			if _, ok := s.store.Get(datamodel.VDIClass, string(r.VDI)); !ok {
				return nil, datamodel.ErrHandleInvalid(datamodel.VDIClass.Name, string(r.VDI))
			}
		}
		used := map[string]bool{}
		for _, vbd := range vm.VBDs {
			if b, ok := s.store.Get(datamodel.VBDClass, string(vbd)); ok {
				used[b.(*datamodel.VBDRecord).Userdevice] = true
			}
		}
		if r.Userdevice == "autodetect" || r.Userdevice == "" {
			free := freeDevices(maxVBDDevicePV, used)
			if len(free) == 0 {
				return nil, datamodel.ErrInvalidValue("userdevice", r.Userdevice)
			}
			r.Userdevice = free[0]
		}
		if used[r.Userdevice] {
			return nil, datamodel.ErrDeviceAlreadyExists(r.Userdevice)
		}
		r.UUID = datamodel.NewUUID()
		r.CurrentOperations = map[string]datamodel.VBDOperations{}
		r.CurrentlyAttached = false
		r.Reserved = false
		r.StorageLock = false
		r.StatusCode, r.StatusDetail = 0, ""
		r.RuntimeProperties = map[string]string{}
		r.QosSupportedAlgorithms = []string{}
		r.Metrics = datamodel.VBDMetricsRef(datamodel.NullRef)
		if r.OtherConfig == nil {
			r.OtherConfig = map[string]string{}
		}
		if r.QosAlgorithmParams == nil {
			r.QosAlgorithmParams = map[string]string{}
		}
		r.AllowedOperations = vbdAllowedOperations(r, vm)
		ops := []store.Op{store.Create(ref, r), mustSetAdd(datamodel.VMClass, string(r.VM), "VBDs", datamodel.VBDRef(ref))}
		if !r.Empty {
			ops = append(ops, mustSetAdd(datamodel.VDIClass, string(r.VDI), "VBDs", datamodel.VBDRef(ref)))
		}
		return ops, nil
	})
	if err != nil {
		return "", err
	}
	return ref, nil
}

// destroyVBD implements VBD.destroy: an attached VBD must be unplugged first
// (OPERATION_NOT_ALLOWED); the VBD leaves VM.VBDs and VDI.VBDs.
func destroyVBD(s *Server, ctx context.Context, call *Call, ref string) error {
	return s.deviceWrite(ctx, func() ([]store.Op, error) {
		o, ok := s.store.Get(datamodel.VBDClass, ref)
		if !ok {
			return nil, datamodel.ErrHandleInvalid(datamodel.VBDClass.Name, ref)
		}
		r := o.(*datamodel.VBDRecord)
		if r.CurrentlyAttached || r.Reserved {
			return nil, datamodel.ErrOperationNotAllowed("VBD '" + r.UUID + "' still attached to '" + vmUUID(s, string(r.VM)) + "'")
		}
		b := &refBatch{s: s}
		b.vbdGone(ref)
		b.setRemove(datamodel.VMClass, string(r.VM), "VBDs", datamodel.VBDRef(ref))
		return b.ops, nil
	})
}

func vmUUID(s *Server, ref string) string {
	if o, ok := s.store.Get(datamodel.VMClass, ref); ok {
		return o.(*datamodel.VMRecord).UUID
	}
	return ref
}

// vbdEdit loads a VBD and its VM for an explicit message, lets change check
// and edit a working copy (and add writes to other records to b), then
// writes the changed fields with the recomputed allowed_operations in one
// batch.
func (s *Server) vbdEdit(ctx context.Context, self datamodel.VBDRef, change func(r *datamodel.VBDRecord, vm *datamodel.VMRecord, b *refBatch) error) error {
	ref := string(self)
	return s.deviceWrite(ctx, func() ([]store.Op, error) {
		o, ok := s.store.Get(datamodel.VBDClass, ref)
		if !ok {
			return nil, datamodel.ErrHandleInvalid(datamodel.VBDClass.Name, ref)
		}
		old := o.(*datamodel.VBDRecord)
		var vm *datamodel.VMRecord
		if vo, ok := s.store.Get(datamodel.VMClass, string(old.VM)); ok {
			vm = vo.(*datamodel.VMRecord)
		}
		r := old.Clone().(*datamodel.VBDRecord)
		b := &refBatch{s: s}
		if err := change(r, vm, b); err != nil {
			return nil, err
		}
		var list []store.Op
		c := datamodel.VBDClass
		cur := old.Clone()
		list = setObj(list, c, ref, cur, "currently_attached", r.CurrentlyAttached)
		list = setObj(list, c, ref, cur, "empty", r.Empty)
		list = setObj(list, c, ref, cur, "VDI", r.VDI)
		allowed := vbdAllowedOperations(r, vm)
		if !slices.Equal(allowed, old.AllowedOperations) {
			list = append(list, mustSet(c, ref, "allowed_operations", allowed))
		}
		return append(list, b.ops...), nil
	})
}

// runningVM fails with VM_BAD_POWER_STATE [vm, "running", actual] unless the
// device's VM runs.
func runningVM(ref string, vm *datamodel.VMRecord) error {
	if vm == nil {
		return datamodel.ErrHandleInvalid(datamodel.VMClass.Name, ref)
	}
	if vm.PowerState != datamodel.VMPowerStateRunning {
		return datamodel.ErrVMBadPowerState(ref, "running", vmPowerState(vm.PowerState).Lower())
	}
	return nil
}

// Plug attaches the VBD to its running VM.
func (m *vbdMessages) Plug(ctx context.Context, call *Call, self datamodel.VBDRef) error {
	return m.s.vbdEdit(ctx, self, func(r *datamodel.VBDRecord, vm *datamodel.VMRecord, _ *refBatch) error {
		if err := runningVM(string(r.VM), vm); err != nil {
			return err
		}
		if r.CurrentlyAttached {
			return datamodel.ErrDeviceAlreadyAttached(string(self))
		}
		r.CurrentlyAttached = true
		return nil
	})
}

func (m *vbdMessages) unplug(ctx context.Context, self datamodel.VBDRef, force bool) error {
	return m.s.vbdEdit(ctx, self, func(r *datamodel.VBDRecord, vm *datamodel.VMRecord, _ *refBatch) error {
		if err := runningVM(string(r.VM), vm); err != nil {
			return err
		}
		if !r.CurrentlyAttached {
			return datamodel.ErrDeviceAlreadyDetached(string(self))
		}
		if !force && !r.Unpluggable {
			return datamodel.ErrVBDNotUnpluggable(string(self))
		}
		r.CurrentlyAttached = false
		return nil
	})
}

// Unplug detaches the VBD from its running VM; a VBD that is not
// unpluggable fails with VBD_NOT_UNPLUGGABLE [vbd].
func (m *vbdMessages) Unplug(ctx context.Context, call *Call, self datamodel.VBDRef) error {
	return m.unplug(ctx, self, false)
}

// UnplugForce detaches the VBD whatever its unpluggable flag says.
func (m *vbdMessages) UnplugForce(ctx context.Context, call *Call, self datamodel.VBDRef) error {
	return m.unplug(ctx, self, true)
}

// Insert puts a VDI into an empty CD drive.
func (m *vbdMessages) Insert(ctx context.Context, call *Call, vbd datamodel.VBDRef, vdi datamodel.VDIRef) error {
	return m.s.vbdEdit(ctx, vbd, func(r *datamodel.VBDRecord, vm *datamodel.VMRecord, b *refBatch) error {
		if r.Type != datamodel.VBDTypeCD {
			return datamodel.ErrVBDNotRemovableMedia(string(vbd))
		}
		if !r.Empty {
			return datamodel.ErrVBDNotEmpty(string(vbd))
		}
		if !b.exists(datamodel.VDIClass, string(vdi)) {
			return datamodel.ErrHandleInvalid(datamodel.VDIClass.Name, string(vdi))
		}
		r.Empty, r.VDI = false, vdi
		b.setAdd(datamodel.VDIClass, string(vdi), "VBDs", vbd)
		return nil
	})
}

// Eject empties a CD drive.
func (m *vbdMessages) Eject(ctx context.Context, call *Call, vbd datamodel.VBDRef) error {
	return m.s.vbdEdit(ctx, vbd, func(r *datamodel.VBDRecord, vm *datamodel.VMRecord, b *refBatch) error {
		if r.Type != datamodel.VBDTypeCD {
			return datamodel.ErrVBDNotRemovableMedia(string(vbd))
		}
		if r.Empty {
			return datamodel.ErrVBDIsEmpty(string(vbd))
		}
		b.setRemove(datamodel.VDIClass, string(r.VDI), "VBDs", vbd)
		r.Empty, r.VDI = true, datamodel.VDIRef(datamodel.NullRef)
		return nil
	})
}
