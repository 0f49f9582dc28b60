package sim

import (
	"context"
	"testing"

	"github.com/xapi-go/xapi-go/backends/backendtest"
)

// BenchmarkStartShutdown measures one Start plus one hard Shutdown of the
// same domain on a zero-latency simulator.
func BenchmarkStartShutdown(b *testing.B) {
	s := New(Config{})
	defer s.Close()
	ctx := context.Background()
	spec := backendtest.DefaultSpec(nil, backendtest.NewUUID(), "bench")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Start(ctx, spec, false); err != nil {
			b.Fatal(err)
		}
		if err := s.Shutdown(ctx, spec.UUID, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStartShutdownWatched is the same with an event subscriber
// draining the stream.
func BenchmarkStartShutdownWatched(b *testing.B) {
	s := New(Config{})
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := s.Watch(ctx)
	go func() {
		for range ch {
		}
	}()
	spec := backendtest.DefaultSpec(nil, backendtest.NewUUID(), "bench")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Start(ctx, spec, false); err != nil {
			b.Fatal(err)
		}
		if err := s.Shutdown(ctx, spec.UUID, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSample measures one metrics sample with 100 running domains.
func BenchmarkSample(b *testing.B) {
	s := New(Config{MemoryTotal: 1 << 40})
	defer s.Close()
	ctx := context.Background()
	for range 100 {
		spec := backendtest.DefaultSpec(nil, backendtest.NewUUID(), "")
		if _, err := s.Start(ctx, spec, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sample(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
