package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/rpc"
)

// BenchmarkXapidRSS10kVMs starts the real bin/xapid (XAPID_BIN, or a fresh
// build of ./cmd/xapid), creates numVMs VMs through the API with VM.create
// from a template's record (16 concurrent clients), and reports the daemon's
// resident set size (target: RSS of xapid with 10,000 VMs ≤ 200 MB), both
// right after the load and after a VM.get_all_records over JSON-RPC.
func BenchmarkXapidRSS10kVMs(b *testing.B) {
	x := startXapid(b)
	base, sess, hc, ctx := x.base, x.sess, x.hc, context.Background()
	call := func(method string, params ...any) json.RawMessage {
		raw, err := rpc.Invoke(ctx, hc, base, method, append([]any{sess}, params...)...)
		if err != nil {
			b.Fatalf("%s: %v", method, err)
		}
		return raw
	}
	var templates map[string]map[string]any
	if err := json.Unmarshal(call("VM.get_all_records_where", `field "is_a_template" = "true"`), &templates); err != nil {
		b.Fatal(err)
	}
	var rec map[string]any
	for _, r := range templates {
		rec = r
		break
	}
	if rec == nil {
		b.Fatal("no template on a fresh host")
	}
	for i := 0; i < b.N; i++ {
		var wg sync.WaitGroup
		const workers = 16
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := make(map[string]any, len(rec))
				for k, v := range rec {
					r[k] = v
				}
				r["is_a_template"] = false
				r["other_config"] = map[string]any{"folder": "/bench", "mac_seed": "a9e6f3c4-2f8e-4b1e-9d52-0e6f1c1b7a10"}
				for n := w; n < numVMs; n += workers {
					r["name_label"] = fmt.Sprintf("vm-%05d web server", n)
					call("VM.create", r)
				}
			}()
		}
		wg.Wait()
	}
	b.StopTimer()
	var all map[string]json.RawMessage
	if err := json.Unmarshal(call("VM.get_all_records"), &all); err != nil {
		b.Fatal(err)
	}
	if len(all) < numVMs*b.N {
		b.Fatalf("%d VMs, want at least %d", len(all), numVMs*b.N)
	}
	b.ReportMetric(float64(len(all)), "vms")
	b.ReportMetric(procRSSMB(b, x.pid), "xapid-rss-MB")
	time.Sleep(2 * time.Second) // give the daemon a moment to settle
	b.ReportMetric(procRSSMB(b, x.pid), "xapid-rss-settled-MB")
}

// xapid is a running bin/xapid with a root session.
type xapid struct {
	base, sess string
	pid        int
	hc         *http.Client
}

// startXapid starts bin/xapid (see xapidBinary) on a free loopback port with a
// fresh data directory, waits until it answers and logs in as root; the
// process is killed when the benchmark ends.
func startXapid(b *testing.B) *xapid {
	bin := xapidBinary(b)
	dir := b.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--data-dir", dir, "--listen", addr, "--root-password", "pw")
	logf, err := os.Create(filepath.Join(dir, "xapid.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	})
	x := &xapid{base: "http://" + addr, pid: cmd.Process.Pid, hc: newClient()}
	for deadline := time.Now().Add(30 * time.Second); ; {
		raw, err := rpc.Invoke(context.Background(), x.hc, x.base, "session.login_with_password", "root", "pw")
		if err == nil {
			if err := json.Unmarshal(raw, &x.sess); err != nil {
				b.Fatal(err)
			}
			return x
		}
		if time.Now().After(deadline) {
			b.Fatalf("xapid did not answer: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cpuTime is the user+system CPU time process pid has used.
func cpuTime(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	// fields after the command name (which is in parentheses): utime and stime are fields 14 and 15
	rest := string(data[strings.LastIndexByte(string(data), ')')+2:])
	f := strings.Fields(rest)
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // clock ticks (USER_HZ = 100)
}

// BenchmarkXapidIdleLongPolls parks 1,000 event.from long polls (60 s
// timeout, each on its own HTTP connection, nothing changing in the classes
// they watch) on the real xapid, and reports the daemon's resident memory per
// waiting call (connection included) and the CPU it spends while they wait,
// next to its CPU with no polls (an idle long poll must cost nothing).
func BenchmarkXapidIdleLongPolls(b *testing.B) {
	const pollers = 1000
	x := startXapid(b)
	ctx := context.Background()
	raw, err := rpc.Invoke(ctx, x.hc, x.base, "event.from", x.sess, []string{"vm"}, "", 0.0)
	if err != nil {
		b.Fatal(err)
	}
	var first struct{ Token string }
	if err := json.Unmarshal(raw, &first); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		time.Sleep(time.Second)
		rss0 := procRSSMB(b, x.pid)
		cpu0 := cpuTime(b, x.pid)
		time.Sleep(5 * time.Second)
		baseCPU := cpuTime(b, x.pid) - cpu0
		pctx, cancel := context.WithCancel(ctx)
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: pollers, MaxConnsPerHost: pollers + 10}}
		var wg sync.WaitGroup
		for p := 0; p < pollers; p++ {
			classes := []string{"vm", "sr", "vdi", "network", "pif"}[p%5:][:1]
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = rpc.Invoke(pctx, hc, x.base, "event.from", x.sess, classes, first.Token, 60.0)
			}()
		}
		time.Sleep(2 * time.Second) // all parked
		rss1 := procRSSMB(b, x.pid)
		cpu1 := cpuTime(b, x.pid)
		time.Sleep(5 * time.Second)
		idleCPU := cpuTime(b, x.pid) - cpu1
		cancel()
		wg.Wait()
		hc.CloseIdleConnections()
		b.ReportMetric((rss1-rss0)*1024/pollers, "KiB-rss/waiting-call")
		b.ReportMetric(float64(idleCPU.Microseconds())/1000/5, "cpu-ms/s-1000-polls")
		b.ReportMetric(float64(baseCPU.Microseconds())/1000/5, "cpu-ms/s-no-polls")
	}
}

// xapidBinary is $XAPID_BIN or ./cmd/xapid built into a temporary directory.
func xapidBinary(b *testing.B) string {
	if p := os.Getenv("XAPID_BIN"); p != "" {
		return p
	}
	out := filepath.Join(b.TempDir(), "xapid")
	_, file, _, _ := runtime.Caller(0)
	cmd := exec.Command("go", "build", "-o", out, "./cmd/xapid")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build ./cmd/xapid: %v\n%s", err, msg)
	}
	return out
}

// procRSSMB is VmRSS of process pid in MiB.
func procRSSMB(b *testing.B, pid int) float64 {
	mb, err := readRSSMB("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	return mb
}

// readRSSMB reads VmRSS in MiB from a /proc/<pid>/status file.
func readRSSMB(path string) (float64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("%s: no VmRSS line", path)
}
