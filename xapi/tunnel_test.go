package xapi_test

import (
	"maps"
	"slices"
	"testing"

	"github.com/xapi-go/xapi-go/datamodel"
)

// openvswitch makes the fixture's host report the openvswitch network
// backend, which tunnels need.
func (f *netFixture) openvswitch(backend string) {
	sv := map[string]string{}
	for k, v := range record(f.t, f.url, f.s, "host", f.host)["software_version"].(map[string]any) {
		sv[k] = v.(string)
	}
	sv["network_backend"] = backend
	storeSet(f.t, f.srv.Store, datamodel.HostClass, f.host, "software_version", sv)
}

func TestTunnelCreate(t *testing.T) {
	f := newNetFixture(t)
	url, s := f.url, f.s
	eth0 := record(t, url, s, "PIF", f.pif)

	// A fresh host runs the bridge backend: no tunnels.
	devFail(t, url, []string{"OPENVSWITCH_NOT_ACTIVE"}, "tunnel.create", s, f.pif, f.network("n"), "gre")
	f.openvswitch("openvswitch")

	first := mustCall(t, url, "tunnel.create", s, f.pif, f.network("first"), "gre").(string)
	firstAccess := record(t, url, s, "tunnel", first)["access_PIF"].(string)

	tests := []struct {
		name  string
		setup func(t *testing.T) (pif, network, protocol string, want []string)
	}{
		{"vxlan", func(t *testing.T) (string, string, string, []string) { return f.pif, f.network("n"), "vxlan", nil }},
		{"protocol defaults to gre", func(t *testing.T) (string, string, string, []string) {
			return f.pif, f.network("n"), "", nil
		}},
		{"bad PIF", func(t *testing.T) (string, string, string, []string) {
			return "OpaqueRef:nope", f.network("n"), "gre", []string{"HANDLE_INVALID", "PIF", "OpaqueRef:nope"}
		}},
		{"unmanaged network", func(t *testing.T) (string, string, string, []string) {
			n := f.network("n")
			storeSet(t, f.srv.Store, datamodel.NetworkClass, n, "managed", false)
			return f.pif, n, "gre", []string{"NETWORK_UNMANAGED", n}
		}},
		{"network already on the host", func(t *testing.T) (string, string, string, []string) {
			return f.pif, f.mgmtNet, "gre", []string{"NETWORK_ALREADY_CONNECTED", f.host, f.pif}
		}},
		{"unmanaged PIF", func(t *testing.T) (string, string, string, []string) {
			p := f.physicalPIF("eth1", func(p *datamodel.PIFRecord) { p.Managed = false })
			return p, f.network("n"), "gre", []string{"PIF_UNMANAGED", p}
		}},
		{"bond slave", func(t *testing.T) (string, string, string, []string) {
			p := f.physicalPIF("eth2", func(p *datamodel.PIFRecord) { p.BondSlaveOf = datamodel.BondRef(datamodel.NewRef()) })
			return p, f.network("n"), "gre", []string{"CANNOT_ADD_TUNNEL_TO_BOND_SLAVE", p}
		}},
		{"tunnel over a tunnel", func(t *testing.T) (string, string, string, []string) {
			return firstAccess, f.network("n"), "gre", []string{"IS_TUNNEL_ACCESS_PIF", firstAccess}
		}},
		{"transport PIF without IP", func(t *testing.T) (string, string, string, []string) {
			p := f.physicalPIF("eth3", func(p *datamodel.PIFRecord) { p.IPConfigurationMode = datamodel.IPConfigurationModeNone })
			return p, f.network("n"), "gre", []string{"TRANSPORT_PIF_NOT_CONFIGURED", p}
		}},
		{"another host on bridge", func(t *testing.T) (string, string, string, []string) {
			h := datamodel.NewHostRecord()
			h.UUID = datamodel.NewUUID()
			h.SoftwareVersion = map[string]string{"network_backend": "bridge"}
			ref := storeCreate(t, f.srv.Store, h)
			t.Cleanup(func() {
				storeSet(t, f.srv.Store, datamodel.HostClass, ref, "software_version", map[string]string{"network_backend": "openvswitch"})
			})
			return f.pif, f.network("n"), "gre", []string{"OPENVSWITCH_NOT_ACTIVE"}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pif, network, protocol, want := tc.setup(t)
			before := len(refList(mustCall(t, url, "PIF.get_all", s)))
			tunnels := len(refList(mustCall(t, url, "tunnel.get_all", s)))
			params := []any{s, pif, network, protocol}
			if protocol == "" {
				params = params[:3]
			}
			v, e := jsonCall(t, url, "tunnel.create", params...)
			if !slices.Equal(e, want) {
				t.Fatalf("error %v, want %v", e, want)
			}
			if want != nil {
				if n, m := len(refList(mustCall(t, url, "PIF.get_all", s))), len(refList(mustCall(t, url, "tunnel.get_all", s))); n != before || m != tunnels {
					t.Fatalf("failed create left records (PIFs %d -> %d, tunnels %d -> %d)", before, n, tunnels, m)
				}
				return
			}
			if protocol == "" {
				protocol = "gre"
			}
			tunnel := v.(string)
			tr := record(t, url, s, "tunnel", tunnel)
			access := tr["access_PIF"].(string)
			if tr["transport_PIF"] != pif || tr["protocol"] != protocol || tr["uuid"] == "" ||
				!maps.Equal(tr["status"].(map[string]any), map[string]any{"active": "false"}) {
				t.Fatalf("tunnel %v", tr)
			}
			p := record(t, url, s, "PIF", access)
			if !slices.Equal(strs(p["tunnel_access_PIF_of"]), []string{tunnel}) || p["network"] != network || p["host"] != f.host ||
				vmNum(p["VLAN"]) != -1 || vmNum(p["MTU"]) != -1 || p["metrics"] != eth0["metrics"] || p["physical"] != false ||
				p["currently_attached"] != true || p["MAC"] == "" || p["managed"] != true {
				t.Fatalf("access PIF %v", p)
			}
			if !slices.Contains(strs(record(t, url, s, "PIF", pif)["tunnel_transport_PIF_of"]), tunnel) ||
				!slices.Contains(strs(record(t, url, s, "network", network)["PIFs"]), access) ||
				!slices.Contains(strs(record(t, url, s, "host", f.host)["PIFs"]), access) {
				t.Fatal("references to the new tunnel or PIF missing")
			}
		})
	}

	// Access PIFs are named tunnel<N>, the first free N on the host.
	var devices []string
	for _, e := range refList(mustCall(t, url, "tunnel.get_all", s)) {
		a := record(t, url, s, "tunnel", e)["access_PIF"].(string)
		devices = append(devices, record(t, url, s, "PIF", a)["device"].(string))
	}
	slices.Sort(devices)
	if !slices.Equal(devices, []string{"tunnel0", "tunnel1", "tunnel2"}) {
		t.Fatalf("devices %v", devices)
	}
}

func TestTunnelDestroy(t *testing.T) {
	f := newNetFixture(t)
	url, s := f.url, f.s
	f.openvswitch("openvswitch")
	tests := []struct {
		name  string
		setup func(t *testing.T, access, network string) []string
	}{
		{"plain", func(*testing.T, string, string) []string { return nil }},
		{"disallow unplug", func(t *testing.T, access, _ string) []string {
			storeSet(t, f.srv.Store, datamodel.PIFClass, access, "disallow_unplug", true)
			return []string{"PIF_DOES_NOT_ALLOW_UNPLUG", access}
		}},
		{"VIF of a running VM", func(t *testing.T, _, network string) []string {
			vm := newVM(t, url, s, "vif")
			vif := mustCall(t, url, "VIF.create", s, devVIF(vm, network, "0", "")).(string)
			mustCall(t, url, "VM.start", s, vm, false, false)
			return []string{"VIF_IN_USE", network, vif}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			network := f.network("n")
			tunnel := mustCall(t, url, "tunnel.create", s, f.pif, network, "gre").(string)
			access := record(t, url, s, "tunnel", tunnel)["access_PIF"].(string)
			want := tc.setup(t, access, network)
			checkPIFOwnerDestroy(t, url, s, pifOwner{"tunnel", tunnel, access, f.pif, "tunnel_transport_PIF_of", network, f.host}, want)
		})
	}
	devFail(t, url, []string{"HANDLE_INVALID", "tunnel", "OpaqueRef:nope"}, "tunnel.destroy", s, "OpaqueRef:nope")
}
