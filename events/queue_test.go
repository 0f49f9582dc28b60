package events

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
)

// nextNow is Next that must not block.
func nextNow(t *testing.T, q *Queue) ([]Event, error) {
	t.Helper()
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("would block"))
	// a cancelled context still returns what is there: read() runs first
	return q.Next(ctx)
}

// TestQueueOwnLoss: a queue registered for pool is not lost by network
// changes overflowing the buffer; one registered for network is, once, and
// then continues from the present.
func TestQueueOwnLoss(t *testing.T) {
	b := New(Config{MaxChanges: 50})
	b.Anchor(10, nil)
	pools, nets := b.NewQueue(nil), b.NewQueue(nil)
	pools.Register([]string{"POOL"})
	nets.Register([]string{"network"})
	index := uint64(10)
	for i := range 500 {
		index++
		b.Publish(index, []Change{{Class: datamodel.NetworkClass, Ref: fmt.Sprint("n", i%7), Kind: Mod, Obj: net("x")}})
	}
	index++
	b.Publish(index, []Change{{Class: datamodel.PoolClass, Ref: "p", Kind: Mod, Obj: poolObj("p1")}})
	evs, err := nextNow(t, pools)
	if err != nil || len(evs) != 1 || evs[0].Ref != "p" || evs[0].Kind != Mod || evs[0].Index != index {
		t.Fatalf("pool queue: %+v %v", evs, err)
	}
	if _, err := nextNow(t, nets); !errors.Is(err, ErrLost) {
		t.Fatalf("network queue: %v, want ErrLost", err)
	}
	index++
	b.Publish(index, []Change{{Class: datamodel.NetworkClass, Ref: "n1", Kind: Mod, Obj: net("after")}})
	evs, err = nextNow(t, nets)
	if err != nil || len(evs) != 1 || datamodel.NameLabelOf(evs[0].Obj) != "after" {
		t.Fatalf("network queue after loss: %+v %v", evs, err)
	}
	if got := pools.Subscriptions(); !slices.Equal(got, []string{"pool"}) {
		t.Errorf("subscriptions %q", got)
	}
}

// TestQueueRegisterUnregister: a subscription concerns changes from its
// registration (neither earlier events nor earlier evictions), unregister
// drops the unread events only it matched, and both wake a blocked Next.
func TestQueueRegisterUnregister(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(Config{MaxChanges: 10})
		b.Anchor(10, nil)
		q := b.NewQueue(nil)
		q.Register([]string{"vm"})
		// network changes before network is registered, some evicted below
		index := uint64(10)
		for i := range 15 {
			index++
			b.Publish(index, []Change{{Class: datamodel.NetworkClass, Ref: fmt.Sprint("old", i), Kind: Add, Obj: net("old")}})
		}
		q.Register([]string{"network", "vm/v"}) // vm/v is covered by vm already
		index++
		b.Publish(index, []Change{{Class: datamodel.VMClass, Ref: "v", Kind: Add, Obj: vm("a")}})
		index++
		b.Publish(index, []Change{
			{Class: datamodel.NetworkClass, Ref: "new", Kind: Add, Obj: net("new")},
			{Class: datamodel.VMClass, Ref: "v", Kind: Mod, Obj: vm("b")},
		})
		if b.Floor() <= 10 {
			t.Fatalf("floor %d: nothing evicted", b.Floor())
		}
		evs, err := nextNow(t, q)
		if got := render(evs); err != nil || !slices.Equal(got, []string{
			fmt.Sprintf("%d add vm v b", index), fmt.Sprintf("%d add network new new", index),
		}) {
			t.Fatalf("after register: %q %v", got, err)
		}
		for range 10 {
			index++
			b.Publish(index, []Change{{Class: datamodel.PoolClass, Ref: "p", Kind: Mod, Obj: poolObj("x")}})
		}
		if evs, err := nextNow(t, q); err == nil || errors.Is(err, ErrLost) || len(evs) != 0 {
			t.Fatalf("pool changes: %+v %v", evs, err)
		}

		// unregister drops unread network events
		index++
		b.Publish(index, []Change{{Class: datamodel.NetworkClass, Ref: "new", Kind: Mod, Obj: net("dropped")}})
		q.Unregister([]string{"NETWORK"})
		if evs, err := nextNow(t, q); errors.Is(err, ErrLost) || len(evs) != 0 {
			t.Fatalf("after unregister: %+v %v", evs, err)
		}

		// a blocked Next follows register and unregister
		type res struct {
			evs []Event
			err error
		}
		done := make(chan res, 1)
		go func() {
			evs, err := q.Next(context.Background())
			done <- res{evs, err}
		}()
		synctest.Wait()
		q.Unregister([]string{"vm", "vm/v"})
		q.Register([]string{"pool"})
		synctest.Wait()
		index++
		b.Publish(index, []Change{{Class: datamodel.VMClass, Ref: "v", Kind: Mod, Obj: vm("c")}})
		synctest.Wait()
		select {
		case r := <-done:
			t.Fatalf("woken by an unregistered class: %+v", r)
		default:
		}
		time.Sleep(time.Minute)
		index++
		b.Publish(index, []Change{{Class: datamodel.PoolClass, Ref: "p", Kind: Mod, Obj: poolObj("y")}})
		r := <-done
		if got := render(r.evs); r.err != nil || !slices.Equal(got, []string{fmt.Sprintf("%d mod pool p y", index)}) {
			t.Fatalf("blocked next: %q %v", got, r.err)
		}

		// cancellation and reset
		ctx, cancel := context.WithCancelCause(context.Background())
		errDone := make(chan error, 1)
		go func() {
			_, err := q.Next(ctx)
			errDone <- err
		}()
		synctest.Wait()
		gone := errors.New("session gone")
		cancel(gone)
		if err := <-errDone; err != gone {
			t.Errorf("cancel: %v", err)
		}
		go func() {
			_, err := q.Next(context.Background())
			errDone <- err
		}()
		synctest.Wait()
		b.Reset(index+5, nil)
		if err := <-errDone; !errors.Is(err, ErrLost) {
			t.Errorf("reset: %v", err)
		}
		if b.Waiters() != 0 {
			t.Errorf("%d waiters left", b.Waiters())
		}
	})
}

// TestPropertyQueue: random histories and random register/unregister; every
// read returns exactly, per object, the coalesced changes since the later of
// the last read and the registration of the oldest subscription matching it
// (none from before; a client cache stays equal to the model), and ErrLost
// exactly when a change of a subscribed class, made after that point, was
// evicted.
func TestPropertyQueue(t *testing.T) {
	pool := []string{"*", "vm", "network", "pool", "vm/r1", "network/r2", "pool/r0"}
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 5))
		maxChanges := 5 + rng.IntN(100)
		b := New(Config{MaxChanges: maxChanges})
		b.Anchor(0, nil)
		g := &historyGen{rng: rng, m: &model{state: map[objKey]datamodel.Object{}}}
		q := b.NewQueue(nil)
		since := map[string]uint64{} // model of the registrations
		pos := uint64(0)
		filters := map[string]*Filter{}
		for _, s := range pool {
			filters[s] = ParseFilter([]string{s}, nil)
		}
		losses, reads := 0, 0
		for range 800 {
			g.entry(b)
			switch r := rng.IntN(20); {
			case r == 0:
				s := pool[rng.IntN(len(pool))]
				if _, ok := since[s]; !ok {
					since[s] = g.index
				}
				q.Register([]string{s})
			case r == 1:
				s := pool[rng.IntN(len(pool))]
				delete(since, s)
				q.Unregister([]string{s})
			case r < 5:
				evs, err := nextNow(t, q)
				lost := false
				for s, si := range since {
					if g.m.evictedAfter(maxChanges, max(si, pos), filters[s].MatchClass) {
						lost = true
					}
				}
				if errors.Is(err, ErrLost) != lost {
					t.Fatalf("seed %d: err %v, really lost %v (subs %v, pos %d)", seed, err, lost, since, pos)
				}
				if !lost {
					if len(evs) == 0 && err == nil {
						t.Fatalf("seed %d: Next returned nothing without blocking", seed)
					}
					// per object: the window starts at the oldest subscription matching it
					var want []string
					done := map[objKey]bool{}
					for i, ch := range g.m.hist {
						k := objKey{ch.Class, ch.Ref}
						if done[k] {
							continue
						}
						from, ok := uint64(0), false
						for s, si := range since {
							if filters[s].Match(ch.Class, ch.Ref) && (!ok || max(si, pos) < from) {
								from, ok = max(si, pos), true
							}
						}
						if !ok || g.m.idx[i] <= from {
							continue
						}
						done[k] = true
						want = append(want, g.m.expect(ParseFilter([]string{ch.Class.Lower + "/" + ch.Ref}, nil), from)...)
					}
					got := render(evs)
					if !slices.IsSortedFunc(evs, func(x, y Event) int { return cmp.Or(cmp.Compare(x.Kind, y.Kind), cmp.Compare(x.Index, y.Index)) }) {
						t.Fatalf("seed %d: not in order: %q", seed, got)
					}
					slices.Sort(got)
					slices.Sort(want)
					if !slices.Equal(got, want) {
						t.Fatalf("seed %d: subs %v pos %d:\n got %q\nwant %q", seed, since, pos, got, want)
					}
					reads++
				} else {
					losses++
				}
				pos = g.index
				for s := range since {
					since[s] = pos
				}
			}
		}
		if seed == 0 {
			t.Logf("%d reads, %d losses", reads, losses)
		}
	}
}
