package xapi_test

import (
	"slices"
	"strconv"
	"testing"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/xapi/xapitest"
)

// devFail makes a call that must fail with exactly want.
func devFail(t *testing.T, url string, want []string, method string, params ...any) {
	t.Helper()
	_, e := jsonCall(t, url, method, params...)
	if !slices.Equal(e, want) {
		t.Fatalf("%s: error %v, want %v", method, e, want)
	}
}

func devOne(t *testing.T, url, s, class, where string) string {
	t.Helper()
	refs := refList(vmCall(t, url, class+".get_all_where", s, where))
	if len(refs) != 1 {
		t.Fatalf("%s where %s: %v", class, where, refs)
	}
	return refs[0]
}

func devVBD(vm, vdi, userdevice, typ, mode string, empty bool) map[string]any {
	return map[string]any{"VM": vm, "VDI": vdi, "userdevice": userdevice, "bootable": false, "mode": mode, "type": typ,
		"empty": empty, "other_config": map[string]any{}, "qos_algorithm_type": "", "qos_algorithm_params": map[string]any{}}
}

func devVIF(vm, network, device, mac string) map[string]any {
	return map[string]any{"VM": vm, "network": network, "device": device, "MAC": mac, "MTU": 0,
		"other_config": map[string]any{}, "qos_algorithm_type": "", "qos_algorithm_params": map[string]any{}}
}

func devVDI(sr string, size int64) map[string]any {
	return map[string]any{"name_label": "data", "SR": sr, "virtual_size": size, "type": "user", "sharable": false,
		"read_only": false, "other_config": map[string]any{}}
}

func TestDevices(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	url := srv.URL
	s := login(t, url)
	const gib = int64(1) << 30
	vm := newVM(t, url, s, "devices")
	pool := refList(vmCall(t, url, "pool.get_all", s))[0]
	sr := vmCall(t, url, "pool.get_default_SR", s, pool).(string)
	net := devOne(t, url, s, "network", `field "bridge"="xenbr0"`)
	dom0 := devOne(t, url, s, "VM", `field "is_control_domain"="true"`)
	sr0 := record(t, url, s, "SR", sr)
	srUse := func() (virt, phys int64) {
		r := record(t, url, s, "SR", sr)
		return vmNum(r["virtual_allocation"]) - vmNum(sr0["virtual_allocation"]), vmNum(r["physical_utilisation"]) - vmNum(sr0["physical_utilisation"])
	}

	// VDI.create charges the SR.
	vdi := vmCall(t, url, "VDI.create", s, devVDI(sr, gib)).(string)
	if v, p := srUse(); v != gib || p != gib {
		t.Fatalf("SR use after VDI.create: %d %d", v, p)
	}
	if !slices.Contains(refList(vmCall(t, url, "SR.get_VDIs", s, sr)), vdi) {
		t.Fatal("VDI not in SR.VDIs")
	}
	free := vmNum(sr0["physical_size"]) - vmNum(sr0["virtual_allocation"]) - gib
	devFail(t, url, []string{"SR_FULL", strconv.FormatInt(free+1, 10), strconv.FormatInt(free, 10)}, "VDI.create", s, devVDI(sr, free+1))
	devFail(t, url, []string{"HANDLE_INVALID", "SR", "OpaqueRef:nope"}, "VDI.create", s, devVDI("OpaqueRef:nope", gib))
	devFail(t, url, []string{"VDI_TOO_SMALL", vdi, strconv.FormatInt(gib, 10)}, "VDI.resize", s, vdi, gib-1)
	vmCall(t, url, "VDI.resize", s, vdi, 2*gib)
	if v, p := srUse(); v != 2*gib || p != 2*gib {
		t.Fatalf("SR use after VDI.resize: %d %d", v, p)
	}
	vmCall(t, url, "VDI.set_name_label", s, vdi, "data disk")

	// VBDs.
	vbd := vmCall(t, url, "VBD.create", s, devVBD(vm, vdi, "autodetect", "Disk", "RW", false)).(string)
	b := record(t, url, s, "VBD", vbd)
	ud := b["userdevice"].(string)
	if ud == "autodetect" || b["currently_attached"] != false || b["VM"] != vm || b["VDI"] != vdi {
		t.Fatalf("VBD %v", b)
	}
	if !slices.Contains(refList(vmCall(t, url, "VM.get_VBDs", s, vm)), vbd) || !slices.Contains(refList(vmCall(t, url, "VDI.get_VBDs", s, vdi)), vbd) {
		t.Fatal("VBD not in VM.VBDs / VDI.VBDs")
	}
	devFail(t, url, []string{"DEVICE_ALREADY_EXISTS", ud}, "VBD.create", s, devVBD(vm, vdi, ud, "Disk", "RW", false))
	devFail(t, url, []string{"HANDLE_INVALID", "VM", "OpaqueRef:nope"}, "VBD.create", s, devVBD("OpaqueRef:nope", vdi, "7", "Disk", "RW", false))
	devFail(t, url, []string{"HANDLE_INVALID", "VDI", "OpaqueRef:nope"}, "VBD.create", s, devVBD(vm, "OpaqueRef:nope", "7", "Disk", "RW", false))
	devFail(t, url, []string{"VBD_CDS_MUST_BE_READONLY"}, "VBD.create", s, devVBD(vm, datamodel.NullRef, "7", "CD", "RW", true))
	cd := vmCall(t, url, "VBD.create", s, devVBD(vm, datamodel.NullRef, "autodetect", "CD", "RO", true)).(string)
	devFail(t, url, []string{"VBD_IS_EMPTY", cd}, "VBD.eject", s, cd)
	devFail(t, url, []string{"VBD_NOT_REMOVABLE_MEDIA", vbd}, "VBD.eject", s, vbd)
	devFail(t, url, []string{"VBD_NOT_REMOVABLE_MEDIA", vbd}, "VBD.insert", s, vbd, vdi)
	iso := vmCall(t, url, "VDI.create", s, devVDI(sr, 0)).(string)
	vmCall(t, url, "VBD.insert", s, cd, iso)
	devFail(t, url, []string{"VBD_NOT_EMPTY", cd}, "VBD.insert", s, cd, iso)
	if r := record(t, url, s, "VBD", cd); r["empty"] != false || r["VDI"] != iso || !slices.Contains(refList(vmCall(t, url, "VDI.get_VBDs", s, iso)), cd) {
		t.Fatalf("after insert: %v", r)
	}
	vmCall(t, url, "VBD.eject", s, cd)
	if r := record(t, url, s, "VBD", cd); r["empty"] != true || r["VDI"] != datamodel.NullRef || len(refList(vmCall(t, url, "VDI.get_VBDs", s, iso))) != 0 {
		t.Fatalf("after eject: %v", r)
	}
	vmCall(t, url, "VBD.insert", s, cd, iso)

	// VIFs.
	dev := vmCall(t, url, "VM.get_allowed_VIF_devices", s, vm).([]any)[0].(string)
	vif := vmCall(t, url, "VIF.create", s, devVIF(vm, net, dev, "")).(string)
	f := record(t, url, s, "VIF", vif)
	if f["MAC_autogenerated"] != true || len(f["MAC"].(string)) != 17 || vmNum(f["MTU"]) != 1500 || f["device"] != dev {
		t.Fatalf("VIF %v", f)
	}
	if !slices.Contains(refList(vmCall(t, url, "VM.get_VIFs", s, vm)), vif) || !slices.Contains(refList(vmCall(t, url, "network.get_VIFs", s, net)), vif) {
		t.Fatal("VIF not in VM.VIFs / network.VIFs")
	}
	devFail(t, url, []string{"DEVICE_ALREADY_EXISTS", dev}, "VIF.create", s, devVIF(vm, net, dev, ""))
	devFail(t, url, []string{"INVALID_DEVICE", "eth1"}, "VIF.create", s, devVIF(vm, net, "eth1", ""))
	devFail(t, url, []string{"MAC_INVALID", "zz:00"}, "VIF.create", s, devVIF(vm, net, "5", "zz:00"))
	devFail(t, url, []string{"HANDLE_INVALID", "network", "OpaqueRef:nope"}, "VIF.create", s, devVIF(vm, "OpaqueRef:nope", "5", ""))
	vif2 := vmCall(t, url, "VIF.create", s, devVIF(vm, net, "5", "AA:BB:CC:DD:EE:02")).(string)
	if f := record(t, url, s, "VIF", vif2); f["MAC"] != "aa:bb:cc:dd:ee:02" || f["MAC_autogenerated"] != false {
		t.Fatalf("VIF with MAC %v", f)
	}
	vmCall(t, url, "VIF.destroy", s, vif2)
	if slices.Contains(refList(vmCall(t, url, "network.get_VIFs", s, net)), vif2) || slices.Contains(refList(vmCall(t, url, "VM.get_VIFs", s, vm)), vif2) {
		t.Fatal("destroyed VIF still listed")
	}

	// Plugging needs a running VM.
	devFail(t, url, []string{"VM_BAD_POWER_STATE", vm, "running", "halted"}, "VBD.plug", s, vbd)
	devFail(t, url, []string{"VM_BAD_POWER_STATE", vm, "running", "halted"}, "VIF.plug", s, vif)
	vmCall(t, url, "VM.start", s, vm, false, false)
	devFail(t, url, []string{"VM_BAD_POWER_STATE", vm, "halted", "running"}, "VM.destroy", s, vm)
	devFail(t, url, []string{"VDI_IN_USE", vdi, "resize"}, "VDI.resize", s, vdi, 3*gib)
	devFail(t, url, []string{"VDI_IN_USE", vdi, "destroy"}, "VDI.destroy", s, vdi)
	// a started VM's devices are attached
	if r := record(t, url, s, "VBD", vbd); r["currently_attached"] != true {
		t.Fatalf("VBD after start: %v", r)
	}
	if r := record(t, url, s, "VIF", vif); r["currently_attached"] != true {
		t.Fatalf("VIF after start: %v", r)
	}
	vmCall(t, url, "VBD.unplug", s, vbd)
	devFail(t, url, []string{"DEVICE_ALREADY_DETACHED", vbd}, "VBD.unplug", s, vbd)
	vmCall(t, url, "VBD.plug", s, vbd)
	if r := record(t, url, s, "VBD", vbd); r["currently_attached"] != true || !slices.Contains(refList(r["allowed_operations"]), "unplug") {
		t.Fatalf("after plug: %v", r)
	}
	devFail(t, url, []string{"DEVICE_ALREADY_ATTACHED", vbd}, "VBD.plug", s, vbd)
	_, e := jsonCall(t, url, "VBD.destroy", s, vbd)
	if len(e) != 2 || e[0] != "OPERATION_NOT_ALLOWED" {
		t.Fatalf("destroy of an attached VBD: %v", e)
	}
	vmCall(t, url, "VBD.unplug", s, vbd)
	vmCall(t, url, "VBD.plug", s, vbd)
	vmCall(t, url, "VBD.unplug_force", s, vbd)
	if r := record(t, url, s, "VBD", vbd); r["currently_attached"] != false {
		t.Fatalf("after unplug_force: %v", r)
	}
	vmCall(t, url, "VBD.plug", s, vbd)
	vmCall(t, url, "VBD.set_unpluggable", s, vbd, false)
	devFail(t, url, []string{"VBD_NOT_UNPLUGGABLE", vbd}, "VBD.unplug", s, vbd)
	vmCall(t, url, "VBD.unplug_force", s, vbd)
	vmCall(t, url, "VBD.set_unpluggable", s, vbd, true)
	devFail(t, url, []string{"DEVICE_ALREADY_ATTACHED", vif}, "VIF.plug", s, vif) // attached since start
	vmCall(t, url, "VIF.unplug", s, vif)
	devFail(t, url, []string{"DEVICE_ALREADY_DETACHED", vif}, "VIF.unplug_force", s, vif)
	vmCall(t, url, "VBD.plug", s, vbd)
	vmCall(t, url, "VIF.plug", s, vif)
	vmCall(t, url, "VM.hard_shutdown", s, vm)
	if r := record(t, url, s, "VBD", vbd); r["currently_attached"] != false {
		t.Fatalf("VBD after shutdown: %v", r)
	}

	// VDI.destroy of a disk of a halted VM takes its VBDs along.
	scratch := vmCall(t, url, "VDI.create", s, devVDI(sr, gib)).(string)
	svbd := vmCall(t, url, "VBD.create", s, devVBD(vm, scratch, "autodetect", "Disk", "RW", false)).(string)
	vmCall(t, url, "VDI.destroy", s, scratch)
	devFail(t, url, []string{"HANDLE_INVALID", "VBD", svbd}, "VBD.get_record", s, svbd)
	if slices.Contains(refList(vmCall(t, url, "VM.get_VBDs", s, vm)), svbd) {
		t.Fatal("VM.VBDs names the VBD of a destroyed VDI")
	}

	// VM.destroy.
	vmCall(t, url, "VM.add_to_blocked_operations", s, vm, "destroy", "keep")
	devFail(t, url, []string{"OPERATION_BLOCKED", vm, "keep"}, "VM.destroy", s, vm)
	vmCall(t, url, "VM.remove_from_blocked_operations", s, vm, "destroy")
	_, e = jsonCall(t, url, "VM.destroy", s, dom0)
	if len(e) != 2 || e[0] != "OPERATION_NOT_ALLOWED" {
		t.Fatalf("destroy of dom0: %v", e)
	}
	r := record(t, url, s, "VM", vm)
	metrics := r["metrics"].(string)
	vbds, vifs := refList(r["VBDs"]), refList(r["VIFs"])
	vmCall(t, url, "VM.destroy", s, vm)
	devFail(t, url, []string{"HANDLE_INVALID", "VM", vm}, "VM.get_record", s, vm)
	devFail(t, url, []string{"HANDLE_INVALID", "VM_metrics", metrics}, "VM_metrics.get_record", s, metrics)
	for _, b := range vbds {
		devFail(t, url, []string{"HANDLE_INVALID", "VBD", b}, "VBD.get_record", s, b)
	}
	for _, f := range vifs {
		devFail(t, url, []string{"HANDLE_INVALID", "VIF", f}, "VIF.get_record", s, f)
	}
	if d := record(t, url, s, "VDI", vdi); len(refList(d["VBDs"])) != 0 || d["name_label"] != "data disk" {
		t.Fatalf("VDI after VM.destroy: %v", d)
	}
	if slices.Contains(refList(vmCall(t, url, "network.get_VIFs", s, net)), vif) {
		t.Fatal("network.VIFs names a destroyed VIF")
	}
	gone := map[string]bool{vm: true, metrics: true}
	for _, x := range append(vbds, vifs...) {
		gone[x] = true
	}
	dump := dumpAll(t, url, s)
	for class, recs := range dump {
		c, _ := datamodel.ClassByName(class)
		for ref, rec := range recs {
			for _, f := range c.Fields {
				var refs [][2]string
				refsIn(f.Type, rec[f.Name], &refs)
				for _, x := range refs {
					if gone[x[1]] {
						t.Errorf("%s %s.%s names destroyed %s %s", class, ref, f.Name, x[0], x[1])
					}
				}
			}
		}
	}

	// VDI.destroy gives the space back.
	vmCall(t, url, "VDI.destroy", s, vdi)
	vmCall(t, url, "VDI.destroy", s, iso)
	if v, p := srUse(); v != 0 || p != 0 {
		t.Fatalf("SR use after VDI.destroy: %d %d", v, p)
	}
	if slices.Contains(refList(vmCall(t, url, "SR.get_VDIs", s, sr)), vdi) {
		t.Fatal("destroyed VDI in SR.VDIs")
	}
}

func TestVDICloneSnapshot(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	url := srv.URL
	s := login(t, url)
	pool := refList(vmCall(t, url, "pool.get_all", s))[0]
	sr := vmCall(t, url, "pool.get_default_SR", s, pool).(string)
	vdi := vmCall(t, url, "VDI.create", s, devVDI(sr, 1<<20)).(string)
	clone := vmCall(t, url, "VDI.clone", s, vdi, map[string]any{}).(string)
	snap := vmCall(t, url, "VDI.snapshot", s, vdi, map[string]any{}).(string)
	if c := record(t, url, s, "VDI", clone); vmNum(c["virtual_size"]) != 1<<20 || c["is_a_snapshot"] != false {
		t.Fatalf("clone %v", c)
	}
	if c := record(t, url, s, "VDI", snap); c["is_a_snapshot"] != true || c["snapshot_of"] != vdi {
		t.Fatalf("snapshot %v", c)
	}
	if !slices.Contains(refList(vmCall(t, url, "VDI.get_snapshots", s, vdi)), snap) {
		t.Fatal("snapshot not in VDI.snapshots")
	}
	vmCall(t, url, "VDI.destroy", s, vdi)
	if c := record(t, url, s, "VDI", snap); c["snapshot_of"] != datamodel.NullRef {
		t.Fatalf("snapshot of a destroyed VDI: %v", c["snapshot_of"])
	}
}
