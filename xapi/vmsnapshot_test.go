package xapi_test

import (
	"slices"
	"testing"

	"github.com/xapi-go/xapi-go/xapi/xapitest"
)

// snapVM makes a halted VM with one provisioned 10 GiB disk; it returns the
// VM and its disk.
func snapVM(t *testing.T, url, s, name string) (vm, vdi string) {
	t.Helper()
	vm = vmCall(t, url, "VM.clone", s, templateRef(t, url, s), name).(string)
	vmCall(t, url, "VM.provision", s, vm)
	vmCall(t, url, "VM.set_is_a_template", s, vm, false)
	vbds := refList(record(t, url, s, "VM", vm)["VBDs"])
	if len(vbds) != 1 {
		t.Fatalf("VBDs %v", vbds)
	}
	return vm, record(t, url, s, "VBD", vbds[0])["VDI"].(string)
}

// vmDisks lists the VDIs of the VM's disk VBDs.
func vmDisks(t *testing.T, url, s, vm string) []string {
	t.Helper()
	var out []string
	for _, vbd := range refList(record(t, url, s, "VM", vm)["VBDs"]) {
		if b := record(t, url, s, "VBD", vbd); b["type"] == "Disk" {
			out = append(out, b["VDI"].(string))
		}
	}
	return out
}

func TestVMSnapshotAndRevert(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	url := srv.URL
	s := login(t, url)
	vm, disk := snapVM(t, url, s, "snapped")
	sr := record(t, url, s, "VDI", disk)["SR"].(string)
	alloc := func() int64 { return vmNum(record(t, url, s, "SR", sr)["virtual_allocation"]) }
	vmCall(t, url, "VM.set_memory_limits", s, vm, liveStr(256*liveMiB), liveStr(1024*liveMiB), liveStr(512*liveMiB), liveStr(1024*liveMiB))

	snap := vmCall(t, url, "VM.snapshot", s, vm, "before", []string{}).(string)
	r := record(t, url, s, "VM", snap)
	if r["is_a_snapshot"] != true || r["is_a_template"] != true || r["snapshot_of"] != vm || r["name_label"] != "before" ||
		r["power_state"] != "Halted" || r["snapshot_time"] == "19700101T00:00:00Z" || vmNum(r["memory_dynamic_min"]) != 512*liveMiB {
		t.Fatalf("snapshot record %v", r)
	}
	if info := r["snapshot_info"].(map[string]any); info["power-state-at-snapshot"] != "Halted" {
		t.Fatalf("snapshot_info %v", info)
	}
	if ops := refList(r["allowed_operations"]); slices.Contains(ops, "start") || !slices.Contains(ops, "revert") {
		t.Fatalf("snapshot allowed_operations %v", ops)
	}
	if !slices.Equal(refList(r["children"]), []string{vm}) {
		t.Fatalf("snapshot children %v", r["children"])
	}
	v := record(t, url, s, "VM", vm)
	if !slices.Equal(refList(v["snapshots"]), []string{snap}) || v["parent"] != snap || len(v["current_operations"].(map[string]any)) != 0 {
		t.Fatalf("VM after snapshot: snapshots %v parent %v current_operations %v", v["snapshots"], v["parent"], v["current_operations"])
	}
	snapDisks := vmDisks(t, url, s, snap)
	if len(snapDisks) != 1 || snapDisks[0] == disk {
		t.Fatalf("snapshot disks %v (VM disk %s)", snapDisks, disk)
	}
	sd := record(t, url, s, "VDI", snapDisks[0])
	if sd["is_a_snapshot"] != true || sd["snapshot_of"] != disk || vmNum(sd["virtual_size"]) != 10<<30 {
		t.Fatalf("snapshot VDI %v", sd)
	}
	if got := refList(record(t, url, s, "VDI", disk)["snapshots"]); !slices.Equal(got, []string{snapDisks[0]}) {
		t.Fatalf("disk snapshots %v", got)
	}
	if a := alloc(); a != 20<<30 {
		t.Fatalf("SR virtual_allocation %d", a)
	}

	// ignore_vdis leaves the disk out
	bare := vmCall(t, url, "VM.snapshot", s, vm, "no disks", []string{disk}).(string)
	if d := vmDisks(t, url, s, bare); len(d) != 0 {
		t.Fatalf("snapshot ignoring the disk has disks %v", d)
	}

	// a running VM is snapshotted live, then reverted: it ends halted with
	// the snapshot's settings and a new copy of the snapshot's disk
	vmCall(t, url, "VM.set_memory", s, vm, liveStr(768*liveMiB))
	vmCall(t, url, "VM.start", s, vm, false, false)
	live := vmCall(t, url, "VM.snapshot", s, vm, "live", []string{}).(string)
	if info := record(t, url, s, "VM", live)["snapshot_info"].(map[string]any); info["power-state-at-snapshot"] != "Running" {
		t.Fatalf("live snapshot_info %v", info)
	}
	if ps := record(t, url, s, "VM", vm)["power_state"]; ps != "Running" {
		t.Fatalf("VM %v after a live snapshot", ps)
	}
	liveDisk := vmDisks(t, url, s, live)[0]
	before := alloc()
	vmCall(t, url, "VM.revert", s, snap)
	v = record(t, url, s, "VM", vm)
	if v["power_state"] != "Halted" || vmNum(v["domid"]) != -1 || v["name_label"] != "snapped" || v["is_a_snapshot"] != false || v["is_a_template"] != false {
		t.Fatalf("VM after revert: %v", v)
	}
	if vmNum(v["memory_dynamic_min"]) != 512*liveMiB || vmNum(v["memory_static_max"]) != 1024*liveMiB {
		t.Fatalf("memory after revert: %v/%v", v["memory_dynamic_min"], v["memory_static_max"])
	}
	if v["parent"] != snap || len(v["current_operations"].(map[string]any)) != 0 || !slices.Contains(refList(v["allowed_operations"]), "start") {
		t.Fatalf("VM after revert: parent %v current %v allowed %v", v["parent"], v["current_operations"], v["allowed_operations"])
	}
	if got := refList(v["snapshots"]); len(got) != 3 {
		t.Fatalf("snapshots after revert %v", got)
	}
	newDisks := vmDisks(t, url, s, vm)
	if len(newDisks) != 1 || newDisks[0] == disk || newDisks[0] == snapDisks[0] {
		t.Fatalf("disks after revert %v", newDisks)
	}
	if _, e := jsonCall(t, url, "VDI.get_record", s, disk); len(e) == 0 || e[0] != "HANDLE_INVALID" {
		t.Fatalf("replaced disk still there: %v", e)
	}
	nd := record(t, url, s, "VDI", newDisks[0])
	if nd["is_a_snapshot"] != false || len(refList(nd["snapshots"])) != 2 {
		t.Fatalf("new disk %v", nd)
	}
	for _, d := range []string{snapDisks[0], liveDisk} {
		if of := record(t, url, s, "VDI", d)["snapshot_of"]; of != newDisks[0] {
			t.Fatalf("snapshot disk %s snapshot_of %v, want %s", d, of, newDisks[0])
		}
	}
	if a := alloc(); a != before {
		t.Fatalf("SR virtual_allocation %d after revert, want %d", a, before)
	}
	// a suspended VM is stopped too
	vmCall(t, url, "VM.start", s, vm, false, false)
	vmCall(t, url, "VM.suspend", s, vm)
	vmCall(t, url, "VM.revert", s, live)
	v = record(t, url, s, "VM", vm)
	if v["power_state"] != "Halted" || v["parent"] != live || vmNum(v["memory_static_max"]) != 768*liveMiB {
		t.Fatalf("after reverting a suspended VM: %v %v %v", v["power_state"], v["parent"], v["memory_static_max"])
	}
	if ch := refList(record(t, url, s, "VM", snap)["children"]); slices.Contains(ch, vm) {
		t.Fatalf("old parent still lists the VM: %v", ch)
	}
	vmCall(t, url, "VM.start", s, vm, false, false)
}

func TestVMSnapshotErrors(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	url := srv.URL
	s := login(t, url)
	vm := newVM(t, url, s, "plain")
	tmpl := templateRef(t, url, s)
	snap := vmCall(t, url, "VM.snapshot", s, vm, "s", []string{}).(string)
	paused := newVM(t, url, s, "paused")
	vmCall(t, url, "VM.start", s, paused, true, false)
	for _, tc := range []struct {
		method string
		params []any
		want   []string
	}{
		{"VM.snapshot", []any{tmpl, "x", []string{}}, []string{"VM_IS_TEMPLATE", tmpl}},
		{"VM.snapshot", []any{snap, "x", []string{}}, []string{"VM_IS_SNAPSHOT", snap}},
		{"VM.snapshot", []any{paused, "x", []string{}}, []string{"VM_BAD_POWER_STATE", paused, "halted, running, suspended", "paused"}},
		{"VM.snapshot", []any{"OpaqueRef:nope", "x", []string{}}, []string{"HANDLE_INVALID", "VM", "OpaqueRef:nope"}},
		{"VM.revert", []any{vm}, []string{"ONLY_REVERT_SNAPSHOT"}},
		{"VM.revert", []any{"OpaqueRef:nope"}, []string{"HANDLE_INVALID", "VM", "OpaqueRef:nope"}},
		{"VM.start", []any{snap, false, false}, []string{"VM_IS_SNAPSHOT", snap}},
	} {
		if _, e := jsonCall(t, url, tc.method, append([]any{s}, tc.params...)...); !slices.Equal(e, tc.want) {
			t.Errorf("%s%v: got %v, want %v", tc.method, tc.params, e, tc.want)
		}
	}
	vmCall(t, url, "VM.add_to_blocked_operations", s, vm, "snapshot", "frozen")
	if _, e := jsonCall(t, url, "VM.snapshot", s, vm, "x", []string{}); !slices.Equal(e, []string{"OPERATION_BLOCKED", vm, "frozen"}) {
		t.Errorf("blocked snapshot: %v", e)
	}
}
