package xapi

import (
	"context"
	"strconv"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

// tunnelMessages implements tunnel.create and tunnel.destroy (xapi_tunnel.ml).
type tunnelMessages struct {
	UnimplementedTunnelMessages
	s *Server
}

// Create implements tunnel.create with xapi's checks in order:
// NETWORK_UNMANAGED, NETWORK_ALREADY_CONNECTED, PIF_UNMANAGED; by the
// transport PIF's type CANNOT_ADD_TUNNEL_TO_BOND_SLAVE, IS_TUNNEL_ACCESS_PIF,
// CANNOT_ADD_TUNNEL_TO_SRIOV_LOGICAL or
// CANNOT_ADD_TUNNEL_TO_VLAN_ON_SRIOV_LOGICAL [transport_PIF];
// NETWORK_INCOMPATIBLE_WITH_TUNNEL [network] for an SR-IOV network;
// OPENVSWITCH_NOT_ACTIVE unless every host's software_version has
// network_backend=openvswitch. Plugging the new access PIF needs an IP
// configuration on the transport PIF (TRANSPORT_PIF_NOT_CONFIGURED
// [transport_PIF]): xapi finds that after creating the records and leaves
// them; here it is checked first and nothing is created. The access PIF
// (device tunnel<N>, the first free N on the host, random MAC, the transport
// PIF's metrics) is created plugged on the network together with the tunnel
// (status active=false) and the transport PIF is plugged; host.PIFs,
// network.PIFs and the transport PIF's tunnel_transport_PIF_of follow.
func (m *tunnelMessages) Create(ctx context.Context, call *Call, transportPIF datamodel.PIFRef, network datamodel.NetworkRef, protocol datamodel.TunnelProtocol) (datamodel.TunnelRef, error) {
	s := m.s
	tunnel, access := datamodel.NewRef(), datamodel.NewRef()
	err := s.deviceWrite(ctx, func() ([]store.Op, error) {
		transport, net, err := s.pifAndNetwork(transportPIF, network)
		if err != nil {
			return nil, err
		}
		topo, err := s.pifTopo(string(transportPIF), transport)
		if err != nil {
			return nil, err
		}
		switch {
		case topo[0].kind == pifPhysical && transport.BondSlaveOf != datamodel.BondRef(datamodel.NullRef) && transport.BondSlaveOf != "":
			return nil, datamodel.ErrCannotAddTunnelToBondSlave(string(transportPIF))
		case topo[0].kind == pifTunnelAccess:
			return nil, datamodel.ErrIsTunnelAccessPIF(string(transportPIF))
		case topo[0].kind == pifSRIOVLogical:
			return nil, datamodel.ErrCannotAddTunnelToSRIOVLogical(string(transportPIF))
		case topo[0].kind == pifVLANUntagged && len(topo) > 1 && topo[1].kind == pifSRIOVLogical:
			return nil, datamodel.ErrCannotAddTunnelToVLANOnSRIOVLogical(string(transportPIF))
		}
		if sriov, err := s.sriovBasedNetwork(net); err != nil {
			return nil, err
		} else if sriov {
			return nil, datamodel.ErrNetworkIncompatibleWithTunnel(string(network))
		}
		for _, e := range s.store.List(datamodel.HostClass) {
			if e.Obj.(*datamodel.HostRecord).SoftwareVersion["network_backend"] != "openvswitch" {
				return nil, datamodel.ErrOpenvswitchNotActive()
			}
		}
		if transport.IPConfigurationMode == datamodel.IPConfigurationModeNone {
			return nil, datamodel.ErrTransportPIFNotConfigured(string(transportPIF))
		}
		p := newVirtualPIF(s.tunnelDevice(transport.Host), network, transport)
		p.MAC = randomMAC()
		p.MTU = -1
		p.TunnelAccessPIFOf = []datamodel.TunnelRef{datamodel.TunnelRef(tunnel)}
		p.CurrentlyAttached = true // plugged
		t := datamodel.NewTunnelRecord()
		t.UUID = datamodel.NewUUID()
		t.AccessPIF = datamodel.PIFRef(access)
		t.TransportPIF = transportPIF
		t.Status = map[string]string{"active": "false"}
		t.OtherConfig = map[string]string{}
		t.Protocol = protocol
		b := &refBatch{s: s}
		b.ops = append(b.ops, store.Create(access, p), store.Create(tunnel, t))
		b.setAdd(datamodel.HostClass, string(p.Host), "PIFs", datamodel.PIFRef(access))
		b.ops = append(b.ops,
			mustSetAdd(datamodel.NetworkClass, string(network), "PIFs", datamodel.PIFRef(access)),
			mustSetAdd(datamodel.PIFClass, string(transportPIF), "tunnel_transport_PIF_of", datamodel.TunnelRef(tunnel)))
		if !transport.CurrentlyAttached {
			b.ops = append(b.ops, mustSet(datamodel.PIFClass, string(transportPIF), "currently_attached", true))
		}
		return b.ops, nil
	})
	if err != nil {
		return "", err
	}
	return datamodel.TunnelRef(tunnel), nil
}

// tunnelDevice is the first tunnel<N> device name no tunnel access PIF of
// the host uses.
func (s *Server) tunnelDevice(host datamodel.HostRef) string {
	used := map[string]bool{}
	for _, e := range s.store.List(datamodel.PIFClass) {
		if p := e.Obj.(*datamodel.PIFRecord); p.Host == host && len(p.TunnelAccessPIFOf) > 0 {
			used[p.Device] = true
		}
	}
	for n := 0; ; n++ {
		if name := "tunnel" + strconv.Itoa(n); !used[name] {
			return name
		}
	}
}

// Destroy implements tunnel.destroy: the access PIF is unplugged (with
// PIF.unplug's checks: PIF_UNMANAGED, HA_IS_ENABLED/REDO_LOG_IS_ENABLED,
// PIF_IS_MANAGEMENT_INTERFACE, VIF_IN_USE, PIF_DOES_NOT_ALLOW_UNPLUG), then
// it and the tunnel are removed, with the references the transport PIF,
// host and network hold.
func (m *tunnelMessages) Destroy(ctx context.Context, call *Call, self datamodel.TunnelRef) error {
	s := m.s
	return s.deviceWrite(ctx, func() ([]store.Op, error) {
		o, err := s.lookup(datamodel.TunnelClass, self)
		if err != nil {
			return nil, err
		}
		t := o.(*datamodel.TunnelRecord)
		b := &refBatch{s: s}
		if po, ok := s.store.Get(datamodel.PIFClass, string(t.AccessPIF)); ok {
			pif := po.(*datamodel.PIFRecord)
			if err := s.pifUnplugOps(b, string(t.AccessPIF), pif); err != nil {
				return nil, err
			}
			b.pifGone(string(t.AccessPIF), pif)
		}
		b.setRemove(datamodel.PIFClass, string(t.TransportPIF), "tunnel_transport_PIF_of", self)
		b.del(datamodel.TunnelClass, string(self))
		return b.ops, nil
	})
}
