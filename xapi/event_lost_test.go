package xapi_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/rpc"
	"github.com/xapi-go/xapi-go/store"
	"github.com/xapi-go/xapi-go/xapi"
	"github.com/xapi-go/xapi-go/xapi/xapitest"
)

// lostRPC makes a JSON-RPC 2.0 call: the result, or the error as [code, params...].
func lostRPC(t *testing.T, url, method string, params ...any) (any, []string) {
	t.Helper()
	v, err := rpc.InvokeAny(context.Background(), nil, url, method, params...)
	if d := rpc.FaultDescription(err); d != nil {
		return nil, d
	}
	if err != nil {
		t.Error(err) // not Fatal: also called from other goroutines
		return nil, []string{"TRANSPORT"}
	}
	return v, nil
}

func lostMust(t *testing.T, url, method string, params ...any) any {
	t.Helper()
	r, e := lostRPC(t, url, method, params...)
	if e != nil {
		t.Fatalf("%s: %v", method, e)
	}
	return r
}

// lostFrom is event.from: its events as "operation class ref", and its token.
func lostFrom(t *testing.T, url, s string, classes []string, token string, timeout float64) ([]string, string, []string) {
	t.Helper()
	r, e := lostRPC(t, url, "event.from", s, classes, token, timeout)
	if e != nil {
		return nil, "", e
	}
	m := r.(map[string]any)
	var evs []string
	for _, ev := range m["events"].([]any) {
		ev := ev.(map[string]any)
		evs = append(evs, fmt.Sprint(ev["operation"], " ", ev["class"], " ", ev["ref"]))
	}
	return evs, m["token"].(string), nil
}

// lostRetention is the event buffer bound of the servers in these tests.
const lostRetention = 4096

// floodNetworks makes more changes than the event buffer retains
// (lostRetention), all of class network: n networks created, then
// modified in rounds, a batch per raft entry.
func floodNetworks(t *testing.T, st *store.Store) {
	t.Helper()
	ctx := context.Background()
	const n = 500
	refs := make([]string, n)
	var ops []store.Op
	for i := range refs {
		refs[i] = datamodel.NewRef()
		o := datamodel.NetworkClass.New()
		_ = o.SetField(datamodel.NetworkClass.UUIDField, datamodel.NewUUID())
		_ = o.SetField(datamodel.NetworkClass.NameField, fmt.Sprint("flood ", i))
		ops = append(ops, store.Create(refs[i], o))
	}
	if _, err := st.Apply(ctx, ops...); err != nil {
		t.Fatal(err)
	}
	for round := 0; round*n < lostRetention+n; round++ {
		ops = ops[:0]
		for i, ref := range refs {
			op, err := store.Set(datamodel.NetworkClass, ref, "name_label", fmt.Sprint("flood ", i, " ", round))
			if err != nil {
				t.Fatal(err)
			}
			ops = append(ops, op)
		}
		if _, err := st.Apply(ctx, ops...); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEventsLost: after more network changes than the buffer retains, an old
// token gets EVENTS_LOST [] from event.from for "*" and network, but a vm or
// pool subscriber with the same token (also one long-polling through the
// flood) gets exactly its changes; event.next queues registered for pool keep
// going while one registered for network gets EVENTS_LOST once.
func TestEventsLost(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{Configure: func(c *xapi.Config) { c.EventMaxChanges = lostRetention }})
	url := srv.URL
	s := lostMust(t, url, "session.login_with_password", "root", xapitest.RootPassword, "2.20", "test").(string)
	pool := lostMust(t, url, "pool.get_all", s).([]any)[0].(string)
	vms := lostMust(t, url, "VM.get_all", s).([]any)
	if len(vms) == 0 {
		t.Fatal("no VM")
	}
	vm := vms[0].(string)
	_, tok, e := lostFrom(t, url, s, []string{"vm"}, "", 0)
	if e != nil {
		t.Fatal(e)
	}

	// legacy queues, one per session
	sessions := map[string]string{}
	for _, cls := range []string{"pool", "network", "vm"} {
		sessions[cls] = lostMust(t, url, "session.login_with_password", "root", xapitest.RootPassword, "2.20", "test").(string)
		lostMust(t, url, "event.register", sessions[cls], []string{cls})
	}

	// a vm long poll through the flood
	type res struct {
		evs []string
		e   []string
	}
	poll := make(chan res, 1)
	go func() {
		evs, _, e := lostFrom(t, url, s, []string{"vm"}, tok, 60)
		poll <- res{evs, e}
	}()
	time.Sleep(50 * time.Millisecond)

	floodNetworks(t, srv.Store)
	select {
	case r := <-poll:
		t.Fatalf("vm long poll ended by network changes: %+v", r)
	default:
	}
	lostMust(t, url, "VM.set_name_label", s, vm, "after the flood")
	lostMust(t, url, "pool.set_name_label", s, pool, "after the flood")
	select {
	case r := <-poll:
		if r.e != nil || !slices.Equal(r.evs, []string{"mod vm " + vm}) {
			t.Errorf("vm long poll: %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("vm long poll not woken")
	}

	for _, cls := range [][]string{{"*"}, {"network"}, {"VM", "network"}} {
		if _, _, e := lostFrom(t, url, s, cls, tok, 0); !slices.Equal(e, []string{"EVENTS_LOST"}) {
			t.Errorf("event.from %v with an evicted token: %v, want [EVENTS_LOST]", cls, e)
		}
	}
	for cls, want := range map[string][]string{
		"vm":                 {"mod vm " + vm},
		"vm/" + vm:           {"mod vm " + vm},
		"pool":               {"mod pool " + pool},
		"vm_appliance":       nil,
		"vm/OpaqueRef:other": nil,
	} {
		evs, tok2, e := lostFrom(t, url, s, []string{cls}, tok, 0)
		if e != nil || !slices.Equal(evs, want) || tok2 <= tok {
			t.Errorf("event.from [%s] from the old token: %v %q %v, want %v", cls, evs, tok2, e, want)
		}
	}

	// event.next: the pool and vm queues lost nothing; the network one did
	for cls, want := range map[string]string{"pool": "mod pool " + pool, "vm": "mod vm " + vm} {
		r := lostMust(t, url, "event.next", sessions[cls]).([]any)
		var got []string
		for _, ev := range r {
			ev := ev.(map[string]any)
			got = append(got, fmt.Sprint(ev["operation"], " ", ev["class"], " ", ev["ref"]))
		}
		if !slices.Equal(got, []string{want}) {
			t.Errorf("event.next (%s): %v, want [%s]", cls, got, want)
		}
	}
	ns := sessions["network"]
	if _, e := lostRPC(t, url, "event.next", ns); !slices.Equal(e, []string{"EVENTS_LOST"}) {
		t.Errorf("event.next (network): %v, want [EVENTS_LOST]", e)
	}
	// the queue continues from the present
	n := lostMust(t, url, "network.create", s, map[string]any{"name_label": "fresh", "name_description": "", "other_config": map[string]any{}}).(string)
	r := lostMust(t, url, "event.next", ns).([]any)
	if len(r) != 1 || r[0].(map[string]any)["ref"] != n || r[0].(map[string]any)["operation"] != "add" {
		t.Errorf("event.next (network) after EVENTS_LOST: %v", r)
	}
}

// TestEventFutureToken: on the master (the raft leader), a well-formed token
// beyond anything the pool has committed gets EVENTS_LOST at once instead of
// being echoed back (the client would silently miss every change up to it);
// the current token still waits and is echoed.
func TestEventFutureToken(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	url := srv.URL
	s := lostMust(t, url, "session.login_with_password", "root", xapitest.RootPassword, "2.20", "test").(string)
	start := time.Now()
	for _, tok := range []string{"00000000000005000000,00000000000000000000", "5000000,0", "18446744073709551615,0"} {
		if _, _, e := lostFrom(t, url, s, []string{"*"}, tok, 30); !slices.Equal(e, []string{"EVENTS_LOST"}) {
			t.Errorf("token %q: %v, want [EVENTS_LOST]", tok, e)
		}
		if _, _, e := lostFrom(t, url, s, []string{"pool"}, tok, 30); !slices.Equal(e, []string{"EVENTS_LOST"}) {
			t.Errorf("token %q (pool): %v, want [EVENTS_LOST]", tok, e)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("future tokens answered after %v", d)
	}
	_, now, e := lostFrom(t, url, s, []string{"pool"}, "", 0)
	if e != nil {
		t.Fatal(e)
	}
	if evs, tok, e := lostFrom(t, url, s, []string{"pool"}, now, 0.2); e != nil || len(evs) != 0 || tok < now {
		t.Errorf("current token: %v %q %v", evs, tok, e)
	}
}
