package xapi_test

import (
	"context"
	"slices"
	"strconv"
	"testing"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
	"github.com/xapi-go/xapi-go/xapi/xapitest"
)

// netFixture is a fresh server's host, its management PIF (eth0) and
// helpers to add networks and physical PIFs.
type netFixture struct {
	t         *testing.T
	srv       *xapitest.Server
	s, url    string
	host, pif string
	mgmtNet   string
}

func newNetFixture(t *testing.T) *netFixture {
	srv := xapitest.NewServer(t, xapitest.Options{})
	f := &netFixture{t: t, srv: srv, url: srv.URL}
	f.s = login(t, srv.URL)
	f.host = refList(mustCall(t, f.url, "host.get_all", f.s))[0]
	f.pif = refList(mustCall(t, f.url, "PIF.get_all", f.s))[0]
	f.mgmtNet = record(t, f.url, f.s, "PIF", f.pif)["network"].(string)
	return f
}

func (f *netFixture) network(name string) string {
	return mustCall(f.t, f.url, "network.create", f.s, netArgs(name)).(string)
}

// physicalPIF adds a physical NIC's PIF on the host, not on any network.
func (f *netFixture) physicalPIF(device string, edit func(p *datamodel.PIFRecord)) string {
	p := datamodel.NewPIFRecord()
	p.UUID = datamodel.NewUUID()
	p.Device = device
	p.Host = datamodel.HostRef(f.host)
	p.Physical = true
	p.VLAN = -1
	p.MTU = 1500
	p.IPConfigurationMode = datamodel.IPConfigurationModeDHCP
	if edit != nil {
		edit(p)
	}
	ref := storeCreate(f.t, f.srv.Store, p)
	storeAdd(f.t, f.srv.Store, datamodel.HostClass, f.host, "PIFs", datamodel.PIFRef(ref))
	return ref
}

func TestVLANCreate(t *testing.T) {
	f := newNetFixture(t)
	url, s := f.url, f.s
	eth0 := record(t, url, s, "PIF", f.pif)

	// the VLAN the error cases run against
	net5 := f.network("vlan5")
	vlan5 := mustCall(t, url, "VLAN.create", s, f.pif, "5", net5).(string)
	untagged5 := record(t, url, s, "VLAN", vlan5)["untagged_PIF"].(string)

	tests := []struct {
		name  string
		setup func() (pif, tag, network string, want []string)
	}{
		{"VLAN 0", func() (string, string, string, []string) { return f.pif, "0", f.network("n"), nil }},
		{"VLAN 4094", func() (string, string, string, []string) { return f.pif, "4094", f.network("n"), nil }},
		{"bad PIF", func() (string, string, string, []string) {
			return "OpaqueRef:nope", "7", f.network("n"), []string{"HANDLE_INVALID", "PIF", "OpaqueRef:nope"}
		}},
		{"bad network", func() (string, string, string, []string) {
			return f.pif, "7", "OpaqueRef:nope", []string{"HANDLE_INVALID", "network", "OpaqueRef:nope"}
		}},
		{"unmanaged network", func() (string, string, string, []string) {
			n := f.network("n")
			storeSet(t, f.srv.Store, datamodel.NetworkClass, n, "managed", false)
			return f.pif, "7", n, []string{"NETWORK_UNMANAGED", n}
		}},
		{"network already on the host", func() (string, string, string, []string) {
			return f.pif, "7", f.mgmtNet, []string{"NETWORK_ALREADY_CONNECTED", f.host, f.pif}
		}},
		{"unmanaged PIF", func() (string, string, string, []string) {
			p := f.physicalPIF("eth1", func(p *datamodel.PIFRecord) { p.Managed = false })
			return p, "7", f.network("n"), []string{"PIF_UNMANAGED", p}
		}},
		{"bond slave", func() (string, string, string, []string) {
			p := f.physicalPIF("eth2", func(p *datamodel.PIFRecord) { p.BondSlaveOf = datamodel.BondRef(datamodel.NewRef()) })
			return p, "7", f.network("n"), []string{"CANNOT_ADD_VLAN_TO_BOND_SLAVE", p}
		}},
		{"VLAN on a VLAN", func() (string, string, string, []string) {
			return untagged5, "7", f.network("n"), []string{"PIF_IS_VLAN", untagged5}
		}},
		{"tag too big", func() (string, string, string, []string) {
			return f.pif, "4095", f.network("n"), []string{"VLAN_TAG_INVALID", "4095"}
		}},
		{"negative tag", func() (string, string, string, []string) {
			return f.pif, "-1", f.network("n"), []string{"VLAN_TAG_INVALID", "-1"}
		}},
		{"tag exists on the PIF", func() (string, string, string, []string) {
			return f.pif, "5", f.network("n"), []string{"PIF_VLAN_EXISTS", "eth0"}
		}},
		{"VIF with trunks on the network", func() (string, string, string, []string) {
			n := f.network("n")
			vm := newVM(t, url, s, "trunks")
			vif := mustCall(t, url, "VIF.create", s, devVIF(vm, n, "0", "")).(string)
			storeSet(t, f.srv.Store, datamodel.VIFClass, vif, "trunks", []int64{10})
			return f.pif, "7", n, []string{"NETWORK_INCOMPATIBLE_WITH_TRUNKS", n}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pif, tag, network, want := tc.setup()
			before := len(refList(mustCall(t, url, "PIF.get_all", s)))
			v, e := jsonCall(t, url, "VLAN.create", s, pif, tag, network)
			if !slices.Equal(e, want) {
				t.Fatalf("error %v, want %v", e, want)
			}
			if want != nil {
				if n := len(refList(mustCall(t, url, "PIF.get_all", s))); n != before {
					t.Fatalf("failed create left a PIF (%d -> %d)", before, n)
				}
				return
			}
			vlan := v.(string)
			vr := record(t, url, s, "VLAN", vlan)
			untagged := vr["untagged_PIF"].(string)
			if vr["tagged_PIF"] != pif || strconv.FormatInt(vmNum(vr["tag"]), 10) != tag || vr["uuid"] == "" {
				t.Fatalf("VLAN %v", vr)
			}
			p := record(t, url, s, "PIF", untagged)
			if p["device"] != "eth0" || p["network"] != network || p["host"] != f.host || p["MAC"] != "fe:ff:ff:ff:ff:ff" ||
				strconv.FormatInt(vmNum(p["VLAN"]), 10) != tag || vmNum(p["MTU"]) != vmNum(eth0["MTU"]) ||
				p["metrics"] != eth0["metrics"] || p["physical"] != false || p["currently_attached"] != true ||
				p["VLAN_master_of"] != vlan || p["management"] != false || p["ip_configuration_mode"] != "None" || p["managed"] != true {
				t.Fatalf("untagged PIF %v", p)
			}
			if !slices.Contains(strs(record(t, url, s, "PIF", pif)["VLAN_slave_of"]), vlan) ||
				!slices.Contains(strs(record(t, url, s, "network", network)["PIFs"]), untagged) ||
				!slices.Contains(strs(record(t, url, s, "host", f.host)["PIFs"]), untagged) {
				t.Fatal("references to the new VLAN or PIF missing")
			}
		})
	}
}

func TestVLANDestroy(t *testing.T) {
	f := newNetFixture(t)
	url, s := f.url, f.s
	metrics := record(t, url, s, "PIF", f.pif)["metrics"].(string)
	tag := 100
	newVLAN := func() (vlan, untagged, network string) {
		tag++
		network = f.network("n")
		vlan = mustCall(t, url, "VLAN.create", s, f.pif, strconv.Itoa(tag), network).(string)
		return vlan, record(t, url, s, "VLAN", vlan)["untagged_PIF"].(string), network
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, vlan, untagged, network string) []string
	}{
		{"plain", func(*testing.T, string, string, string) []string { return nil }},
		{"untagged PIF gone", func(t *testing.T, _, untagged, network string) []string {
			// gone with every reference to it
			del := []store.Op{store.Delete(datamodel.PIFClass, untagged)}
			for _, c := range []struct {
				c        *datamodel.Class
				ref, fld string
			}{{datamodel.NetworkClass, network, "PIFs"}, {datamodel.HostClass, f.host, "PIFs"}} {
				op, err := store.SetRemove(c.c, c.ref, c.fld, datamodel.PIFRef(untagged))
				if err != nil {
					t.Fatal(err)
				}
				del = append(del, op)
			}
			if _, err := f.srv.Store.Apply(context.Background(), del...); err != nil {
				t.Fatal(err)
			}
			return nil
		}},
		{"management", func(t *testing.T, _, untagged, _ string) []string {
			storeSet(t, f.srv.Store, datamodel.PIFClass, untagged, "management", true)
			return []string{"PIF_IS_MANAGEMENT_INTERFACE", untagged}
		}},
		{"disallow unplug", func(t *testing.T, _, untagged, _ string) []string {
			storeSet(t, f.srv.Store, datamodel.PIFClass, untagged, "disallow_unplug", true)
			return []string{"PIF_DOES_NOT_ALLOW_UNPLUG", untagged}
		}},
		{"no VLAN tag", func(t *testing.T, _, untagged, _ string) []string {
			storeSet(t, f.srv.Store, datamodel.PIFClass, untagged, "VLAN", int64(-1))
			return []string{"PIF_IS_PHYSICAL"}
		}},
		{"HA on", func(t *testing.T, _, _, _ string) []string {
			pool := refList(mustCall(t, url, "pool.get_all", s))[0]
			storeSet(t, f.srv.Store, datamodel.PoolClass, pool, "ha_enabled", true)
			t.Cleanup(func() { storeSet(t, f.srv.Store, datamodel.PoolClass, pool, "ha_enabled", false) })
			return []string{"HA_IS_ENABLED"}
		}},
		{"VIF of a running VM", func(t *testing.T, _, _, network string) []string {
			vm := newVM(t, url, s, "vif")
			vif := mustCall(t, url, "VIF.create", s, devVIF(vm, network, "0", "")).(string)
			mustCall(t, url, "VM.start", s, vm, false, false)
			return []string{"VIF_IN_USE", network, vif}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vlan, untagged, network := newVLAN()
			want := tc.setup(t, vlan, untagged, network)
			if !checkPIFOwnerDestroy(t, url, s, pifOwner{"VLAN", vlan, untagged, f.pif, "VLAN_slave_of", network, f.host}, want) {
				return
			}
			if !exists(t, url, s, "PIF_metrics", metrics) {
				t.Fatal("the tagged PIF's metrics went with the VLAN")
			}
		})
	}
	devFail(t, url, []string{"HANDLE_INVALID", "VLAN", "OpaqueRef:nope"}, "VLAN.destroy", s, "OpaqueRef:nope")
}

// pifOwner is an object that owns a PIF of its own on a transport PIF: a VLAN
// (its untagged PIF on the tagged one) or a tunnel (its access PIF).
type pifOwner struct {
	class, ref, pif  string
	transport, back  string // the transport PIF and its field listing owners
	network, hostRef string
}

// checkPIFOwnerDestroy destroys o and checks the outcome against want: a
// failure leaves o and its PIF; a success removes both and every reference
// to them. It reports whether o was destroyed.
func checkPIFOwnerDestroy(t *testing.T, url, s string, o pifOwner, want []string) bool {
	t.Helper()
	_, e := jsonCall(t, url, o.class+".destroy", s, o.ref)
	if !slices.Equal(e, want) {
		t.Fatalf("error %v, want %v", e, want)
	}
	if want != nil {
		if !exists(t, url, s, o.class, o.ref) || !exists(t, url, s, "PIF", o.pif) {
			t.Fatal("failed destroy removed something")
		}
		return false
	}
	if exists(t, url, s, o.class, o.ref) || exists(t, url, s, "PIF", o.pif) {
		t.Fatalf("%s or its PIF left", o.class)
	}
	if slices.Contains(strs(record(t, url, s, "PIF", o.transport)[o.back]), o.ref) ||
		slices.Contains(strs(record(t, url, s, "network", o.network)["PIFs"]), o.pif) ||
		slices.Contains(strs(record(t, url, s, "host", o.hostRef)["PIFs"]), o.pif) {
		t.Fatalf("references to the %s or its PIF left", o.class)
	}
	return true
}
