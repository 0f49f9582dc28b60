package xapi_test

import (
	"slices"
	"testing"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/xapi/xapitest"
)

func TestVTPMCreateDestroy(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	url := srv.URL
	tpl := templateRef(t, url, s)
	pool := refList(mustCall(t, url, "pool.get_all", s))[0]

	tests := []struct {
		name  string
		setup func(t *testing.T) (vm string, want []string)
	}{
		{"halted VM", func(t *testing.T) (string, []string) { return newVM(t, url, s, "vtpm"), nil }},
		{"bad VM", func(t *testing.T) (string, []string) {
			return "OpaqueRef:nope", []string{"HANDLE_INVALID", "VM", "OpaqueRef:nope"}
		}},
		{"second VTPM", func(t *testing.T) (string, []string) {
			vm := newVM(t, url, s, "vtpm2")
			mustCall(t, url, "VTPM.create", s, vm, false)
			return vm, []string{"VTPM_MAX_AMOUNT_REACHED", "1"}
		}},
		{"template", func(t *testing.T) (string, []string) { return tpl, []string{"VM_IS_TEMPLATE", tpl, "create_vtpm"} }},
		{"snapshot", func(t *testing.T) (string, []string) {
			snap := mustCall(t, url, "VM.snapshot", s, newVM(t, url, s, "snapped"), "snap").(string)
			return snap, []string{"VM_IS_SNAPSHOT", snap, "create_vtpm"}
		}},
		{"running", func(t *testing.T) (string, []string) {
			vm := newVM(t, url, s, "running")
			mustCall(t, url, "VM.start", s, vm, false, false)
			return vm, []string{"VM_BAD_POWER_STATE", vm, "halted", "running"}
		}},
		{"blocked", func(t *testing.T) (string, []string) {
			vm := newVM(t, url, s, "blocked")
			mustCall(t, url, "VM.add_to_blocked_operations", s, vm, "create_vtpm", "no")
			return vm, []string{"OPERATION_BLOCKED", vm, "no"}
		}},
		{"restricted", func(t *testing.T) (string, []string) {
			vm := newVM(t, url, s, "restricted")
			r := record(t, url, s, "pool", pool)["restrictions"].(map[string]any)
			m := map[string]string{}
			for k, v := range r {
				m[k] = v.(string)
			}
			m["restrict_vtpm"] = "true"
			storeSet(t, srv.Store, datamodel.PoolClass, pool, "restrictions", m)
			t.Cleanup(func() {
				m["restrict_vtpm"] = "false"
				storeSet(t, srv.Store, datamodel.PoolClass, pool, "restrictions", m)
			})
			return vm, []string{"FEATURE_RESTRICTED", "restrict_vtpm"}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vm, want := tc.setup(t)
			before := len(refList(mustCall(t, url, "VTPM.get_all", s)))
			v, e := jsonCall(t, url, "VTPM.create", s, vm, true)
			if !slices.Equal(e, want) {
				t.Fatalf("error %v, want %v", e, want)
			}
			if want != nil {
				if n := len(refList(mustCall(t, url, "VTPM.get_all", s))); n != before {
					t.Fatalf("failed create left a VTPM (%d -> %d)", before, n)
				}
				return
			}
			vtpm := v.(string)
			r := record(t, url, s, "VTPM", vtpm)
			if r["VM"] != vm || r["is_unique"] != true || r["is_protected"] != false || r["persistence_backend"] != "xapi" ||
				r["backend"] != "OpaqueRef:NULL" || !slices.Equal(strs(r["allowed_operations"]), []string{"destroy"}) || r["uuid"] == "" {
				t.Fatalf("record %v", r)
			}
			if got := strs(record(t, url, s, "VM", vm)["VTPMs"]); !slices.Equal(got, []string{vtpm}) {
				t.Fatalf("VM.VTPMs %v", got)
			}
			o, ok := srv.Store.Get(datamodel.VTPMClass, vtpm)
			if !ok {
				t.Fatal("VTPM not in the store")
			}
			secret := string(o.(*datamodel.VTPMRecord).Contents)
			if sr := record(t, url, s, "secret", secret); sr["value"] != "" {
				t.Fatalf("secret %v", sr)
			}

			// destroy: refused while the VM runs, then allowed
			mustCall(t, url, "VM.start", s, vm, false, false)
			devFail(t, url, []string{"VM_BAD_POWER_STATE", vm, "halted;suspended", "running"}, "VTPM.destroy", s, vtpm)
			mustCall(t, url, "VM.hard_shutdown", s, vm)
			mustCall(t, url, "VTPM.destroy", s, vtpm)
			if exists(t, url, s, "VTPM", vtpm) || exists(t, url, s, "secret", secret) {
				t.Fatal("VTPM or its secret left")
			}
			if got := strs(record(t, url, s, "VM", vm)["VTPMs"]); len(got) != 0 {
				t.Fatalf("VM.VTPMs %v", got)
			}
			devFail(t, url, []string{"HANDLE_INVALID", "VTPM", vtpm}, "VTPM.destroy", s, vtpm)
		})
	}
}

// TestVTPMFollowsVM: once a VM has its VTPM, create_vtpm leaves its
// allowed_operations (templates never offer it), and VM.destroy removes the
// VTPM and its secret contents.
func TestVTPMFollowsVM(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	url := srv.URL
	if ops := strs(record(t, url, s, "VM", templateRef(t, url, s))["allowed_operations"]); slices.Contains(ops, "create_vtpm") {
		t.Fatalf("a template offers create_vtpm: %v", ops)
	}
	vm := newVM(t, url, s, "vtpm-owner")
	if ops := strs(record(t, url, s, "VM", vm)["allowed_operations"]); !slices.Contains(ops, "create_vtpm") {
		t.Fatalf("a halted VM without VTPM does not offer create_vtpm: %v", ops)
	}
	vtpm := mustCall(t, url, "VTPM.create", s, vm, false).(string)
	if ops := strs(record(t, url, s, "VM", vm)["allowed_operations"]); slices.Contains(ops, "create_vtpm") {
		t.Fatalf("a VM with its VTPM still offers create_vtpm: %v", ops)
	}
	o, _ := srv.Store.Get(datamodel.VTPMClass, vtpm)
	secret := string(o.(*datamodel.VTPMRecord).Contents)
	mustCall(t, url, "VM.destroy", s, vm)
	if _, ok := srv.Store.Get(datamodel.VTPMClass, vtpm); ok {
		t.Fatal("VM.destroy left its VTPM")
	}
	if _, ok := srv.Store.Get(datamodel.SecretClass, secret); ok {
		t.Fatal("VM.destroy left the VTPM's secret")
	}
}
