package xapi_test

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/backends"
	"github.com/xapi-go/xapi-go/backends/sim"
	"github.com/xapi-go/xapi-go/xapi/xapitest"
)

// vmCall makes a call that must succeed.
func vmCall(t *testing.T, url, method string, params ...any) any {
	t.Helper()
	r, e := jsonCall(t, url, method, params...)
	if e != nil {
		t.Fatalf("%s: %v", method, e)
	}
	return r
}

func record(t *testing.T, url, s, class, ref string) map[string]any {
	t.Helper()
	return vmCall(t, url, class+".get_record", s, ref).(map[string]any)
}

func refList(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func vmNum(v any) int64 {
	switch x := v.(type) {
	case float64:
		return int64(x)
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

// templateRef returns the ref of the Debian template.
func templateRef(t *testing.T, url, s string) string {
	t.Helper()
	refs := refList(vmCall(t, url, "VM.get_by_name_label", s, "Debian Bookworm 12"))
	if len(refs) != 1 {
		t.Fatalf("templates: %v", refs)
	}
	return refs[0]
}

// newVM clones the Debian template and makes the clone a VM.
func newVM(t *testing.T, url, s, name string) string {
	t.Helper()
	vm := vmCall(t, url, "VM.clone", s, templateRef(t, url, s), name).(string)
	vmCall(t, url, "VM.set_is_a_template", s, vm, false)
	return vm
}

func hostFree(t *testing.T, url, s string) int64 {
	t.Helper()
	host := refList(vmCall(t, url, "host.get_all", s))[0]
	hm := vmCall(t, url, "host.get_metrics", s, host).(string)
	return vmNum(record(t, url, s, "host_metrics", hm)["memory_free"])
}

func TestVMCloneAndStart(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	tmpl := templateRef(t, srv.URL, s)
	clone := vmCall(t, srv.URL, "VM.clone", s, tmpl, "my vm").(string)
	c := record(t, srv.URL, s, "VM", clone)
	if c["is_a_template"] != true || c["is_default_template"] != false || c["name_label"] != "my vm" || c["power_state"] != "Halted" {
		t.Fatalf("clone of a template: %v", c)
	}
	if slices.Contains(refList(c["allowed_operations"]), "start") {
		t.Fatalf("template allows start: %v", c["allowed_operations"])
	}
	vmCall(t, srv.URL, "VM.set_is_a_template", s, clone, false)
	// set_is_a_template is a plain setter: allowed_operations follow the
	// next lifecycle write; start works from the record's power state.
	free0 := hostFree(t, srv.URL, s)
	vmCall(t, srv.URL, "VM.start", s, clone, false, false)
	r := record(t, srv.URL, s, "VM", clone)
	host := refList(vmCall(t, srv.URL, "host.get_all", s))[0]
	if r["power_state"] != "Running" || r["resident_on"] != host || vmNum(r["domid"]) <= 0 {
		t.Fatalf("after start: power_state %v resident_on %v domid %v", r["power_state"], r["resident_on"], r["domid"])
	}
	ops := refList(r["allowed_operations"])
	if !slices.Contains(ops, "clean_shutdown") || slices.Contains(ops, "start") {
		t.Fatalf("allowed_operations %v", ops)
	}
	if len(r["current_operations"].(map[string]any)) != 0 {
		t.Fatalf("current_operations %v", r["current_operations"])
	}
	if !slices.Contains(refList(vmCall(t, srv.URL, "host.get_resident_VMs", s, host)), clone) {
		t.Fatal("running VM not in host.resident_VMs")
	}
	m := record(t, srv.URL, s, "VM_metrics", r["metrics"].(string))
	if vmNum(m["VCPUs_number"]) != 2 || vmNum(m["memory_actual"]) <= 0 || m["start_time"] == "19700101T00:00:00Z" {
		t.Fatalf("metrics %v", m)
	}
	if free1 := hostFree(t, srv.URL, s); free1 >= free0 {
		t.Fatalf("memory_free %d after start, %d before", free1, free0)
	}
	vmCall(t, srv.URL, "VM.clean_shutdown", s, clone)
	r = record(t, srv.URL, s, "VM", clone)
	if r["power_state"] != "Halted" || r["resident_on"] != "OpaqueRef:NULL" || vmNum(r["domid"]) != -1 || !slices.Contains(refList(r["allowed_operations"]), "start") {
		t.Fatalf("after shutdown: %v %v %v %v", r["power_state"], r["resident_on"], r["domid"], r["allowed_operations"])
	}
	if slices.Contains(refList(vmCall(t, srv.URL, "host.get_resident_VMs", s, host)), clone) {
		t.Fatal("halted VM still in host.resident_VMs")
	}
	if free2 := hostFree(t, srv.URL, s); free2 != free0 {
		t.Fatalf("memory_free %d after shutdown, want %d", free2, free0)
	}
}

func TestVMLifecycleErrors(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	halted := newVM(t, srv.URL, s, "halted")
	running := newVM(t, srv.URL, s, "running")
	vmCall(t, srv.URL, "VM.start", s, running, false, false)
	suspended := newVM(t, srv.URL, s, "suspended")
	vmCall(t, srv.URL, "VM.start", s, suspended, false, false)
	vmCall(t, srv.URL, "VM.suspend", s, suspended)
	paused := newVM(t, srv.URL, s, "paused")
	vmCall(t, srv.URL, "VM.start", s, paused, true, false)
	tmpl := templateRef(t, srv.URL, s)
	dom0 := ""
	for ref, r := range vmCall(t, srv.URL, "VM.get_all_records", s).(map[string]any) {
		if r.(map[string]any)["is_control_domain"] == true {
			dom0 = ref
		}
	}
	tests := []struct {
		method string
		params []any
		want   []string
	}{
		{"VM.start", []any{running, false, false}, []string{"VM_BAD_POWER_STATE", running, "halted", "running"}},
		{"VM.start", []any{suspended, false, false}, []string{"VM_BAD_POWER_STATE", suspended, "halted", "suspended"}},
		{"VM.start", []any{tmpl, false, false}, []string{"VM_IS_TEMPLATE", tmpl}},
		{"VM.start", []any{"OpaqueRef:nope", false, false}, []string{"HANDLE_INVALID", "VM", "OpaqueRef:nope"}},
		{"VM.clean_shutdown", []any{halted}, []string{"VM_BAD_POWER_STATE", halted, "running", "halted"}},
		{"VM.clean_shutdown", []any{paused}, []string{"VM_BAD_POWER_STATE", paused, "running", "paused"}},
		{"VM.clean_shutdown", []any{dom0}, []string{"OPERATION_NOT_ALLOWED", "Operations on the control domain are not allowed"}},
		{"VM.clean_shutdown", []any{tmpl}, []string{"VM_IS_TEMPLATE", tmpl}},
		{"VM.hard_shutdown", []any{halted}, []string{"VM_BAD_POWER_STATE", halted, "paused, running, suspended", "halted"}},
		{"VM.suspend", []any{halted}, []string{"VM_BAD_POWER_STATE", halted, "running", "halted"}},
		{"VM.suspend", []any{paused}, []string{"VM_BAD_POWER_STATE", paused, "running", "paused"}},
		{"VM.resume", []any{running, false, false}, []string{"VM_BAD_POWER_STATE", running, "suspended", "running"}},
		{"VM.resume", []any{halted, false, false}, []string{"VM_BAD_POWER_STATE", halted, "suspended", "halted"}},
		{"VM.pause", []any{halted}, []string{"VM_BAD_POWER_STATE", halted, "running", "halted"}},
		{"VM.pause", []any{paused}, []string{"VM_BAD_POWER_STATE", paused, "running", "paused"}},
		{"VM.unpause", []any{running}, []string{"VM_BAD_POWER_STATE", running, "paused", "running"}},
		{"VM.clone", []any{running, "x"}, []string{"VM_BAD_POWER_STATE", running, "halted", "running"}},
	}
	for _, tc := range tests {
		t.Run(tc.method+"/"+tc.want[0], func(t *testing.T) {
			_, e := jsonCall(t, srv.URL, tc.method, append([]any{s}, tc.params...)...)
			if !slices.Equal(e, tc.want) {
				t.Fatalf("got %v, want %v", e, tc.want)
			}
		})
	}

	t.Run("blocked", func(t *testing.T) {
		vmCall(t, srv.URL, "VM.add_to_blocked_operations", s, halted, "start", "no-start")
		defer vmCall(t, srv.URL, "VM.remove_from_blocked_operations", s, halted, "start")
		_, e := jsonCall(t, srv.URL, "VM.start", s, halted, false, false)
		if want := []string{"OPERATION_BLOCKED", halted, "no-start"}; !slices.Equal(e, want) {
			t.Fatalf("got %v, want %v", e, want)
		}
	})

	t.Run("OTHER_OPERATION_IN_PROGRESS", func(t *testing.T) {
		srv.Sim.HangNext(backends.OpStart)
		task := vmCall(t, srv.URL, "Async.VM.start", s, halted, false, false).(string)
		deadline := time.Now().Add(5 * time.Second)
		for {
			cur := record(t, srv.URL, s, "VM", halted)["current_operations"].(map[string]any)
			if cur[task] == "start" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("current_operations %v", cur)
			}
			time.Sleep(2 * time.Millisecond)
		}
		if ops := refList(record(t, srv.URL, s, "VM", halted)["allowed_operations"]); len(ops) != 0 {
			t.Errorf("allowed_operations while starting: %v", ops)
		}
		_, e := jsonCall(t, srv.URL, "VM.start", s, halted, false, false)
		if want := []string{"OTHER_OPERATION_IN_PROGRESS", "VM", halted, "start", task}; !slices.Equal(e, want) {
			t.Errorf("got %v, want %v", e, want)
		}
		vmCall(t, srv.URL, "task.cancel", s, task)
		r := waitTask(t, srv.URL, s, task)
		if r["status"] != "cancelled" {
			t.Fatalf("task %v", r)
		}
		vm := record(t, srv.URL, s, "VM", halted)
		if vm["power_state"] != "Halted" || len(vm["current_operations"].(map[string]any)) != 0 || !slices.Contains(refList(vm["allowed_operations"]), "start") {
			t.Fatalf("after cancel: %v %v %v", vm["power_state"], vm["current_operations"], vm["allowed_operations"])
		}
	})
}

func TestVMStartNotEnoughMemory(t *testing.T) {
	// A 3 GiB host keeps 1 GiB for itself: a 2 GiB VM does not fit.
	srv := xapitest.NewServer(t, xapitest.Options{Sim: sim.Config{MemoryTotal: 3 * sim.GiB}})
	s := login(t, srv.URL)
	vm := newVM(t, srv.URL, s, "big")
	free := hostFree(t, srv.URL, s)
	if free != 2*sim.GiB {
		t.Fatalf("memory_free %d", free)
	}
	_, e := jsonCall(t, srv.URL, "VM.start", s, vm, false, false)
	if len(e) != 3 || e[0] != "HOST_NOT_ENOUGH_FREE_MEMORY" || e[2] != strconv.FormatInt(free, 10) || vmNum(e[1]) <= 2*sim.GiB {
		t.Fatalf("got %v", e)
	}
	r := record(t, srv.URL, s, "VM", vm)
	if r["power_state"] != "Halted" || len(r["current_operations"].(map[string]any)) != 0 {
		t.Fatalf("after failed start: %v", r)
	}
}

func TestVMGuestMetrics(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	vm := newVM(t, srv.URL, s, "guest")
	vmCall(t, srv.URL, "VM.start", s, vm, false, false)
	deadline := time.Now().Add(5 * time.Second)
	var gm string
	for {
		gm = record(t, srv.URL, s, "VM", vm)["guest_metrics"].(string)
		if gm != "OpaqueRef:NULL" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no guest metrics after start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	g := record(t, srv.URL, s, "VM_guest_metrics", gm)
	if g["live"] != true || len(g["os_version"].(map[string]any)) == 0 || len(g["PV_drivers_version"].(map[string]any)) == 0 {
		t.Fatalf("guest metrics %v", g)
	}
	vmCall(t, srv.URL, "VM.hard_shutdown", s, vm)
	if r := record(t, srv.URL, s, "VM", vm); r["guest_metrics"] != "OpaqueRef:NULL" {
		t.Fatalf("guest_metrics after shutdown: %v", r["guest_metrics"])
	}
	if _, e := jsonCall(t, srv.URL, "VM_guest_metrics.get_record", s, gm); len(e) == 0 || e[0] != "HANDLE_INVALID" {
		t.Fatalf("guest metrics kept after shutdown: %v", e)
	}
}

func TestVMAsyncStart(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	vm := newVM(t, srv.URL, s, "async")
	task := vmCall(t, srv.URL, "Async.VM.start", s, vm, false, false).(string)
	r := waitTask(t, srv.URL, s, task)
	if r["status"] != "success" {
		t.Fatalf("task %v", r)
	}
	if ps := record(t, srv.URL, s, "VM", vm)["power_state"]; ps != "Running" {
		t.Fatalf("power_state %v", ps)
	}
}

func TestVMPowerCycle(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	vm := newVM(t, srv.URL, s, "cycle")
	steps := []struct {
		method string
		params []any
		state  string
	}{
		{"VM.start", []any{false, false}, "Running"},
		{"VM.clean_reboot", nil, "Running"},
		{"VM.hard_reboot", nil, "Running"},
		{"VM.pause", nil, "Paused"},
		{"VM.unpause", nil, "Running"},
		{"VM.suspend", nil, "Suspended"},
		{"VM.resume", []any{false, false}, "Running"},
		{"VM.shutdown", nil, "Halted"},
		{"VM.start_on", []any{"HOST", true, false}, "Paused"},
		{"VM.hard_shutdown", nil, "Halted"},
	}
	host := refList(vmCall(t, srv.URL, "host.get_all", s))[0]
	lastDomid := int64(-1)
	lastImage := ""
	for _, st := range steps {
		params := []any{s, vm}
		for _, p := range st.params {
			if p == "HOST" {
				p = host
			}
			params = append(params, p)
		}
		vmCall(t, srv.URL, st.method, params...)
		r := record(t, srv.URL, s, "VM", vm)
		if r["power_state"] != st.state {
			t.Fatalf("%s: power_state %v, want %s", st.method, r["power_state"], st.state)
		}
		// a suspended VM has a suspend image VDI; it goes when the VM leaves Suspended
		if sv := r["suspend_VDI"].(string); st.state == "Suspended" {
			if v := record(t, srv.URL, s, "VDI", sv); v["type"] != "suspend" || vmNum(v["virtual_size"]) <= 0 {
				t.Fatalf("suspend VDI %v", v)
			}
			lastImage = sv
		} else if sv != "OpaqueRef:NULL" {
			t.Fatalf("%s: suspend_VDI %v outside Suspended", st.method, sv)
		} else if lastImage != "" {
			if _, e := jsonCall(t, srv.URL, "VDI.get_record", s, lastImage); e == nil || e[0] != "HANDLE_INVALID" {
				t.Fatalf("%s: suspend image %s still there: %v", st.method, lastImage, e)
			}
			lastImage = ""
		}
		domid := vmNum(r["domid"])
		switch st.state {
		case "Running", "Paused":
			if domid <= 0 || r["resident_on"] != host {
				t.Fatalf("%s: domid %d resident_on %v", st.method, domid, r["resident_on"])
			}
			if st.method == "VM.clean_reboot" || st.method == "VM.hard_reboot" {
				if domid == lastDomid {
					t.Fatalf("%s kept domid %d", st.method, domid)
				}
			}
		default:
			if domid != -1 || r["resident_on"] != "OpaqueRef:NULL" {
				t.Fatalf("%s: domid %d resident_on %v", st.method, domid, r["resident_on"])
			}
		}
		lastDomid = domid
	}
}

func TestConcurrentClonesOfOneTemplate(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	tmpl := templateRef(t, srv.URL, s)
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, e := jsonCall(t, srv.URL, "VM.clone", s, tmpl, fmt.Sprintf("c%d", i))
			if e != nil {
				errs <- fmt.Errorf("clone %d: %v", i, e)
				return
			}
			errs <- nil
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	r := record(t, srv.URL, s, "VM", tmpl)
	if ops := r["current_operations"].(map[string]any); len(ops) != 0 {
		t.Fatalf("current_operations after the clones: %v", ops)
	}
	if !slices.Contains(refList(r["allowed_operations"]), "clone") {
		t.Fatalf("allowed_operations after the clones: %v", r["allowed_operations"])
	}
}
