package xapi_test

import (
	"slices"
	"strconv"
	"testing"

	"github.com/xapi-go/xapi-go/xapi/xapitest"
)

const liveMiB = int64(1) << 20

func liveMem(t *testing.T, url, s, vm string) [4]int64 {
	t.Helper()
	r := record(t, url, s, "VM", vm)
	return [4]int64{vmNum(r["memory_static_min"]), vmNum(r["memory_dynamic_min"]), vmNum(r["memory_dynamic_max"]), vmNum(r["memory_static_max"])}
}

func liveStr(n int64) string { return strconv.FormatInt(n, 10) }

func TestVMMemorySettersHalted(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	vm := newVM(t, srv.URL, s, "mem")

	vmCall(t, srv.URL, "VM.set_memory_limits", s, vm, liveStr(256*liveMiB), liveStr(2048*liveMiB), liveStr(512*liveMiB), liveStr(1024*liveMiB))
	if got, want := liveMem(t, srv.URL, s, vm), [4]int64{256 * liveMiB, 512 * liveMiB, 1024 * liveMiB, 2048 * liveMiB}; got != want {
		t.Fatalf("after set_memory_limits %v, want %v", got, want)
	}
	vmCall(t, srv.URL, "VM.set_memory_dynamic_range", s, vm, liveStr(768*liveMiB), liveStr(1536*liveMiB))
	vmCall(t, srv.URL, "VM.set_memory_static_range", s, vm, liveStr(128*liveMiB), liveStr(4096*liveMiB))
	if got, want := liveMem(t, srv.URL, s, vm), [4]int64{128 * liveMiB, 768 * liveMiB, 1536 * liveMiB, 4096 * liveMiB}; got != want {
		t.Fatalf("after ranges %v, want %v", got, want)
	}
	vmCall(t, srv.URL, "VM.set_memory_dynamic_min", s, vm, liveStr(1024*liveMiB))
	vmCall(t, srv.URL, "VM.set_memory_dynamic_max", s, vm, liveStr(2048*liveMiB))
	vmCall(t, srv.URL, "VM.set_memory_static_min", s, vm, liveStr(512*liveMiB))
	vmCall(t, srv.URL, "VM.set_memory_static_max", s, vm, liveStr(3072*liveMiB))
	if got, want := liveMem(t, srv.URL, s, vm), [4]int64{512 * liveMiB, 1024 * liveMiB, 2048 * liveMiB, 3072 * liveMiB}; got != want {
		t.Fatalf("after single setters %v, want %v", got, want)
	}
	vmCall(t, srv.URL, "VM.set_memory", s, vm, liveStr(1024*liveMiB))
	if got, want := liveMem(t, srv.URL, s, vm), [4]int64{512 * liveMiB, 1024 * liveMiB, 1024 * liveMiB, 1024 * liveMiB}; got != want {
		t.Fatalf("after set_memory %v, want %v", got, want)
	}

	order := []string{"MEMORY_CONSTRAINT_VIOLATION_ORDER"}
	for _, tc := range []struct {
		method string
		params []any
	}{
		{"VM.set_memory_dynamic_range", []any{liveStr(900 * liveMiB), liveStr(800 * liveMiB)}},
		{"VM.set_memory_dynamic_range", []any{liveStr(256 * liveMiB), liveStr(1024 * liveMiB)}}, // below static_min
		{"VM.set_memory_dynamic_max", []any{liveStr(2048 * liveMiB)}},                           // above static_max
		{"VM.set_memory_static_min", []any{liveStr(2048 * liveMiB)}},
		{"VM.set_memory_static_max", []any{liveStr(512 * liveMiB)}},
		{"VM.set_memory_limits", []any{liveStr(liveMiB), liveStr(4 * liveMiB), liveStr(3 * liveMiB), liveStr(2 * liveMiB)}},
		{"VM.set_memory", []any{liveStr(256 * liveMiB)}}, // below static_min
	} {
		if _, e := jsonCall(t, srv.URL, tc.method, append([]any{s, vm}, tc.params...)...); !slices.Equal(e, order) {
			t.Errorf("%s%v: got %v, want %v", tc.method, tc.params, e, order)
		}
	}
	if got, want := liveMem(t, srv.URL, s, vm), [4]int64{512 * liveMiB, 1024 * liveMiB, 1024 * liveMiB, 1024 * liveMiB}; got != want {
		t.Fatalf("failed calls changed memory: %v, want %v", got, want)
	}
	r := record(t, srv.URL, s, "VM", vm)
	if len(r["current_operations"].(map[string]any)) != 0 || !slices.Contains(refList(r["allowed_operations"]), "start") {
		t.Fatalf("operation state after setters: %v %v", r["current_operations"], r["allowed_operations"])
	}
}

func TestVMVCPUSetters(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	vm := newVM(t, srv.URL, s, "cpu")
	vmCall(t, srv.URL, "VM.set_VCPUs_max", s, vm, "4")
	vmCall(t, srv.URL, "VM.set_VCPUs_at_startup", s, vm, "1")
	r := record(t, srv.URL, s, "VM", vm)
	if vmNum(r["VCPUs_max"]) != 4 || vmNum(r["VCPUs_at_startup"]) != 1 {
		t.Fatalf("VCPUs %v/%v", r["VCPUs_at_startup"], r["VCPUs_max"])
	}
	startup := "VCPU values must satisfy: 0 < VCPUs_at_startup ≤ VCPUs_max"
	live := "VCPU values must satisfy: 0 < VCPUs ≤ VCPUs_max"
	fail := func(method string, arg any, want ...string) {
		t.Helper()
		if _, e := jsonCall(t, srv.URL, method, s, vm, arg); !slices.Equal(e, want) {
			t.Errorf("%s(%v): got %v, want %v", method, arg, e, want)
		}
	}
	fail("VM.set_VCPUs_at_startup", "5", "INVALID_VALUE", startup, "5")
	fail("VM.set_VCPUs_at_startup", "0", "INVALID_VALUE", startup, "0")
	fail("VM.set_VCPUs_max", "0", "INVALID_VALUE", startup, "0")
	fail("VM.set_VCPUs_number_live", "2", "VM_BAD_POWER_STATE", vm, "running", "halted")
	vmCall(t, srv.URL, "VM.set_VCPUs_at_startup", s, vm, "2")
	fail("VM.set_VCPUs_max", "1", "INVALID_VALUE", startup, "1")

	vmCall(t, srv.URL, "VM.start", s, vm, false, false)
	fail("VM.set_VCPUs_max", "8", "VM_BAD_POWER_STATE", vm, "halted", "running")
	fail("VM.set_VCPUs_at_startup", "3", "VM_BAD_POWER_STATE", vm, "halted", "running")
	fail("VM.set_VCPUs_number_live", "5", "INVALID_VALUE", live, "5")
	fail("VM.set_VCPUs_number_live", "0", "INVALID_VALUE", live, "0")
	vmCall(t, srv.URL, "VM.set_VCPUs_number_live", s, vm, "3")
	r = record(t, srv.URL, s, "VM", vm)
	m := record(t, srv.URL, s, "VM_metrics", r["metrics"].(string))
	if vmNum(m["VCPUs_number"]) != 3 || vmNum(r["VCPUs_at_startup"]) != 3 || len(m["VCPUs_utilisation"].(map[string]any)) != 3 {
		t.Fatalf("after hotplug: metrics VCPUs_number %v, VCPUs_at_startup %v, utilisation %v", m["VCPUs_number"], r["VCPUs_at_startup"], m["VCPUs_utilisation"])
	}
	if len(r["current_operations"].(map[string]any)) != 0 || !slices.Contains(refList(r["allowed_operations"]), "changing_VCPUs_live") {
		t.Fatalf("operation state: %v %v", r["current_operations"], r["allowed_operations"])
	}
}

func TestVMMemoryLive(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	vm := newVM(t, srv.URL, s, "balloon")
	vmCall(t, srv.URL, "VM.set_memory_limits", s, vm, liveStr(256*liveMiB), liveStr(2048*liveMiB), liveStr(1024*liveMiB), liveStr(1024*liveMiB))
	vmCall(t, srv.URL, "VM.start", s, vm, false, false)
	free0 := hostFree(t, srv.URL, s)

	fail := func(method string, want []string, args ...any) {
		t.Helper()
		if _, e := jsonCall(t, srv.URL, method, append([]any{s, vm}, args...)...); !slices.Equal(e, want) {
			t.Errorf("%s%v: got %v, want %v", method, args, e, want)
		}
	}
	bad := []string{"VM_BAD_POWER_STATE", vm, "halted", "running"}
	fail("VM.set_memory_static_range", bad, liveStr(128*liveMiB), liveStr(4096*liveMiB))
	fail("VM.set_memory_static_max", bad, liveStr(4096*liveMiB))
	fail("VM.set_memory_limits", bad, liveStr(256*liveMiB), liveStr(2048*liveMiB), liveStr(512*liveMiB), liveStr(512*liveMiB))
	fail("VM.set_memory", bad, liveStr(512*liveMiB))
	fail("VM.set_memory_dynamic_range", []string{"MEMORY_CONSTRAINT_VIOLATION_ORDER"}, liveStr(512*liveMiB), liveStr(4096*liveMiB))

	vmCall(t, srv.URL, "VM.set_memory_dynamic_range", s, vm, liveStr(512*liveMiB), liveStr(1536*liveMiB))
	r := record(t, srv.URL, s, "VM", vm)
	if got, want := liveMem(t, srv.URL, s, vm), [4]int64{256 * liveMiB, 512 * liveMiB, 1536 * liveMiB, 2048 * liveMiB}; got != want {
		t.Fatalf("limits %v, want %v", got, want)
	}
	if vmNum(r["memory_target"]) != 1536*liveMiB {
		t.Fatalf("memory_target %v", r["memory_target"])
	}
	m := record(t, srv.URL, s, "VM_metrics", r["metrics"].(string))
	if vmNum(m["memory_actual"]) != 1536*liveMiB {
		t.Fatalf("memory_actual %v", m["memory_actual"])
	}
	if free1 := hostFree(t, srv.URL, s); free1 != free0-512*liveMiB {
		t.Fatalf("memory_free %d, want %d", free1, free0-512*liveMiB)
	}
	vmCall(t, srv.URL, "VM.set_memory_dynamic_max", s, vm, liveStr(768*liveMiB))
	if r := record(t, srv.URL, s, "VM", vm); vmNum(r["memory_target"]) != 768*liveMiB || vmNum(r["memory_dynamic_max"]) != 768*liveMiB {
		t.Fatalf("after shrinking: target %v dynamic_max %v", r["memory_target"], r["memory_dynamic_max"])
	}

	vmCall(t, srv.URL, "VM.suspend", s, vm)
	fail("VM.set_memory_dynamic_range", []string{"VM_BAD_POWER_STATE", vm, "halted, running, paused", "suspended"}, liveStr(512*liveMiB), liveStr(1024*liveMiB))
}

func TestHostEvacuationBlockers(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	url := srv.URL
	s := login(t, url)
	host := refList(vmCall(t, url, "host.get_all", s))[0]
	if got := vmCall(t, url, "host.get_vms_which_prevent_evacuation", s, host).(map[string]any); len(got) != 0 {
		t.Fatalf("blockers with no VM running: %v", got)
	}
	vmCall(t, url, "host.assert_can_evacuate", s, host)
	newVM(t, url, s, "halted")
	running := newVM(t, url, s, "running")
	vmCall(t, url, "VM.start", s, running, false, false)
	paused := newVM(t, url, s, "paused")
	vmCall(t, url, "VM.start", s, paused, true, false)
	got := vmCall(t, url, "host.get_vms_which_prevent_evacuation", s, host).(map[string]any)
	if len(got) != 2 {
		t.Fatalf("blockers %v", got)
	}
	for _, vm := range []string{running, paused} {
		if r := refList(got[vm]); !slices.Equal(r, []string{"NO_HOSTS_AVAILABLE", vm}) {
			t.Errorf("blocker %s: %v", vm, r)
		}
	}
	_, e := jsonCall(t, url, "host.assert_can_evacuate", s, host)
	want := []string{"NO_HOSTS_AVAILABLE," + running, "NO_HOSTS_AVAILABLE," + paused}
	slices.Sort(want)
	if !slices.Equal(e, []string{"CANNOT_EVACUATE_HOST", want[0] + "|" + want[1]}) {
		t.Fatalf("assert_can_evacuate: %v", e)
	}
	if _, e := jsonCall(t, url, "host.get_vms_which_prevent_evacuation", s, "OpaqueRef:nope"); !slices.Equal(e, []string{"HANDLE_INVALID", "host", "OpaqueRef:nope"}) {
		t.Fatalf("bad host: %v", e)
	}
}
