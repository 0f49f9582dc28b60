package store

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"

	"github.com/xapi-go/xapi-go/internal/benchload"
)

// BenchmarkApplySetField measures one Set op through raft on a one-node store
// on disk (badger with synced writes), reporting latency percentiles.
func BenchmarkApplySetField(b *testing.B) {
	cfg := testConfig(b, "n0")
	cfg.DataDir, cfg.Bootstrap = b.TempDir(), true
	s := openStore(b, cfg)
	defer s.Close()
	vm := mustClass(b, "VM")
	apply(b, s, Create("OpaqueRef:a", newVM(b, datamodel.NewUUID(), "a")))
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		op, err := Set(vm, "OpaqueRef:a", "name_label", fmt.Sprint("n", i))
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := s.Apply(ctx, op); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	benchload.ReportPercentiles(b, lat)
}

// BenchmarkApplySetFieldParallel is the same with concurrent writers (raft
// batches their entries into shared fsyncs).
func BenchmarkApplySetFieldParallel(b *testing.B) {
	cfg := testConfig(b, "n0")
	cfg.DataDir, cfg.Bootstrap = b.TempDir(), true
	s := openStore(b, cfg)
	defer s.Close()
	vm := mustClass(b, "VM")
	apply(b, s, Create("OpaqueRef:a", newVM(b, datamodel.NewUUID(), "a")))
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		op, _ := Set(vm, "OpaqueRef:a", "name_label", "x")
		for pb.Next() {
			if _, err := s.Apply(context.Background(), op); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func fill10k(b *testing.B) (*Store, *datamodel.Class) {
	s := newMemStore(b)
	vm := mustClass(b, "VM")
	var batch []Op
	for i := range 10000 {
		o := newRecord(b, vm, map[string]any{
			"uuid": datamodel.NewUUID(), "name_label": fmt.Sprint("vm-", i),
			"other_config": map[string]string{"a": "b", "c": "d"}, "tags": []string{"x"},
		})
		batch = append(batch, Create(datamodel.NewRef(), o))
		if len(batch) == 500 {
			apply(b, s, batch...)
			batch = nil
		}
	}
	return s, vm
}

// BenchmarkList10k measures List of 10,000 VMs (the store's part of
// VM.get_all_records).
func BenchmarkList10k(b *testing.B) {
	s, vm := fill10k(b)
	b.ResetTimer()
	for b.Loop() {
		if n := len(s.List(vm)); n != 10000 {
			b.Fatal(n)
		}
	}
}

// BenchmarkList10kEncode adds encoding every record as JSON, a stand-in for
// the wire encoders of get_all_records.
func BenchmarkList10kEncode(b *testing.B) {
	s, vm := fill10k(b)
	b.ResetTimer()
	for b.Loop() {
		var w datamodel.JSONWriter
		w.BeginStruct()
		for _, e := range s.List(vm) {
			w.Member(e.Ref)
			e.Obj.WriteRecord(&w, false)
		}
		w.EndStruct()
	}
}

// BenchmarkSnapshotRestore10k measures writing and restoring a snapshot of
// 10,000 VMs.
func BenchmarkSnapshotRestore10k(b *testing.B) {
	s, vm := fill10k(b)
	var size int
	b.ResetTimer()
	for b.Loop() {
		snap, err := s.fsm.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		if err := snap.(*fsmSnapshot).write(&buf); err != nil {
			b.Fatal(err)
		}
		size = buf.Len()
		g := newFSM(testLogger(b))
		if err := g.Restore(nopCloser{&buf}); err != nil {
			b.Fatal(err)
		}
		if g.count(vm) != 10000 {
			b.Fatal(g.count(vm))
		}
	}
	b.ReportMetric(float64(size)/(1<<20), "MB")
}
