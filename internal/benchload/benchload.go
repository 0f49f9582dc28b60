package benchload

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ReportPercentiles reports the p50 and p99 of lat (in ms) as p50-ms and
// p99-ms. lat is sorted in place.
func ReportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// Writes runs b.Loop's iterations as writes spread over clients goroutines,
// each calling write(client, i) for the iteration numbers it takes, and
// reports p50-ms, p99-ms and writes/s. The first failed write fails the
// benchmark and stops the others.
func Writes(b *testing.B, clients int, write func(client, i int) error) {
	jobs := make(chan int)
	lats := make([][]time.Duration, clients)
	var (
		wg     sync.WaitGroup
		failed atomic.Bool
	)
	for c := range clients {
		wg.Go(func() {
			for i := range jobs {
				if failed.Load() {
					continue
				}
				start := time.Now()
				if err := write(c, i); err != nil {
					if !failed.Swap(true) {
						b.Error(err)
					}
					continue
				}
				lats[c] = append(lats[c], time.Since(start))
			}
		})
	}
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	ReportPercentiles(b, all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "writes/s")
}
