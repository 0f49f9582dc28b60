package xapi_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/backends/sim"
	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/xapi"
	"github.com/xapi-go/xapi-go/xapi/xapitest"
)

// waitVM polls the VM record until ok holds.
func waitVM(t *testing.T, url, s, vm string, what string, ok func(r map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := record(t, url, s, "VM", vm)
		if ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("VM never %s: %v %v", what, r["power_state"], r["allowed_operations"])
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestVMAllowedOperationsFollowRecordEdits(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	vm := vmCall(t, srv.URL, "VM.clone", s, templateRef(t, srv.URL, s), "edit").(string)
	vmCall(t, srv.URL, "VM.set_is_a_template", s, vm, false)
	waitVM(t, srv.URL, s, vm, "startable", func(r map[string]any) bool {
		return slices.Contains(refList(r["allowed_operations"]), "start")
	})
	vmCall(t, srv.URL, "VM.add_to_blocked_operations", s, vm, "start", "maintenance")
	waitVM(t, srv.URL, s, vm, "blocked", func(r map[string]any) bool {
		return !slices.Contains(refList(r["allowed_operations"]), "start")
	})
	vmCall(t, srv.URL, "VM.remove_from_blocked_operations", s, vm, "start")
	waitVM(t, srv.URL, s, vm, "unblocked", func(r map[string]any) bool {
		return slices.Contains(refList(r["allowed_operations"]), "start")
	})
	if _, e := jsonCall(t, srv.URL, "VM.assert_operation_valid", s, vm, "clean_shutdown"); len(e) == 0 || e[0] != "VM_BAD_POWER_STATE" {
		t.Fatalf("assert_operation_valid clean_shutdown of a halted VM: %v", e)
	}
	vmCall(t, srv.URL, "VM.assert_operation_valid", s, vm, "start")
}

func TestVMGuestInitiatedEvents(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	vm := newVM(t, srv.URL, s, "guest events")
	uuid := record(t, srv.URL, s, "VM", vm)["uuid"].(string)
	vmCall(t, srv.URL, "VM.start", s, vm, false, false)

	// guest reboot: new domid, still running
	d0 := vmNum(record(t, srv.URL, s, "VM", vm)["domid"])
	if err := srv.Sim.GuestReboot(uuid); err != nil {
		t.Fatal(err)
	}
	waitVM(t, srv.URL, s, vm, "rebooted", func(r map[string]any) bool {
		return r["power_state"] == "Running" && vmNum(r["domid"]) != d0
	})

	// crash with actions_after_crash=restart (the template's): restarted
	d1 := vmNum(record(t, srv.URL, s, "VM", vm)["domid"])
	if err := srv.Sim.Crash(uuid); err != nil {
		t.Fatal(err)
	}
	waitVM(t, srv.URL, s, vm, "restarted after crash", func(r map[string]any) bool {
		return r["power_state"] == "Running" && vmNum(r["domid"]) != d1
	})

	// crash with actions_after_crash=destroy: halted
	vmCall(t, srv.URL, "VM.set_actions_after_crash", s, vm, "destroy")
	if err := srv.Sim.Crash(uuid); err != nil {
		t.Fatal(err)
	}
	r := waitVM(t, srv.URL, s, vm, "halted after crash", func(r map[string]any) bool { return r["power_state"] == "Halted" })
	if vmNum(r["domid"]) != -1 || r["resident_on"] != "OpaqueRef:NULL" {
		t.Fatalf("after crash: %v %v", r["domid"], r["resident_on"])
	}
	waitVM(t, srv.URL, s, vm, "startable", func(r map[string]any) bool {
		return slices.Contains(refList(r["allowed_operations"]), "start")
	})

	// guest shutdown (actions_after_shutdown=destroy): halted
	vmCall(t, srv.URL, "VM.start", s, vm, false, false)
	if err := srv.Sim.GuestShutdown(uuid); err != nil {
		t.Fatal(err)
	}
	waitVM(t, srv.URL, s, vm, "halted after guest shutdown", func(r map[string]any) bool {
		return r["power_state"] == "Halted" && r["guest_metrics"] == "OpaqueRef:NULL"
	})

	// guest reboot with actions_after_reboot=destroy: halted
	vmCall(t, srv.URL, "VM.set_actions_after_reboot", s, vm, "destroy")
	vmCall(t, srv.URL, "VM.start", s, vm, false, false)
	if err := srv.Sim.GuestReboot(uuid); err != nil {
		t.Fatal(err)
	}
	waitVM(t, srv.URL, s, vm, "halted after guest reboot", func(r map[string]any) bool { return r["power_state"] == "Halted" })
	if d, err := srv.Sim.State(context.Background(), uuid); err == nil && d.PowerState.Active() {
		t.Fatalf("domain still %s", d.PowerState)
	}
}

func TestVMProvisionCopyClone(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	tmpl := templateRef(t, srv.URL, s)
	vm := vmCall(t, srv.URL, "VM.clone", s, tmpl, "installed").(string)
	vmCall(t, srv.URL, "VM.provision", s, vm)
	r := record(t, srv.URL, s, "VM", vm)
	if _, ok := r["other_config"].(map[string]any)["disks"]; ok {
		t.Fatal("disks key kept after provision")
	}
	vbds := refList(r["VBDs"])
	if len(vbds) != 1 {
		t.Fatalf("VBDs %v", vbds)
	}
	vbd := record(t, srv.URL, s, "VBD", vbds[0])
	vdi := record(t, srv.URL, s, "VDI", vbd["VDI"].(string))
	if vbd["userdevice"] != "0" || vbd["bootable"] != true || vbd["VM"] != vm || vmNum(vdi["virtual_size"]) != 10<<30 {
		t.Fatalf("vbd %v vdi %v", vbd, vdi)
	}
	sr := vdi["SR"].(string)
	if alloc := vmNum(record(t, srv.URL, s, "SR", sr)["virtual_allocation"]); alloc != 10<<30 {
		t.Fatalf("SR virtual_allocation %d", alloc)
	}
	vmCall(t, srv.URL, "VM.set_is_a_template", s, vm, false)

	cp := vmCall(t, srv.URL, "VM.copy", s, vm, "copy", sr).(string)
	c := record(t, srv.URL, s, "VM", cp)
	cvbds := refList(c["VBDs"])
	if c["is_a_template"] != false || len(cvbds) != 1 || cvbds[0] == vbds[0] {
		t.Fatalf("copy %v", c)
	}
	cvdi := record(t, srv.URL, s, "VBD", cvbds[0])["VDI"].(string)
	if cvdi == vbd["VDI"] {
		t.Fatal("copy shares the source's disk")
	}
	if alloc := vmNum(record(t, srv.URL, s, "SR", sr)["virtual_allocation"]); alloc != 20<<30 {
		t.Fatalf("SR virtual_allocation %d after copy", alloc)
	}
	vmCall(t, srv.URL, "VM.start", s, cp, false, false)
	if _, e := jsonCall(t, srv.URL, "VM.copy", s, cp, "x", "OpaqueRef:NULL"); len(e) == 0 || e[0] != "VM_BAD_POWER_STATE" {
		t.Fatalf("copy of a running VM: %v", e)
	}
	if _, e := jsonCall(t, srv.URL, "VM.copy", s, vm, "x", "OpaqueRef:nope"); len(e) < 2 || e[0] != "HANDLE_INVALID" || e[1] != "SR" {
		t.Fatalf("copy to a missing SR: %v", e)
	}
}

func TestVMPlacementQueries(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{Sim: sim.Config{MemoryTotal: 4 * sim.GiB}})
	s := login(t, srv.URL)
	host := refList(vmCall(t, srv.URL, "host.get_all", s))[0]
	free := vmNum(vmCall(t, srv.URL, "host.compute_free_memory", s, host))
	if free != 3*sim.GiB || free != hostFree(t, srv.URL, s) {
		t.Fatalf("compute_free_memory %d, host_metrics %d", free, hostFree(t, srv.URL, s))
	}
	a := newVM(t, srv.URL, s, "a")
	b := newVM(t, srv.URL, s, "b")
	vmCall(t, srv.URL, "VM.assert_can_boot_here", s, a, host)
	if hosts := refList(vmCall(t, srv.URL, "VM.get_possible_hosts", s, a)); !slices.Equal(hosts, []string{host}) {
		t.Fatalf("possible hosts %v", hosts)
	}
	vmCall(t, srv.URL, "VM.start", s, a, false, false)
	if f := vmNum(vmCall(t, srv.URL, "host.compute_free_memory", s, host)); f >= free {
		t.Fatalf("free memory %d after start", f)
	}
	// b (2 GiB) no longer fits beside a
	if _, e := jsonCall(t, srv.URL, "VM.assert_can_boot_here", s, b, host); len(e) == 0 || e[0] != "HOST_NOT_ENOUGH_FREE_MEMORY" {
		t.Fatalf("assert_can_boot_here: %v", e)
	}
	if hosts := vmCall(t, srv.URL, "VM.get_possible_hosts", s, b).([]any); len(hosts) != 0 {
		t.Fatalf("possible hosts %v", hosts)
	}
	if devs := refList(vmCall(t, srv.URL, "VM.get_allowed_VIF_devices", s, b)); !slices.Equal(devs, []string{"0", "1", "2", "3", "4", "5", "6"}) {
		t.Fatalf("VIF devices %v", devs)
	}
	vmCall(t, srv.URL, "VM.provision", s, b)
	if devs := refList(vmCall(t, srv.URL, "VM.get_allowed_VBD_devices", s, b)); !slices.Equal(devs, []string{"1", "2", "3"}) {
		t.Fatalf("VBD devices %v", devs)
	}
}

// TestVMResyncOnRestart restarts the API server over the same database with a
// hypervisor that lost its domains: the VMs it thought running are halted.
func TestVMResyncOnRestart(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	vm := newVM(t, srv.URL, s, "lost")
	vmCall(t, srv.URL, "VM.start", s, vm, false, false)
	if err := srv.API.Close(); err != nil {
		t.Fatal(err)
	}
	fresh := sim.New(sim.Config{})
	defer fresh.Close()
	api, err := xapi.New(context.Background(), xapi.Config{Store: srv.Store, Auth: xapi.NewMemoryAuth(xapitest.RootPassword), Backend: fresh,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	o, _ := srv.Store.Get(datamodel.VMClass, vm)
	r := o.(*datamodel.VMRecord)
	if r.PowerState != datamodel.VMPowerStateHalted || r.Domid != -1 || r.ResidentOn != datamodel.HostRef(datamodel.NullRef) {
		t.Fatalf("after restart: %s %d %s", r.PowerState, r.Domid, r.ResidentOn)
	}
	for _, e := range srv.Store.List(datamodel.VMClass) {
		if rec := e.Obj.(*datamodel.VMRecord); rec.IsControlDomain && rec.PowerState != datamodel.VMPowerStateRunning {
			t.Fatalf("control domain %s", rec.PowerState)
		}
	}
}
