package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
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
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	base := "http://" + addr
	ctx := context.Background()
	hc := newClient()
	var sess string
	for deadline := time.Now().Add(30 * time.Second); ; {
		raw, err := rpc.Invoke(ctx, hc, base, "session.login_with_password", "root", "pw")
		if err == nil {
			_ = json.Unmarshal(raw, &sess)
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("xapid did not answer: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
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
	b.ReportMetric(procRSSMB(b, cmd.Process.Pid), "xapid-rss-MB")
	runtime.GC() // ours, not the daemon's; give the daemon a moment to settle
	time.Sleep(2 * time.Second)
	b.ReportMetric(procRSSMB(b, cmd.Process.Pid), "xapid-rss-settled-MB")
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
