package benchload

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestWrites(t *testing.T) {
	tests := []struct {
		name    string
		clients int
		fail    bool
	}{
		{"one client", 1, false},
		{"several clients", 4, false},
		{"a failing write", 2, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int64
			seen := make([]atomic.Bool, tc.clients)
			res := testing.Benchmark(func(b *testing.B) {
				Writes(b, tc.clients, func(c, i int) error {
					calls.Add(1)
					seen[c].Store(true)
					time.Sleep(100 * time.Microsecond)
					if tc.fail && i == 3 {
						return errors.New("boom")
					}
					return nil
				})
			})
			if tc.fail {
				if res.N != 0 {
					// testing.Benchmark reports a failed benchmark as the zero result
					t.Fatalf("failed benchmark reported %+v", res)
				}
				return
			}
			if calls.Load() < int64(res.N) || res.Extra["writes/s"] <= 0 || res.Extra["p50-ms"] <= 0 || res.Extra["p99-ms"] < res.Extra["p50-ms"] {
				t.Fatalf("result %+v after %d calls", res, calls.Load())
			}
		})
	}
}

func TestReportPercentiles(t *testing.T) {
	res := testing.Benchmark(func(b *testing.B) {
		for b.Loop() {
		}
		lat := make([]time.Duration, 100)
		for i := range lat {
			lat[i] = time.Duration(100-i) * time.Millisecond // unsorted
		}
		ReportPercentiles(b, lat)
	})
	if res.Extra["p50-ms"] != 51 || res.Extra["p99-ms"] != 100 {
		t.Fatalf("percentiles %v", res.Extra)
	}
}
