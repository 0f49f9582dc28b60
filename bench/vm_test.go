package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/backends/sim"
	"github.com/xapi-go/xapi-go/xapi/xapitest"

	"github.com/xapi-go/xapi-go/internal/benchload"
)

// jsonClient is a JSON-RPC client on one keep-alive connection.
type jsonClient struct {
	c     *http.Client
	url   string
	sess  string
	calls atomic.Int64 // calls answered
	tmpl  string       // the template this client clones
}

func newJSONClient(url, sess string) *jsonClient {
	return &jsonClient{c: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}, url: url + "/jsonrpc", sess: sess}
}

// call makes a session call and decodes its result into out (if not nil).
func (r *jsonClient) call(out any, method string, params ...any) error {
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": append([]any{r.sess}, params...)})
	if err != nil {
		return err
	}
	resp, err := r.c.Post(r.url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	r.calls.Add(1)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d: %s", method, resp.StatusCode, b)
	}
	var reply struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Message string   `json:"message"`
			Data    []string `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &reply); err != nil {
		return fmt.Errorf("%s: bad reply %q: %w", method, b, err)
	}
	if reply.Error != nil {
		return fmt.Errorf("%s: %s %v", method, reply.Error.Message, reply.Error.Data)
	}
	if out != nil {
		return json.Unmarshal(reply.Result, out)
	}
	return nil
}

// vmServer starts a server whose simulated host has room for n running
// copies of the Debian template (2 GiB each, plus overheads), with no
// hypervisor latency, and returns it with the template's ref.
func vmServer(b *testing.B, n int) (*xapitest.Server, string, string) {
	b.Helper()
	srv, stop, err := xapitest.Start(xapitest.Options{Sim: sim.Config{CPUs: 64, MemoryTotal: int64(n)*3*sim.GiB + 8*sim.GiB}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(stop)
	sess, err := loginJSON(srv.URL)
	if err != nil {
		b.Fatal(err)
	}
	var tmpls []string
	if err := newJSONClient(srv.URL, sess).call(&tmpls, "VM.get_by_name_label", "Debian Bookworm 12"); err != nil {
		b.Fatal(err)
	}
	if len(tmpls) != 1 {
		b.Fatalf("templates named Debian Bookworm 12: %v", tmpls)
	}
	return srv, sess, tmpls[0]
}

// parallel runs fn(client, i) for i in [0, n) on the clients concurrently
// (each on its own keep-alive connection) and returns the first error.
func parallel(clients []*jsonClient, n int, fn func(c *jsonClient, i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(c, i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n)) // stop the others
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// BenchmarkThousandVMs creates (VM.clone of a template, then
// VM.set_is_a_template false), starts, cleanly shuts down and destroys 1,000
// VMs from 32 concurrent JSON-RPC clients, one phase after the other, so that
// all 1,000 run at once (target: ≤ 10 s in all). The simulated hypervisor
// answers at once; the guest agent publishes its metrics at each boot.
func BenchmarkThousandVMs(b *testing.B) {
	const vms, conns = 1000, 32
	srv, sess, tmpl := vmServer(b, vms)
	// Each client clones its own copy of the template: clones of one VM
	// run one at a time (the server answers OTHER_OPERATION_IN_PROGRESS).
	clients := make([]*jsonClient, conns)
	for i := range clients {
		clients[i] = newJSONClient(srv.URL, sess)
		if err := clients[i].call(&clients[i].tmpl, "VM.clone", tmpl, fmt.Sprintf("bench template %d", i)); err != nil {
			b.Fatal(err)
		}
	}
	var before []string
	if err := clients[0].call(&before, "VM.get_all"); err != nil {
		b.Fatal(err)
	}
	refs := make([]string, vms)
	phases := []struct {
		name string
		fn   func(c *jsonClient, i int) error
	}{
		{"create", func(c *jsonClient, i int) error {
			if err := c.call(&refs[i], "VM.clone", c.tmpl, fmt.Sprintf("bench-vm-%04d", i)); err != nil {
				return err
			}
			return c.call(nil, "VM.set_is_a_template", refs[i], false)
		}},
		{"start", func(c *jsonClient, i int) error { return c.call(nil, "VM.start", refs[i], false, false) }},
		{"shutdown", func(c *jsonClient, i int) error { return c.call(nil, "VM.clean_shutdown", refs[i]) }},
		{"destroy", func(c *jsonClient, i int) error { return c.call(nil, "VM.destroy", refs[i]) }},
	}
	phaseTime := make([]time.Duration, len(phases))
	var total time.Duration
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		t0 := time.Now()
		for p, ph := range phases {
			tp := time.Now()
			if err := parallel(clients, vms, ph.fn); err != nil {
				b.Fatalf("%s: %v", ph.name, err)
			}
			phaseTime[p] += time.Since(tp)
		}
		total += time.Since(t0)
	}
	b.StopTimer()

	var calls int64
	for _, c := range clients {
		calls += c.calls.Load()
	}
	var after []string
	if err := clients[0].call(&after, "VM.get_all"); err != nil {
		b.Fatal(err)
	}
	if len(after) != len(before) {
		b.Errorf("%d VMs after destroying them all, %d before", len(after), len(before))
	}
	secs := total.Seconds() / float64(b.N)
	b.ReportMetric(secs, "total-s")
	for p, ph := range phases {
		b.ReportMetric(phaseTime[p].Seconds()/float64(b.N), ph.name+"-s")
	}
	b.ReportMetric(float64(calls)/total.Seconds(), "calls/s")
	if secs > 10 {
		b.Logf("1,000 VMs took %.1f s, over the 10 s target", secs)
	}
}

// BenchmarkVMStartHTTP measures VM.start of a halted VM over JSON-RPC (one
// keep-alive connection, simulated hypervisor with no latency); a
// VM.hard_shutdown between starts is not timed.
func BenchmarkVMStartHTTP(b *testing.B) {
	srv, sess, tmpl := vmServer(b, 1)
	c := newJSONClient(srv.URL, sess)
	var vm string
	if err := c.call(&vm, "VM.clone", tmpl, "bench-start"); err != nil {
		b.Fatal(err)
	}
	if err := c.call(nil, "VM.set_is_a_template", vm, false); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := c.call(nil, "VM.start", vm, false, false); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		b.StopTimer()
		if err := c.call(nil, "VM.hard_shutdown", vm); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	benchload.ReportPercentiles(b, lat)
}
