package events

import (
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

func poolObj(name string) datamodel.Object {
	r := datamodel.NewPoolRecord()
	r.NameLabel = name
	return r
}

// randomHistory publishes one random entry (changes of vm, network and pool
// objects, network-heavy) into b and the model.
type historyGen struct {
	rng   *rand.Rand
	m     *model
	index uint64
	step  int
}

func (g *historyGen) entry(b *Buffer) {
	g.step++
	g.index += 1 + uint64(g.rng.IntN(2))
	var chs []Change
	seen := map[objKey]bool{}
	for range g.rng.IntN(5) {
		var c *datamodel.Class
		var mk func(string) datamodel.Object
		switch r := g.rng.IntN(10); {
		case r < 6:
			c, mk = datamodel.NetworkClass, net
		case r < 9:
			c, mk = datamodel.VMClass, vm
		default:
			c, mk = datamodel.PoolClass, poolObj
		}
		k := objKey{c, fmt.Sprintf("r%d", g.rng.IntN(5))}
		if seen[k] {
			continue
		}
		seen[k] = true
		name := fmt.Sprintf("s%d", g.step)
		var ch Change
		switch _, ok := g.m.state[k]; {
		case !ok:
			ch = Change{Class: c, Ref: k.ref, Kind: Add, Obj: mk(name)}
		case g.rng.IntN(4) == 0:
			ch = Change{Class: c, Ref: k.ref, Kind: Del, Obj: g.m.state[k]}
		default:
			ch = Change{Class: c, Ref: k.ref, Kind: Mod, Obj: mk(name)}
		}
		if ch.Kind == Del {
			delete(g.m.state, k)
		} else {
			g.m.state[k] = ch.Obj
		}
		chs = append(chs, ch)
		g.m.hist = append(g.m.hist, ch)
		g.m.idx = append(g.m.idx, g.index)
	}
	b.Publish(g.index, chs)
}

// evictedAfter reports whether a change matching covers, made after index
// from, has been evicted (the buffer keeps the last maxChanges changes).
func (m *model) evictedAfter(maxChanges int, from uint64, covers func(*datamodel.Class) bool) bool {
	for i := range len(m.hist) - maxChanges {
		if m.idx[i] > from && covers(m.hist[i].Class) {
			return true
		}
	}
	return false
}

// TestPropertyClassLoss: filtered subscribers following random histories with
// a small retention get exactly the changes of their classes (coalesced, in
// order, no gap, no duplicate), and ErrLost only when a change of a class they
// cover, made after their token, was really evicted.
func TestPropertyClassLoss(t *testing.T) {
	subs := [][]string{{"*"}, {"vm"}, {"network"}, {"pool"}, {"vm", "pool"}, {"vm/r1"}, {"pool/r2", "vm/r3"}, nil}
	for seed := range uint64(25) {
		rng := rand.New(rand.NewPCG(seed, 11))
		maxChanges := 5 + rng.IntN(120)
		b := New(Config{MaxChanges: maxChanges, Classes: []*datamodel.Class{datamodel.VMClass, datamodel.NetworkClass, datamodel.PoolClass}})
		b.Anchor(0, nil)
		g := &historyGen{rng: rng, m: &model{state: map[objKey]datamodel.Object{}}}
		type client struct {
			f      *Filter
			specs  []string
			token  uint64
			cache  map[objKey]string
			reads  int
			losses int
		}
		var cls []*client
		for _, s := range subs {
			cls = append(cls, &client{f: ParseFilter(s, nil), specs: s, cache: map[objKey]string{}})
		}
		for range 1200 {
			g.entry(b)
			for _, cl := range cls {
				// pool subscribers read rarely, others more often
				if rng.IntN(12) != 0 {
					continue
				}
				got, err := b.Collect(cl.f, cl.token)
				lost := g.m.evictedAfter(maxChanges, cl.token, cl.f.MatchClass)
				if errors.Is(err, ErrLost) != lost {
					t.Fatalf("seed %d %v token %d: err %v, really lost %v (max %d)", seed, cl.specs, cl.token, err, lost, maxChanges)
				}
				if lost {
					cl.losses++
					clear(cl.cache)
					for k, o := range g.m.state {
						if cl.f.Match(k.class, k.ref) {
							cl.cache[k] = datamodel.NameLabelOf(o)
						}
					}
					cl.token = g.index
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if want := g.m.expect(cl.f, cl.token); !slices.Equal(render(got.Events), want) {
					t.Fatalf("seed %d %v from %d:\n got %q\nwant %q", seed, cl.specs, cl.token, render(got.Events), want)
				}
				for _, e := range got.Events {
					k := objKey{e.Class, e.Ref}
					_, had := cl.cache[k]
					switch {
					case e.Kind == Add && had, e.Kind != Add && !had:
						t.Fatalf("seed %d %v: %s of %s (cached %v)", seed, cl.specs, e.Kind, e.Ref, had)
					case e.Kind == Del:
						delete(cl.cache, k)
					default:
						cl.cache[k] = datamodel.NameLabelOf(e.Obj)
					}
				}
				n := 0
				for k, o := range g.m.state {
					if cl.f.Match(k.class, k.ref) {
						n++
						if cl.cache[k] != datamodel.NameLabelOf(o) {
							t.Fatalf("seed %d %v: client has %q for %s, want %q", seed, cl.specs, cl.cache[k], k.ref, datamodel.NameLabelOf(o))
						}
					}
				}
				if len(cl.cache) != n {
					t.Fatalf("seed %d %v: client caches %d objects, want %d", seed, cl.specs, len(cl.cache), n)
				}
				cl.token = got.Token
				cl.reads++
			}
		}
		if seed == 0 {
			for _, cl := range cls {
				t.Logf("%v: %d reads, %d losses", cl.specs, cl.reads, cl.losses)
			}
		}
	}
}

// TestNoFalseLoss: a vm subscriber is not lost by any number of network
// changes (the xapid report: a vm long poll during 70,000 network writes);
// "*" and "network" subscribers with the same token are.
func TestNoFalseLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(Config{MaxChanges: 100})
		b.Anchor(10, nil)
		b.Publish(11, []Change{{Class: datamodel.VMClass, Ref: "v", Kind: Add, Obj: vm("a")}})
		type res struct {
			b   Batch
			err error
		}
		done := make(chan res, 1)
		go func() {
			got, err := b.Wait(context.Background(), ParseFilter([]string{"vm"}, nil), 11, time.Hour)
			done <- res{got, err}
		}()
		synctest.Wait()
		index := uint64(11)
		for i := range 1000 {
			index++
			b.Publish(index, []Change{{Class: datamodel.NetworkClass, Ref: fmt.Sprint("n", i%10), Kind: Mod, Obj: net("x")}})
		}
		synctest.Wait()
		select {
		case r := <-done:
			t.Fatalf("vm waiter woken by network changes: %+v", r)
		default:
		}
		if b.Floor() <= 11 {
			t.Fatalf("floor %d: nothing evicted", b.Floor())
		}
		index++
		b.Publish(index, []Change{{Class: datamodel.VMClass, Ref: "v", Kind: Mod, Obj: vm("b")}})
		r := <-done
		if r.err != nil || len(r.b.Events) != 1 || r.b.Events[0].Kind != Mod || datamodel.NameLabelOf(r.b.Events[0].Obj) != "b" || r.b.Token != index {
			t.Fatalf("vm waiter: %+v %v", r.b, r.err)
		}
		for _, specs := range [][]string{{"vm"}, {"vm/v"}, {"pool"}} {
			got, err := b.Collect(ParseFilter(specs, nil), 11)
			if err != nil || (specs[0] != "pool") != (len(got.Events) == 1) {
				t.Errorf("%v from 11: %+v %v", specs, got, err)
			}
		}
		for _, specs := range [][]string{{"*"}, {"network"}, {"vm", "network/n1"}} {
			if _, err := b.Collect(ParseFilter(specs, nil), 11); !errors.Is(err, ErrLost) {
				t.Errorf("%v from 11: %v, want ErrLost", specs, err)
			}
		}
		// now a vm change is evicted too: the old vm token is lost, a newer one not
		for range 200 {
			index++
			b.Publish(index, []Change{{Class: datamodel.NetworkClass, Ref: "n1", Kind: Mod, Obj: net("y")}})
		}
		if _, err := b.Collect(ParseFilter([]string{"vm"}, nil), 11); !errors.Is(err, ErrLost) {
			t.Errorf("vm from 11 after its change was evicted: %v", err)
		}
		if got, err := b.Collect(ParseFilter([]string{"vm"}, nil), r.b.Token); err != nil || len(got.Events) != 0 {
			t.Errorf("vm from %d: %+v %v", r.b.Token, got, err)
		}
		// Reset loses every filter
		b.Reset(index+1, nil)
		if _, err := b.Collect(ParseFilter([]string{"pool"}, nil), index); !errors.Is(err, ErrLost) {
			t.Errorf("pool across a reset: %v", err)
		}
	})
}
