package xapi

import (
	"context"
	"strconv"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

// vdiMessages implements the explicit messages of class VDI built so far.
//
// Space accounting: disks are allocated in full (thick), so a VDI created
// or grown here uses its whole virtual_size; the SR's virtual_allocation and
// physical_utilisation grow by it, and a disk that would take
// virtual_allocation past physical_size fails with SR_FULL [requested,
// available] (the rule VM.clone and VM.provision apply too). Destroying a
// VDI gives its space back.
type vdiMessages struct {
	UnimplementedVDIMessages
	s *Server
}

// vdiOperations are the VDI operations this server implements.
var vdiOperations = []datamodel.VDIOperations{
	datamodel.VDIOperationsClone, datamodel.VDIOperationsResize,
	datamodel.VDIOperationsSnapshot, datamodel.VDIOperationsDestroy,
}

// srCharge returns the writes that add size bytes (virtual) and phys bytes
// (physical) to sr's accounting, or SR_FULL when growing past its size.
func (s *Server) srCharge(sr string, size, phys int64) ([]store.Op, error) {
	o, ok := s.store.Get(datamodel.SRClass, sr)
	if !ok {
		return nil, datamodel.ErrHandleInvalid(datamodel.SRClass.Name, sr)
	}
	r := o.(*datamodel.SRRecord)
	if size > 0 && r.PhysicalSize > 0 && r.VirtualAllocation+size > r.PhysicalSize {
		return nil, datamodel.ErrSRFull(strconv.FormatInt(size, 10), strconv.FormatInt(r.PhysicalSize-r.VirtualAllocation, 10))
	}
	return []store.Op{
		mustSet(datamodel.SRClass, sr, "virtual_allocation", max(0, r.VirtualAllocation+size)),
		mustSet(datamodel.SRClass, sr, "physical_utilisation", max(0, r.PhysicalUtilisation+phys)),
	}, nil
}

// createVDI implements VDI.create: a new, unattached disk of virtual_size
// bytes on an existing SR, added to SR.VDIs and charged to the SR.
func createVDI(s *Server, ctx context.Context, call *Call, o datamodel.Object) (string, error) {
	in := o.(*datamodel.VDIRecord)
	sr := string(in.SR)
	if _, ok := s.store.Get(datamodel.SRClass, sr); !ok {
		return "", datamodel.ErrHandleInvalid(datamodel.SRClass.Name, sr)
	}
	if in.VirtualSize < 0 {
		return "", datamodel.ErrInvalidValue("virtual_size", strconv.FormatInt(in.VirtualSize, 10))
	}
	ref := datamodel.NewRef()
	v := s.newVDI(in.NameLabel, in.VirtualSize, in.Type, sr, "")
	v.VBDs = []datamodel.VBDRef{}
	v.NameDescription = in.NameDescription
	v.Sharable = in.Sharable
	v.ReadOnly = in.ReadOnly
	v.PhysicalUtilisation = in.VirtualSize
	v.AllowedOperations = append([]datamodel.VDIOperations(nil), vdiOperations...)
	if in.OtherConfig != nil {
		v.OtherConfig = cloneStrings(in.OtherConfig)
	}
	if in.XenstoreData != nil {
		v.XenstoreData = cloneStrings(in.XenstoreData)
	}
	if in.SMConfig != nil {
		v.SMConfig = cloneStrings(in.SMConfig)
	}
	if in.Tags != nil {
		v.Tags = append([]string{}, in.Tags...)
	}
	err := s.deviceWrite(ctx, func() ([]store.Op, error) {
		charge, err := s.srCharge(sr, v.VirtualSize, v.PhysicalUtilisation)
		if err != nil {
			return nil, err
		}
		return append([]store.Op{store.Create(ref, v), mustSetAdd(datamodel.SRClass, sr, "VDIs", datamodel.VDIRef(ref))}, charge...), nil
	})
	if err != nil {
		return "", err
	}
	return ref, nil
}

// vdiInUse reports whether one of the VDI's VBDs is attached or belongs to
// a VM that is not halted.
func (s *Server) vdiInUse(v *datamodel.VDIRecord) bool {
	for _, vbd := range v.VBDs {
		o, ok := s.store.Get(datamodel.VBDClass, string(vbd))
		if !ok {
			continue
		}
		b := o.(*datamodel.VBDRecord)
		if b.CurrentlyAttached {
			return true
		}
		if vo, ok := s.store.Get(datamodel.VMClass, string(b.VM)); ok && vo.(*datamodel.VMRecord).PowerState != datamodel.VMPowerStateHalted {
			return true
		}
	}
	return false
}

// destroyVDI implements VDI.destroy: a disk in use fails with VDI_IN_USE
// [vdi, "destroy"]; otherwise the VDI, the VBDs that name it (as xapi does)
// and the references to them go, and the SR gets the space back.
func destroyVDI(s *Server, ctx context.Context, call *Call, ref string) error {
	return s.deviceWrite(ctx, func() ([]store.Op, error) {
		o, ok := s.store.Get(datamodel.VDIClass, ref)
		if !ok {
			return nil, datamodel.ErrHandleInvalid(datamodel.VDIClass.Name, ref)
		}
		v := o.(*datamodel.VDIRecord)
		if s.vdiInUse(v) {
			return nil, datamodel.ErrVDIInUse(ref, string(datamodel.VDIOperationsDestroy))
		}
		b := &refBatch{s: s}
		for _, vbd := range v.VBDs {
			if bo, ok := s.store.Get(datamodel.VBDClass, string(vbd)); ok {
				b.setRemove(datamodel.VMClass, string(bo.(*datamodel.VBDRecord).VM), "VBDs", vbd)
			}
			b.vbdGone(string(vbd))
		}
		vdi := datamodel.VDIRef(ref)
		b.setRemove(datamodel.SRClass, string(v.SR), "VDIs", vdi)
		if b.exists(datamodel.SRClass, string(v.SR)) {
			charge, err := s.srCharge(string(v.SR), -v.VirtualSize, -v.PhysicalUtilisation)
			if err != nil {
				return nil, err
			}
			b.ops = append(b.ops, charge...)
		}
		if v.IsASnapshot {
			b.setRemove(datamodel.VDIClass, string(v.SnapshotOf), "snapshots", vdi)
		}
		for _, snap := range v.Snapshots {
			b.set(datamodel.VDIClass, string(snap), "snapshot_of", datamodel.VDIRef(datamodel.NullRef))
		}
		b.del(datamodel.VDIClass, ref) // last: earlier writes may name it
		return b.ops, nil
	})
}

// Resize grows an unused disk to size bytes; shrinking fails with
// VDI_TOO_SMALL [vdi, current size], a disk in use with VDI_IN_USE [vdi,
// "resize"].
func (m *vdiMessages) Resize(ctx context.Context, call *Call, vdi datamodel.VDIRef, size int64) error {
	s, ref := m.s, string(vdi)
	return s.deviceWrite(ctx, func() ([]store.Op, error) {
		o, ok := s.store.Get(datamodel.VDIClass, ref)
		if !ok {
			return nil, datamodel.ErrHandleInvalid(datamodel.VDIClass.Name, ref)
		}
		v := o.(*datamodel.VDIRecord)
		if size < v.VirtualSize {
			return nil, datamodel.ErrVDITooSmall(ref, strconv.FormatInt(v.VirtualSize, 10))
		}
		if s.vdiInUse(v) {
			return nil, datamodel.ErrVDIInUse(ref, string(datamodel.VDIOperationsResize))
		}
		delta := size - v.VirtualSize
		if delta == 0 {
			return nil, nil
		}
		phys := int64(0)
		if v.PhysicalUtilisation >= v.VirtualSize {
			phys = delta // fully allocated disks stay so
		}
		charge, err := s.srCharge(string(v.SR), delta, phys)
		if err != nil {
			return nil, err
		}
		return append(charge,
			mustSet(datamodel.VDIClass, ref, "virtual_size", size),
			mustSet(datamodel.VDIClass, ref, "physical_utilisation", v.PhysicalUtilisation+phys)), nil
	})
}

// SetNameLabel and SetNameDescription are plain field edits.
func (m *vdiMessages) SetNameLabel(ctx context.Context, call *Call, self datamodel.VDIRef, value string) error {
	return m.s.setField(ctx, datamodel.VDIClass, self, "name_label", value)
}

func (m *vdiMessages) SetNameDescription(ctx context.Context, call *Call, self datamodel.VDIRef, value string) error {
	return m.s.setField(ctx, datamodel.VDIClass, self, "name_description", value)
}

// Clone makes a new, independent disk of the same size and content type on
// the same SR (VDI_IN_USE is not checked: xapi clones attached disks too).
func (m *vdiMessages) Clone(ctx context.Context, call *Call, vdi datamodel.VDIRef, driverParams map[string]string) (datamodel.VDIRef, error) {
	return m.s.copyVDI(ctx, vdi, false)
}

// Snapshot is Clone, the copy being marked a snapshot of the source
// (is_a_snapshot, snapshot_of, snapshot_time; the source's snapshots).
func (m *vdiMessages) Snapshot(ctx context.Context, call *Call, vdi datamodel.VDIRef, driverParams map[string]string) (datamodel.VDIRef, error) {
	return m.s.copyVDI(ctx, vdi, true)
}

func (s *Server) copyVDI(ctx context.Context, vdi datamodel.VDIRef, snapshot bool) (datamodel.VDIRef, error) {
	src, ref := string(vdi), datamodel.NewRef()
	err := s.deviceWrite(ctx, func() ([]store.Op, error) {
		o, ok := s.store.Get(datamodel.VDIClass, src)
		if !ok {
			return nil, datamodel.ErrHandleInvalid(datamodel.VDIClass.Name, src)
		}
		from := o.(*datamodel.VDIRecord)
		sr := string(from.SR)
		v := s.newVDI(from.NameLabel, from.VirtualSize, from.Type, sr, "")
		v.VBDs = []datamodel.VBDRef{}
		v.NameDescription = from.NameDescription
		v.Sharable, v.ReadOnly = from.Sharable, from.ReadOnly
		v.OtherConfig = cloneStrings(from.OtherConfig)
		v.SMConfig = cloneStrings(from.SMConfig)
		v.PhysicalUtilisation = from.PhysicalUtilisation
		v.AllowedOperations = append([]datamodel.VDIOperations(nil), vdiOperations...)
		var ops []store.Op
		if snapshot {
			v.IsASnapshot = true
			v.SnapshotOf = vdi
			v.SnapshotTime = time.Now().UTC().Truncate(time.Second)
			ops = append(ops, mustSetAdd(datamodel.VDIClass, src, "snapshots", datamodel.VDIRef(ref)))
		}
		charge, err := s.srCharge(sr, v.VirtualSize, v.PhysicalUtilisation)
		if err != nil {
			return nil, err
		}
		ops = append(ops, charge...)
		return append([]store.Op{store.Create(ref, v), mustSetAdd(datamodel.SRClass, sr, "VDIs", datamodel.VDIRef(ref))}, ops...), nil
	})
	if err != nil {
		return "", err
	}
	return datamodel.VDIRef(ref), nil
}
