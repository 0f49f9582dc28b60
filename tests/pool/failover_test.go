package pool_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkFailover measures, for each of b.N kills, the time from kill -9 of
// the pool master to the first write (pool.set_name_description) committed
// through a surviving host, retried every 10 ms (each retry waits at most
// for the call's own answer). Reported: failover-p50-ms, failover-p99-ms,
// failover-max-ms; ns/op is the mean failover time. Each kill costs about
// 10 s (the killed host is restarted and the pool let settle), so run it
// with a fixed count:
//
//	go test -run '^$' -bench Failover -benchtime 30x ./tests/pool/
//
// XAPI_POOL_HOSTS sets the pool size (default 3).
func BenchmarkFailover(b *testing.B) {
	c := newCluster(b, envInt("XAPI_POOL_HOSTS", 3))
	ctx := context.Background()
	var durs []time.Duration
	firstErrs := map[string]int{}
	b.ResetTimer()
	b.StopTimer()
	for i := range b.N {
		c.waitHealthy(2 * time.Minute)
		m, err := c.master(ctx)
		if err != nil {
			b.Fatal(err)
		}
		s := (m + 1) % len(c.hosts)
		surv := c.hosts[s].url
		sess, err := c.slaveLogin(ctx, surv)
		if err != nil {
			b.Fatal(err)
		}
		var pools []string
		if err := callInto(ctx, surv, &pools, "pool.get_all", sess); err != nil || len(pools) != 1 {
			b.Fatalf("pool.get_all: %v", err)
		}
		c.kill9(m)
		t0 := time.Now()
		first := true
		for {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := call(cctx, surv, "pool.set_name_description", sess, pools[0], fmt.Sprintf("failover-%d", i))
			cancel()
			if err == nil {
				break
			}
			if first {
				first = false
				firstErrs[errKind(err)]++
			}
			if time.Since(t0) > time.Minute {
				b.Fatalf("no write through host%d committed within a minute of killing host%d: %v", s+1, m+1, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		d := time.Since(t0)
		durs = append(durs, d)
		b.Logf("kill %d: host%d killed; write through host%d committed after %s", i+1, m+1, s+1, d.Round(time.Millisecond))
		c.start(m)
	}
	slices.Sort(durs)
	var sum time.Duration
	for _, d := range durs {
		sum += d
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(float64(sum.Nanoseconds())/float64(len(durs)), "ns/op")
	b.ReportMetric(ms(percentile(durs, 0.50)), "failover-p50-ms")
	b.ReportMetric(ms(percentile(durs, 0.99)), "failover-p99-ms")
	b.ReportMetric(ms(durs[len(durs)-1]), "failover-max-ms")
	if len(firstErrs) > 0 {
		b.Logf("first failed write after each kill, by error: %v", firstErrs)
	}
}

// percentile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(p*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// errKind shortens an error for the tally.
func errKind(err error) string {
	if f, ok := err.(*fault); ok {
		if len(f.Params) > 0 && f.Code == "INTERNAL_ERROR" {
			p := f.Params[0]
			if len(p) > 40 {
				p = p[:40]
			}
			return f.Code + " " + p
		}
		return f.Code
	}
	if isDialError(err) {
		return "dial error"
	}
	return "transport error"
}
