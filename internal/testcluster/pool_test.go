package testcluster

import (
	"errors"
	"slices"
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
