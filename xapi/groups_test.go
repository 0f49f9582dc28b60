package xapi_test

import (
	"context"
	"slices"
	"testing"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
	"github.com/xapi-go/xapi-go/xapi/xapitest"
)

// storeCreate writes o under a new ref directly in the store (objects that
// no message creates: PGPUs, VGPUs, PUSBs, extra PIFs) and returns the ref.
func storeCreate(t *testing.T, st *store.Store, o datamodel.Object) string {
	t.Helper()
	ref := datamodel.NewRef()
	if _, err := st.Apply(context.Background(), store.Create(ref, o)); err != nil {
		t.Fatal(err)
	}
	return ref
}

func storeAdd(t *testing.T, st *store.Store, c *datamodel.Class, ref, field string, v any) {
	t.Helper()
	op, err := store.SetAdd(c, ref, field, v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(context.Background(), op); err != nil {
		t.Fatal(err)
	}
}

func exists(t *testing.T, url, s, class, ref string) bool {
	t.Helper()
	_, e := jsonCall(t, url, class+".get_record", s, ref)
	if e != nil && e[0] != "HANDLE_INVALID" {
		t.Fatalf("%s.get_record: %v", class, e)
	}
	return e == nil
}

func TestGPUGroupCreateDestroy(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	url := srv.URL
	vm := newVM(t, url, s, "gpu-vm")

	g := mustCall(t, url, "GPU_group.create", s, "group", "desc", map[string]any{"k": "v"}).(string)
	r := record(t, url, s, "GPU_group", g)
	if r["name_label"] != "group" || r["name_description"] != "desc" || r["allocation_algorithm"] != "depth_first" ||
		len(strs(r["GPU_types"])) != 0 || len(strs(r["PGPUs"])) != 0 || len(strs(r["VGPUs"])) != 0 ||
		r["other_config"].(map[string]any)["k"] != "v" || r["uuid"] == "" {
		t.Fatalf("record %v", r)
	}
	if !slices.Contains(refList(mustCall(t, url, "GPU_group.get_all", s)), g) {
		t.Fatal("not in get_all")
	}
	// Defaults of the optional parameters.
	g0 := mustCall(t, url, "GPU_group.create", s).(string)
	if r := record(t, url, s, "GPU_group", g0); r["name_label"] != "" || len(r["other_config"].(map[string]any)) != 0 {
		t.Fatalf("defaults: %v", r)
	}

	newGroup := func() string { return mustCall(t, url, "GPU_group.create", s, "g", "", map[string]any{}).(string) }
	vgpu := func(group string, attached bool) string {
		v := datamodel.NewVGPURecord()
		v.UUID = datamodel.NewUUID()
		v.VM, v.GPUGroup, v.CurrentlyAttached = datamodel.VMRef(vm), datamodel.GPUGroupRef(group), attached
		ref := storeCreate(t, srv.Store, v)
		storeAdd(t, srv.Store, datamodel.GPUGroupClass, group, "VGPUs", datamodel.VGPURef(ref))
		storeAdd(t, srv.Store, datamodel.VMClass, vm, "VGPUs", datamodel.VGPURef(ref))
		return ref
	}
	tests := []struct {
		name  string
		setup func(t *testing.T) (group string, want func(group string) []string)
	}{
		{"plain", func(t *testing.T) (string, func(string) []string) { return newGroup(), nil }},
		{"bad ref", func(t *testing.T) (string, func(string) []string) {
			return "OpaqueRef:nope", func(g string) []string { return []string{"HANDLE_INVALID", "GPU_group", g} }
		}},
		{"PGPU in group", func(t *testing.T) (string, func(string) []string) {
			g := newGroup()
			p := datamodel.NewPGPURecord()
			p.UUID = datamodel.NewUUID()
			p.GPUGroup = datamodel.GPUGroupRef(g)
			pgpu := storeCreate(t, srv.Store, p)
			storeAdd(t, srv.Store, datamodel.GPUGroupClass, g, "PGPUs", datamodel.PGPURef(pgpu))
			return g, func(string) []string { return []string{"GPU_GROUP_CONTAINS_PGPU", pgpu} }
		}},
		{"attached VGPU", func(t *testing.T) (string, func(string) []string) {
			g := newGroup()
			v := vgpu(g, true)
			vgpu(g, false)
			return g, func(string) []string { return []string{"GPU_GROUP_CONTAINS_VGPU", v} }
		}},
		{"detached VGPU destroyed with the group", func(t *testing.T) (string, func(string) []string) {
			g := newGroup()
			vgpu(g, false)
			return g, nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, want := tc.setup(t)
			var vgpus []string
			if want == nil {
				vgpus = strs(record(t, url, s, "GPU_group", g)["VGPUs"])
			}
			_, e := jsonCall(t, url, "GPU_group.destroy", s, g)
			if want != nil {
				if w := want(g); !slices.Equal(e, w) {
					t.Fatalf("error %v, want %v", e, w)
				}
				return
			}
			if e != nil {
				t.Fatal(e)
			}
			if exists(t, url, s, "GPU_group", g) {
				t.Fatal("group still there")
			}
			vmVGPUs := strs(record(t, url, s, "VM", vm)["VGPUs"])
			for _, v := range vgpus {
				if exists(t, url, s, "VGPU", v) || slices.Contains(vmVGPUs, v) {
					t.Fatalf("VGPU %s left behind (VM.VGPUs %v)", v, vmVGPUs)
				}
			}
		})
	}
}

func TestUSBGroupCreateDestroy(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	url := srv.URL
	vm := newVM(t, url, s, "usb-vm")

	g := mustCall(t, url, "USB_group.create", s, "usb", "desc", map[string]any{"k": "v"}).(string)
	r := record(t, url, s, "USB_group", g)
	if r["name_label"] != "usb" || r["name_description"] != "desc" || len(strs(r["PUSBs"])) != 0 ||
		len(strs(r["VUSBs"])) != 0 || r["other_config"].(map[string]any)["k"] != "v" || r["uuid"] == "" {
		t.Fatalf("record %v", r)
	}

	newGroup := func() string { return mustCall(t, url, "USB_group.create", s, "g", "", map[string]any{}).(string) }
	vusb := func(group string, attached bool) string {
		v := datamodel.NewVUSBRecord()
		v.UUID = datamodel.NewUUID()
		v.VM, v.USBGroup, v.CurrentlyAttached = datamodel.VMRef(vm), datamodel.USBGroupRef(group), attached
		ref := storeCreate(t, srv.Store, v)
		storeAdd(t, srv.Store, datamodel.USBGroupClass, group, "VUSBs", datamodel.VUSBRef(ref))
		storeAdd(t, srv.Store, datamodel.VMClass, vm, "VUSBs", datamodel.VUSBRef(ref))
		return ref
	}
	tests := []struct {
		name  string
		setup func(t *testing.T) (group string, want []string)
	}{
		{"plain", func(t *testing.T) (string, []string) { return newGroup(), nil }},
		{"bad ref", func(t *testing.T) (string, []string) {
			return "OpaqueRef:nope", []string{"HANDLE_INVALID", "USB_group", "OpaqueRef:nope"}
		}},
		{"PUSB in group", func(t *testing.T) (string, []string) {
			g := newGroup()
			p := datamodel.NewPUSBRecord()
			p.UUID = datamodel.NewUUID()
			p.USBGroup = datamodel.USBGroupRef(g)
			pusb := storeCreate(t, srv.Store, p)
			storeAdd(t, srv.Store, datamodel.USBGroupClass, g, "PUSBs", datamodel.PUSBRef(pusb))
			return g, []string{"USB_GROUP_CONTAINS_PUSB", pusb}
		}},
		{"attached VUSB", func(t *testing.T) (string, []string) {
			g := newGroup()
			v := vusb(g, true)
			return g, []string{"USB_GROUP_CONTAINS_VUSB", v}
		}},
		{"detached VUSB destroyed with the group", func(t *testing.T) (string, []string) {
			g := newGroup()
			vusb(g, false)
			return g, nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, want := tc.setup(t)
			var vusbs []string
			if want == nil {
				vusbs = strs(record(t, url, s, "USB_group", g)["VUSBs"])
			}
			_, e := jsonCall(t, url, "USB_group.destroy", s, g)
			if !slices.Equal(e, want) {
				t.Fatalf("error %v, want %v", e, want)
			}
			if want != nil {
				return
			}
			if exists(t, url, s, "USB_group", g) {
				t.Fatal("group still there")
			}
			vmVUSBs := strs(record(t, url, s, "VM", vm)["VUSBs"])
			for _, v := range vusbs {
				if exists(t, url, s, "VUSB", v) || slices.Contains(vmVUSBs, v) {
					t.Fatalf("VUSB %s left behind (VM.VUSBs %v)", v, vmVUSBs)
				}
			}
		})
	}
}
