package xapi

import (
	"context"
	"strconv"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

// vlanMessages implements VLAN.create and VLAN.destroy (xapi_vlan.ml). The
// network is not reconfigured: plugging and unplugging a VLAN's PIF records
// currently_attached, as the device messages do.
type vlanMessages struct {
	UnimplementedVLANMessages
	s *Server
}

// pifKind is the exclusive type of a PIF (xapi_pif_helpers.ml).
type pifKind int

const (
	pifTunnelAccess pifKind = iota
	pifVLANUntagged
	pifSRIOVLogical
	pifBondMaster
	pifPhysical
)

// pifLayer is one level of a PIF's topology: its kind, the PIF and the
// object that makes it so (tunnel, VLAN, network_sriov or Bond).
type pifLayer struct {
	kind pifKind
	ref  string
	pif  *datamodel.PIFRecord
	obj  string
}

// pifTopo lists the types of a PIF and of the PIFs underneath it down to the
// physical or bond master PIF at the root, as xapi's get_pif_topo does.
func (s *Server) pifTopo(ref string, pif *datamodel.PIFRecord) ([]pifLayer, error) {
	var out []pifLayer
	for depth := 0; depth < 16; depth++ {
		l := pifLayer{ref: ref, pif: pif}
		var below string
		switch {
		case len(pif.TunnelAccessPIFOf) > 0:
			l.kind, l.obj = pifTunnelAccess, string(pif.TunnelAccessPIFOf[0])
			if o, ok := s.store.Get(datamodel.TunnelClass, l.obj); ok {
				below = string(o.(*datamodel.TunnelRecord).TransportPIF)
			}
		case pif.VLANMasterOf != datamodel.VLANRef(datamodel.NullRef) && pif.VLANMasterOf != "":
			l.kind, l.obj = pifVLANUntagged, string(pif.VLANMasterOf)
			if o, ok := s.store.Get(datamodel.VLANClass, l.obj); ok {
				below = string(o.(*datamodel.VLANRecord).TaggedPIF)
			}
		case len(pif.SRIOVLogicalPIFOf) > 0:
			l.kind, l.obj = pifSRIOVLogical, string(pif.SRIOVLogicalPIFOf[0])
			if o, ok := s.store.Get(datamodel.NetworkSRIOVClass, l.obj); ok {
				below = string(o.(*datamodel.NetworkSRIOVRecord).PhysicalPIF)
			}
		case len(pif.BondMasterOf) > 0:
			l.kind, l.obj = pifBondMaster, string(pif.BondMasterOf[0])
			return append(out, l), nil
		case pif.Physical:
			l.kind = pifPhysical
			return append(out, l), nil
		default:
			return nil, internalf("Cannot calculate PIF type of %s", pif.UUID)
		}
		out = append(out, l)
		o, ok := s.store.Get(datamodel.PIFClass, below)
		if !ok {
			return nil, datamodel.ErrHandleInvalid(datamodel.PIFClass.Name, below)
		}
		ref, pif = below, o.(*datamodel.PIFRecord)
	}
	return nil, internalf("PIF %s: topology too deep", ref)
}

// pifAndNetwork looks up the PIF and network arguments of VLAN.create and
// tunnel.create and makes xapi's first common checks: NETWORK_UNMANAGED
// [network], NETWORK_ALREADY_CONNECTED [host, PIF] when the PIF's host
// already has a PIF on the network, PIF_UNMANAGED [pif].
func (s *Server) pifAndNetwork(pifRef datamodel.PIFRef, netRef datamodel.NetworkRef) (*datamodel.PIFRecord, *datamodel.NetworkRecord, error) {
	po, err := s.lookup(datamodel.PIFClass, pifRef)
	if err != nil {
		return nil, nil, err
	}
	no, err := s.lookup(datamodel.NetworkClass, netRef)
	if err != nil {
		return nil, nil, err
	}
	pif, network := po.(*datamodel.PIFRecord), no.(*datamodel.NetworkRecord)
	if !network.Managed {
		return nil, nil, datamodel.ErrNetworkUnmanaged(string(netRef))
	}
	for _, e := range s.store.List(datamodel.PIFClass) {
		p := e.Obj.(*datamodel.PIFRecord)
		if p.Network == netRef && p.Host == pif.Host {
			return nil, nil, datamodel.ErrNetworkAlreadyConnected(string(pif.Host), e.Ref)
		}
	}
	if !pif.Managed {
		return nil, nil, datamodel.ErrPIFUnmanaged(string(pifRef))
	}
	return pif, network, nil
}

// sriovBasedNetwork reports whether the network's first PIF is an SR-IOV
// logical PIF or a VLAN on one (xapi's is_sriov_based_network).
func (s *Server) sriovBasedNetwork(network *datamodel.NetworkRecord) (bool, error) {
	topo, err := s.networkFirstTopo(network)
	if err != nil || topo == nil {
		return false, err
	}
	return topo[0].kind == pifSRIOVLogical || (topo[0].kind == pifVLANUntagged && len(topo) > 1 && topo[1].kind == pifSRIOVLogical), nil
}

func (s *Server) networkFirstTopo(network *datamodel.NetworkRecord) ([]pifLayer, error) {
	if len(network.PIFs) == 0 {
		return nil, nil
	}
	o, ok := s.store.Get(datamodel.PIFClass, string(network.PIFs[0]))
	if !ok {
		return nil, datamodel.ErrHandleInvalid(datamodel.PIFClass.Name, string(network.PIFs[0]))
	}
	return s.pifTopo(string(network.PIFs[0]), o.(*datamodel.PIFRecord))
}

// sameDeviceType compares the PCI vendor and device of the physical PIFs of
// two network_sriov objects (is_device_underneath_same_type).
func (s *Server) sameDeviceType(sriovA, sriovB string) bool {
	dev := func(sriov string) [2]string {
		o, ok := s.store.Get(datamodel.NetworkSRIOVClass, sriov)
		if !ok {
			return [2]string{}
		}
		po, ok := s.store.Get(datamodel.PIFClass, string(o.(*datamodel.NetworkSRIOVRecord).PhysicalPIF))
		if !ok {
			return [2]string{}
		}
		co, ok := s.store.Get(datamodel.PCIClass, string(po.(*datamodel.PIFRecord).PCI))
		if !ok {
			return [2]string{}
		}
		pci := co.(*datamodel.PCIRecord)
		return [2]string{pci.VendorID, pci.DeviceID}
	}
	return dev(sriovA) == dev(sriovB)
}

// vlanMAC is the dummy MAC of VLAN PIFs in xapi.
const vlanMAC = "fe:ff:ff:ff:ff:ff"

// Create implements VLAN.create with xapi's checks in order: NETWORK_UNMANAGED,
// NETWORK_ALREADY_CONNECTED, PIF_UNMANAGED; CANNOT_ADD_VLAN_TO_BOND_SLAVE,
// PIF_IS_VLAN or IS_TUNNEL_ACCESS_PIF [tagged_PIF] by the tagged PIF's
// type; the network's compatibility (NETWORK_INCOMPATIBLE_WITH_VLAN_ON_BRIDGE
// or, on an SR-IOV PIF, NETWORK_INCOMPATIBLE_WITH_VLAN_ON_SRIOV /
// NETWORK_HAS_INCOMPATIBLE_VLAN_ON_SRIOV_PIFS); VLAN_TAG_INVALID [tag] outside
// 0..4094; PIF_VLAN_EXISTS [device] for a second VLAN with the tag on the
// PIF; NETWORK_INCOMPATIBLE_WITH_TRUNKS when a VIF of the network has trunks.
// It creates the untagged PIF on the tagged PIF's host (same device, MTU and
// metrics, VLAN = tag, dummy MAC) attached to the network, the VLAN object,
// and plugs the new PIF; host.PIFs, network.PIFs and the tagged PIF's
// VLAN_slave_of follow in the same batch.
func (m *vlanMessages) Create(ctx context.Context, call *Call, taggedPIF datamodel.PIFRef, tag int64, network datamodel.NetworkRef) (datamodel.VLANRef, error) {
	s := m.s
	vlan, untagged := datamodel.NewRef(), datamodel.NewRef()
	err := s.deviceWrite(ctx, func() ([]store.Op, error) {
		tagged, net, err := s.pifAndNetwork(taggedPIF, network)
		if err != nil {
			return nil, err
		}
		topo, err := s.pifTopo(string(taggedPIF), tagged)
		if err != nil {
			return nil, err
		}
		switch topo[0].kind {
		case pifPhysical:
			if tagged.BondSlaveOf != datamodel.BondRef(datamodel.NullRef) && tagged.BondSlaveOf != "" {
				return nil, datamodel.ErrCannotAddVLANToBondSlave(string(taggedPIF))
			}
		case pifVLANUntagged:
			return nil, datamodel.ErrPIFIsVLAN(string(taggedPIF))
		case pifTunnelAccess:
			return nil, datamodel.ErrIsTunnelAccessPIF(string(taggedPIF))
		}
		if topo[0].kind == pifSRIOVLogical {
			existing, err := s.networkFirstTopo(net)
			if err != nil {
				return nil, err
			}
			if existing != nil {
				if existing[0].kind != pifVLANUntagged || len(existing) < 2 || existing[1].kind != pifSRIOVLogical {
					return nil, datamodel.ErrNetworkIncompatibleWithVLANOnSRIOV(string(network))
				}
				if !s.sameDeviceType(existing[1].obj, topo[0].obj) {
					return nil, datamodel.ErrNetworkHasIncompatibleVLANOnSRIOVPIFs(string(taggedPIF), string(network))
				}
			}
		} else if sriov, err := s.sriovBasedNetwork(net); err != nil {
			return nil, err
		} else if sriov {
			return nil, datamodel.ErrNetworkIncompatibleWithVLANOnBridge(string(network))
		}
		if tag < 0 || tag > 4094 {
			return nil, datamodel.ErrVLANTagInvalid(strconv.FormatInt(tag, 10))
		}
		for _, e := range s.store.List(datamodel.VLANClass) {
			if v := e.Obj.(*datamodel.VLANRecord); v.TaggedPIF == taggedPIF && v.Tag == tag {
				return nil, datamodel.ErrPIFVLANExists(tagged.Device)
			}
		}
		for _, vif := range net.VIFs {
			if o, ok := s.store.Get(datamodel.VIFClass, string(vif)); ok && len(o.(*datamodel.VIFRecord).Trunks) > 0 {
				return nil, datamodel.ErrNetworkIncompatibleWithTrunks(string(network))
			}
		}
		p := newVirtualPIF(tagged.Device, network, tagged)
		p.MAC = vlanMAC
		p.MTU = tagged.MTU
		p.VLAN = tag
		p.VLANMasterOf = datamodel.VLANRef(vlan)
		p.CurrentlyAttached = true // plugged
		v := datamodel.NewVLANRecord()
		v.UUID = datamodel.NewUUID()
		v.TaggedPIF = taggedPIF
		v.UntaggedPIF = datamodel.PIFRef(untagged)
		v.Tag = tag
		v.OtherConfig = map[string]string{}
		b := &refBatch{s: s}
		b.ops = append(b.ops, store.Create(untagged, p), store.Create(vlan, v))
		b.setAdd(datamodel.HostClass, string(p.Host), "PIFs", datamodel.PIFRef(untagged))
		b.ops = append(b.ops,
			mustSetAdd(datamodel.NetworkClass, string(network), "PIFs", datamodel.PIFRef(untagged)),
			mustSetAdd(datamodel.PIFClass, string(taggedPIF), "VLAN_slave_of", datamodel.VLANRef(vlan)))
		return b.ops, nil
	})
	if err != nil {
		return "", err
	}
	return datamodel.VLANRef(vlan), nil
}

// newVirtualPIF is a managed, non-physical PIF record on base's host with
// no IP configuration, sharing base's metrics, as xapi makes VLAN and
// tunnel PIFs.
func newVirtualPIF(device string, network datamodel.NetworkRef, base *datamodel.PIFRecord) *datamodel.PIFRecord {
	p := datamodel.NewPIFRecord()
	p.UUID = datamodel.NewUUID()
	p.Device, p.DeviceName = device, device
	p.Network = network
	p.Host = base.Host
	p.VLAN = -1
	p.Metrics = base.Metrics
	p.Physical = false
	p.CurrentlyAttached = false
	p.IgmpSnoopingStatus = datamodel.PIFIgmpStatusUnknown
	p.IPConfigurationMode = datamodel.IPConfigurationModeNone
	p.BondSlaveOf = datamodel.BondRef(datamodel.NullRef)
	p.BondMasterOf = []datamodel.BondRef{}
	p.VLANMasterOf = datamodel.VLANRef(datamodel.NullRef)
	p.VLANSlaveOf = []datamodel.VLANRef{}
	p.Management = false
	p.OtherConfig = map[string]string{}
	p.DisallowUnplug = false
	p.TunnelAccessPIFOf = []datamodel.TunnelRef{}
	p.TunnelTransportPIFOf = []datamodel.TunnelRef{}
	p.IPv6ConfigurationMode = datamodel.IPv6ConfigurationModeNone
	p.IPv6 = []string{""} // as xapi writes it
	p.PrimaryAddressType = base.PrimaryAddressType
	p.Managed = true
	p.Properties = map[string]string{}
	p.Capabilities = []string{}
	p.SRIOVPhysicalPIFOf = []datamodel.NetworkSRIOVRef{}
	p.SRIOVLogicalPIFOf = []datamodel.NetworkSRIOVRef{}
	p.PCI = datamodel.PCIRef(datamodel.NullRef)
	return p
}

// assertNoProtection is xapi's assert_no_protection_enabled: an attached
// PIF is not reconfigured while HA (HA_IS_ENABLED) or the redo log
// (REDO_LOG_IS_ENABLED) is on.
func (s *Server) assertNoProtection(pif *datamodel.PIFRecord) error {
	if !pif.CurrentlyAttached {
		return nil
	}
	for _, e := range s.store.List(datamodel.PoolClass) {
		p := e.Obj.(*datamodel.PoolRecord)
		if p.HAEnabled {
			return datamodel.ErrHAIsEnabled()
		}
		if p.RedoLogEnabled {
			return datamodel.ErrRedoLogIsEnabled()
		}
	}
	return nil
}

// pifUnplugOps checks and records the unplug of a VLAN or tunnel PIF as
// xapi's PIF.unplug does: PIF_UNMANAGED, HA_IS_ENABLED/REDO_LOG_IS_ENABLED,
// PIF_IS_MANAGEMENT_INTERFACE, VIF_IN_USE [network, VIF] for a VIF of the
// network attached to a live VM on the PIF's host (or being attached there),
// PIF_DOES_NOT_ALLOW_UNPLUG; the access PIFs of tunnels over the PIF go
// down with it.
func (s *Server) pifUnplugOps(b *refBatch, ref string, pif *datamodel.PIFRecord) error {
	if !pif.Managed {
		return datamodel.ErrPIFUnmanaged(ref)
	}
	if err := s.assertNoProtection(pif); err != nil {
		return err
	}
	if pif.Management {
		return datamodel.ErrPIFIsManagementInterface(ref)
	}
	if no, ok := s.store.Get(datamodel.NetworkClass, string(pif.Network)); ok {
		for _, vif := range no.(*datamodel.NetworkRecord).VIFs {
			o, ok := s.store.Get(datamodel.VIFClass, string(vif))
			if !ok {
				continue
			}
			v := o.(*datamodel.VIFRecord)
			vo, ok := s.store.Get(datamodel.VMClass, string(v.VM))
			if !ok {
				continue
			}
			vm := vo.(*datamodel.VMRecord)
			for _, op := range v.CurrentOperations {
				if op == datamodel.VIFOperationsAttach && (vm.ResidentOn == pif.Host || vm.ScheduledToBeResidentOn == pif.Host) {
					return datamodel.ErrVIFInUse(string(pif.Network), string(vif))
				}
			}
			live := vm.PowerState == datamodel.VMPowerStateRunning || vm.PowerState == datamodel.VMPowerStatePaused
			if v.CurrentlyAttached && vm.ResidentOn == pif.Host && live {
				return datamodel.ErrVIFInUse(string(pif.Network), string(vif))
			}
		}
	}
	if pif.DisallowUnplug {
		return datamodel.ErrPIFDoesNotAllowUnplug(ref)
	}
	for _, t := range pif.TunnelTransportPIFOf {
		if to, ok := s.store.Get(datamodel.TunnelClass, string(t)); ok {
			access := string(to.(*datamodel.TunnelRecord).AccessPIF)
			if ao, ok := s.store.Get(datamodel.PIFClass, access); ok && ao.(*datamodel.PIFRecord).CurrentlyAttached {
				b.set(datamodel.PIFClass, access, "currently_attached", false)
			}
		}
	}
	return nil
}

// pifGone removes a VLAN or tunnel PIF and its host's and network's
// references to it. Its metrics are shared with the PIF underneath and stay.
func (b *refBatch) pifGone(ref string, pif *datamodel.PIFRecord) {
	b.setRemove(datamodel.HostClass, string(pif.Host), "PIFs", datamodel.PIFRef(ref))
	b.setRemove(datamodel.NetworkClass, string(pif.Network), "PIFs", datamodel.PIFRef(ref))
	b.del(datamodel.PIFClass, ref)
}

// Destroy implements VLAN.destroy: a VLAN whose untagged PIF is gone is
// simply removed; otherwise, as xapi: PIF_ALREADY_BONDED [pif] for a bonded
// untagged PIF, PIF_IS_MANAGEMENT_INTERFACE, HA_IS_ENABLED /
// REDO_LOG_IS_ENABLED, PIF_IS_PHYSICAL for a PIF without a VLAN tag, then
// PIF.unplug's checks; the VLAN and its untagged PIF are removed, with the
// references the tagged PIF, host and network hold.
func (m *vlanMessages) Destroy(ctx context.Context, call *Call, self datamodel.VLANRef) error {
	s := m.s
	return s.deviceWrite(ctx, func() ([]store.Op, error) {
		o, err := s.lookup(datamodel.VLANClass, self)
		if err != nil {
			return nil, err
		}
		v := o.(*datamodel.VLANRecord)
		b := &refBatch{s: s}
		b.setRemove(datamodel.PIFClass, string(v.TaggedPIF), "VLAN_slave_of", self)
		untagged := string(v.UntaggedPIF)
		po, ok := s.store.Get(datamodel.PIFClass, untagged)
		if !ok {
			b.del(datamodel.VLANClass, string(self))
			return b.ops, nil
		}
		pif := po.(*datamodel.PIFRecord)
		if _, bonded := s.store.Get(datamodel.BondClass, string(pif.BondSlaveOf)); bonded || len(pif.BondMasterOf) > 0 {
			return nil, datamodel.ErrPIFAlreadyBonded(untagged)
		}
		if pif.Management && pif.CurrentlyAttached && pif.Host != s.masterHost() {
			return nil, datamodel.ErrPIFIsManagementInterface(untagged)
		}
		if err := s.assertNoProtection(pif); err != nil {
			return nil, err
		}
		if pif.VLAN < 0 {
			return nil, datamodel.NewError(datamodel.CodePIFIsPhysical) // xapi sends no parameter
		}
		if err := s.pifUnplugOps(b, untagged, pif); err != nil {
			return nil, err
		}
		b.del(datamodel.VLANClass, string(self))
		b.pifGone(untagged, pif)
		return b.ops, nil
	})
}

// masterHost is the pool's master.
func (s *Server) masterHost() datamodel.HostRef {
	for _, e := range s.store.List(datamodel.PoolClass) {
		return e.Obj.(*datamodel.PoolRecord).Master
	}
	return datamodel.HostRef(datamodel.NullRef)
}
