package xapi

import (
	"context"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

// gpuGroupMessages implements GPU_group.create and GPU_group.destroy, which
// in xapi are database operations only.
type gpuGroupMessages struct {
	UnimplementedGPUGroupMessages
	s *Server
}

// Create implements GPU_group.create: an empty group (no PGPUs, no GPU
// types) allocating depth-first, as xapi makes it.
func (m *gpuGroupMessages) Create(ctx context.Context, call *Call, nameLabel, nameDescription string, otherConfig map[string]string) (datamodel.GPUGroupRef, error) {
	r := datamodel.NewGPUGroupRecord()
	r.UUID = datamodel.NewUUID()
	r.NameLabel, r.NameDescription = nameLabel, nameDescription
	r.OtherConfig = cloneStrings(otherConfig)
	r.PGPUs = []datamodel.PGPURef{}
	r.VGPUs = []datamodel.VGPURef{}
	r.GPUTypes = []string{}
	r.AllocationAlgorithm = datamodel.AllocationAlgorithmDepthFirst
	r.SupportedVGPUTypes = []datamodel.VGPUTypeRef{}
	r.EnabledVGPUTypes = []datamodel.VGPUTypeRef{}
	ref := datamodel.NewRef()
	if err := m.s.apply(context.WithoutCancel(ctx), store.Create(ref, r)); err != nil {
		return "", err
	}
	return datamodel.GPUGroupRef(ref), nil
}

// Destroy implements GPU_group.destroy as xapi does: refused while a VGPU of
// the group is attached (GPU_GROUP_CONTAINS_VGPU with the attached VGPUs) or
// while PGPUs belong to it (GPU_GROUP_CONTAINS_PGPU with the PGPUs); the
// group's remaining VGPUs are destroyed with it.
func (m *gpuGroupMessages) Destroy(ctx context.Context, call *Call, self datamodel.GPUGroupRef) error {
	s := m.s
	return s.deviceWrite(ctx, func() ([]store.Op, error) {
		o, err := s.lookup(datamodel.GPUGroupClass, self)
		if err != nil {
			return nil, err
		}
		g := o.(*datamodel.GPUGroupRecord)
		var attached []string
		for _, v := range g.VGPUs {
			if vo, ok := s.store.Get(datamodel.VGPUClass, string(v)); ok && vo.(*datamodel.VGPURecord).CurrentlyAttached {
				attached = append(attached, string(v))
			}
		}
		if len(attached) > 0 {
			return nil, datamodel.NewError(datamodel.CodeGPUGroupContainsVGPU, attached...)
		}
		if len(g.PGPUs) > 0 {
			pgpus := make([]string, len(g.PGPUs))
			for i, p := range g.PGPUs {
				pgpus[i] = string(p)
			}
			return nil, datamodel.NewError(datamodel.CodeGPUGroupContainsPGPU, pgpus...)
		}
		b := &refBatch{s: s}
		for _, v := range g.VGPUs {
			b.vgpuGone(string(v))
		}
		b.del(datamodel.GPUGroupClass, string(self))
		return b.ops, nil
	})
}

// vgpuGone removes a VGPU and the references its VM, type and PGPU hold.
func (b *refBatch) vgpuGone(ref string) {
	o, ok := b.s.store.Get(datamodel.VGPUClass, ref)
	if !ok {
		return
	}
	r := o.(*datamodel.VGPURecord)
	v := datamodel.VGPURef(ref)
	b.setRemove(datamodel.VMClass, string(r.VM), "VGPUs", v)
	b.setRemove(datamodel.VGPUTypeClass, string(r.Type), "VGPUs", v)
	b.setRemove(datamodel.PGPUClass, string(r.ResidentOn), "resident_VGPUs", v)
	b.del(datamodel.VGPUClass, ref)
}

// usbGroupMessages implements USB_group.create and USB_group.destroy,
// database operations only in xapi.
type usbGroupMessages struct {
	UnimplementedUSBGroupMessages
	s *Server
}

// Create implements USB_group.create: an empty group.
func (m *usbGroupMessages) Create(ctx context.Context, call *Call, nameLabel, nameDescription string, otherConfig map[string]string) (datamodel.USBGroupRef, error) {
	r := datamodel.NewUSBGroupRecord()
	r.UUID = datamodel.NewUUID()
	r.NameLabel, r.NameDescription = nameLabel, nameDescription
	r.OtherConfig = cloneStrings(otherConfig)
	r.PUSBs = []datamodel.PUSBRef{}
	r.VUSBs = []datamodel.VUSBRef{}
	ref := datamodel.NewRef()
	if err := m.s.apply(context.WithoutCancel(ctx), store.Create(ref, r)); err != nil {
		return "", err
	}
	return datamodel.USBGroupRef(ref), nil
}

// Destroy implements USB_group.destroy as xapi does: refused while a VUSB of
// the group is attached (USB_GROUP_CONTAINS_VUSB with the attached VUSBs) or
// while PUSBs belong to it (USB_GROUP_CONTAINS_PUSB with the PUSBs); the
// group's remaining VUSBs are destroyed with it.
func (m *usbGroupMessages) Destroy(ctx context.Context, call *Call, self datamodel.USBGroupRef) error {
	s := m.s
	return s.deviceWrite(ctx, func() ([]store.Op, error) {
		o, err := s.lookup(datamodel.USBGroupClass, self)
		if err != nil {
			return nil, err
		}
		g := o.(*datamodel.USBGroupRecord)
		var attached []string
		for _, v := range g.VUSBs {
			if vo, ok := s.store.Get(datamodel.VUSBClass, string(v)); ok && vo.(*datamodel.VUSBRecord).CurrentlyAttached {
				attached = append(attached, string(v))
			}
		}
		if len(attached) > 0 {
			return nil, datamodel.NewError(datamodel.CodeUSBGroupContainsVUSB, attached...)
		}
		if len(g.PUSBs) > 0 {
			pusbs := make([]string, len(g.PUSBs))
			for i, p := range g.PUSBs {
				pusbs[i] = string(p)
			}
			return nil, datamodel.NewError(datamodel.CodeUSBGroupContainsPUSB, pusbs...)
		}
		b := &refBatch{s: s}
		for _, v := range g.VUSBs {
			if vo, ok := s.store.Get(datamodel.VUSBClass, string(v)); ok {
				b.setRemove(datamodel.VMClass, string(vo.(*datamodel.VUSBRecord).VM), "VUSBs", v)
				b.del(datamodel.VUSBClass, string(v))
			}
		}
		b.del(datamodel.USBGroupClass, string(self))
		return b.ops, nil
	})
}
