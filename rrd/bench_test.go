package rrd

import (
	"io"
	"math"
	"strconv"
	"testing"
	"time"
)

// benchStore returns a Store with a host and 1000 VMs of 20 data sources
// each, fed for 11 minutes of 1 s samples (so the 10-minute archives are
// full of real values).
func benchStore(b *testing.B, vms int) (*Store, []string, int) {
	b.Helper()
	names := dsNames(20)
	uuids := make([]string, vms)
	for i := range uuids {
		uuids[i] = "00000000-0000-4000-8000-" + strconv.FormatInt(100000000000+int64(i), 10)
	}
	s := NewStore(StoreOptions{})
	vals := make(map[string]float64, len(names))
	const secs = 660
	for sec := 0; sec <= secs; sec++ {
		for j, n := range names {
			vals[n] = 1e6 + float64(j*1000+sec)*12.345
		}
		s.AddHost(at(sec), vals)
		for i, u := range uuids {
			for j, n := range names {
				vals[n] = math.Abs(math.Sin(float64(i*31+j*7+sec))) * float64(j+1) * 1000
			}
			s.AddVM(u, at(sec), vals)
		}
	}
	return s, uuids, secs
}

// BenchmarkWriteUpdates renders /rrd_updates?host=true (every VM) for a
// host with 1000 VMs × 20 data sources: a poll of the newest rows (the
// XenCenter/XO steady state) and the full 10-minute 5 s archive (XO's
// first request).
func BenchmarkWriteUpdates(b *testing.B) {
	s, _, secs := benchStore(b, 1000)
	now := int64(t0 + secs)
	for _, tc := range []struct {
		name string
		q    UpdatesQuery
	}{
		{"poll-xml", UpdatesQuery{Start: time.Unix(now-10, 0), Interval: 5, CF: "AVERAGE", Host: true}},
		{"poll-json", UpdatesQuery{Start: time.Unix(now-10, 0), Interval: 5, CF: "AVERAGE", Host: true, JSON: true}},
		{"10min-xml", UpdatesQuery{Start: time.Unix(now-595, 0), Interval: 5, CF: "AVERAGE", Host: true}},
		{"10min-json", UpdatesQuery{Start: time.Unix(now-595, 0), Interval: 5, CF: "AVERAGE", Host: true, JSON: true}},
		{"1s-60rows-json", UpdatesQuery{Start: time.Unix(now-59, 0), Interval: 1, CF: "AVERAGE", Host: true, JSON: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var w countWriter
			for b.Loop() {
				w.n = 0
				if err := s.WriteUpdates(&w, tc.q, hostID); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(w.n))
			b.ReportMetric(float64(w.n), "bytes/reply")
		})
	}
}

// BenchmarkAdd1000VMs: one op is one second of samples (20 values) for
// 1000 VMs.
func BenchmarkAdd1000VMs(b *testing.B) {
	s, uuids, secs := benchStore(b, 1000)
	names := dsNames(20)
	vals := make(map[string]float64, len(names))
	for j, n := range names {
		vals[n] = float64(j) * 1.5
	}
	sec := secs
	for b.Loop() {
		sec++
		ts := at(sec)
		for _, u := range uuids {
			s.AddVM(u, ts, vals)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/second-of-samples")
}

// BenchmarkMemoryPerVM reports the heap retained per VM (20 sources).
func BenchmarkMemoryPerVM(b *testing.B) {
	for _, mm := range []bool{false, true} {
		name := "average"
		if mm {
			name = "minmax"
		}
		b.Run(name, func(b *testing.B) {
			var perVM float64
			for b.Loop() {
				perVM, _ = measureVMs(200, mm)
			}
			b.ReportMetric(perVM, "B/VM")
		})
	}
}

func BenchmarkWriteVMRRD(b *testing.B) {
	s, uuids, _ := benchStore(b, 1)
	for b.Loop() {
		if err := s.WriteVMRRD(io.Discard, uuids[0], false); err != nil {
			b.Fatal(err)
		}
	}
}
