package xapi

import (
	"context"
	"crypto/rand"
	"encoding/xml"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/xapi-go/xapi-go/backends"
	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

// vmMessages implements the explicit messages of class VM built so far.
type vmMessages struct {
	UnimplementedVMMessages
	s *Server
}

func (m *vmMessages) SetOtherConfig(ctx context.Context, call *Call, self datamodel.VMRef, value map[string]string) error {
	return m.s.setField(ctx, datamodel.VMClass, self, "other_config", value)
}

func (m *vmMessages) AddToOtherConfig(ctx context.Context, call *Call, self datamodel.VMRef, key, value string) error {
	return m.s.mapAdd(ctx, datamodel.VMClass, self, "other_config", key, value)
}

func (m *vmMessages) RemoveFromOtherConfig(ctx context.Context, call *Call, self datamodel.VMRef, key string) error {
	return m.s.mapRemove(ctx, datamodel.VMClass, self, "other_config", key)
}

// Clone makes a new VM from a halted VM or a template. As in xapi, the clone
// of a template is a template (xe vm-install clones, provisions, then clears
// is_a_template); it is never a default template. Disks are copied as new
// VDIs on the source disks' SRs, VIFs with fresh MAC addresses.
func (m *vmMessages) Clone(ctx context.Context, call *Call, vm datamodel.VMRef, newName string) (datamodel.VMRef, error) {
	return m.s.copyVM(ctx, call, vm, newName, datamodel.VMOperationsClone, "")
}

// Copy is Clone with the new disks on sr (NULL: the source disks' SRs).
func (m *vmMessages) Copy(ctx context.Context, call *Call, vm datamodel.VMRef, newName string, sr datamodel.SRRef) (datamodel.VMRef, error) {
	target := ""
	if sr != "" && sr != datamodel.SRRef(datamodel.NullRef) {
		if _, ok := m.s.store.Get(datamodel.SRClass, string(sr)); !ok {
			return "", datamodel.ErrHandleInvalid(datamodel.SRClass.Name, string(sr))
		}
		target = string(sr)
	}
	return m.s.copyVM(ctx, call, vm, newName, datamodel.VMOperationsCopy, target)
}

// Provision creates the disks described by other_config:disks (the
// <provision><disk device size sr bootable type/></provision> document
// templates carry) as VDIs on their SR (or the pool's default SR) with VBDs,
// then removes the key so that the disks are not created twice.
func (m *vmMessages) Provision(ctx context.Context, call *Call, vm datamodel.VMRef) error {
	return m.s.provisionVM(ctx, call, vm)
}

// Blocked operations: plain edits of blocked_operations, after which the
// allowed_operations follower drops (or restores) the operations concerned.

func (m *vmMessages) SetBlockedOperations(ctx context.Context, call *Call, self datamodel.VMRef, value map[datamodel.VMOperations]string) error {
	return m.s.setField(ctx, datamodel.VMClass, self, "blocked_operations", value)
}

func (m *vmMessages) AddToBlockedOperations(ctx context.Context, call *Call, self datamodel.VMRef, key datamodel.VMOperations, value string) error {
	return m.s.mapAdd(ctx, datamodel.VMClass, self, "blocked_operations", key, value)
}

func (m *vmMessages) RemoveFromBlockedOperations(ctx context.Context, call *Call, self datamodel.VMRef, key datamodel.VMOperations) error {
	return m.s.mapRemove(ctx, datamodel.VMClass, self, "blocked_operations", key)
}

// UpdateAllowedOperations recomputes allowed_operations now.
func (m *vmMessages) UpdateAllowedOperations(ctx context.Context, call *Call, self datamodel.VMRef) error {
	if _, err := m.s.existing(datamodel.VMClass, self); err != nil {
		return err
	}
	m.s.refreshAllowedOperations(ctx, string(self))
	return nil
}

// AssertOperationValid answers with the error the operation would fail with
// before reaching the hypervisor, or nothing when allowed_operations holds it.
func (m *vmMessages) AssertOperationValid(ctx context.Context, call *Call, self datamodel.VMRef, op datamodel.VMOperations) error {
	o, err := m.s.lookup(datamodel.VMClass, self)
	if err != nil {
		return err
	}
	rec := o.(*datamodel.VMRecord)
	ref := string(self)
	m.s.vms.mu.Lock()
	b, busy := m.s.vms.busy[ref]
	m.s.vms.mu.Unlock()
	if busy {
		return datamodel.ErrOtherOperationInProgress(datamodel.VMClass.Name, ref, string(b.op), b.ref)
	}
	for _, p := range powerOps {
		if p.op != op {
			continue
		}
		if err := checkVMOperable(ref, rec, op); err != nil {
			return err
		}
		if err := backends.CheckPowerState(rec.UUID, p.bop, vmPowerState(rec.PowerState)); err != nil {
			return backendError(call, ref, err)
		}
	}
	if reason, ok := rec.BlockedOperations[op]; ok {
		return datamodel.ErrOperationBlocked(ref, reason)
	}
	if !slices.Contains(vmAllowedOperations(rec, m.s.vms.features), op) {
		return datamodel.ErrOperationNotAllowed(string(op) + " is not allowed in the VM's current state")
	}
	return nil
}

// SetActionsAfterCrash sets what happens when the VM's domain crashes; the
// backend-event watcher applies it.
func (m *vmMessages) SetActionsAfterCrash(ctx context.Context, call *Call, self datamodel.VMRef, value datamodel.OnCrashBehaviour) error {
	return m.s.setField(ctx, datamodel.VMClass, self, "actions_after_crash", value)
}

// vmRecordOp claims vm for a record operation (clone, copy, provision) that
// needs it halted (or a template), runs body with the current record and
// applies body's ops together with the end of the operation in one batch.
func (s *Server) vmRecordOp(ctx context.Context, call *Call, vm datamodel.VMRef, op datamodel.VMOperations,
	body func(rec *datamodel.VMRecord, e *vmEditor) ([]store.Op, error)) error {
	return s.vmSettingOp(ctx, call, vm, op, []backends.PowerState{backends.Halted},
		func(_ context.Context, rec *datamodel.VMRecord, e *vmEditor) ([]store.Op, error) { return body(rec, e) })
}

// copyVM implements VM.clone and VM.copy; sr, if set, receives the new disks.
func (s *Server) copyVM(ctx context.Context, call *Call, vm datamodel.VMRef, newName string, op datamodel.VMOperations, sr string) (datamodel.VMRef, error) {
	newRef := datamodel.NewRef()
	err := s.vmRecordOp(ctx, call, vm, op, func(rec *datamodel.VMRecord, _ *vmEditor) ([]store.Op, error) {
		now := time.Now().UTC()
		n := rec.Clone().(*datamodel.VMRecord)
		n.UUID = datamodel.NewUUID()
		n.NameLabel = newName
		n.IsDefaultTemplate = false
		n.IsASnapshot = false
		n.SnapshotOf = datamodel.VMRef(datamodel.NullRef)
		n.Snapshots = []datamodel.VMRef{}
		n.Parent = vm
		n.Children = []datamodel.VMRef{}
		n.CurrentOperations = map[string]datamodel.VMOperations{}
		n.PowerState = datamodel.VMPowerStateHalted
		n.Domid = -1
		n.ResidentOn = datamodel.HostRef(datamodel.NullRef)
		n.ScheduledToBeResidentOn = datamodel.HostRef(datamodel.NullRef)
		n.SuspendVDI = datamodel.VDIRef(datamodel.NullRef)
		n.GuestMetrics = datamodel.VMGuestMetricsRef(datamodel.NullRef)
		n.Consoles = []datamodel.ConsoleRef{}
		n.CrashDumps = []datamodel.CrashdumpRef{}
		n.VUSBs = []datamodel.VUSBRef{}
		n.VTPMs = []datamodel.VTPMRef{}
		n.VGPUs = []datamodel.VGPURef{}
		n.AttachedPCIs = []datamodel.PCIRef{}
		n.Blobs = map[string]datamodel.BlobRef{}
		n.OtherConfig = cloneStrings(rec.OtherConfig)
		delete(n.OtherConfig, "default_template")
		n.MemoryOverhead = 0
		n.MemoryTarget = 0
		metrics := datamodel.NewRef()
		n.Metrics = datamodel.VMMetricsRef(metrics)
		ops := []store.Op{store.Create(metrics, newVMMetrics(now))}
		// devices
		n.VBDs = []datamodel.VBDRef{}
		vdiOps, err := s.copyDisks(rec, newRef, n, sr)
		if err != nil {
			return nil, err
		}
		n.VIFs = []datamodel.VIFRef{}
		for _, vif := range rec.VIFs {
			o, ok := s.store.Get(datamodel.VIFClass, string(vif))
			if !ok {
				continue
			}
			v := o.(*datamodel.VIFRecord).Clone().(*datamodel.VIFRecord)
			v.UUID = datamodel.NewUUID()
			v.VM = datamodel.VMRef(newRef)
			v.MAC = randomMAC()
			v.CurrentOperations = map[string]datamodel.VIFOperations{}
			v.CurrentlyAttached = false
			vref := datamodel.NewRef()
			n.VIFs = append(n.VIFs, datamodel.VIFRef(vref))
			ops = append(ops, store.Create(vref, v))
		}
		n.AllowedOperations = vmAllowedOperations(n, s.vms.features)
		ops = append(ops, vdiOps...)
		return append([]store.Op{store.Create(newRef, n)}, ops...), nil
	})
	if err != nil {
		return "", err
	}
	return datamodel.VMRef(newRef), nil
}

// copyDisks duplicates the VBDs of rec for the new VM n (ref newRef): disks
// get a new VDI of the same size (on sr if set), CD drives share their VDI.
func (s *Server) copyDisks(rec *datamodel.VMRecord, newRef string, n *datamodel.VMRecord, sr string) ([]store.Op, error) {
	var ops []store.Op
	alloc := map[string]int64{}
	for _, vbd := range rec.VBDs {
		o, ok := s.store.Get(datamodel.VBDClass, string(vbd))
		if !ok {
			continue
		}
		b := o.(*datamodel.VBDRecord).Clone().(*datamodel.VBDRecord)
		b.UUID = datamodel.NewUUID()
		b.VM = datamodel.VMRef(newRef)
		b.CurrentOperations = map[string]datamodel.VBDOperations{}
		b.CurrentlyAttached = false
		bref := datamodel.NewRef()
		if vo, ok := s.store.Get(datamodel.VDIClass, string(b.VDI)); ok && b.Type != datamodel.VBDTypeCD {
			src := vo.(*datamodel.VDIRecord)
			dst := string(src.SR)
			if sr != "" {
				dst = sr
			}
			vref := datamodel.NewRef()
			v := s.newVDI(src.NameLabel, src.VirtualSize, src.Type, dst, bref)
			v.NameDescription = src.NameDescription
			alloc[dst] += src.VirtualSize
			ops = append(ops, store.Create(vref, v), mustSetAdd(datamodel.SRClass, dst, "VDIs", datamodel.VDIRef(vref)))
			b.VDI = datamodel.VDIRef(vref)
		}
		n.VBDs = append(n.VBDs, datamodel.VBDRef(bref))
		ops = append(ops, store.Create(bref, b))
	}
	allocOps, err := s.allocate(alloc)
	if err != nil {
		return nil, err
	}
	return append(ops, allocOps...), nil
}

// allocate charges new disks to their SRs' virtual_allocation, failing with
// SR_FULL [requested, maximum] when an SR lacks the space.
func (s *Server) allocate(alloc map[string]int64) ([]store.Op, error) {
	var ops []store.Op
	for sr, size := range alloc {
		o, ok := s.store.Get(datamodel.SRClass, sr)
		if !ok {
			return nil, datamodel.ErrHandleInvalid(datamodel.SRClass.Name, sr)
		}
		r := o.(*datamodel.SRRecord)
		if r.PhysicalSize > 0 && r.VirtualAllocation+size > r.PhysicalSize {
			return nil, datamodel.ErrSRFull(strconv.FormatInt(size, 10), strconv.FormatInt(r.PhysicalSize-r.VirtualAllocation, 10))
		}
		ops = append(ops, mustSet(datamodel.SRClass, sr, "virtual_allocation", r.VirtualAllocation+size))
	}
	return ops, nil
}

func (s *Server) newVDI(name string, size int64, typ datamodel.VDIType, sr, vbd string) *datamodel.VDIRecord {
	v := datamodel.NewVDIRecord()
	v.UUID = datamodel.NewUUID()
	v.NameLabel = name
	v.AllowedOperations = []datamodel.VDIOperations{}
	v.CurrentOperations = map[string]datamodel.VDIOperations{}
	v.SR = datamodel.SRRef(sr)
	v.VBDs = []datamodel.VBDRef{datamodel.VBDRef(vbd)}
	v.CrashDumps = []datamodel.CrashdumpRef{}
	v.VirtualSize = size
	v.Type = typ
	v.OtherConfig = map[string]string{}
	v.Location = v.UUID
	v.Managed = true
	v.XenstoreData = map[string]string{}
	v.SMConfig = map[string]string{}
	v.Snapshots = []datamodel.VDIRef{}
	v.Tags = []string{}
	return v
}

func mustSetAdd(c *datamodel.Class, ref, field string, v any) store.Op {
	op, err := store.SetAdd(c, ref, field, v)
	if err != nil {
		panic(err)
	}
	return op
}

// randomMAC is a locally administered unicast address.
func randomMAC() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	b[0] = b[0]&0xfe | 0x02
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5])
}

// provisionSpec is the other_config:disks document of a template.
type provisionSpec struct {
	Disks []struct {
		Device   string `xml:"device,attr"`
		Size     string `xml:"size,attr"`
		SR       string `xml:"sr,attr"`
		Bootable string `xml:"bootable,attr"`
		Type     string `xml:"type,attr"`
	} `xml:"disk"`
}

// provisionVM implements VM.provision.
func (s *Server) provisionVM(ctx context.Context, call *Call, vm datamodel.VMRef) error {
	return s.vmRecordOp(ctx, call, vm, datamodel.VMOperationsProvision, func(rec *datamodel.VMRecord, e *vmEditor) ([]store.Op, error) {
		doc, ok := rec.OtherConfig["disks"]
		if !ok || doc == "" {
			return nil, nil
		}
		var spec provisionSpec
		if err := xml.Unmarshal([]byte(doc), &spec); err != nil {
			return nil, datamodel.ErrInvalidValue("other_config:disks", doc)
		}
		var ops []store.Op
		alloc := map[string]int64{}
		vbds := append([]datamodel.VBDRef(nil), rec.VBDs...)
		for _, d := range spec.Disks {
			size, err := strconv.ParseInt(d.Size, 10, 64)
			if err != nil || size < 0 {
				return nil, datamodel.ErrInvalidValue("other_config:disks", doc)
			}
			sr, err := s.provisionSR(d.SR)
			if err != nil {
				return nil, err
			}
			typ := datamodel.VDITypeSystem
			if d.Type == string(datamodel.VDITypeUser) {
				typ = datamodel.VDITypeUser
			}
			vref, bref := datamodel.NewRef(), datamodel.NewRef()
			v := s.newVDI(fmt.Sprintf("%s %s", rec.NameLabel, d.Device), size, typ, sr, bref)
			v.NameDescription = "Created by template provisioner"
			b := datamodel.NewVBDRecord()
			b.UUID = datamodel.NewUUID()
			b.AllowedOperations = []datamodel.VBDOperations{}
			b.CurrentOperations = map[string]datamodel.VBDOperations{}
			b.VM = vm
			b.VDI = datamodel.VDIRef(vref)
			b.Userdevice = d.Device
			b.Bootable = d.Bootable == "true"
			b.Mode = datamodel.VBDModeRW
			b.Type = datamodel.VBDTypeDisk
			b.Unpluggable = true
			b.OtherConfig = map[string]string{"owner": "true"}
			b.RuntimeProperties = map[string]string{}
			b.QosAlgorithmParams = map[string]string{}
			b.QosSupportedAlgorithms = []string{}
			alloc[sr] += size
			vbds = append(vbds, datamodel.VBDRef(bref))
			ops = append(ops, store.Create(vref, v), store.Create(bref, b), mustSetAdd(datamodel.SRClass, sr, "VDIs", datamodel.VDIRef(vref)))
		}
		allocOps, err := s.allocate(alloc)
		if err != nil {
			return nil, err
		}
		oc := cloneStrings(rec.OtherConfig)
		delete(oc, "disks")
		e.set("VBDs", vbds)
		e.set("other_config", oc)
		return append(ops, allocOps...), nil
	})
}

// provisionSR resolves a disk's sr attribute (an SR uuid, or empty for the
// pool's default SR).
func (s *Server) provisionSR(uuid string) (string, error) {
	if uuid != "" {
		ref, ok := s.store.RefByUUID(datamodel.SRClass, uuid)
		if !ok {
			return "", datamodel.ErrUUIDInvalid(datamodel.SRClass.Name, uuid)
		}
		return ref, nil
	}
	for _, e := range s.store.List(datamodel.PoolClass) {
		sr := string(e.Obj.(*datamodel.PoolRecord).DefaultSR)
		if _, ok := s.store.Get(datamodel.SRClass, sr); ok {
			return sr, nil
		}
	}
	return "", datamodel.ErrVMRequiresSR(datamodel.NullRef, datamodel.NullRef)
}
