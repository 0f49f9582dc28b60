package xapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/rpc"
	"github.com/xapi-go/xapi-go/store"
	"github.com/xapi-go/xapi-go/xapi/xapitest"
)

// evBatch is a decoded event.from result.
type evBatch struct {
	events []map[string]any
	counts map[string]any
	token  string
}

func eventFrom(t *testing.T, url, session string, classes []string, token string, timeout float64) (evBatch, []string) {
	t.Helper()
	r, e := jsonCall(t, url, "event.from", session, classes, token, timeout)
	if e != nil {
		return evBatch{}, e
	}
	m, ok := r.(map[string]any)
	if !ok {
		t.Fatalf("event.from returned %T %v", r, r)
	}
	var b evBatch
	for _, ev := range m["events"].([]any) {
		b.events = append(b.events, ev.(map[string]any))
	}
	b.counts = m["valid_ref_counts"].(map[string]any)
	b.token = m["token"].(string)
	return b, nil
}

// summary renders events as "op class name_label" (name_label "-" for del or
// objects without one), checking the invariants of every event on the way.
func summary(t *testing.T, evs []map[string]any) []string {
	t.Helper()
	var out []string
	for _, ev := range evs {
		op, _ := ev["operation"].(string)
		snap, hasSnap := ev["snapshot"].(map[string]any)
		if (op == "del") == hasSnap {
			t.Errorf("%s event snapshot presence wrong: %v", op, ev)
		}
		if id, ok := ev["id"].(string); !ok || id == "" {
			t.Errorf("id %v is not a string", ev["id"])
		}
		if ev["timestamp"] != "0.0" {
			t.Errorf("timestamp %v", ev["timestamp"])
		}
		if ref, _ := ev["ref"].(string); !strings.HasPrefix(ref, "OpaqueRef:") {
			t.Errorf("ref %v", ev["ref"])
		}
		name := "-"
		if n, ok := snap["name_label"].(string); ok {
			name = n
		}
		out = append(out, fmt.Sprintf("%s %s %s", op, ev["class"], name))
	}
	return out
}

func netArgs(name string) map[string]any {
	return map[string]any{"name_label": name, "other_config": map[string]any{}}
}

func mustCall(t *testing.T, url, method string, params ...any) any {
	t.Helper()
	r, e := jsonCall(t, url, method, params...)
	if e != nil {
		t.Fatalf("%s: %v", method, e)
	}
	return r
}

func TestEventFrom(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)

	// The beginning: everything as add with snapshots.
	full, e := eventFrom(t, srv.URL, s, []string{"*"}, "", 30)
	if e != nil {
		t.Fatal(e)
	}
	classes := map[string]int{}
	for _, ev := range full.events {
		if ev["operation"] != "add" || ev["snapshot"] == nil {
			t.Fatalf("full load event %v", ev)
		}
		classes[ev["class"].(string)]++
	}
	if classes["pool"] != 1 || classes["host"] != 1 {
		t.Errorf("full load classes %v", classes)
	}
	for c, n := range classes {
		if got, _ := full.counts[c].(float64); int(got) != n {
			t.Errorf("valid_ref_counts[%s] = %v, want %d", c, full.counts[c], n)
		}
	}
	if _, ok := full.counts["session"]; ok {
		t.Error("valid_ref_counts lists session, a class without events")
	}
	if !regexp.MustCompile(`^\d{20},\d{20}$`).MatchString(full.token) {
		t.Errorf("token %q", full.token)
	}

	pool := mustCall(t, srv.URL, "pool.get_all", s).([]any)[0].(string)
	// A network that exists before the token, to be destroyed after it.
	old := mustCall(t, srv.URL, "network.create", s, netArgs("old")).(string)
	b, e := eventFrom(t, srv.URL, s, []string{"*"}, full.token, 30)
	if e != nil {
		t.Fatal(e)
	}
	if got := summary(t, b.events); !slices.Equal(got, []string{"add network old"}) {
		t.Fatalf("events %q", got)
	}
	token := b.token

	mustCall(t, srv.URL, "pool.set_name_label", s, pool, "p1")
	mustCall(t, srv.URL, "pool.set_name_label", s, pool, "p2")
	n1 := mustCall(t, srv.URL, "network.create", s, netArgs("n1")).(string)
	mustCall(t, srv.URL, "network.set_name_label", s, n1, "n1b")
	tmp := mustCall(t, srv.URL, "network.create", s, netArgs("tmp")).(string)
	mustCall(t, srv.URL, "network.destroy", s, tmp)
	mustCall(t, srv.URL, "network.destroy", s, old)

	b, e = eventFrom(t, srv.URL, s, []string{"*"}, token, 30)
	if e != nil {
		t.Fatal(e)
	}
	want := []string{"add network n1b", "mod pool p2", "del network -"}
	if got := summary(t, b.events); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	if b.events[2]["ref"] != old || b.events[0]["ref"] != n1 || b.events[1]["ref"] != pool {
		t.Errorf("refs %v", b.events)
	}
	if b.token <= token {
		t.Errorf("token %q did not advance from %q", b.token, token)
	}
	if got, _ := b.counts["network"].(float64); int(got) != classes["network"]+1 {
		t.Errorf("network count %v", b.counts["network"])
	}
	token = b.token

	// Filters: class, class with other case, single object.
	mustCall(t, srv.URL, "network.set_name_label", s, n1, "n1c")
	mustCall(t, srv.URL, "pool.set_name_label", s, pool, "p3")
	for _, tc := range []struct {
		classes []string
		want    []string
	}{
		{[]string{"network"}, []string{"mod network n1c"}},
		{[]string{"Pool"}, []string{"mod pool p3"}},
		{[]string{"network/" + n1, "host"}, []string{"mod network n1c"}},
		{[]string{"*"}, []string{"mod network n1c", "mod pool p3"}},
	} {
		b, e := eventFrom(t, srv.URL, s, tc.classes, token, 5)
		if e != nil {
			t.Fatal(e)
		}
		if got := summary(t, b.events); !slices.Equal(got, tc.want) {
			t.Errorf("%v: events %q, want %q", tc.classes, got, tc.want)
		}
	}
	b, _ = eventFrom(t, srv.URL, s, []string{"*"}, token, 5)
	token = b.token

	// Timeout: no events, the same token, about the requested time.
	start := time.Now()
	b, e = eventFrom(t, srv.URL, s, []string{"*"}, token, 0.3)
	el := time.Since(start)
	if e != nil || len(b.events) != 0 || b.token != token {
		t.Fatalf("timeout: %v %v", b, e)
	}
	if el < 300*time.Millisecond || el > 600*time.Millisecond {
		t.Errorf("timeout 0.3 s took %v", el)
	}
	// Changes outside the filter do not end the wait; the token may advance.
	go func() {
		time.Sleep(50 * time.Millisecond)
		jsonCall(t, srv.URL, "pool.set_name_label", s, pool, "p4")
	}()
	b, e = eventFrom(t, srv.URL, s, []string{"network/" + n1}, token, 0.3)
	if e != nil || len(b.events) != 0 || b.token <= token {
		t.Fatalf("filtered timeout: %v %v", b, e)
	}

	// Garbage tokens.
	for _, bad := range []string{"garbage", "12", "1,x"} {
		_, e = eventFrom(t, srv.URL, s, []string{"*"}, bad, 1)
		if !slices.Equal(e, []string{"EVENT_FROM_TOKEN_PARSE_FAILURE", bad}) {
			t.Errorf("token %q: %v", bad, e)
		}
	}
	// All history is retained here: token 0 yields what "" does.
	zero, e := eventFrom(t, srv.URL, s, []string{"*"}, "0,0", 1)
	if e != nil {
		t.Fatal(e)
	}
	again, _ := eventFrom(t, srv.URL, s, []string{"*"}, "", 1)
	refsOf := func(b evBatch) []string {
		var out []string
		for _, ev := range b.events {
			out = append(out, ev["operation"].(string)+" "+ev["ref"].(string))
		}
		slices.Sort(out)
		return out
	}
	if !slices.Equal(refsOf(zero), refsOf(again)) {
		t.Errorf("token 0 and \"\" differ:\n%v %s\n%v %s", refsOf(zero), zero.token, refsOf(again), again.token)
	}
	// The timeout may be an XML-RPC int, too.
	if _, e = eventFrom(t, srv.URL, s, []string{"*"}, b.token, 0); e != nil {
		t.Errorf("timeout 0: %v", e)
	}
}

func TestEventFromLogoutWakes(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	b, e := eventFrom(t, srv.URL, s, []string{"*"}, "", 5)
	if e != nil {
		t.Fatal(e)
	}
	type res struct {
		e  []string
		at time.Duration
	}
	done := make(chan res, 1)
	start := time.Now()
	go func() {
		_, e := eventFrom(t, srv.URL, s, []string{"*"}, b.token, 30)
		done <- res{e, time.Since(start)}
	}()
	time.Sleep(100 * time.Millisecond)
	mustCall(t, srv.URL, "session.logout", s)
	select {
	case r := <-done:
		if !slices.Equal(r.e, []string{"SESSION_INVALID", s}) {
			t.Errorf("after logout: %v", r.e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("logout did not wake event.from")
	}
}

func TestEventLegacy(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	if _, e := jsonCall(t, srv.URL, "event.next", s); !slices.Equal(e, []string{"SESSION_NOT_REGISTERED", s}) {
		t.Fatalf("next before register: %v", e)
	}
	mustCall(t, srv.URL, "event.register", s, []string{"network"})
	id0 := mustCall(t, srv.URL, "event.get_current_id", s).(float64)
	pool := mustCall(t, srv.URL, "pool.get_all", s).([]any)[0].(string)
	mustCall(t, srv.URL, "pool.set_name_label", s, pool, "ignored")
	n := mustCall(t, srv.URL, "network.create", s, netArgs("n")).(string)
	r := mustCall(t, srv.URL, "event.next", s).([]any)
	if len(r) != 1 {
		t.Fatalf("next: %v", r)
	}
	ev := r[0].(map[string]any)
	if ev["operation"] != "add" || ev["class"] != "network" || ev["ref"] != n || ev["snapshot"].(map[string]any)["name_label"] != "n" {
		t.Errorf("next event %v", ev)
	}
	if ts, _ := ev["timestamp"].(string); !strings.HasSuffix(ts, ".") {
		t.Errorf("timestamp %v", ev["timestamp"])
	}
	if id1 := mustCall(t, srv.URL, "event.get_current_id", s).(float64); id1 <= id0 {
		t.Errorf("get_current_id %v then %v", id0, id1)
	}
	// next blocks until something matches
	done := make(chan []any, 1)
	go func() {
		r, _ := jsonCall(t, srv.URL, "event.next", s)
		a, _ := r.([]any)
		done <- a
	}()
	time.Sleep(100 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("next returned without events: %v", r)
	default:
	}
	mustCall(t, srv.URL, "network.destroy", s, n)
	select {
	case r := <-done:
		if len(r) != 1 || r[0].(map[string]any)["operation"] != "del" {
			t.Errorf("next after destroy: %v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("next not woken")
	}
	mustCall(t, srv.URL, "event.unregister", s, []string{"network"})
	mustCall(t, srv.URL, "event.register", s, []string{"pool"})
	mustCall(t, srv.URL, "network.create", s, netArgs("unseen"))
	mustCall(t, srv.URL, "pool.set_name_label", s, pool, "seen")
	r = mustCall(t, srv.URL, "event.next", s).([]any)
	if len(r) != 1 || r[0].(map[string]any)["class"] != "pool" {
		t.Errorf("next after re-register: %v", r)
	}
}

func TestEventInject(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	pool := mustCall(t, srv.URL, "pool.get_all", s).([]any)[0].(string)
	tok := mustCall(t, srv.URL, "event.inject", s, "pool", pool).(string)
	b, e := eventFrom(t, srv.URL, s, []string{"pool"}, tok, 5)
	if e != nil {
		t.Fatal(e)
	}
	if got := summary(t, b.events); len(got) != 1 || !strings.HasPrefix(got[0], "mod pool") || b.events[0]["ref"] != pool {
		t.Errorf("after inject: %q", got)
	}
	if _, e := jsonCall(t, srv.URL, "event.inject", s, "pool", "OpaqueRef:nope"); !slices.Equal(e, []string{"HANDLE_INVALID", "pool", "OpaqueRef:nope"}) {
		t.Errorf("bad ref: %v", e)
	}
	if _, e := jsonCall(t, srv.URL, "event.inject", s, "nonsense", pool); e == nil || e[0] != "HANDLE_INVALID" {
		t.Errorf("bad class: %v", e)
	}
}

// TestEventFromXMLRPC checks the wire shape over XML-RPC: valid_ref_counts
// values are <i4>, del events carry no snapshot.
func TestEventFromXMLRPC(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	post := func(body string) string {
		resp, err := http.Post(srv.URL+"/", "text/xml", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	body := `<?xml version="1.0"?><methodCall><methodName>event.from</methodName><params>` +
		`<param><value>` + s + `</value></param>` +
		`<param><value><array><data><value>*</value></data></array></value></param>` +
		`<param><value></value></param>` +
		`<param><value><double>10.0</double></value></param></params></methodCall>`
	out := post(body)
	for _, want := range []string{
		`<name>valid_ref_counts</name><value><struct><member><name>`,
		`<name>pool</name><value><i4>1</i4></value>`,
		`<name>operation</name><value>add</value>`,
		`<name>timestamp</name><value>0.0</value>`,
		`<name>snapshot</name><value><struct>`,
		`<name>token</name><value>`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("response lacks %q:\n%.2000s", want, out)
		}
	}
	if strings.Contains(out, "\n") && strings.Contains(out, "> <") {
		t.Errorf("whitespace between tags")
	}
	tok := regexp.MustCompile(`<name>token</name><value>([0-9,]+)</value>`).FindStringSubmatch(out)
	if tok == nil {
		t.Fatal("no token")
	}
	// An int timeout is accepted.
	body = strings.Replace(body, `<param><value></value></param>`, `<param><value>`+tok[1]+`</value></param>`, 1)
	body = strings.Replace(body, `<double>10.0</double>`, `<int>0</int>`, 1)
	if out := post(body); !strings.Contains(out, `<name>events</name><value><array><data></data></array></value>`) {
		t.Errorf("int timeout: %.2000s", out)
	}
}

// TestEventFromDirectBatch makes sure the whole event path holds under
// concurrent writers and pollers (run with -race): each poller follows
// tokens and ends with the same network names the store has.
func TestEventFromConcurrent(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	b, e := eventFrom(t, srv.URL, s, []string{"network"}, "", 0)
	if e != nil {
		t.Fatal(e)
	}
	start := b.token
	var refs []string
	for i := range 5 {
		refs = append(refs, mustCall(t, srv.URL, "network.create", s, netArgs(fmt.Sprint("n", i))).(string))
	}
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				jsonCall(t, srv.URL, "network.set_name_label", s, refs[(w+i)%len(refs)], fmt.Sprintf("w%d-%d", w, i))
			}
		}()
	}
	wg.Wait()
	final := map[string]string{}
	for _, r := range refs {
		final[r] = mustCall(t, srv.URL, "network.get_name_label", s, r).(string)
	}
	cache := map[string]string{}
	for _, ev := range full(t, srv.URL, s, start) {
		cache[ev["ref"].(string)] = ev["snapshot"].(map[string]any)["name_label"].(string)
	}
	for r, n := range final {
		if cache[r] != n {
			t.Errorf("%s: events say %q, store %q", r, cache[r], n)
		}
	}
}

// full follows tokens from start until a call times out, returning all events.
func full(t *testing.T, url, s, token string) []map[string]any {
	var out []map[string]any
	for {
		b, e := eventFrom(t, url, s, []string{"network"}, token, 0.05)
		if e != nil {
			t.Fatal(e)
		}
		if len(b.events) == 0 {
			return out
		}
		out = append(out, b.events...)
		token = b.token
	}
}

// BenchmarkEventFromLatency measures write → return of event.from for 1,000
// long polls over HTTP JSON-RPC (one keep-alive connection each) while writes
// are applied at about 1,000/s (after half a second of warm-up at that rate)
// to 1,000 objects spread over the 23 classes that have a name_label (other
// than the pool and host singletons). A write's clock starts before its raft
// apply (so the figure includes the commit itself, stricter than commit →
// return); a
// poll's latency is taken when its whole response body has been read, for the
// earliest write it reports (found by the name_label the write set). One op is
// one write.
//
//   - per-object: each poll watches one object ("class/ref"): a write wakes
//     the one client that waits for it.
//   - per-class: each poll watches a class (40 per class): a write wakes the
//     40 clients of its class, 40,000 deliveries/s offered; this measures
//     how many responses/s the host (server and clients on the same 2 cores)
//     can deliver and what latency that costs.
func BenchmarkEventFromLatency(b *testing.B) {
	b.Run("per-object", func(b *testing.B) { benchEventLatency(b, true) })
	b.Run("per-class", func(b *testing.B) { benchEventLatency(b, false) })
}

func benchEventLatency(b *testing.B, perObject bool) {
	const pollers = 1000
	srv := xapitest.NewServer(b, xapitest.Options{})
	api, st := srv.API, srv.Store
	ctx := context.Background()
	sess := loginDirect(b, api)

	var classes []*datamodel.Class
	for _, c := range datamodel.AllClasses() {
		// pool and host stay singletons (the server has its own)
		if c.Events && c.NameField >= 0 && c.UUIDField >= 0 && c != datamodel.PoolClass && c != datamodel.HostClass {
			classes = append(classes, c)
		}
	}
	type obj struct {
		c   *datamodel.Class
		ref string
	}
	objs := make([]obj, pollers)
	var ops []store.Op
	for i := range objs {
		c := classes[i%len(classes)]
		o := c.New()
		_ = o.SetField(c.UUIDField, datamodel.NewUUID())
		objs[i] = obj{c, datamodel.NewRef()}
		ops = append(ops, store.Create(objs[i].ref, o))
	}
	if _, err := st.Apply(ctx, ops...); err != nil {
		b.Fatal(err)
	}

	sent := make([]atomic.Int64, b.N) // unix nanos before write i was applied
	var lat []time.Duration
	var latMu sync.Mutex
	var deliveries atomic.Int64
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }() // before the server's cleanup, also on Fatal
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: pollers, MaxConnsPerHost: pollers + 10, DisableCompression: true}}
	defer hc.CloseIdleConnections()
	tok0 := currentToken(b, api, sess)
	var ready sync.WaitGroup
	for p := range pollers {
		filter := objs[p].c.Lower
		if perObject {
			filter += "/" + objs[p].ref
		}
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			token := tok0
			var body bytes.Buffer
			first := true
			for pctx.Err() == nil {
				req, _ := http.NewRequestWithContext(pctx, http.MethodPost, srv.URL+"/jsonrpc", strings.NewReader(
					`{"jsonrpc":"2.0","id":1,"method":"event.from","params":["`+sess+`",["`+filter+`"],"`+token+`",1.0]}`))
				req.Header.Set("Content-Type", "application/json")
				if first {
					ready.Done()
					first = false
				}
				resp, err := hc.Do(req)
				if err != nil {
					if pctx.Err() == nil {
						b.Errorf("event.from: %v", err)
					}
					return
				}
				body.Reset()
				_, err = body.ReadFrom(resp.Body)
				resp.Body.Close()
				end := time.Now()
				if err != nil {
					if pctx.Err() == nil {
						b.Errorf("event.from body: %v", err)
					}
					return
				}
				out := body.Bytes()
				if bytes.Contains(out, []byte(`"error":`)) {
					b.Errorf("event.from: %.200s", out)
					return
				}
				if w, ok := earliestWrite(out); ok && w < len(sent) {
					if at := sent[w].Load(); at != 0 {
						deliveries.Add(1)
						latMu.Lock()
						lat = append(lat, end.Sub(time.Unix(0, at)))
						latMu.Unlock()
					}
				}
				token = tokenOf(out)
			}
		}()
	}
	ready.Wait()
	time.Sleep(300 * time.Millisecond) // let the polls reach the server and block
	rng := rand.New(rand.NewPCG(1, 2))
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	// warm up for half a second at the same rate (names "x…" are not
	// measured): the 1,000 connections and their first polls settle
	for i := range 500 {
		<-tick.C
		o := objs[rng.IntN(len(objs))]
		op, err := store.Set(o.c, o.ref, "name_label", fmt.Sprint("x", i))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Apply(ctx, op); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	// one write per millisecond, each applied on its own goroutine (at most 16
	// in flight), so the offered rate is 1,000 writes/s whatever one apply costs
	sem := make(chan struct{}, 16)
	var wwg sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < b.N; i++ {
		<-tick.C
		o := objs[rng.IntN(len(objs))]
		op, err := store.Set(o.c, o.ref, "name_label", fmt.Sprint("w", i))
		if err != nil {
			b.Fatal(err)
		}
		sem <- struct{}{}
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			defer func() { <-sem }()
			sent[i].Store(time.Now().UnixNano())
			if _, err := st.Apply(ctx, op); err != nil {
				b.Error(err)
			}
		}()
	}
	wwg.Wait()
	elapsed := time.Since(t0)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
	b.StopTimer()
	time.Sleep(100 * time.Millisecond)
	stop()
	wg.Wait()
	latMu.Lock()
	defer latMu.Unlock()
	if len(lat) == 0 {
		b.Fatal("no latencies")
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)/2]), "write_p50_ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "write_p99_ms")
	b.ReportMetric(float64(deliveries.Load())/elapsed.Seconds(), "responses/s")
}

// earliestWrite is the lowest write number i among the "name_label":"w<i>"
// values of an event.from result.
func earliestWrite(out []byte) (int, bool) {
	const key = `"name_label":"w`
	best, found := 0, false
	for {
		i := bytes.Index(out, []byte(key))
		if i < 0 {
			return best, found
		}
		out = out[i+len(key):]
		v, n := 0, 0
		for n < len(out) && out[n] >= '0' && out[n] <= '9' {
			v = v*10 + int(out[n]-'0')
			n++
		}
		if n > 0 && n < len(out) && out[n] == '"' && (!found || v < best) {
			best, found = v, true
		}
	}
}

func loginDirect(b *testing.B, api interface {
	Dispatch(context.Context, *rpc.Call) rpc.Response
}) string {
	resp := api.Dispatch(context.Background(), &rpc.Call{Method: "session.login_with_password", Params: []any{"root", xapitest.RootPassword, "2.20", "bench"}})
	if resp.Err != nil {
		b.Fatal(resp.Err)
	}
	var buf bytes.Buffer
	jw := rpc.NewJSONWriter(&buf)
	resp.Value(jw)
	_ = jw.Flush()
	return strings.Trim(buf.String(), `"`)
}

func currentToken(b *testing.B, api interface {
	Dispatch(context.Context, *rpc.Call) rpc.Response
}, sess string) string {
	resp := api.Dispatch(context.Background(), &rpc.Call{Method: "event.inject", Params: []any{sess, "pool", poolRef(b, api, sess)}})
	if resp.Err != nil {
		b.Fatal(resp.Err)
	}
	var buf bytes.Buffer
	jw := rpc.NewJSONWriter(&buf)
	resp.Value(jw)
	_ = jw.Flush()
	return strings.Trim(buf.String(), `"`)
}

func poolRef(b *testing.B, api interface {
	Dispatch(context.Context, *rpc.Call) rpc.Response
}, sess string) string {
	resp := api.Dispatch(context.Background(), &rpc.Call{Method: "pool.get_all", Params: []any{sess}})
	if resp.Err != nil {
		b.Fatal(resp.Err)
	}
	var buf bytes.Buffer
	jw := rpc.NewJSONWriter(&buf)
	resp.Value(jw)
	_ = jw.Flush()
	return strings.Trim(buf.String(), `["]`)
}

// tokenOf extracts the token of an event.from result (it is the last member).
func tokenOf(out []byte) string {
	i := bytes.LastIndex(out, []byte(`"token":"`))
	if i < 0 {
		return ""
	}
	rest := out[i+len(`"token":"`):]
	return string(rest[:bytes.IndexByte(rest, '"')])
}

// BenchmarkEventFromFullLoad measures event.from(["*"], "") over JSON-RPC
// (HTTP, reading the whole body) with 100,000 objects in the store, and checks
// after the timed loop that the body decodes to an add of every object.
func BenchmarkEventFromFullLoad(b *testing.B) {
	srv := xapitest.NewServer(b, xapitest.Options{})
	ctx := context.Background()
	classes := []*datamodel.Class{datamodel.VMClass, datamodel.VDIClass, datamodel.NetworkClass, datamodel.TaskClass}
	const total = 100_000
	var ops []store.Op
	for i := range total {
		c := classes[i%len(classes)]
		o := c.New()
		_ = o.SetField(c.UUIDField, datamodel.NewUUID())
		_ = o.SetField(c.NameField, fmt.Sprint("object ", i))
		ops = append(ops, store.Create(datamodel.NewRef(), o))
		if len(ops) == 2000 {
			if _, err := srv.Store.Apply(ctx, ops...); err != nil {
				b.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	s := loginDirect(b, srv.API)
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"event.from","params":["` + s + `",["*"],"",30.0]}`)
	b.ResetTimer()
	var last bytes.Buffer
	for range b.N {
		resp, err := http.Post(srv.URL+"/jsonrpc", "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		last.Reset()
		_, err = last.ReadFrom(resp.Body)
		resp.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(last.Len())/1e6, "MB/response")
	var out struct {
		Result struct {
			Events []struct {
				Class     string `json:"class"`
				Operation string `json:"operation"`
			} `json:"events"`
		} `json:"result"`
	}
	if err := json.Unmarshal(last.Bytes(), &out); err != nil {
		b.Fatal(err)
	}
	adds := 0
	for _, e := range out.Result.Events {
		if e.Operation == "add" {
			adds++
		}
	}
	if want := total + srv.Store.Count(datamodel.HostClass); adds < want {
		b.Fatalf("%d add events, want at least %d", adds, want)
	}
}
