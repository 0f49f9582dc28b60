package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/xapi-go/xapi-go/backends"
	"github.com/xapi-go/xapi-go/backends/backendtest"
)

// model is the property test's idea of one domain.
type model struct {
	known  bool
	state  backends.PowerState
	target int64
	vcpus  int
	domid  int
}

// next returns the state op leads to from a legal state.
func next(op backends.Op, from backends.PowerState) backends.PowerState {
	switch op {
	case backends.OpStart, backends.OpCleanReboot, backends.OpHardReboot, backends.OpResume, backends.OpUnpause:
		return backends.Running
	case backends.OpCleanShutdown, backends.OpHardShutdown, backends.OpDestroy:
		return backends.Halted
	case backends.OpSuspend:
		return backends.Suspended
	case backends.OpPause:
		return backends.Paused
	default:
		return from
	}
}

// knobs are guest/hypervisor actions mixed into the random sequences.
var knobs = []string{"crash", "guest_shutdown", "guest_reboot"}

// TestRandomOperationSequences drives random operations against a few
// domains and checks, after every step, that an operation succeeded exactly
// when backends.OpAllowed said it would, that the resulting state is the one
// the transition table gives, and that memory accounting and domids stay
// consistent.
func TestRandomOperationSequences(t *testing.T) {
	t.Parallel()
	for seed := range uint64(16) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			runRandom(t, seed, 600)
		})
	}
}

func runRandom(t *testing.T, seed uint64, steps int) {
	ctx := context.Background()
	s := New(Config{Seed: seed, CPUs: 4, MemoryTotal: 16 * GiB})
	defer s.Close()
	r := rand.New(rand.NewPCG(seed, 99))
	specs := make([]backends.DomainSpec, 3)
	models := make([]model, len(specs))
	for i := range specs {
		specs[i] = backendtest.DefaultSpec(t, backendtest.NewUUID(), fmt.Sprintf("vm%d", i))
		specs[i].VCPUsMax = 4
	}
	lastDomID := 0
	succeeded := map[string]int{}
	defer func() {
		// Every operation and knob must have succeeded at least once, or
		// the sequence proved little.
		for _, op := range backends.Ops {
			if succeeded[string(op)] == 0 {
				t.Errorf("%s never succeeded", op)
			}
		}
		for _, k := range knobs {
			if succeeded[k] == 0 {
				t.Errorf("%s never succeeded", k)
			}
		}
	}()
	for step := range steps {
		i := r.IntN(len(specs))
		spec, m := specs[i], &models[i]
		var (
			name    string
			err     error
			allowed bool
			to      backends.PowerState
		)
		if r.IntN(8) == 0 {
			name = knobs[r.IntN(len(knobs))]
			switch name {
			case "crash":
				err = s.Crash(spec.UUID)
				to = backends.Halted
			case "guest_shutdown":
				err = s.GuestShutdown(spec.UUID)
				to = backends.Halted
			case "guest_reboot":
				err = s.GuestReboot(spec.UUID)
				to = backends.Running
			}
			allowed = m.known && m.state == backends.Running
		} else {
			// Half the time pick a legal operation so the walk goes deep.
			op := backends.Ops[r.IntN(len(backends.Ops))]
			if legal := backends.AllowedOps(m.state); r.IntN(2) == 0 {
				op = legal[r.IntN(len(legal))]
			}
			name = string(op)
			err = backendtest.Do(ctx, s, op, spec)
			allowed = (m.known || op == backends.OpStart) && backends.OpAllowed(op, m.state)
			to = next(op, m.state)
		}
		where := fmt.Sprintf("step %d: %s on vm%d in %v (known %v)", step, name, i, m.state, m.known)
		switch {
		case !m.known && name != string(backends.OpStart):
			if !errors.Is(err, backends.ErrNotFound) {
				t.Fatalf("%s: %v, want ErrNotFound", where, err)
			}
			continue
		case !allowed:
			var bad *backends.BadPowerStateError
			if !errors.As(err, &bad) || bad.Actual != m.state {
				t.Fatalf("%s: %v, want BadPowerStateError with actual %v", where, err, m.state)
			}
			if op := backends.Op(name); slices.Contains(backends.Ops, op) && !slices.Equal(bad.Expected, backends.RequiredStates(op)) {
				t.Fatalf("%s: expected %v, want %v", where, bad.Expected, backends.RequiredStates(op))
			}
		case err != nil:
			t.Fatalf("%s: allowed operation failed: %v", where, err)
		default:
			succeeded[name]++
			// Apply to the model.
			wasActive := m.state.Active() && m.known
			switch backends.Op(name) {
			case backends.OpStart:
				m.known, m.target, m.vcpus = true, spec.MemoryDynamicMax, spec.VCPUs
			case backends.OpDestroy:
				*m = model{}
			case backends.OpSetMemoryTarget:
				m.target = spec.MemoryDynamicMin
			case backends.OpSetVCPUs:
				m.vcpus = spec.MaxVCPUs()
			}
			if m.known {
				if to == backends.Halted {
					m.target = 0
				}
				if (to.Active() && !wasActive) || name == string(backends.OpCleanReboot) || name == string(backends.OpHardReboot) || name == "guest_reboot" {
					m.vcpus = spec.VCPUs
				}
				m.state = to
			}
		}
		// Compare every domain with the model.
		var wantUsed int64
		for j, mj := range models {
			st, err := s.State(ctx, specs[j].UUID)
			if !mj.known {
				if !errors.Is(err, backends.ErrNotFound) {
					t.Fatalf("%s: vm%d should be unknown, got %+v %v", where, j, st, err)
				}
				continue
			}
			if err != nil || st.PowerState != mj.state {
				t.Fatalf("%s: vm%d state %v %v, want %v", where, j, st.PowerState, err, mj.state)
			}
			if st.Active() {
				wantUsed += mj.target + s.MemoryOverhead(specs[j])
				if st.MemoryTarget != mj.target || st.VCPUs != mj.vcpus {
					t.Fatalf("%s: vm%d %+v, want target %d vcpus %d", where, j, st, mj.target, mj.vcpus)
				}
				if st.DomID <= 0 {
					t.Fatalf("%s: vm%d active with domid %d", where, j, st.DomID)
				}
				if st.DomID != mj.domid {
					if st.DomID <= lastDomID {
						t.Fatalf("%s: vm%d new domid %d not above %d", where, j, st.DomID, lastDomID)
					}
					lastDomID = st.DomID
					models[j].domid = st.DomID
				}
			} else if st.DomID != -1 {
				t.Fatalf("%s: vm%d inactive with domid %d", where, j, st.DomID)
			}
		}
		if got := s.MemoryUsed(); got != wantUsed {
			t.Fatalf("%s: memory used %d, want %d", where, got, wantUsed)
		}
	}
}
