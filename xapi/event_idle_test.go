package xapi_test

import (
	"context"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/rpc"
	"github.com/xapi-go/xapi-go/xapi/xapitest"
)

// BenchmarkIdleLongPolls parks 1,000 event.from calls (60 s timeout, nothing
// happening) and reports the memory each waiting call holds and the CPU the
// process spends while they wait, next to the CPU it spends with no calls
// waiting (the difference is the cost of waiting: no periodic wake-ups).
func BenchmarkIdleLongPolls(b *testing.B) {
	const pollers = 1000
	srv := xapitest.NewServer(b, xapitest.Options{})
	api := srv.API
	sess := loginDirect(b, api)
	tok := currentToken(b, api, sess)
	for i := 0; i < b.N; i++ {
		base0 := cpuTime()
		time.Sleep(2 * time.Second)
		baseCPU := cpuTime() - base0
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for p := 0; p < pollers; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				api.Dispatch(ctx, &rpc.Call{Method: "event.from", Params: []any{sess, []any{"vm"}, tok, 60.0}, Protocol: rpc.JSONRPC2})
			}()
		}
		time.Sleep(300 * time.Millisecond) // all parked
		runtime.GC()
		var parked runtime.MemStats
		runtime.ReadMemStats(&parked)
		cpu0 := cpuTime()
		time.Sleep(2 * time.Second)
		idleCPU := cpuTime() - cpu0
		cancel()
		wg.Wait()
		perPoll := float64(parked.HeapInuse+parked.StackInuse-before.HeapInuse-before.StackInuse) / pollers
		b.ReportMetric(perPoll/1024, "KiB/waiting-call")
		b.ReportMetric(float64(idleCPU.Microseconds())/1000/2, "cpu-ms/s-idle")
		b.ReportMetric(float64(baseCPU.Microseconds())/1000/2, "cpu-ms/s-no-polls")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
