package xapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/backends"
	"github.com/xapi-go/xapi-go/backends/sim"
	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/rpc"
	"github.com/xapi-go/xapi-go/xapi"
	"github.com/xapi-go/xapi-go/xapi/xapitest"
)

// TestVMPowerProperty runs random power operations over the API and checks
// after each one that the VM's state is legal and agrees with the
// hypervisor, and that an operation succeeds exactly when
// allowed_operations listed it beforehand.
func TestVMPowerProperty(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	host := refList(vmCall(t, srv.URL, "host.get_all", s))[0]
	vms := []string{newVM(t, srv.URL, s, "p1"), newVM(t, srv.URL, s, "p2")}
	ops := xapi.PowerOperations()
	rng := rand.New(rand.NewPCG(1, 2))
	steps := 300
	if testing.Short() {
		steps = 60
	}
	seen := map[string]int{}
	for i := range steps {
		vm := vms[rng.IntN(len(vms))]
		op := string(ops[rng.IntN(len(ops))])
		before := record(t, srv.URL, s, "VM", vm)
		allowed := slices.Contains(refList(before["allowed_operations"]), op)
		params := []any{s, vm}
		if op == "start_on" || op == "resume_on" {
			params = append(params, host)
		}
		if op == "start" || op == "start_on" || op == "resume" || op == "resume_on" {
			params = append(params, rng.IntN(2) == 0, false)
		}
		_, e := jsonCall(t, srv.URL, "VM."+op, params...)
		if (e == nil) != allowed {
			t.Fatalf("step %d: VM.%s in %s: allowed %v but error %v", i, op, before["power_state"], allowed, e)
		}
		if e != nil && e[0] != "VM_BAD_POWER_STATE" {
			t.Fatalf("step %d: VM.%s: unexpected error %v", i, op, e)
		}
		if e == nil {
			seen[op]++
		}
		after := record(t, srv.URL, s, "VM", vm)
		checkVMState(t, srv, host, after)
		var power []string
		for _, op := range refList(after["allowed_operations"]) {
			if slices.Contains(ops, datamodel.VMOperations(op)) {
				power = append(power, op)
			}
		}
		want := powerOpsByState[after["power_state"].(string)]
		if !sameSet(power, want) {
			t.Fatalf("step %d: %s VM allows power operations %v, want %v", i, after["power_state"], power, want)
		}
	}
	t.Logf("successful operations: %v", seen)
	var missing []string
	for _, op := range ops {
		if seen[string(op)] == 0 {
			missing = append(missing, string(op))
		}
	}
	if !testing.Short() && len(missing) > 0 {
		t.Errorf("never succeeded: %v", missing)
	}
}

// powerOpsByState is xapi's table of the power operations legal in each
// power state (ocaml/xapi/xapi_vm_lifecycle.ml), written out independently of
// the implementation.
var powerOpsByState = map[string][]string{
	"Halted":    {"start", "start_on"},
	"Running":   {"pause", "clean_shutdown", "clean_reboot", "hard_shutdown", "hard_reboot", "suspend", "shutdown"},
	"Paused":    {"unpause", "hard_shutdown", "hard_reboot", "shutdown"},
	"Suspended": {"resume", "resume_on", "hard_shutdown", "shutdown"},
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// checkVMState checks a VM record's invariants and that the simulator agrees.
func checkVMState(t *testing.T, srv *xapitest.Server, host string, r map[string]any) {
	t.Helper()
	ps := r["power_state"].(string)
	domid := vmNum(r["domid"])
	active := ps == "Running" || ps == "Paused"
	switch {
	case active && (domid <= 0 || r["resident_on"] != host):
		t.Fatalf("%s with domid %d resident_on %v", ps, domid, r["resident_on"])
	case !active && (domid != -1 || r["resident_on"] != "OpaqueRef:NULL"):
		t.Fatalf("%s with domid %d resident_on %v", ps, domid, r["resident_on"])
	case len(r["current_operations"].(map[string]any)) != 0:
		t.Fatalf("current_operations left: %v", r["current_operations"])
	}
	d, err := srv.Sim.State(context.Background(), r["uuid"].(string))
	if err != nil {
		if ps != "Halted" {
			t.Fatalf("%s VM unknown to the hypervisor: %v", ps, err)
		}
		return
	}
	if d.PowerState.String() != ps || (active && int64(d.DomID) != domid) {
		t.Fatalf("database says %s/%d, hypervisor %s/%d", ps, domid, d.PowerState, d.DomID)
	}
}

// BenchmarkVMStart measures VM.start end to end through Dispatch on a
// simulator without latency (each iteration also hard-shuts the VM down,
// outside the timed part) and reports the median.
func BenchmarkVMStart(b *testing.B) {
	srv := xapitest.NewServer(b, xapitest.Options{})
	ctx := context.Background()
	call := func(method string, params ...any) {
		if res := srv.API.Dispatch(ctx, &rpc.Call{Method: method, Params: params}); res.Err != nil {
			b.Fatalf("%s: %v %v", method, res.Err.Code, res.Err.Params)
		}
	}
	s := loginDispatch(b, srv)
	tmpl := dispatchString(b, srv, "VM.get_by_name_label", s, "Debian Bookworm 12")
	vm := dispatchString(b, srv, "VM.clone", s, tmpl, "bench")
	call("VM.set_is_a_template", s, vm, false)
	durs := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		call("VM.start", s, vm, false, false)
		durs = append(durs, time.Since(t0))
		b.StopTimer()
		call("VM.hard_shutdown", s, vm)
		b.StartTimer()
	}
	b.StopTimer()
	sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
	b.ReportMetric(float64(durs[len(durs)/2].Microseconds())/1000, "p50-ms")
}

// dispatchValue calls method through Dispatch and decodes its JSON value.
func dispatchValue(tb testing.TB, srv *xapitest.Server, method string, params ...any) any {
	tb.Helper()
	res := srv.API.Dispatch(context.Background(), &rpc.Call{Method: method, Params: params})
	if res.Err != nil {
		tb.Fatalf("%s: %v %v", method, res.Err.Code, res.Err.Params)
	}
	if res.Value == nil {
		return nil
	}
	var buf bytes.Buffer
	w := rpc.NewJSONWriter(&buf)
	res.Value(w)
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(buf.Bytes(), &v); err != nil {
		tb.Fatalf("%s: %v", method, err)
	}
	return v
}

func dispatchString(tb testing.TB, srv *xapitest.Server, method string, params ...any) string {
	tb.Helper()
	switch v := dispatchValue(tb, srv, method, params...).(type) {
	case string:
		return v
	case []any:
		if len(v) > 0 {
			if s, ok := v[0].(string); ok {
				return s
			}
		}
	}
	tb.Fatalf("%s: no string result", method)
	return ""
}

func loginDispatch(tb testing.TB, srv *xapitest.Server) string {
	return dispatchString(tb, srv, "session.login_with_password", "root", xapitest.RootPassword, "2.20", "bench")
}

// TestVMConcurrentStarts: of several simultaneous starts of one VM exactly one
// succeeds; the others fail fast (or see the VM running).
func TestVMConcurrentStarts(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{Sim: sim.Config{Latency: map[backends.Op]time.Duration{backends.OpStart: 50 * time.Millisecond}}})
	s := login(t, srv.URL)
	host := refList(vmCall(t, srv.URL, "host.get_all", s))[0]
	vm := newVM(t, srv.URL, s, "race")
	const n = 6
	errs := make(chan []string, n)
	for range n {
		go func() {
			_, e := jsonCall(t, srv.URL, "VM.start", s, vm, false, false)
			errs <- e
		}()
	}
	ok := 0
	for range n {
		switch e := <-errs; {
		case e == nil:
			ok++
		case e[0] == "OTHER_OPERATION_IN_PROGRESS" && e[1] == "VM" && e[2] == vm && e[3] == "start":
		case e[0] == "VM_BAD_POWER_STATE":
		default:
			t.Errorf("unexpected error %v", e)
		}
	}
	if ok != 1 {
		t.Fatalf("%d starts succeeded", ok)
	}
	checkVMState(t, srv, host, record(t, srv.URL, s, "VM", vm))
}

// TestVMStartProgress: an Async VM.start reports the backend's progress on
// its task: a watcher sees 0 < progress < 1 before the task succeeds.
func TestVMStartProgress(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{Sim: sim.Config{Latency: map[backends.Op]time.Duration{backends.OpStart: 500 * time.Millisecond}}})
	s := login(t, srv.URL)
	vm := newVM(t, srv.URL, s, "progress")
	task, e := jsonCall(t, srv.URL, "Async.VM.start", s, vm, false, false)
	if e != nil {
		t.Fatal(e)
	}
	var seen []float64
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r := record(t, srv.URL, s, "task", task.(string))
		p, _ := r["progress"].(float64)
		if r["status"] != "pending" {
			if r["status"] != "success" || p != 1 {
				t.Fatalf("task ended %v with progress %v", r["status"], p)
			}
			break
		}
		if p > 0 && p < 1 && (len(seen) == 0 || seen[len(seen)-1] != p) {
			seen = append(seen, p)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(seen) < 2 || !slices.IsSorted(seen) {
		t.Fatalf("progress seen while pending: %v (want at least two increasing values)", seen)
	}
}
