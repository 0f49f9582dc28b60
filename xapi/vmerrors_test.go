package xapi_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/backends"
	"github.com/xapi-go/xapi-go/backends/sim"
	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
	"github.com/xapi-go/xapi-go/xapi"
	"github.com/xapi-go/xapi-go/xapi/xapitest"
)

// vmErrorMessages are the VM messages whose declared errors
// TestVMDeclaredErrors accounts for.
var vmErrorMessages = []string{
	"VM.snapshot", "VM.clone", "VM.copy", "VM.revert", "VM.provision", "VM.start", "VM.start_on",
	"VM.pause", "VM.unpause", "VM.clean_shutdown", "VM.shutdown", "VM.clean_reboot", "VM.hard_shutdown",
	"VM.hard_reboot", "VM.suspend", "VM.resume", "VM.resume_on", "VM.pool_migrate",
	"VM.set_VCPUs_number_live", "VM.set_memory_static_max", "VM.assert_can_boot_here",
}

// notApplicable lists the declared errors of vmErrorMessages this server
// cannot produce, and why.
var notApplicable = map[[2]string]string{
	{"VM.clone", "LICENCE_RESTRICTION"}:                 "no licensing: every feature is enabled, nothing checks a licence",
	{"VM.copy", "LICENCE_RESTRICTION"}:                  "no licensing: every feature is enabled, nothing checks a licence",
	{"VM.provision", "LICENCE_RESTRICTION"}:             "no licensing: every feature is enabled, nothing checks a licence",
	{"VM.start", "LICENCE_RESTRICTION"}:                 "no licensing: every feature is enabled, nothing checks a licence",
	{"VM.set_VCPUs_number_live", "LICENCE_RESTRICTION"}: "no licensing: live vCPU changes are never licence-restricted here",
	{"VM.revert", "VM_BAD_POWER_STATE"}:                 "revert accepts every power state: a running, paused or suspended VM is hard-shut-down first, as in xapi",
	{"VM.revert", "OPERATION_NOT_ALLOWED"}: "the only OPERATION_NOT_ALLOWED of the revert path is for the control domain, " +
		"which cannot be snapshotted, so no snapshot reverts to it",
	{"VM.start", "BOOTLOADER_FAILED"}:     "the simulated hypervisor boots PV guests directly (PV_kernel); no PV bootloader (pygrub) runs",
	{"VM.start", "UNKNOWN_BOOTLOADER"}:    "the simulated hypervisor boots PV guests directly; PV_bootloader is not interpreted",
	{"VM.start_on", "BOOTLOADER_FAILED"}:  "the simulated hypervisor boots PV guests directly (PV_kernel); no PV bootloader (pygrub) runs",
	{"VM.start_on", "UNKNOWN_BOOTLOADER"}: "the simulated hypervisor boots PV guests directly; PV_bootloader is not interpreted",
	{"VM.start", "NO_HOSTS_AVAILABLE"}: "placement (route.go placeVM, and the local check on a one-host pool) reports the error the best host gave " +
		"(HOST_DISABLED, HOST_NOT_ENOUGH_FREE_MEMORY…) instead of NO_HOSTS_AVAILABLE; a pool always has at least this host",
	{"VM.pool_migrate", "VM_IS_TEMPLATE"}:                                  "a template is never running or paused, and pool_migrate checks the power state first (VM_BAD_POWER_STATE)",
	{"VM.set_memory_static_max", "HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN"}: "no HA: there is no failover plan to break",
	{"VM.assert_can_boot_here", "NETWORK_SRIOV_INSUFFICIENT_CAPACITY"}:     "no SR-IOV: no network_sriov objects or VFs exist",
	{"VM.assert_can_boot_here", "HOST_CANNOT_ATTACH_NETWORK"}: "no bonds or VLANs over bonds: a PIF on the network is always attachable " +
		"(a network with no PIF on the host is VM_REQUIRES_NETWORK)",
	{"VM.assert_can_boot_here", "VM_REQUIRES_GPU"}:              "no GPUs: no PGPU, GPU_group or VGPU objects exist",
	{"VM.assert_can_boot_here", "VM_REQUIRES_VGPU"}:             "no GPUs: no PGPU, GPU_group or VGPU objects exist",
	{"VM.assert_can_boot_here", "VM_REQUIRES_IOMMU"}:            "no PCI passthrough: IOMMU is only needed by passthrough vGPUs, which do not exist",
	{"VM.assert_can_boot_here", "VM_HOST_INCOMPATIBLE_VERSION"}: "no rolling pool upgrade: every host runs the same xapi-go version",
	{"VM.assert_can_boot_here", "VM_INCOMPATIBLE_WITH_THIS_HOST"}: "no CPUID feature levelling: VMs record no last_boot_CPU_flags to compare " +
		"with a host's CPU features",
}

type vmErrRow struct {
	method string
	code   string
	params []any    // after the session
	want   []string // code and params as sent
	setup  func(t *testing.T) (cleanup func())
	url    string // "" = the main server
}

func storeSet(t *testing.T, st *store.Store, c *datamodel.Class, ref, field string, v any) {
	t.Helper()
	op, err := store.Set(c, ref, field, v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(context.Background(), op); err != nil {
		t.Fatal(err)
	}
}

// busyVM starts an asynchronous clean shutdown of vm that hangs in the
// backend; it returns the task, which the test cancels at the end.
func busyVM(t *testing.T, srv *xapitest.Server, s, vm string) string {
	t.Helper()
	srv.Sim.HangNext(backends.OpCleanShutdown)
	task := vmCall(t, srv.URL, "Async.VM.clean_shutdown", s, vm).(string)
	deadline := time.Now().Add(5 * time.Second)
	for record(t, srv.URL, s, "VM", vm)["current_operations"].(map[string]any)[task] != "clean_shutdown" {
		if time.Now().After(deadline) {
			t.Fatal("clean_shutdown did not start")
		}
		time.Sleep(2 * time.Millisecond)
	}
	return task
}

func vmDiskVDI(t *testing.T, url, s, vm string) (vbd, vdi string) {
	t.Helper()
	for _, b := range refList(record(t, url, s, "VM", vm)["VBDs"]) {
		if r := record(t, url, s, "VBD", b); r["type"] == "Disk" {
			return b, r["VDI"].(string)
		}
	}
	t.Fatalf("VM %s has no disk", vm)
	return "", ""
}

// addHost adds a second host record (a clone of this host's, without PBDs
// or PIFs) with its own host_metrics; live says whether it is live.
func addHost(t *testing.T, srv *xapitest.Server, host string, live bool) (string, string) {
	t.Helper()
	o, _ := srv.Store.Get(datamodel.HostClass, host)
	h := o.Clone().(*datamodel.HostRecord)
	mo, _ := srv.Store.Get(datamodel.HostMetricsClass, string(h.Metrics))
	m := mo.Clone().(*datamodel.HostMetricsRecord)
	m.UUID = datamodel.NewUUID()
	m.Live = live
	m.MemoryFree = 64 * sim.GiB
	mref, href := datamodel.NewRef(), datamodel.NewRef()
	h.UUID = datamodel.NewUUID()
	h.NameLabel = "other host"
	h.Metrics = datamodel.HostMetricsRef(mref)
	h.PBDs = []datamodel.PBDRef{}
	h.PIFs = []datamodel.PIFRef{}
	h.HostCPUs = []datamodel.HostCPURef{}
	h.ResidentVMs = []datamodel.VMRef{}
	h.CurrentOperations = map[string]datamodel.HostAllowedOperations{}
	if _, err := srv.Store.Apply(context.Background(), store.Create(mref, m), store.Create(href, h)); err != nil {
		t.Fatal(err)
	}
	return href, mref
}

func TestVMDeclaredErrors(t *testing.T) {
	const gib = sim.GiB
	srv := xapitest.NewServer(t, xapitest.Options{Sim: sim.Config{CPUs: 4}})
	url := srv.URL
	s := login(t, url)
	host := refList(vmCall(t, url, "host.get_all", s))[0]
	tmpl := templateRef(t, url, s)
	dom0 := ""
	for ref, r := range vmCall(t, url, "VM.get_all_records", s).(map[string]any) {
		if r.(map[string]any)["is_control_domain"] == true {
			dom0 = ref
		}
	}
	halted := newVM(t, url, s, "halted")
	running := newVM(t, url, s, "running")
	vmCall(t, url, "VM.start", s, running, false, false)
	paused := newVM(t, url, s, "paused")
	vmCall(t, url, "VM.start", s, paused, true, false)
	suspended := newVM(t, url, s, "suspended")
	vmCall(t, url, "VM.start", s, suspended, false, false)
	vmCall(t, url, "VM.suspend", s, suspended)
	busy := newVM(t, url, s, "busy")
	vmCall(t, url, "VM.start", s, busy, false, false)

	// disks: a provisioned VM, a VM whose revert would need a new disk, an
	// unprovisioned VM; then the SR is shrunk to leave 1 GiB.
	disky := newVM(t, url, s, "disky")
	vmCall(t, url, "VM.provision", s, disky)
	_, diskVDI := vmDiskVDI(t, url, s, disky)
	disk := record(t, url, s, "VDI", diskVDI)
	sr, diskSize := disk["SR"].(string), vmNum(disk["virtual_size"])
	revVM := newVM(t, url, s, "reverted")
	vmCall(t, url, "VM.provision", s, revVM)
	revSnap := vmCall(t, url, "VM.snapshot", s, revVM, "before", []any{}).(string)
	revVBD, _ := vmDiskVDI(t, url, s, revVM)
	vmCall(t, url, "VBD.destroy", s, revVBD) // the snapshot's disk is no longer covered: reverting adds one
	bare := newVM(t, url, s, "bare")
	failRev := newVM(t, url, s, "revert fails")
	vmCall(t, url, "VM.start", s, failRev, false, false)
	failSnap := vmCall(t, url, "VM.snapshot", s, failRev, "snap", []any{}).(string)
	srRec := record(t, url, s, "SR", sr)
	storeSet(t, srv.Store, datamodel.SRClass, sr, "physical_size", vmNum(srRec["virtual_allocation"])+gib)
	size, left := strconv.FormatInt(diskSize, 10), strconv.FormatInt(gib, 10)

	task := busyVM(t, srv, s, busy)
	const dom0Msg = "Operations on the control domain are not allowed"
	notAllowed := []string{"OPERATION_NOT_ALLOWED", dom0Msg}
	inProgress := []string{"OTHER_OPERATION_IN_PROGRESS", "VM", busy, "clean_shutdown", task}
	hostVal := func(field string, v any) func(t *testing.T) func() {
		return func(t *testing.T) func() {
			o, _ := srv.Store.Get(datamodel.HostClass, host)
			f, _ := datamodel.HostClass.FieldByName(field)
			old := o.Field(f.Index)
			storeSet(t, srv.Store, datamodel.HostClass, host, field, v)
			return func() { storeSet(t, srv.Store, datamodel.HostClass, host, field, old) }
		}
	}
	vmVal := func(vm, field string, v any) func(t *testing.T) func() {
		return func(t *testing.T) func() {
			o, _ := srv.Store.Get(datamodel.VMClass, vm)
			f, _ := datamodel.VMClass.FieldByName(field)
			old := o.Field(f.Index)
			storeSet(t, srv.Store, datamodel.VMClass, vm, field, v)
			return func() { storeSet(t, srv.Store, datamodel.VMClass, vm, field, old) }
		}
	}
	hvm := record(t, url, s, "VM", halted)["HVM_boot_policy"] != ""

	rows := []vmErrRow{
		{method: "VM.snapshot", code: "VM_BAD_POWER_STATE", params: []any{paused, "s", []any{}}, want: []string{"VM_BAD_POWER_STATE", paused, "halted, running, suspended", "paused"}},
		{method: "VM.snapshot", code: "SR_FULL", params: []any{disky, "s", []any{}}, want: []string{"SR_FULL", size, left}},
		{method: "VM.snapshot", code: "OPERATION_NOT_ALLOWED", params: []any{dom0, "s", []any{}}, want: notAllowed},

		{method: "VM.clone", code: "VM_BAD_POWER_STATE", params: []any{running, "c"}, want: []string{"VM_BAD_POWER_STATE", running, "halted", "running"}},
		{method: "VM.clone", code: "SR_FULL", params: []any{disky, "c"}, want: []string{"SR_FULL", size, left}},
		{method: "VM.clone", code: "OPERATION_NOT_ALLOWED", params: []any{dom0, "c"}, want: notAllowed},

		{method: "VM.copy", code: "VM_BAD_POWER_STATE", params: []any{suspended, "c", sr}, want: []string{"VM_BAD_POWER_STATE", suspended, "halted", "suspended"}},
		{method: "VM.copy", code: "SR_FULL", params: []any{disky, "c", sr}, want: []string{"SR_FULL", size, left}},
		{method: "VM.copy", code: "OPERATION_NOT_ALLOWED", params: []any{dom0, "c", sr}, want: notAllowed},

		{method: "VM.revert", code: "SR_FULL", params: []any{revSnap}, want: []string{"SR_FULL", size, left}},
		{method: "VM.revert", code: "VM_REVERT_FAILED", params: []any{failSnap}, want: []string{"VM_REVERT_FAILED", failSnap, failRev},
			setup: func(t *testing.T) func() {
				srv.Sim.FailNext(backends.OpHardShutdown, errors.New("injected"))
				return func() {}
			}},

		{method: "VM.provision", code: "VM_BAD_POWER_STATE", params: []any{running}, want: []string{"VM_BAD_POWER_STATE", running, "halted", "running"}},
		{method: "VM.provision", code: "SR_FULL", params: []any{bare}, want: []string{"SR_FULL", size, left}},
		{method: "VM.provision", code: "OPERATION_NOT_ALLOWED", params: []any{dom0}, want: notAllowed},

		{method: "VM.start", code: "VM_BAD_POWER_STATE", params: []any{paused, false, false}, want: []string{"VM_BAD_POWER_STATE", paused, "halted", "paused"}},
		{method: "VM.start", code: "VM_IS_TEMPLATE", params: []any{tmpl, false, false}, want: []string{"VM_IS_TEMPLATE", tmpl}},
		{method: "VM.start", code: "OTHER_OPERATION_IN_PROGRESS", params: []any{busy, false, false}, want: inProgress},
		{method: "VM.start", code: "OPERATION_NOT_ALLOWED", params: []any{dom0, false, false}, want: notAllowed},
		{method: "VM.start", code: "VM_HVM_REQUIRED", params: []any{halted, false, false}, want: []string{"VM_HVM_REQUIRED", halted},
			setup: hostVal("capabilities", []string{"xen-3.0-x86_64"})},

		{method: "VM.start_on", code: "VM_BAD_POWER_STATE", params: []any{running, host, false, false}, want: []string{"VM_BAD_POWER_STATE", running, "halted", "running"}},
		{method: "VM.start_on", code: "VM_IS_TEMPLATE", params: []any{tmpl, host, false, false}, want: []string{"VM_IS_TEMPLATE", tmpl}},
		{method: "VM.start_on", code: "OTHER_OPERATION_IN_PROGRESS", params: []any{busy, host, false, false}, want: inProgress},
		{method: "VM.start_on", code: "OPERATION_NOT_ALLOWED", params: []any{dom0, host, false, false}, want: notAllowed},

		{method: "VM.resume", code: "VM_BAD_POWER_STATE", params: []any{halted, false, false}, want: []string{"VM_BAD_POWER_STATE", halted, "suspended", "halted"}},
		{method: "VM.resume", code: "OPERATION_NOT_ALLOWED", params: []any{dom0, false, false}, want: notAllowed},
		{method: "VM.resume", code: "VM_IS_TEMPLATE", params: []any{tmpl, false, false}, want: []string{"VM_IS_TEMPLATE", tmpl}},
		{method: "VM.resume_on", code: "VM_BAD_POWER_STATE", params: []any{running, host, false, false}, want: []string{"VM_BAD_POWER_STATE", running, "suspended", "running"}},
		{method: "VM.resume_on", code: "OPERATION_NOT_ALLOWED", params: []any{dom0, host, false, false}, want: notAllowed},
		{method: "VM.resume_on", code: "VM_IS_TEMPLATE", params: []any{tmpl, host, false, false}, want: []string{"VM_IS_TEMPLATE", tmpl}},

		{method: "VM.unpause", code: "VM_BAD_POWER_STATE", params: []any{running}, want: []string{"VM_BAD_POWER_STATE", running, "paused", "running"}},
		{method: "VM.unpause", code: "OPERATION_NOT_ALLOWED", params: []any{dom0}, want: notAllowed},
		{method: "VM.unpause", code: "VM_IS_TEMPLATE", params: []any{tmpl}, want: []string{"VM_IS_TEMPLATE", tmpl}},

		{method: "VM.pool_migrate", code: "VM_BAD_POWER_STATE", params: []any{halted, host, map[string]any{}}, want: []string{"VM_BAD_POWER_STATE", halted, "running", "halted"}},

		{method: "VM.set_VCPUs_number_live", code: "OPERATION_NOT_ALLOWED", params: []any{dom0, 1}, want: notAllowed},

		{method: "VM.assert_can_boot_here", code: "HOST_NOT_ENOUGH_FREE_MEMORY", params: []any{halted, host},
			want:  []string{"HOST_NOT_ENOUGH_FREE_MEMORY", "", ""}, // filled in below
			setup: vmVal(halted, "memory_dynamic_max", 200*gib)},
		{method: "VM.assert_can_boot_here", code: "HOST_NOT_ENOUGH_PCPUS", params: []any{halted, host}, want: []string{"HOST_NOT_ENOUGH_PCPUS", "5", "4"},
			setup: vmVal(halted, "VCPUs_max", int64(5))},
		{method: "VM.assert_can_boot_here", code: "HOST_DISABLED", params: []any{halted, host}, want: []string{"HOST_DISABLED", host},
			setup: func(t *testing.T) func() {
				vmCall(t, url, "host.disable", s, host)
				return func() { vmCall(t, url, "host.enable", s, host) }
			}},
		{method: "VM.assert_can_boot_here", code: "VM_HVM_REQUIRED", params: []any{halted, host}, want: []string{"VM_HVM_REQUIRED", halted},
			setup: hostVal("capabilities", []string{"xen-3.0-x86_64"})},
		{method: "VM.assert_can_boot_here", code: "VM_HOST_INCOMPATIBLE_VIRTUAL_HARDWARE_PLATFORM_VERSION", params: []any{halted, host},
			want: []string{"VM_HOST_INCOMPATIBLE_VIRTUAL_HARDWARE_PLATFORM_VERSION", host, "[0; 1; 2]", halted, "7"},
			setup: func(t *testing.T) func() {
				vmCall(t, url, "VM.set_hardware_platform_version", s, halted, 7)
				return func() { vmCall(t, url, "VM.set_hardware_platform_version", s, halted, 0) }
			}},
		{method: "VM.assert_can_boot_here", code: "INVALID_VALUE", params: []any{halted, host}, want: []string{"INVALID_VALUE", "HVM_shadow_multiplier", "0.5"},
			setup: vmVal(halted, "HVM_shadow_multiplier", 0.5)},
		{method: "VM.assert_can_boot_here", code: "MEMORY_CONSTRAINT_VIOLATION", params: []any{halted, host}, want: []string{"MEMORY_CONSTRAINT_VIOLATION"},
			setup: vmVal(halted, "memory_static_min", 100*gib)},
		{method: "VM.assert_can_boot_here", code: "VALUE_NOT_SUPPORTED", params: []any{halted, host},
			want: []string{"VALUE_NOT_SUPPORTED", "VM.actions_after_crash", "rename_restart", "option would leak a domain; VMs and not domains are managed by this API"},
			setup: func(t *testing.T) func() {
				vmCall(t, url, "VM.set_actions_after_crash", s, halted, "rename_restart")
				return func() { vmCall(t, url, "VM.set_actions_after_crash", s, halted, "restart") }
			}},
		{method: "VM.assert_can_boot_here", code: "OPERATION_NOT_ALLOWED", params: []any{dom0, host}, want: notAllowed},
	}
	// the power operations of a running VM share their rows
	for _, m := range []string{"VM.pause", "VM.clean_shutdown", "VM.shutdown", "VM.clean_reboot", "VM.hard_shutdown", "VM.hard_reboot", "VM.suspend"} {
		expected := "running"
		switch m {
		case "VM.hard_shutdown", "VM.shutdown":
			expected = "paused, running, suspended"
		case "VM.hard_reboot":
			expected = "paused, running"
		}
		rows = append(rows,
			vmErrRow{method: m, code: "VM_BAD_POWER_STATE", params: []any{halted}, want: []string{"VM_BAD_POWER_STATE", halted, expected, "halted"}},
			vmErrRow{method: m, code: "OTHER_OPERATION_IN_PROGRESS", params: []any{busy}, want: inProgress},
			vmErrRow{method: m, code: "OPERATION_NOT_ALLOWED", params: []any{dom0}, want: notAllowed},
			vmErrRow{method: m, code: "VM_IS_TEMPLATE", params: []any{tmpl}, want: []string{"VM_IS_TEMPLATE", tmpl}})
	}
	if !hvm {
		t.Fatal("the Debian template is expected to be HVM")
	}

	// A second server with a second host record: liveness, storage and
	// network reachability, and pool_migrate's claim on the VM.
	srv2 := xapitest.NewServer(t, xapitest.Options{})
	url2 := srv2.URL
	s2 := login(t, url2)
	host1 := refList(vmCall(t, url2, "host.get_all", s2))[0]
	var dom02 string
	for ref, r := range vmCall(t, url2, "VM.get_all_records", s2).(map[string]any) {
		if r.(map[string]any)["is_control_domain"] == true {
			dom02 = ref
		}
	}
	withDisk := newVM(t, url2, s2, "with disk")
	vmCall(t, url2, "VM.provision", s2, withDisk)
	_, vdi2 := vmDiskVDI(t, url2, s2, withDisk)
	sr2 := record(t, url2, s2, "VDI", vdi2)["SR"].(string)
	withNIC := newVM(t, url2, s2, "with nic")
	pif := refList(record(t, url2, s2, "host", host1)["PIFs"])[0]
	net := record(t, url2, s2, "PIF", pif)["network"].(string)
	vmCall(t, url2, "VIF.create", s2, devVIF(withNIC, net, "0", ""))
	mover := newVM(t, url2, s2, "mover")
	vmCall(t, url2, "VM.start", s2, mover, false, false)
	host2, metrics2 := addHost(t, srv2, host1, false)
	var task2 string
	rows = append(rows,
		vmErrRow{url: url2, method: "VM.assert_can_boot_here", code: "HOST_NOT_LIVE", params: []any{withDisk, host2}, want: []string{"HOST_NOT_LIVE"}},
		vmErrRow{url: url2, method: "VM.assert_can_boot_here", code: "VM_REQUIRES_SR", params: []any{withDisk, host2}, want: []string{"VM_REQUIRES_SR", withDisk, sr2},
			setup: func(t *testing.T) func() {
				storeSet(t, srv2.Store, datamodel.HostMetricsClass, metrics2, "live", true)
				return func() {}
			}},
		vmErrRow{url: url2, method: "VM.assert_can_boot_here", code: "VM_REQUIRES_NETWORK", params: []any{withNIC, host2}, want: []string{"VM_REQUIRES_NETWORK", withNIC, net}},
		vmErrRow{url: url2, method: "VM.pool_migrate", code: "OPERATION_NOT_ALLOWED", params: []any{dom02, host2, map[string]any{}}, want: notAllowed},
		vmErrRow{url: url2, method: "VM.pool_migrate", code: "OTHER_OPERATION_IN_PROGRESS", params: []any{mover, host2, map[string]any{}},
			want: []string{"OTHER_OPERATION_IN_PROGRESS", "VM", mover, "clean_shutdown", ""}, // task filled in by setup
			setup: func(t *testing.T) func() {
				task2 = busyVM(t, srv2, s2, mover)
				return func() { vmCall(t, url2, "task.cancel", s2, task2) }
			}},
	)

	covered := map[[2]string]bool{}
	for _, r := range rows {
		covered[[2]string{r.method, r.code}] = true
		t.Run(r.method+"/"+r.code, func(t *testing.T) {
			if r.setup != nil {
				defer r.setup(t)()
			}
			u, sess := url, s
			if r.url != "" {
				u, sess = r.url, s2
			}
			want := slices.Clone(r.want)
			switch {
			case r.code == "HOST_NOT_ENOUGH_FREE_MEMORY":
				// needed: memory_dynamic_max plus overhead; available: the host's free memory
				want[2] = strconv.FormatInt(hostFree(t, u, sess), 10)
			case r.code == "OTHER_OPERATION_IN_PROGRESS" && want[4] == "":
				want[4] = task2
			}
			_, e := jsonCall(t, u, r.method, append([]any{sess}, r.params...)...)
			if r.code == "HOST_NOT_ENOUGH_FREE_MEMORY" && len(e) == 3 {
				if vmNum(e[1]) <= 200*gib {
					t.Errorf("needed %s, want more than memory_dynamic_max", e[1])
				}
				want[1] = e[1]
			}
			if !slices.Equal(e, want) {
				t.Fatalf("got %v, want %v", e, want)
			}
		})
	}
	vmCall(t, url, "task.cancel", s, task)
	waitTask(t, url, s, task)

	// every declared error is tested or explained
	for _, m := range vmErrorMessages {
		declared := xapi.DeclaredErrors(m)
		if len(declared) == 0 {
			t.Errorf("%s: no declared errors in the method table", m)
		}
		for _, code := range declared {
			k := [2]string{m, code}
			if covered[k] && notApplicable[k] != "" {
				t.Errorf("%s %s: both tested and listed as not applicable", m, code)
			}
			if !covered[k] && notApplicable[k] == "" {
				t.Errorf("%s: declared error %s has no row and no notApplicable reason", m, code)
			}
		}
	}
	for k := range notApplicable {
		if !slices.Contains(xapi.DeclaredErrors(k[0]), k[1]) {
			t.Errorf("notApplicable %v: not a declared error", k)
		}
	}
	for k := range covered {
		if !slices.Contains(xapi.DeclaredErrors(k[0]), k[1]) {
			t.Errorf("row %v: not a declared error", k)
		}
	}
}

// TestVMSuspendImageAccounting: a suspend image is charged to its SR while
// it exists.
func TestVMSuspendImageAccounting(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	url := srv.URL
	s := login(t, url)
	vm := newVM(t, url, s, "sleeper")
	vmCall(t, url, "VM.start", s, vm, false, false)
	sr := refList(vmCall(t, url, "SR.get_all", s))
	before := map[string][2]int64{}
	for _, r := range sr {
		rec := record(t, url, s, "SR", r)
		before[r] = [2]int64{vmNum(rec["virtual_allocation"]), vmNum(rec["physical_utilisation"])}
	}
	vmCall(t, url, "VM.suspend", s, vm)
	img := record(t, url, s, "VDI", record(t, url, s, "VM", vm)["suspend_VDI"].(string))
	size := vmNum(img["virtual_size"])
	if vmNum(img["physical_utilisation"]) != size {
		t.Fatalf("suspend image %v", img)
	}
	rec := record(t, url, s, "SR", img["SR"].(string))
	b := before[img["SR"].(string)]
	if va, pu := vmNum(rec["virtual_allocation"]), vmNum(rec["physical_utilisation"]); va != b[0]+size || pu != b[1]+size {
		t.Fatalf("SR after suspend: virtual_allocation %d physical_utilisation %d, before %v, image %d", va, pu, b, size)
	}
	vmCall(t, url, "VM.resume", s, vm, false, false)
	rec = record(t, url, s, "SR", img["SR"].(string))
	if va, pu := vmNum(rec["virtual_allocation"]), vmNum(rec["physical_utilisation"]); va != b[0] || pu != b[1] {
		t.Fatalf("SR after resume: virtual_allocation %d physical_utilisation %d, want %v", va, pu, b)
	}
}
