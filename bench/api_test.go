package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
	"github.com/xapi-go/xapi-go/xapi"
	"github.com/xapi-go/xapi-go/xapi/xapitest"

	"github.com/xapi-go/xapi-go/internal/benchload"
)

const numVMs = 10_000

// realisticVM returns a VM record shaped like a running guest's.
func realisticVM(i int, host datamodel.HostRef) *datamodel.VMRecord {
	vm := datamodel.NewVMRecord()
	vm.UUID = datamodel.NewUUID()
	vm.NameLabel = fmt.Sprintf("vm-%05d web server", i)
	vm.NameDescription = "benchmark guest created from the Debian Bookworm 12 template"
	vm.PowerState = datamodel.VMPowerStateRunning
	vm.UserVersion = 1
	vm.ResidentOn = host
	vm.Affinity = host
	vm.MemoryStaticMax, vm.MemoryDynamicMax, vm.MemoryDynamicMin, vm.MemoryStaticMin = 2<<30, 2<<30, 1<<30, 512<<20
	vm.MemoryTarget = 2 << 30
	vm.VCPUsMax, vm.VCPUsAtStartup = 2, 2
	vm.VCPUsParams = map[string]string{"weight": "256"}
	vm.Domid = int64(i + 1)
	vm.HVMBootPolicy = "BIOS order"
	vm.HVMBootParams = map[string]string{"order": "cdn", "firmware": "bios"}
	vm.Platform = map[string]string{"acpi": "1", "apic": "true", "pae": "true", "nx": "true", "viridian": "false", "device-model": "qemu-upstream-compat", "videoram": "8"}
	vm.OtherConfig = map[string]string{"base_template_name": "Debian Bookworm 12", "import_task": "OpaqueRef:NULL", "install-methods": "cdrom,nfs,http,ftp", "linux_template": "true", "mac_seed": datamodel.NewUUID(), "folder": "/bench"}
	vm.AllowedOperations = []datamodel.VMOperations{"changing_dynamic_range", "pool_migrate", "clean_shutdown", "clean_reboot", "hard_shutdown", "hard_reboot", "pause", "suspend", "snapshot", "checkpoint", "migrate_send"}
	vm.BlockedOperations = map[datamodel.VMOperations]string{}
	vm.Tags = []string{"bench", "web"}
	vm.Recommendations = `<restrictions><restriction field="memory-static-max" max="137438953472"/><restriction field="vcpus-max" max="32"/></restrictions>`
	vm.DomainType = datamodel.DomainTypeHVM
	vm.LastBootCPUFlags = map[string]string{"vendor": "AuthenticAMD", "features": "1fc8b3ff-bfebfbff-00000001-2c100800"}
	vm.StartDelay, vm.ShutdownDelay = 0, 0
	vm.XenstoreData = map[string]string{"vm-data": "", "vm-data/mmio-hole-size": "268435456"}
	return vm
}

type fixture struct {
	srv  *xapitest.Server
	sess string
	vms  []string
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

// bigServer is a server holding numVMs realistic VMs (shared by benchmarks).
func bigServer(b *testing.B) *fixture {
	fixOnce.Do(func() {
		srv, _, err := xapitest.Start(xapitest.Options{})
		if err != nil {
			fixErr = err
			return
		}
		f := &fixture{srv: srv}
		host := srv.API.HostRef()
		var ops []store.Op
		for i := 0; i < numVMs; i++ {
			ref := datamodel.NewRef()
			f.vms = append(f.vms, ref)
			ops = append(ops, store.Create(ref, realisticVM(i, host)))
			if len(ops) == 500 {
				if _, err := srv.Store.Apply(context.Background(), ops...); err != nil {
					fixErr = err
					return
				}
				ops = ops[:0]
			}
		}
		f.sess, fixErr = loginJSON(srv.URL)
		fix = f
	})
	if fixErr != nil {
		b.Fatal(fixErr)
	}
	return fix
}

func loginJSON(url string) (string, error) {
	var out struct{ Result string }
	body := `{"jsonrpc":"2.0","id":1,"method":"session.login_with_password","params":["root","` + xapitest.RootPassword + `"]}`
	resp, err := http.Post(url+"/jsonrpc", "application/json", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&out)
	return out.Result, err
}

func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true, ReadBufferSize: 1 << 20}}
}

var readBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

func post(c *http.Client, url, ctype string, body []byte) (int64, error) {
	resp, err := c.Post(url, ctype, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	// read in 256 KiB pieces, as a client parsing a big response would
	// (io.Discard's own ReadFrom reads 8 KiB at a time)
	buf := readBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, resp.Body, *buf)
	readBufs.Put(buf)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return n, fmt.Errorf("status %d", resp.StatusCode)
	}
	return n, err
}

// BenchmarkGetAllRecordsVM measures VM.get_all_records over 10,000 VMs from a
// loopback client, over XML-RPC and JSON-RPC (targets: p99 ≤ 100 ms XML, ≤ 60 ms JSON).
func BenchmarkGetAllRecordsVM(b *testing.B) {
	f := bigServer(b)
	for _, proto := range []string{"xml", "json"} {
		b.Run(proto, func(b *testing.B) {
			c := newClient()
			url, ctype := f.srv.URL+"/", "text/xml"
			body := []byte(`<?xml version="1.0"?><methodCall><methodName>VM.get_all_records</methodName><params><param><value><string>` + f.sess + `</string></value></param></params></methodCall>`)
			if proto == "json" {
				url, ctype = f.srv.URL+"/jsonrpc", "application/json"
				body = []byte(`{"jsonrpc":"2.0","id":1,"method":"VM.get_all_records","params":["` + f.sess + `"]}`)
			}
			if _, err := post(c, url, ctype, body); err != nil { // warm up
				b.Fatal(err)
			}
			runtime.GC()
			var lat []time.Duration
			var bytesOut int64
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				n, err := post(c, url, ctype, body)
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
				bytesOut = n
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms1)
			benchload.ReportPercentiles(b, lat)
			b.ReportMetric(float64(bytesOut)/1e6, "MB/resp")
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N)/numVMs, "allocs/record")
			b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(b.N)/1e6, "MB-alloc/op")
			b.ReportMetric(float64(ms1.NumGC-ms0.NumGC)/float64(b.N), "gc/op")
		})
	}
}

// BenchmarkGetNameLabelParallel measures VM.get_name_label from 32 concurrent
// keep-alive connections (target ≥ 20,000 calls/s).
func BenchmarkGetNameLabelParallel(b *testing.B) {
	f := bigServer(b)
	const conns = 32
	bodies := make([][]byte, 64)
	for i := range bodies {
		bodies[i] = []byte(`{"jsonrpc":"2.0","id":1,"method":"VM.get_name_label","params":["` + f.sess + `","` + f.vms[i] + `"]}`)
	}
	var next atomic.Int64
	b.ResetTimer()
	t0 := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Bool
	for c := 0; c < conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if _, err := post(cl, f.srv.URL+"/jsonrpc", "application/json", bodies[i%64]); err != nil {
					failed.Store(true)
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	if failed.Load() {
		b.Fatal("call failed")
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "calls/s")
}

// BenchmarkSetNameLabelDisk measures VM.set_name_label end to end on a
// one-host pool whose raft log is on disk with fsync (target p50 ≤ 1 ms).
func BenchmarkSetNameLabelDisk(b *testing.B) {
	dir := b.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(context.Background(), store.Config{DataDir: dir, NodeID: "bench", Bootstrap: true, Logger: log,
		HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	api, err := xapi.New(context.Background(), xapi.Config{Store: st, Auth: xapi.NewMemoryAuth("pw"), Logger: log, Hostname: "bench", Address: "127.0.0.1"})
	if err != nil {
		b.Fatal(err)
	}
	defer api.Close()
	hs := httptest.NewServer(api.Handler())
	defer hs.Close()
	c := newClient()
	var out struct{ Result any }
	call := func(method string, params ...string) {
		q := make([]string, len(params))
		for i, p := range params {
			q[i] = strconv.Quote(p)
		}
		body := `{"jsonrpc":"2.0","id":1,"method":"` + method + `","params":[` + strings.Join(q, ",") + `]}`
		resp, err := c.Post(hs.URL+"/jsonrpc", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		out.Result = nil
		_ = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
	}
	call("session.login_with_password", "root", "pw")
	sess := out.Result.(string)
	call("VM.get_all", sess)
	vm := out.Result.([]any)[0].(string)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		call("VM.set_name_label", sess, vm, "name-"+strconv.Itoa(i))
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	benchload.ReportPercentiles(b, lat)
}

// BenchmarkMemoryPerVM reports the resident memory of a server holding 10,000
// VMs (target: RSS of xapid with 10,000 VMs ≤ 200 MB).
func BenchmarkMemoryPerVM(b *testing.B) {
	f := bigServer(b)
	for i := 0; i < b.N; i++ {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/1e6, "heap-MB")
	b.ReportMetric(rssMB(), "rss-MB")
	b.ReportMetric(float64(f.srv.Store.Count(datamodel.VMClass)), "vms")
}

func rssMB() float64 {
	mb, _ := readRSSMB("/proc/self/status")
	return mb
}
