package xapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/xapi"
	"github.com/xapi-go/xapi-go/xapi/xapitest"
)

// TestRRDUpdatesEndToEnd: a running VM's stats reach /rrd_updates at 1 s
// resolution in the JSON format Xen Orchestra reads, and a bad session is refused.
func TestRRDUpdatesEndToEnd(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	vm := newVM(t, srv.URL, s, "stats")
	vmCall(t, srv.URL, "VM.start", s, vm, false, false)
	uuid := vmCall(t, srv.URL, "VM.get_uuid", s, vm).(string)
	hostRef := vmCall(t, srv.URL, "VM.get_resident_on", s, vm).(string)
	hostUUID := vmCall(t, srv.URL, "host.get_uuid", s, hostRef).(string)
	start := time.Now().Add(-time.Minute).Unix()
	url := fmt.Sprintf("%s/rrd_updates?session_id=%s&start=%d&cf=AVERAGE&interval=1&host=true&json=true", srv.URL, s, start)
	var out struct {
		Meta struct {
			Step   int      `json:"step"`
			Legend []string `json:"legend"`
		} `json:"meta"`
		Data []struct {
			T      int64    `json:"t"`
			Values []string `json:"values"`
		} `json:"data"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if slices.Contains(out.Meta.Legend, "AVERAGE:vm:"+uuid+":cpu0") && len(out.Data) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no VM stats after 10 s: %+v", out.Meta)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if out.Meta.Step != 1 || !slices.Contains(out.Meta.Legend, "AVERAGE:host:"+hostUUID+":memory_free_kib") {
		t.Fatalf("meta: %+v", out.Meta)
	}
	resp, err := http.Get(fmt.Sprintf("%s/rrd_updates?session_id=OpaqueRef:bad&start=%d", srv.URL, start))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("bad session: %d", resp.StatusCode)
	}
}

// TestMetricsObjectsUpdated: the sampler writes coarse values to VM_metrics
// and host_metrics every 30 samples (here 30 × 10 ms).
func TestMetricsObjectsUpdated(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{Configure: func(c *xapi.Config) { c.StatsInterval = 10 * time.Millisecond }})
	s := login(t, srv.URL)
	vm := newVM(t, srv.URL, s, "metrics")
	vmCall(t, srv.URL, "VM.start", s, vm, false, false)
	mref := vmCall(t, srv.URL, "VM.get_metrics", s, vm).(string)
	before := record(t, srv.URL, s, "VM_metrics", mref)["last_updated"]
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := record(t, srv.URL, s, "VM_metrics", mref)
		if m["last_updated"] != before && len(m["VCPUs_utilisation"].(map[string]any)) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("VM_metrics not updated: %v", m)
		}
		time.Sleep(50 * time.Millisecond)
	}
	host := refList(vmCall(t, srv.URL, "host.get_all", s))[0]
	hm := record(t, srv.URL, s, "host_metrics", vmCall(t, srv.URL, "host.get_metrics", s, host).(string))
	if hm["live"] != true || hm["last_updated"] == "19700101T00:00:00Z" {
		t.Fatalf("host_metrics %v", hm)
	}
}
