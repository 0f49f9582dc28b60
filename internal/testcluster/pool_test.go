package testcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
)

func xerr(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

func TestJoinReplicatesAndRedirects(t *testing.T) {
	c := New(t, Options{Hosts: 3})
	master := c.Hosts[0]
	if l := c.Leader(); l != master {
		t.Fatalf("leader is host %d, want the original master", l.Index)
	}
	s, err := master.Login()
	if err != nil {
		t.Fatal(err)
	}
	hosts, err := master.Call("host.get_all", s)
	if err != nil || len(hosts.([]any)) != 3 {
		t.Fatalf("host.get_all: %v %v", hosts, err)
	}
	// members answer HOST_IS_SLAVE with the master's address
	for _, h := range c.Hosts[1:] {
		_, err := h.Login()
		if e := xerr(err); e == nil || e.Code != "HOST_IS_SLAVE" || e.Params[0] != master.Address {
			t.Fatalf("login on member %d: %v", h.Index, err)
		}
		if _, err := h.Call("VM.get_all", s); xerr(err) == nil || xerr(err).Code != "HOST_IS_SLAVE" {
			t.Fatalf("master session on member %d: %v", h.Index, err)
		}
	}
	// the joined hosts' PIFs are on the pool's management network
	nets, _ := master.Call("network.get_all_records_where", s, `field "bridge" = "xenbr0"`)
	for _, n := range nets.(map[string]any) {
		if pifs := n.(map[string]any)["PIFs"].([]any); len(pifs) != 3 {
			t.Fatalf("xenbr0 has %d PIFs, want 3", len(pifs))
		}
	}
	// a write on the master reaches every replica; members' writes go
	// through the master
	vms, _ := master.Call("VM.get_all_records_where", s, `field "is_a_template" = "true"`)
	var tmpl string
	for ref := range vms.(map[string]any) {
		tmpl = ref
		break
	}
	if _, err := master.Call("VM.set_name_description", s, tmpl, "from master"); err != nil {
		t.Fatal(err)
	}
	ps, err := c.Hosts[2].PoolLogin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Hosts[2].Call("VM.add_to_other_config", ps, tmpl, "k", "from member"); err != nil {
		t.Fatalf("write on a member with a pool session: %v", err)
	}
	c.WaitStable(10 * time.Second)
	want := master.Dump(datamodel.VMClass, datamodel.HostClass, datamodel.PoolClass, datamodel.NetworkClass, datamodel.PIFClass, datamodel.SRClass, datamodel.PBDClass)
	for _, h := range c.Hosts[1:] {
		got := h.Dump(datamodel.VMClass, datamodel.HostClass, datamodel.PoolClass, datamodel.NetworkClass, datamodel.PIFClass, datamodel.SRClass, datamodel.PBDClass)
		if len(got) != len(want) {
			t.Fatalf("host %d has %d records, master %d", h.Index, len(got), len(want))
		}
		for ref, rec := range want {
			if got[ref] != rec {
				t.Fatalf("host %d differs on %s:\n%s\n%s", h.Index, ref, got[ref], rec)
			}
		}
	}
	rec, _ := c.Hosts[1].Call("VM.get_other_config", ps, tmpl)
	if ps1, _ := c.Hosts[1].PoolLogin(); ps1 != "" {
		rec, _ = c.Hosts[1].Call("VM.get_other_config", ps1, tmpl)
	}
	if rec.(map[string]any)["k"] != "from member" {
		t.Fatalf("other_config on host 1: %v", rec)
	}
}

func mustCall(t *testing.T, h *Host, method string, params ...any) any {
	t.Helper()
	v, err := h.Call(method, params...)
	if err != nil {
		t.Fatalf("%s on host %d: %v", method, h.Index, err)
	}
	return v
}

func newVM(t *testing.T, h *Host, s, name string) string {
	t.Helper()
	tmpls := mustCall(t, h, "VM.get_all_records_where", s, `field "is_a_template" = "true" and field "is_default_template" = "true"`).(map[string]any)
	var tmpl string
	for ref := range tmpls {
		tmpl = ref
		break
	}
	vm := mustCall(t, h, "VM.clone", s, tmpl, name).(string)
	mustCall(t, h, "VM.set_is_a_template", s, vm, false)
	return vm
}

// eventsSince collects event.from batches from token until one contains a
// mod of ref's name_label equal to want (or fails after timeout).
func nameEvents(t *testing.T, h *Host, s, token string) (labels []string, next string) {
	t.Helper()
	r := mustCall(t, h, "event.from", s, []any{"vm"}, token, 0.5).(map[string]any)
	for _, e := range r["events"].([]any) {
		ev := e.(map[string]any)
		if snap, ok := ev["snapshot"].(map[string]any); ok {
			labels = append(labels, snap["name_label"].(string))
		}
	}
	return labels, r["token"].(string)
}

func TestFailoverKeepsSessionsTokensAndEndsTasks(t *testing.T) {
	c := New(t, Options{Hosts: 3})
	old := c.Leader()
	s, err := old.Login()
	if err != nil {
		t.Fatal(err)
	}
	vm := newVM(t, old, s, "v0")
	vmB := newVM(t, old, s, "b0")
	tok := mustCall(t, old, "event.from", s, []any{"vm"}, "", 0.0).(map[string]any)["token"].(string)
	// acknowledged by the old master just before it dies
	mustCall(t, old, "VM.set_name_label", s, vm, "v1")
	// a long operation on the master: it hangs until the master dies
	old.Sim().HangNext("start")
	task := mustCall(t, old, "Async.VM.start", s, vm, false, false).(string)
	time.Sleep(50 * time.Millisecond)

	old.Kill()
	killed := time.Now()
	nl := c.WaitLeader(10 * time.Second)
	t.Logf("new leader host %d after %v", nl.Index, time.Since(killed))
	// the client follows HOST_IS_SLAVE from any survivor
	var master *Host
	for _, h := range c.Hosts {
		if h == old {
			continue
		}
		_, err := h.Call("VM.get_name_label", s, vm)
		if e := xerr(err); e != nil && e.Code == "HOST_IS_SLAVE" {
			for _, m := range c.Hosts {
				if m.Address == e.Params[0] {
					master = m
				}
			}
		} else if err == nil {
			master = h
		}
	}
	if master != nl {
		t.Fatalf("HOST_IS_SLAVE leads to %v, leader is host %d", master, nl.Index)
	}
	// the old session is valid on the new master
	if got := mustCall(t, master, "VM.get_name_label", s, vm); got != "v1" {
		t.Fatalf("name after failover: %v", got)
	}
	mustCall(t, master, "VM.set_name_label", s, vmB, "b1")
	// the event token from the old master continues on the new one: both
	// changes, once each
	labels, _ := nameEvents(t, master, s, tok)
	slices.Sort(labels)
	if !slices.Equal(labels, []string{"b1", "v1"}) {
		t.Fatalf("events after failover: %v", labels)
	}
	// the task that ran on the dead master ends as failed
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := mustCall(t, master, "task.get_status", s, task)
		if st == "failure" {
			ei := mustCall(t, master, "task.get_error_info", s, task).([]any)
			if ei[0] != "HOST_OFFLINE" {
				t.Fatalf("error_info %v", ei)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task still %v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// pool.master names the new leader; the dead host is not live
	pool := mustCall(t, master, "pool.get_all", s).([]any)[0]
	if m := mustCall(t, master, "pool.get_master", s, pool); m != string(nl.API().HostRef()) {
		t.Fatalf("pool.master %v", m)
	}
	// the old master comes back as a member and catches up
	if err := old.Restart(); err != nil {
		t.Fatal(err)
	}
	c.WaitStable(20 * time.Second)
	if c.Leader() == old {
		t.Log("the old master was elected again")
	}
	if got := old.Dump(datamodel.VMClass)[vm]; got != nl.Dump(datamodel.VMClass)[vm] {
		t.Fatalf("restarted host differs:\n%s\n%s", got, nl.Dump(datamodel.VMClass)[vm])
	}
}

func TestDesignateNewMasterUnderWrites(t *testing.T) {
	c := New(t, Options{Hosts: 3})
	old := c.Leader()
	s, _ := old.Login()
	vm := newVM(t, old, s, "w")
	target := c.Hosts[2]
	if target == old {
		target = c.Hosts[1]
	}
	// a writer that follows HOST_IS_SLAVE: no call may fail for any other reason
	stop := make(chan struct{})
	done := make(chan error, 1)
	var writes int
	go func() {
		cur := old
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			_, err := cur.Call("VM.add_to_other_config", s, vm, "k"+strconv.Itoa(i), "v")
			if e := xerr(err); e != nil && e.Code == "HOST_IS_SLAVE" {
				for _, h := range c.Hosts {
					if h.Address == e.Params[0] {
						cur = h
					}
				}
				i--
				continue
			}
			if err != nil {
				done <- fmt.Errorf("write %d: %v", i, err)
				return
			}
			writes++
		}
	}()
	time.Sleep(100 * time.Millisecond)
	pool := mustCall(t, old, "pool.get_all", s).([]any)[0]
	mustCall(t, old, "pool.designate_new_master", s, string(target.API().HostRef()))
	if l := c.WaitLeader(5 * time.Second); l != target {
		t.Fatalf("leader is host %d, want %d", l.Index, target.Index)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c.WaitStable(10 * time.Second)
	if m := mustCall(t, target, "pool.get_master", s, pool); m != string(target.API().HostRef()) {
		t.Fatalf("pool.master %v", m)
	}
	oc := mustCall(t, target, "VM.get_other_config", s, vm).(map[string]any)
	for i := range writes {
		if oc["k"+strconv.Itoa(i)] != "v" {
			t.Fatalf("acknowledged write %d of %d lost", i, writes)
		}
	}
	t.Logf("%d writes across the transfer", writes)
}

func TestEjectAndDestroy(t *testing.T) {
	c := New(t, Options{Hosts: 4})
	m := c.Leader()
	s, _ := m.Login()
	members := c.Others(m)
	if _, err := m.Call("pool.eject", s, string(m.API().HostRef())); xerr(err) == nil || xerr(err).Code != "OPERATION_NOT_ALLOWED" {
		t.Fatalf("eject master: %v", err)
	}
	// eject: the host leaves and starts again as a one-host pool
	ej := members[0]
	before := ej.restarts.Load()
	ejRef := string(ej.API().HostRef())
	mustCall(t, m, "pool.eject", s, ejRef)
	if err := ej.waitRestart(before, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if hs := mustCall(t, m, "host.get_all", s).([]any); len(hs) != 3 {
		t.Fatalf("%d hosts after eject", len(hs))
	}
	es, err := ej.Login()
	if err != nil {
		t.Fatalf("login on the ejected host: %v", err)
	}
	if hs := mustCall(t, ej, "host.get_all", es).([]any); len(hs) != 1 {
		t.Fatalf("ejected host sees %d hosts", len(hs))
	}
	// host.destroy of a dead member
	dead := members[2]
	deadRef := string(dead.API().HostRef())
	if _, err := m.Call("host.destroy", s, deadRef); xerr(err) == nil || xerr(err).Code != "HOST_IS_LIVE" {
		t.Fatalf("destroy a live host: %v", err)
	}
	dead.Kill()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := m.Call("host.destroy", s, deadRef)
		if err == nil {
			break
		}
		if xerr(err) == nil || xerr(err).Code != "HOST_IS_LIVE" || time.Now().After(deadline) {
			t.Fatalf("destroy a dead host: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ms, _ := m.Store().Members()
	if len(ms) != 2 {
		t.Fatalf("raft members after eject and destroy: %+v", ms)
	}
	if _, err := m.Call("host.get_record", s, deadRef); xerr(err) == nil || xerr(err).Code != "HANDLE_INVALID" {
		t.Fatalf("destroyed host: %v", err)
	}
}

func TestPartitionAndHeal(t *testing.T) {
	c := New(t, Options{Hosts: 3})
	old := c.Leader()
	s, _ := old.Login()
	vm := newVM(t, old, s, "p")
	rest := c.Others(old)
	c.Partition([]*Host{old}, rest)
	// the majority elects a leader; the isolated old master stops leading
	var nl *Host
	deadline := time.Now().Add(10 * time.Second)
	for nl == nil {
		for _, h := range rest {
			if h.Store().IsLeader() {
				nl = h
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("majority elected no leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for deadline := time.Now().Add(5 * time.Second); old.Store().IsLeader(); {
		if time.Now().After(deadline) {
			t.Fatal("isolated leader still leads")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// the minority cannot write
	if _, err := old.Call("VM.set_name_label", s, vm, "minority"); err == nil {
		t.Fatal("write on the isolated host succeeded")
	}
	mustCall(t, nl, "VM.set_name_label", s, vm, "majority")
	c.Heal()
	c.WaitStable(20 * time.Second)
	expectNameEverywhere(t, c, vm, "majority")
}

func TestMemberCrashAndRestart(t *testing.T) {
	c := New(t, Options{Hosts: 3})
	m := c.Leader()
	s, _ := m.Login()
	var mem *Host
	for _, h := range c.Hosts {
		if h != m {
			mem = h
		}
	}
	mem.Kill()
	vm := newVM(t, m, s, "while down")
	for i := range 200 {
		mustCall(t, m, "VM.add_to_other_config", s, vm, "k"+strconv.Itoa(i), "v")
	}
	if err := mem.Restart(); err != nil {
		t.Fatal(err)
	}
	c.WaitStable(20 * time.Second)
	if got, want := mem.Dump(datamodel.VMClass)[vm], m.Dump(datamodel.VMClass)[vm]; got != want {
		t.Fatalf("restarted member:\n%s\nleader:\n%s", got, want)
	}
}

func TestVMCallsRunWhereTheVMLives(t *testing.T) {
	c := New(t, Options{Hosts: 3})
	m := c.Leader()
	s, _ := m.Login()
	var member *Host
	for _, h := range c.Hosts {
		if h != m {
			member = h
			break
		}
	}
	memberRef := string(member.API().HostRef())
	vm := newVM(t, m, s, "placed")
	// start_on a member: the member's hypervisor runs it
	mustCall(t, m, "VM.start_on", s, vm, memberRef, false, false)
	uuid := mustCall(t, m, "VM.get_uuid", s, vm).(string)
	if _, err := member.Sim().State(context.Background(), uuid); err != nil {
		t.Fatalf("domain not on the member: %v", err)
	}
	if _, err := m.Sim().State(context.Background(), uuid); err == nil {
		t.Fatal("domain also on the master")
	}
	if r := mustCall(t, m, "VM.get_resident_on", s, vm); r != memberRef {
		t.Fatalf("resident_on %v, want %v", r, memberRef)
	}
	// operations on it are forwarded; async too
	mustCall(t, m, "VM.clean_reboot", s, vm)
	task := mustCall(t, m, "Async.VM.clean_shutdown", s, vm).(string)
	deadline := time.Now().Add(10 * time.Second)
	for mustCall(t, m, "task.get_status", s, task) == "pending" {
		if time.Now().After(deadline) {
			t.Fatal("task pending")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := mustCall(t, m, "task.get_status", s, task); st != "success" {
		t.Fatalf("forwarded async shutdown: %v %v", st, mustCall(t, m, "task.get_error_info", s, task))
	}
	if ps := mustCall(t, m, "VM.get_power_state", s, vm); ps != "Halted" {
		t.Fatalf("power_state %v", ps)
	}
	// VM.start places on the host with the most free memory; filling the
	// master's memory makes the placement choose a member
	hosts := mustCall(t, m, "VM.get_possible_hosts", s, vm).([]any)
	if len(hosts) != 3 {
		t.Fatalf("possible hosts %v", hosts)
	}
	mustCall(t, m, "host.disable", s, string(m.API().HostRef()))
	mustCall(t, m, "VM.start", s, vm, false, false)
	if r := mustCall(t, m, "VM.get_resident_on", s, vm); r == string(m.API().HostRef()) {
		t.Fatal("started on a disabled host")
	}
	if _, err := m.Call("VM.start_on", s, vm, string(m.API().HostRef()), false, false); xerr(err) == nil {
		t.Fatal("start_on a disabled host with the VM running elsewhere succeeded")
	}
	// a dead member: its VMs' calls answer HOST_OFFLINE
	res := mustCall(t, m, "VM.get_resident_on", s, vm).(string)
	for _, h := range c.Hosts {
		if string(h.API().HostRef()) == res {
			h.Kill()
		}
	}
	if _, err := m.Call("VM.hard_shutdown", s, vm); xerr(err) == nil || xerr(err).Code != "HOST_OFFLINE" {
		t.Fatalf("call for a VM on a dead host: %v", err)
	}
}

func TestRestartFarBehindInstallsSnapshot(t *testing.T) {
	c := New(t, Options{Hosts: 3, SnapshotThreshold: 64, TrailingLogs: 16})
	m := c.Leader()
	s, _ := m.Login()
	var mem *Host
	for _, h := range c.Hosts {
		if h != m {
			mem = h
		}
	}
	killedAt := mem.Store().AppliedIndex()
	mem.Kill()
	vm := newVM(t, m, s, "far")
	for i := range 400 {
		mustCall(t, m, "VM.add_to_other_config", s, vm, "k"+strconv.Itoa(i), "v")
	}
	// the leader snapshots and drops the log the member would need
	for deadline := time.Now().Add(10 * time.Second); ; {
		snap, _ := strconv.ParseUint(m.Store().Raft().Stats()["last_snapshot_index"], 10, 64)
		if snap > killedAt+16+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leader did not snapshot past %d (at %d)", killedAt, snap)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := mem.Restart(); err != nil {
		t.Fatal(err)
	}
	c.WaitStable(20 * time.Second)
	if got, want := mem.Dump(datamodel.VMClass)[vm], m.Dump(datamodel.VMClass)[vm]; got != want {
		t.Fatalf("restarted member:\n%s\nleader:\n%s", got, want)
	}
	ents, _ := os.ReadDir(filepath.Join(mem.dataDir, "snapshots"))
	if len(ents) == 0 {
		t.Fatal("no snapshot on the restarted member")
	}
}

func TestEmergencyTransitionAndRecoverSlaves(t *testing.T) {
	c := New(t, Options{Hosts: 3})
	m := c.Leader()
	s, _ := m.Login()
	vm := newVM(t, m, s, "survives")
	others := c.Others(m)
	survivor, lost := others[0], others[1]
	c.WaitStable(10 * time.Second)
	m.Kill()
	lost.Kill()
	// the survivor has no quorum: no master, HOST_STILL_BOOTING to clients
	for deadline := time.Now().Add(15 * time.Second); ; {
		if _, id := survivor.Store().Leader(); id == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the survivor still sees a leader")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := survivor.Login(); xerr(err) == nil || xerr(err).Code != "HOST_STILL_BOOTING" {
		t.Fatalf("login without a quorum: %v", err)
	}
	ls := mustCall(t, survivor, "session.slave_local_login_with_password", "root", RootPassword).(string)
	before := survivor.restarts.Load()
	mustCall(t, survivor, "pool.emergency_transition_to_master", ls)
	if err := survivor.waitRestart(before, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if l := c.WaitLeader(10 * time.Second); l != survivor {
		t.Fatalf("leader is host %d", l.Index)
	}
	s2, err := survivor.Login()
	if err != nil {
		t.Fatal(err)
	}
	if got := mustCall(t, survivor, "VM.get_name_label", s2, vm); got != "survives" {
		t.Fatalf("VM after recovery: %v", got)
	}
	mustCall(t, survivor, "VM.set_name_label", s2, vm, "recovered")
	// The lost hosts come back one at a time (two together would be a
	// quorum of the old cluster): each waits in emergency mode, without the
	// pool's database, until recover_slaves makes it a member again.
	for _, h := range []*Host{m, lost} {
		if err := h.Restart(); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Login(); xerr(err) == nil || xerr(err).Code != "HOST_STILL_BOOTING" {
			t.Fatalf("login on a returning host: %v", err)
		}
		hls := mustCall(t, h, "session.slave_local_login_with_password", "root", RootPassword).(string)
		if em := mustCall(t, h, "host.is_in_emergency_mode", hls); em != true {
			t.Fatalf("is_in_emergency_mode %v", em)
		}
		before := h.restarts.Load()
		if got := mustCall(t, survivor, "pool.recover_slaves", s2).([]any); len(got) != 1 {
			t.Fatalf("recover_slaves: %v", got)
		}
		if err := h.waitRestart(before, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitStable(30 * time.Second)
	expectNameEverywhere(t, c, vm, "recovered")
}

func TestPoolMigrate(t *testing.T) {
	c := New(t, Options{Hosts: 3})
	m := c.Leader()
	s, _ := m.Login()
	var a, b *Host
	for _, h := range c.Hosts {
		switch {
		case h == m:
		case a == nil:
			a = h
		default:
			b = h
		}
	}
	aRef, bRef := string(a.API().HostRef()), string(b.API().HostRef())
	vm := newVM(t, m, s, "mover")
	if _, err := m.Call("VM.pool_migrate", s, vm, bRef, map[string]any{}); xerr(err) == nil || xerr(err).Code != "VM_BAD_POWER_STATE" {
		t.Fatalf("migrate a halted VM: %v", err)
	}
	mustCall(t, m, "VM.start_on", s, vm, aRef, false, false)
	uuid := mustCall(t, m, "VM.get_uuid", s, vm).(string)
	mustCall(t, m, "VM.pool_migrate", s, vm, bRef, map[string]any{"live": "true"})
	if r := mustCall(t, m, "VM.get_resident_on", s, vm); r != bRef {
		t.Fatalf("resident_on %v after migrate, want %v", r, bRef)
	}
	if ps := mustCall(t, m, "VM.get_power_state", s, vm); ps != "Running" {
		t.Fatalf("power_state %v", ps)
	}
	if _, err := b.Sim().State(context.Background(), uuid); err != nil {
		t.Fatalf("no domain on the destination: %v", err)
	}
	if _, err := a.Sim().State(context.Background(), uuid); err == nil {
		t.Fatal("domain still on the source")
	}
	if ops := mustCall(t, m, "VM.get_current_operations", s, vm).(map[string]any); len(ops) != 0 {
		t.Fatalf("current_operations %v", ops)
	}
	// the source host's resident_VMs no longer lists it; the destination's does
	if rv := mustCall(t, m, "host.get_resident_VMs", s, aRef).([]any); slices.Contains(rv, any(vm)) {
		t.Fatal("source still lists the VM")
	}
	if rv := mustCall(t, m, "host.get_resident_VMs", s, bRef).([]any); !slices.Contains(rv, any(vm)) {
		t.Fatal("destination does not list the VM")
	}
	// calls now go to the destination
	mustCall(t, m, "VM.hard_shutdown", s, vm)
	if _, err := b.Sim().State(context.Background(), uuid); err == nil {
		st, _ := b.Sim().State(context.Background(), uuid)
		if st.PowerState.Active() {
			t.Fatal("domain still active after shutdown")
		}
	}
	// migrating to a dead host
	mustCall(t, m, "VM.start_on", s, vm, aRef, false, false)
	b.Kill()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := m.Call("VM.pool_migrate", s, vm, bRef, map[string]any{})
		if xerr(err) != nil && xerr(err).Code == "HOST_OFFLINE" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("migrate to a dead host: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := mustCall(t, m, "VM.get_resident_on", s, vm); r != aRef {
		t.Fatalf("resident_on %v after a failed migrate", r)
	}
}

func TestVoterPlacement(t *testing.T) {
	c := New(t, Options{Hosts: 6})
	m := c.Leader()
	voters := func() (v, nv []string) {
		ms, err := m.Store().Members()
		if err != nil {
			t.Fatal(err)
		}
		for _, mb := range ms {
			if mb.Voter {
				v = append(v, mb.ID)
			} else {
				nv = append(nv, mb.ID)
			}
		}
		return v, nv
	}
	v, nv := voters()
	if len(v) != 5 || len(nv) != 1 {
		t.Fatalf("%d voters, %d non-voters; want 5 and 1", len(v), len(nv))
	}
	// the non-voter holds the whole database
	var spare *Host
	for _, h := range c.Hosts {
		if h.ID == nv[0] {
			spare = h
		}
	}
	if got, want := len(spare.Dump(datamodel.VMClass, datamodel.HostClass)), len(m.Dump(datamodel.VMClass, datamodel.HostClass)); got != want {
		t.Fatalf("non-voter has %d records, leader %d", got, want)
	}
	// a voter dies for good: its vote moves to the live non-voter
	var dead *Host
	for _, h := range c.Hosts {
		if h != m && h != spare {
			dead = h
			break
		}
	}
	dead.Kill()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, nv = voters()
		if slices.Contains(v, spare.ID) && slices.Contains(nv, dead.ID) && len(v) == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("votes did not move: voters %v, non-voters %v", v, nv)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// expectNameEverywhere checks every running host's replica holds vm with name.
func expectNameEverywhere(t *testing.T, c *Cluster, vm, name string) {
	t.Helper()
	for _, h := range c.Hosts {
		if !h.Up() {
			continue
		}
		if got := h.Dump(datamodel.VMClass)[vm]; !strings.Contains(got, `"name_label":"`+name+`"`) {
			t.Fatalf("host %d: %s", h.Index, got)
		}
	}
}

func TestTasksOfASilentMasterEnd(t *testing.T) {
	c := New(t, Options{Hosts: 3})
	old := c.Leader()
	s, _ := old.Login()
	vm := newVM(t, old, s, "hangs")
	old.Sim().HangNext("start")
	task := mustCall(t, old, "Async.VM.start", s, vm, false, false).(string)
	time.Sleep(50 * time.Millisecond)
	old.Freeze()
	defer old.Thaw()
	frozen := time.Now()
	var nl *Host
	for deadline := time.Now().Add(15 * time.Second); nl == nil; {
		for _, h := range c.Others(old) {
			if h.Store().IsLeader() {
				nl = h
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no new leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	leaderAt := time.Now()
	// the silent host might still run the task: it is kept a while, then
	// ended (VoterReplaceAfter is 2 s in test clusters)
	deadline := time.Now().Add(40 * time.Second)
	for {
		if st := mustCall(t, nl, "task.get_status", s, task); st == "failure" {
			t.Logf("new leader after %v, task ended after %v", leaderAt.Sub(frozen), time.Since(frozen))
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the silent master's task is still pending")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ei := mustCall(t, nl, "task.get_error_info", s, task).([]any); ei[0] != "HOST_OFFLINE" {
		t.Fatalf("error_info %v", ei)
	}
}
