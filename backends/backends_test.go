package backends_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/xapi-go/xapi-go/backends"
)

// TestAllowedOpsTable pins the legality table to xapi's lifecycle.
func TestAllowedOpsTable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		state backends.PowerState
		want  []backends.Op
	}{
		{backends.Halted, []backends.Op{backends.OpStart, backends.OpDestroy}},
		{backends.Paused, []backends.Op{backends.OpHardShutdown, backends.OpHardReboot, backends.OpUnpause, backends.OpSetMemoryTarget, backends.OpDestroy}},
		{backends.Running, []backends.Op{backends.OpCleanShutdown, backends.OpHardShutdown, backends.OpCleanReboot, backends.OpHardReboot,
			backends.OpSuspend, backends.OpPause, backends.OpSetMemoryTarget, backends.OpSetVCPUs, backends.OpDestroy}},
		{backends.Suspended, []backends.Op{backends.OpHardShutdown, backends.OpResume, backends.OpDestroy}},
	}
	for _, tt := range tests {
		t.Run(tt.state.String(), func(t *testing.T) {
			t.Parallel()
			if got := backends.AllowedOps(tt.state); !slices.Equal(got, tt.want) {
				t.Fatalf("AllowedOps(%v) = %v, want %v", tt.state, got, tt.want)
			}
		})
	}
}

func TestBadPowerStateError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		op           backends.Op
		actual       backends.PowerState
		wantExpected string
	}{
		{backends.OpStart, backends.Running, "halted"},
		{backends.OpHardShutdown, backends.Halted, "paused, running, suspended"},
		{backends.OpUnpause, backends.Running, "paused"},
		{backends.OpSetMemoryTarget, backends.Suspended, "paused, running"},
	}
	for _, tt := range tests {
		t.Run(string(tt.op), func(t *testing.T) {
			t.Parallel()
			err := backends.CheckPowerState("u1", tt.op, tt.actual)
			var bad *backends.BadPowerStateError
			if !errors.As(err, &bad) || !errors.Is(err, backends.ErrBadPowerState) {
				t.Fatalf("CheckPowerState = %v", err)
			}
			if bad.ExpectedString() != tt.wantExpected || bad.Actual.Lower() != tt.actual.Lower() {
				t.Fatalf("expected %q actual %q", bad.ExpectedString(), bad.Actual.Lower())
			}
			if errors.Is(err, backends.ErrNotFound) {
				t.Fatal("matches ErrNotFound")
			}
		})
	}
	if err := backends.CheckPowerState("u1", backends.OpStart, backends.Halted); err != nil {
		t.Fatalf("legal op refused: %v", err)
	}
}

func TestErrorsMatch(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		err  error
		is   []error
	}{
		{"not found", backends.NotFound("u"), []error{backends.ErrNotFound}},
		{"memory", &backends.NotEnoughMemoryError{Needed: 2, Available: 1}, []error{backends.ErrNotEnoughMemory}},
		{"cancelled", backends.Cancelled(ctx), []error{backends.ErrCancelled, context.Canceled}},
		{"invalid", backends.Invalidf("x %d", 1), []error{backends.ErrInvalid}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, target := range tt.is {
				if !errors.Is(tt.err, target) {
					t.Errorf("%v does not match %v", tt.err, target)
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	good := backends.DomainSpec{UUID: "u", VCPUs: 1, MemoryStaticMin: 1, MemoryDynamicMin: 2, MemoryDynamicMax: 3, MemoryStaticMax: 4}
	tests := []struct {
		name   string
		mutate func(*backends.DomainSpec)
		ok     bool
	}{
		{"good", func(*backends.DomainSpec) {}, true},
		{"no uuid", func(s *backends.DomainSpec) { s.UUID = "" }, false},
		{"zero vcpus", func(s *backends.DomainSpec) { s.VCPUs = 0 }, false},
		{"max below vcpus", func(s *backends.DomainSpec) { s.VCPUs, s.VCPUsMax = 2, 1 }, false},
		{"static min above dynamic min", func(s *backends.DomainSpec) { s.MemoryStaticMin = 3 }, false},
		{"dynamic max above static max", func(s *backends.DomainSpec) { s.MemoryDynamicMax = 5 }, false},
		{"zero memory", func(s *backends.DomainSpec) { *s = backends.DomainSpec{UUID: "u", VCPUs: 1} }, false},
		{"duplicate nic", func(s *backends.DomainSpec) { s.NICs = []backends.NIC{{Device: 0}, {Device: 0}} }, false},
		{"duplicate disk", func(s *backends.DomainSpec) { s.Disks = []backends.Disk{{Device: "0"}, {Device: "0"}} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := good.Clone()
			tt.mutate(&s)
			err := s.Validate()
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, backends.ErrInvalid)) {
				t.Fatalf("Validate = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestFeaturesSupports(t *testing.T) {
	t.Parallel()
	var none backends.Features
	for _, op := range backends.Ops {
		want := op != backends.OpSuspend && op != backends.OpResume && op != backends.OpSetVCPUs && op != backends.OpSetMemoryTarget
		if got := none.Supports(op); got != want {
			t.Errorf("Supports(%s) = %v with no features", op, got)
		}
	}
}

func TestBroadcasterOrderAndClose(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := backends.NewBroadcaster(0)
		ctx, cancel := context.WithCancel(t.Context())
		a := b.Watch(ctx)
		c := b.Watch(t.Context())
		for i := range 100 {
			b.Publish(backends.Event{Kind: backends.EventStarted, DomID: i})
		}
		for _, ch := range []<-chan backends.Event{a, c} {
			for i := range 100 {
				if ev := <-ch; ev.DomID != i {
					t.Fatalf("event %d has domid %d", i, ev.DomID)
				}
			}
		}
		cancel()
		synctest.Wait()
		if _, ok := <-a; ok {
			t.Fatal("channel open after its context ended")
		}
		b.Close()
		if _, ok := <-c; ok {
			t.Fatal("channel open after Close")
		}
		if _, ok := <-b.Watch(t.Context()); ok {
			t.Fatal("Watch after Close returned an open channel")
		}
		b.Publish(backends.Event{}) // no subscribers, no panic
	})
}

func TestBroadcasterOverflowResyncs(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := backends.NewBroadcaster(4)
		defer b.Close()
		ch := b.Watch(t.Context())
		// The pump takes the first event into its batch and blocks sending
		// it; the queue then overflows.
		for i := range 20 {
			b.Publish(backends.Event{Kind: backends.EventStarted, DomID: i, Time: time.Now()})
			synctest.Wait()
		}
		var kinds []backends.EventKind
		for {
			select {
			case ev := <-ch:
				kinds = append(kinds, ev.Kind)
				continue
			default:
			}
			synctest.Wait()
			select {
			case ev := <-ch:
				kinds = append(kinds, ev.Kind)
				continue
			default:
			}
			break
		}
		if !slices.Contains(kinds, backends.EventResync) || len(kinds) >= 20 {
			t.Fatalf("got kinds %v, want a resync and fewer than 20 events", kinds)
		}
	})
}

func TestPowerStateStrings(t *testing.T) {
	t.Parallel()
	want := []string{"Halted", "Paused", "Running", "Suspended"}
	for i, p := range backends.PowerStates {
		if p.String() != want[i] {
			t.Errorf("%d: %q", i, p.String())
		}
	}
	if backends.PowerState(9).String() != "PowerState(9)" || backends.EventKind(99).String() != "unknown" {
		t.Error("unknown values")
	}
}
