package xapi

import (
	"context"
	"slices"
	"time"

	"github.com/xapi-go/xapi-go/backends"
	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

// VM snapshots, as xapi makes them:
//
//   - VM.snapshot works on a halted, running or suspended VM (a running VM
//     keeps running: the snapshot holds its disks, not its memory). The
//     snapshot is a new VM record with is_a_snapshot and is_a_template set,
//     snapshot_of the VM, snapshot_time now, power_state Halted,
//     snapshot_info["power-state-at-snapshot"] the VM's power state, and the
//     VM's configuration. It takes the VM's place in the snapshot tree: its
//     parent is the VM's former parent and the VM's parent becomes the
//     snapshot. Every disk not in ignore_vdis gets a snapshot VDI
//     (is_a_snapshot, snapshot_of the disk, listed in the disk's snapshots)
//     on the disk's SR; CD drives keep their VDI; VIFs keep their MAC.
//   - VM.revert is called on a snapshot. The VM it was taken of is
//     hard-shut-down if it is not halted, gets the snapshot's configuration
//     back (not its name, uuid, tags, affinity or snapshot fields), loses its
//     VBDs and VIFs for copies of the snapshot's, and its disks that the
//     snapshot has snapshots of are replaced by new copies of those snapshot
//     disks (other snapshots of a replaced disk then point to its
//     replacement; disks the snapshot does not cover are left, detached).
//     The VM ends halted, as xapi leaves it after reverting to a disk-only
//     snapshot; its parent becomes the snapshot.
//
// Snapshots of a VM whose snapshot_of VM is gone cannot be reverted here
// (xapi would re-create the VM): VM_REVERT_FAILED [snapshot, vm] (xapi's
// parameter order, the reverse of the model's). A revert whose hard
// shutdown of the VM fails fails the same way, as xapi turns any failure
// but the storage's own into VM_REVERT_FAILED. A snapshot is only a record:
// the disks' contents are the storage layer's business.

const snapshotPowerStateKey = "power-state-at-snapshot"

// snapshotStates are the power states VM.snapshot accepts.
var snapshotStates = []backends.PowerState{backends.Halted, backends.Running, backends.Suspended}

// Snapshot implements VM.snapshot.
func (m *vmMessages) Snapshot(ctx context.Context, call *Call, vm datamodel.VMRef, newName string, ignoreVDIs []datamodel.VDIRef) (datamodel.VMRef, error) {
	s := m.s
	o, err := s.lookup(datamodel.VMClass, vm)
	if err != nil {
		return "", err
	}
	if err := checkVMOperable(string(vm), o.(*datamodel.VMRecord), datamodel.VMOperationsSnapshot); err != nil {
		return "", err
	}
	newRef := datamodel.NewRef()
	err = s.vmSettingOp(ctx, call, vm, datamodel.VMOperationsSnapshot, snapshotStates,
		func(ctx context.Context, rec *datamodel.VMRecord, e *vmEditor) ([]store.Op, error) {
			if rec.IsATemplate || rec.IsASnapshot {
				return nil, checkVMOperable(string(vm), rec, datamodel.VMOperationsSnapshot)
			}
			return s.snapshotOps(rec, vm, newRef, newName, ignoreVDIs, e)
		})
	if err != nil {
		return "", err
	}
	return datamodel.VMRef(newRef), nil
}

// snapshotOps builds the records of a snapshot newRef of the VM vm (record
// rec, edited through e).
func (s *Server) snapshotOps(rec *datamodel.VMRecord, vm datamodel.VMRef, newRef, newName string, ignore []datamodel.VDIRef, e *vmEditor) ([]store.Op, error) {
	now := time.Now().UTC()
	null := datamodel.NullRef
	n := rec.Clone().(*datamodel.VMRecord)
	n.UUID = datamodel.NewUUID()
	n.NameLabel = newName
	n.IsATemplate = true
	n.IsDefaultTemplate = false
	n.IsASnapshot = true
	n.SnapshotOf = vm
	n.SnapshotTime = now.Truncate(time.Second)
	n.SnapshotInfo = map[string]string{snapshotPowerStateKey: string(rec.PowerState)}
	n.SnapshotMetadata = ""
	n.TransportableSnapshotID = ""
	n.Snapshots = []datamodel.VMRef{}
	n.Parent = rec.Parent
	n.Children = []datamodel.VMRef{vm}
	n.CurrentOperations = map[string]datamodel.VMOperations{}
	n.BlockedOperations = map[datamodel.VMOperations]string{}
	n.PowerState = datamodel.VMPowerStateHalted
	n.Domid = -1
	n.ResidentOn = datamodel.HostRef(null)
	n.ScheduledToBeResidentOn = datamodel.HostRef(null)
	n.SuspendVDI = datamodel.VDIRef(null)
	n.GuestMetrics = datamodel.VMGuestMetricsRef(null)
	n.Consoles = []datamodel.ConsoleRef{}
	n.CrashDumps = []datamodel.CrashdumpRef{}
	n.VUSBs = []datamodel.VUSBRef{}
	n.VTPMs = []datamodel.VTPMRef{}
	n.VGPUs = []datamodel.VGPURef{}
	n.AttachedPCIs = []datamodel.PCIRef{}
	n.Blobs = map[string]datamodel.BlobRef{}
	n.HAAlwaysRun = false
	n.ProtectionPolicy = datamodel.VMPPRef(null)
	n.SnapshotSchedule = datamodel.VMSSRef(null)
	n.Appliance = datamodel.VMApplianceRef(null)
	n.OtherConfig = cloneStrings(rec.OtherConfig)
	n.MemoryOverhead = 0
	n.MemoryTarget = 0
	metrics := datamodel.NewRef()
	n.Metrics = datamodel.VMMetricsRef(metrics)
	ops := []store.Op{store.Create(metrics, newVMMetrics(now))}

	// disks: a snapshot VDI per disk, CDs shared
	n.VBDs = []datamodel.VBDRef{}
	alloc := map[string]int64{}
	for _, vbd := range rec.VBDs {
		o, ok := s.store.Get(datamodel.VBDClass, string(vbd))
		if !ok {
			continue
		}
		src := o.(*datamodel.VBDRecord)
		if !src.Empty && slices.Contains(ignore, src.VDI) {
			continue
		}
		bref := datamodel.NewRef()
		b := copyVBD(src, newRef)
		if vo, ok := s.store.Get(datamodel.VDIClass, string(src.VDI)); ok {
			disk := vo.(*datamodel.VDIRecord)
			if src.Type == datamodel.VBDTypeCD {
				ops = append(ops, mustSetAdd(datamodel.VDIClass, string(src.VDI), "VBDs", datamodel.VBDRef(bref)))
			} else {
				vref := datamodel.NewRef()
				v := s.newVDI(disk.NameLabel, disk.VirtualSize, disk.Type, string(disk.SR), bref)
				v.NameDescription = disk.NameDescription
				v.IsASnapshot = true
				v.SnapshotOf = src.VDI
				v.SnapshotTime = n.SnapshotTime
				v.ReadOnly = disk.ReadOnly
				alloc[string(disk.SR)] += disk.VirtualSize
				ops = append(ops, store.Create(vref, v),
					mustSetAdd(datamodel.SRClass, string(disk.SR), "VDIs", datamodel.VDIRef(vref)),
					mustSetAdd(datamodel.VDIClass, string(src.VDI), "snapshots", datamodel.VDIRef(vref)))
				b.VDI = datamodel.VDIRef(vref)
			}
		}
		if b.Type == datamodel.VBDTypeDisk {
			if _, ok := b.OtherConfig["owner"]; !ok {
				b.OtherConfig["owner"] = ""
			}
		}
		n.VBDs = append(n.VBDs, datamodel.VBDRef(bref))
		ops = append(ops, store.Create(bref, b))
	}
	allocOps, err := s.allocate(alloc)
	if err != nil {
		return nil, err
	}
	ops = append(ops, allocOps...)

	// VIFs keep their MAC address
	n.VIFs = []datamodel.VIFRef{}
	for _, vif := range rec.VIFs {
		vref, vifOps, ok := s.copyVIF(vif, newRef)
		if ok {
			n.VIFs = append(n.VIFs, vref)
			ops = append(ops, vifOps...)
		}
	}
	n.AllowedOperations = vmAllowedOperations(n, s.vms.features)

	// the snapshot takes the VM's place under its parent
	if _, ok := s.store.Get(datamodel.VMClass, string(rec.Parent)); ok && rec.Parent != vm {
		ops = append(ops, setRemoveOp(datamodel.VMClass, string(rec.Parent), "children", vm), mustSetAdd(datamodel.VMClass, string(rec.Parent), "children", datamodel.VMRef(newRef)))
	}
	e.set("parent", datamodel.VMRef(newRef))
	e.set("snapshots", append(slices.Clone(rec.Snapshots), datamodel.VMRef(newRef)))
	return append([]store.Op{store.Create(newRef, n)}, ops...), nil
}

// copyVBD copies a VBD record for the VM vm, detached.
func copyVBD(src *datamodel.VBDRecord, vm string) *datamodel.VBDRecord {
	b := src.Clone().(*datamodel.VBDRecord)
	b.UUID = datamodel.NewUUID()
	b.VM = datamodel.VMRef(vm)
	b.CurrentOperations = map[string]datamodel.VBDOperations{}
	b.CurrentlyAttached = false
	b.OtherConfig = cloneStrings(src.OtherConfig)
	b.RuntimeProperties = map[string]string{}
	b.Metrics = datamodel.VBDMetricsRef(datamodel.NullRef)
	return b
}

// copyVIF copies the VIF vif (same MAC) for the VM vm and lists the copy in
// its network.
func (s *Server) copyVIF(vif datamodel.VIFRef, vm string) (datamodel.VIFRef, []store.Op, bool) {
	o, ok := s.store.Get(datamodel.VIFClass, string(vif))
	if !ok {
		return "", nil, false
	}
	v := o.(*datamodel.VIFRecord).Clone().(*datamodel.VIFRecord)
	v.UUID = datamodel.NewUUID()
	v.VM = datamodel.VMRef(vm)
	v.CurrentOperations = map[string]datamodel.VIFOperations{}
	v.CurrentlyAttached = false
	v.RuntimeProperties = map[string]string{}
	v.Metrics = datamodel.VIFMetricsRef(datamodel.NullRef)
	ref := datamodel.NewRef()
	ops := []store.Op{store.Create(ref, v)}
	if _, ok := s.store.Get(datamodel.NetworkClass, string(v.Network)); ok {
		ops = append(ops, mustSetAdd(datamodel.NetworkClass, string(v.Network), "VIFs", datamodel.VIFRef(ref)))
	}
	return datamodel.VIFRef(ref), ops, true
}

// revertFields are the configuration fields VM.revert copies from the
// snapshot to the VM.
var revertFields = []string{
	"name_description", "user_version",
	"memory_static_max", "memory_dynamic_max", "memory_dynamic_min", "memory_static_min",
	"VCPUs_params", "VCPUs_max", "VCPUs_at_startup",
	"actions_after_softreboot", "actions_after_shutdown", "actions_after_reboot", "actions_after_crash",
	"PV_bootloader", "PV_kernel", "PV_ramdisk", "PV_args", "PV_bootloader_args", "PV_legacy_args",
	"HVM_boot_policy", "HVM_boot_params", "HVM_shadow_multiplier", "platform", "PCI_bus",
	"other_config", "xenstore_data", "ha_restart_priority", "blocked_operations", "bios_strings",
	"recommendations", "start_delay", "shutdown_delay", "order", "suspend_SR",
	"hardware_platform_version", "has_vendor_device", "reference_label", "domain_type", "NVRAM",
}

// revertStates: a VM in any power state can be reverted (it is stopped first).
var revertStates = []backends.PowerState{backends.Halted, backends.Running, backends.Paused, backends.Suspended}

// Revert implements VM.revert.
func (m *vmMessages) Revert(ctx context.Context, call *Call, snapshot datamodel.VMRef) error {
	s := m.s
	o, err := s.lookup(datamodel.VMClass, snapshot)
	if err != nil {
		return err
	}
	snap := o.(*datamodel.VMRecord)
	if !snap.IsASnapshot {
		return &datamodel.Error{Code: "ONLY_REVERT_SNAPSHOT", Params: []string{}}
	}
	vm := snap.SnapshotOf
	if _, ok := s.store.Get(datamodel.VMClass, string(vm)); !ok {
		// xapi's order: the snapshot, then the VM
		return datamodel.ErrVMRevertFailed(string(snapshot), string(vm))
	}
	return s.vmSettingOp(ctx, call, vm, datamodel.VMOperationsRevert, revertStates,
		func(ctx context.Context, rec *datamodel.VMRecord, e *vmEditor) ([]store.Op, error) {
			o, ok := s.store.Get(datamodel.VMClass, string(snapshot))
			if !ok {
				return nil, datamodel.ErrHandleInvalid(datamodel.VMClass.Name, string(snapshot))
			}
			snap := o.(*datamodel.VMRecord).Clone().(*datamodel.VMRecord)
			ops, err := s.revertDeviceOps(rec, snap, string(vm))
			if err != nil {
				return nil, err
			}
			// the disks' space goes through e, which also gives back a
			// suspend image the stop below removes
			for sr, size := range ops.alloc {
				e.chargeSR(sr, size, 0)
			}
			// the VM's devices are the snapshot's copies from now on (the old
			// ones are removed by ops), also for the stop's device updates
			e.set("VBDs", ops.vbds)
			e.set("VIFs", ops.vifs)
			// From here on nothing fails: stop the VM, then rewrite it.
			if rec.PowerState != datamodel.VMPowerStateHalted {
				// like xapi's, a revert under way is not cancellable
				if err := s.cfg.Backend.Shutdown(context.WithoutCancel(ctx), rec.UUID, false); err != nil {
					// as xapi reports a revert that failed on the way
					return nil, datamodel.ErrVMRevertFailed(string(snapshot), string(vm))
				}
				ops.append(s.liveState(ctx, rec, e)...)
			}
			for _, name := range revertFields {
				f, _ := datamodel.VMClass.FieldByName(name)
				e.set(name, snap.Field(f.Index))
			}
			e.set("ha_always_run", false)
			e.set("suspend_VDI", datamodel.VDIRef(datamodel.NullRef))
			// the VM now descends from the snapshot
			if old := rec.Parent; old != snapshot {
				if _, ok := s.store.Get(datamodel.VMClass, string(old)); ok && old != vm {
					ops.append(setRemoveOp(datamodel.VMClass, string(old), "children", vm))
				}
				e.set("parent", snapshot)
				ops.list = append(ops.list, mustSetAdd(datamodel.VMClass, string(snapshot), "children", vm))
			}
			return ops.list, nil
		})
}

// revertOps are the device writes of a revert.
type revertOps struct {
	list  []store.Op
	vbds  []datamodel.VBDRef
	vifs  []datamodel.VIFRef
	alloc map[string]int64 // SR → change of virtual_allocation
}

func (r *revertOps) append(ops ...store.Op) *revertOps {
	r.list = append(r.list, ops...)
	return r
}

// revertDeviceOps replaces the VBDs, VIFs and covered disks of the VM vm
// (record rec) by copies of the snapshot's.
func (s *Server) revertDeviceOps(rec, snap *datamodel.VMRecord, vm string) (*revertOps, error) {
	r := &revertOps{vbds: []datamodel.VBDRef{}, vifs: []datamodel.VIFRef{}}
	alloc := map[string]int64{}
	// the VM disks the snapshot covers, which are replaced
	covered := map[datamodel.VDIRef]bool{}
	for _, vbd := range snap.VBDs {
		if o, ok := s.store.Get(datamodel.VBDClass, string(vbd)); ok && o.(*datamodel.VBDRecord).Type == datamodel.VBDTypeDisk {
			if vo, ok := s.store.Get(datamodel.VDIClass, string(o.(*datamodel.VBDRecord).VDI)); ok {
				covered[vo.(*datamodel.VDIRecord).SnapshotOf] = true
			}
		}
	}
	for _, vbd := range rec.VBDs {
		o, ok := s.store.Get(datamodel.VBDClass, string(vbd))
		if !ok {
			continue
		}
		b := o.(*datamodel.VBDRecord)
		r.append(store.Delete(datamodel.VBDClass, string(vbd)))
		vo, ok := s.store.Get(datamodel.VDIClass, string(b.VDI))
		if !ok {
			continue
		}
		disk := vo.(*datamodel.VDIRecord)
		if b.Type == datamodel.VBDTypeDisk && covered[b.VDI] {
			r.append(store.Delete(datamodel.VDIClass, string(b.VDI)), setRemoveOp(datamodel.SRClass, string(disk.SR), "VDIs", b.VDI))
			alloc[string(disk.SR)] -= disk.VirtualSize
		} else {
			r.append(setRemoveOp(datamodel.VDIClass, string(b.VDI), "VBDs", vbd))
		}
	}
	for _, vif := range rec.VIFs {
		o, ok := s.store.Get(datamodel.VIFClass, string(vif))
		if !ok {
			continue
		}
		r.append(store.Delete(datamodel.VIFClass, string(vif)))
		if net := o.(*datamodel.VIFRecord).Network; net != "" {
			if _, ok := s.store.Get(datamodel.NetworkClass, string(net)); ok {
				r.append(setRemoveOp(datamodel.NetworkClass, string(net), "VIFs", vif))
			}
		}
	}
	for _, vbd := range snap.VBDs {
		o, ok := s.store.Get(datamodel.VBDClass, string(vbd))
		if !ok {
			continue
		}
		src := o.(*datamodel.VBDRecord)
		bref := datamodel.NewRef()
		b := copyVBD(src, vm)
		if vo, ok := s.store.Get(datamodel.VDIClass, string(src.VDI)); ok {
			sd := vo.(*datamodel.VDIRecord)
			if src.Type == datamodel.VBDTypeCD {
				r.append(mustSetAdd(datamodel.VDIClass, string(src.VDI), "VBDs", datamodel.VBDRef(bref)))
			} else {
				vref := datamodel.NewRef()
				v := s.newVDI(sd.NameLabel, sd.VirtualSize, sd.Type, string(sd.SR), bref)
				v.NameDescription = sd.NameDescription
				v.ReadOnly = sd.ReadOnly
				alloc[string(sd.SR)] += sd.VirtualSize
				// the replaced disk's snapshots now belong to the new disk
				if covered[sd.SnapshotOf] {
					for _, e := range s.store.List(datamodel.VDIClass) {
						if other := e.Obj.(*datamodel.VDIRecord); other.SnapshotOf == sd.SnapshotOf {
							v.Snapshots = append(v.Snapshots, datamodel.VDIRef(e.Ref))
							r.append(mustSet(datamodel.VDIClass, e.Ref, "snapshot_of", datamodel.VDIRef(vref)))
						}
					}
				}
				r.append(store.Create(vref, v), mustSetAdd(datamodel.SRClass, string(sd.SR), "VDIs", datamodel.VDIRef(vref)))
				b.VDI = datamodel.VDIRef(vref)
			}
		}
		r.vbds = append(r.vbds, datamodel.VBDRef(bref))
		r.append(store.Create(bref, b))
	}
	for _, vif := range snap.VIFs {
		if vref, ops, ok := s.copyVIF(vif, vm); ok {
			r.vifs = append(r.vifs, vref)
			r.append(ops...)
		}
	}
	// SR_FULL now; the charge itself is left to the caller's batch
	if _, err := s.allocate(alloc); err != nil {
		return nil, err
	}
	r.alloc = alloc
	return r, nil
}

func setRemoveOp(c *datamodel.Class, ref, field string, v any) store.Op {
	op, err := store.SetRemove(c, ref, field, v)
	if err != nil {
		panic(err)
	}
	return op
}
