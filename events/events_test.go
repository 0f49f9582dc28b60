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

func vm(name string) datamodel.Object {
	r := datamodel.NewVMRecord()
	r.NameLabel = name
	return r
}

func net(name string) datamodel.Object {
	r := datamodel.NewNetworkRecord()
	r.NameLabel = name
	return r
}

func anchored(t testing.TB, cfg Config) *Buffer {
	t.Helper()
	b := New(cfg)
	b.Anchor(10, nil)
	return b
}

func TestToken(t *testing.T) {
	for _, idx := range []uint64{0, 1, 42, 1<<64 - 1} {
		s := FormatToken(idx)
		if len(s) != 41 {
			t.Errorf("FormatToken(%d) = %q", idx, s)
		}
		got, err := ParseToken(s)
		if err != nil || got != idx {
			t.Errorf("ParseToken(%q) = %d, %v", s, got, err)
		}
	}
	if FormatToken(9) >= FormatToken(10) {
		t.Error("tokens do not compare as strings")
	}
	if got, err := ParseToken(""); err != nil || got != 0 {
		t.Errorf(`ParseToken("") = %d, %v`, got, err)
	}
	if got, err := ParseToken("5,7"); err != nil || got != 5 {
		t.Errorf(`ParseToken("5,7") = %d, %v`, got, err)
	}
	for _, bad := range []string{"garbage", "12", ",", "1,", ",1", "-1,0", "1,x", "1,2,3", " 1,2"} {
		_, err := ParseToken(bad)
		var te *TokenError
		if !errors.As(err, &te) || te.Token != bad {
			t.Errorf("ParseToken(%q) = %v, want TokenError", bad, err)
		}
	}
}

func TestFilter(t *testing.T) {
	f := ParseFilter([]string{"VM", "network/OpaqueRef:n1", "nonsense", "session", "Host/x/y"}, nil)
	cases := []struct {
		c    *datamodel.Class
		ref  string
		want bool
	}{
		{datamodel.VMClass, "OpaqueRef:a", true},
		{datamodel.NetworkClass, "OpaqueRef:n1", true},
		{datamodel.NetworkClass, "OpaqueRef:n2", false},
		{datamodel.HostClass, "x/y", true},
		{datamodel.HostClass, "x", false},
		{datamodel.PoolClass, "OpaqueRef:p", false},
		{datamodel.SessionClass, "OpaqueRef:s", false},
	}
	for _, tc := range cases {
		if got := f.Match(tc.c, tc.ref); got != tc.want {
			t.Errorf("Match(%s, %s) = %v", tc.c.Name, tc.ref, got)
		}
	}
	if f.All() || f.Empty() || !f.MatchClass(datamodel.NetworkClass) || f.MatchClass(datamodel.PoolClass) {
		t.Error("class matching")
	}
	if all := ParseFilter([]string{"*"}, nil); !all.All() || !all.Match(datamodel.PoolClass, "x") {
		t.Error(`"*" does not match everything`)
	}
	if e := ParseFilter([]string{"session", "bogus"}, nil); !e.Empty() || e.Match(datamodel.VMClass, "x") {
		t.Error("filter of unknown classes is not empty")
	}
	if !(*Filter)(nil).Empty() {
		t.Error("nil filter not empty")
	}
}

func TestCoalescing(t *testing.T) {
	all := ParseFilter([]string{"*"}, nil)
	type step struct {
		ref  string
		kind Kind
		name string
	}
	cases := []struct {
		name  string
		pre   []step // before the token
		steps []step // after it
		want  []string
	}{
		{"add", nil, []step{{"a", Add, "1"}}, []string{"add a 1"}},
		{"add mod", nil, []step{{"a", Add, "1"}, {"a", Mod, "2"}}, []string{"add a 2"}},
		{"add del", nil, []step{{"a", Add, "1"}, {"a", Mod, "2"}, {"a", Del, ""}}, nil},
		{"mod mod", []step{{"a", Add, "0"}}, []step{{"a", Mod, "1"}, {"a", Mod, "2"}}, []string{"mod a 2"}},
		{"mod del", []step{{"a", Add, "0"}}, []step{{"a", Mod, "1"}, {"a", Del, ""}}, []string{"del a "}},
		{"del", []step{{"a", Add, "0"}}, []step{{"a", Del, ""}}, []string{"del a "}},
		{"order", []step{{"d", Add, "0"}, {"m", Add, "0"}}, []step{{"d", Del, ""}, {"m", Mod, "1"}, {"a", Add, "1"}, {"b", Add, "1"}},
			[]string{"add a 1", "add b 1", "mod m 1", "del d "}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := anchored(t, Config{})
			idx := uint64(10)
			pub := func(s step) {
				idx++
				b.Publish(idx, []Change{{Class: datamodel.VMClass, Ref: s.ref, Kind: s.kind, Obj: vm(s.name)}})
			}
			for _, s := range tc.pre {
				pub(s)
			}
			token := idx
			for _, s := range tc.steps {
				pub(s)
			}
			got, err := b.Collect(all, token)
			if err != nil {
				t.Fatal(err)
			}
			var ss []string
			for _, e := range got.Events {
				name := ""
				if e.Obj != nil {
					name = datamodel.NameLabelOf(e.Obj)
				}
				if (e.Kind == Del) != (e.Obj == nil) {
					t.Errorf("%s %s: snapshot presence wrong", e.Kind, e.Ref)
				}
				ss = append(ss, fmt.Sprintf("%s %s %s", e.Kind, e.Ref, name))
			}
			if !slices.Equal(ss, tc.want) {
				t.Errorf("events %q, want %q", ss, tc.want)
			}
			if got.Token != idx {
				t.Errorf("token %d, want %d", got.Token, idx)
			}
		})
	}
}

func TestCountsAndAnchor(t *testing.T) {
	cls := []*datamodel.Class{datamodel.VMClass, datamodel.NetworkClass}
	b := New(Config{Classes: cls})
	// published between subscription and anchoring: 5 is already counted, 6 not
	b.Publish(5, []Change{{Class: datamodel.VMClass, Ref: "a", Kind: Add, Obj: vm("a")}})
	b.Publish(6, []Change{{Class: datamodel.VMClass, Ref: "b", Kind: Add, Obj: vm("b")}})
	if _, err := b.Collect(ParseFilter([]string{"*"}, nil), 5); !errors.Is(err, ErrLost) {
		t.Fatalf("before Anchor: %v", err)
	}
	b.Anchor(5, []int32{1, 3})
	b.Publish(6, nil) // replayed: ignored
	b.Publish(7, []Change{{Class: datamodel.NetworkClass, Ref: "n", Kind: Del}})
	got, err := b.Collect(ParseFilter([]string{"vm"}, nil), 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Events) != 1 || got.Events[0].Ref != "b" || got.Token != 7 {
		t.Errorf("events %+v token %d", got.Events, got.Token)
	}
	if !slices.Equal(got.Counts, []int32{2, 2}) {
		t.Errorf("counts %v", got.Counts)
	}
	if _, err := b.Collect(nil, 4); !errors.Is(err, ErrLost) {
		t.Errorf("token before anchor: %v", err)
	}
	b.Reset(20, []int32{7, 0})
	if _, err := b.Collect(nil, 7); !errors.Is(err, ErrLost) {
		t.Errorf("after reset: %v", err)
	}
	if got, err := b.Collect(nil, 20); err != nil || got.Token != 20 || !slices.Equal(got.Counts, []int32{7, 0}) {
		t.Errorf("after reset: %+v %v", got, err)
	}
}

func TestAnchorAfterEviction(t *testing.T) {
	b := New(Config{MaxChanges: 2, Classes: []*datamodel.Class{datamodel.VMClass}})
	for i := uint64(1); i <= 5; i++ {
		b.Publish(i, []Change{{Class: datamodel.VMClass, Ref: fmt.Sprint(i), Kind: Add, Obj: vm("x")}})
	}
	b.Anchor(2, []int32{2})
	if f := b.Floor(); f != 3 {
		t.Errorf("floor %d, want 3 (changes up to 3 were evicted)", f)
	}
	for _, specs := range [][]string{{"*"}, {"vm"}, {"vm/1"}} {
		if _, err := b.Collect(ParseFilter(specs, nil), 2); !errors.Is(err, ErrLost) {
			t.Errorf("%v token 2: %v", specs, err)
		}
	}
	// a filter of other classes (or none) lost nothing
	for _, specs := range [][]string{{"network"}, nil} {
		if _, err := b.Collect(ParseFilter(specs, nil), 2); err != nil {
			t.Errorf("%v token 2: %v", specs, err)
		}
	}
	got, err := b.Collect(ParseFilter([]string{"vm"}, nil), 3)
	if err != nil || len(got.Events) != 2 || got.Counts[0] != 5 || b.Current() != 5 {
		t.Errorf("%+v %v", got, err)
	}
}

// model is the full history the property test checks the buffer against.
type model struct {
	hist  []Change
	idx   []uint64
	state map[objKey]datamodel.Object
}

func (m *model) expect(f *Filter, from uint64) []string {
	type agg struct {
		first, last Kind
		obj         datamodel.Object
		pos         int
		index       uint64
	}
	aggs := map[objKey]*agg{}
	var keys []objKey
	for i, ch := range m.hist {
		if m.idx[i] <= from || !f.Match(ch.Class, ch.Ref) {
			continue
		}
		k := objKey{ch.Class, ch.Ref}
		a := aggs[k]
		if a == nil {
			a = &agg{first: ch.Kind}
			aggs[k] = a
			keys = append(keys, k)
		}
		a.last, a.obj, a.pos, a.index = ch.Kind, ch.Obj, i, m.idx[i]
	}
	type ev struct {
		kind Kind
		pos  int
		s    string
	}
	var evs []ev
	for _, k := range keys {
		a := aggs[k]
		var kind Kind
		switch before, after := a.first != Add, a.last != Del; {
		case !before && after:
			kind = Add
		case before && after:
			kind = Mod
		case before:
			kind = Del
		default:
			continue
		}
		name := ""
		if kind != Del {
			name = datamodel.NameLabelOf(a.obj)
		}
		evs = append(evs, ev{kind, a.pos, fmt.Sprintf("%d %s %s %s %s", a.index, kind, k.class.Lower, k.ref, name)})
	}
	slices.SortFunc(evs, func(x, y ev) int {
		if x.kind != y.kind {
			return int(x.kind) - int(y.kind)
		}
		return x.pos - y.pos
	})
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.s
	}
	return out
}

func render(evs []Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		name := ""
		if e.Obj != nil {
			name = datamodel.NameLabelOf(e.Obj)
		}
		out[i] = fmt.Sprintf("%d %s %s %s %s", e.Index, e.Kind, e.Class.Lower, e.Ref, name)
	}
	return out
}

// TestProperty publishes random histories and checks every collection against
// a brute-force fold of the full history, and that a client following tokens
// ends with exactly the model's objects (ordered, no duplicates, no gaps).
func TestProperty(t *testing.T) {
	filters := [][]string{{"*"}, {"vm"}, {"network"}, {"vm", "network/r1"}, {"VM/r2", "network/r3"}, {"pool"}}
	for seed := range uint64(60) {
		rng := rand.New(rand.NewPCG(seed, 7))
		maxChanges := 1 + rng.IntN(300)
		if seed%4 == 0 {
			maxChanges = 1500 + rng.IntN(1000) // exercises grow
		}
		b := New(Config{MaxChanges: maxChanges, Classes: []*datamodel.Class{datamodel.VMClass, datamodel.NetworkClass}})
		b.Anchor(0, nil)
		m := &model{state: map[objKey]datamodel.Object{}}
		fs := filters[rng.IntN(len(filters))]
		f := ParseFilter(fs, nil)
		type client struct {
			token uint64
			cache map[objKey]string
		}
		cl := &client{cache: map[objKey]string{}}
		index := uint64(0)
		for step := range 800 {
			index += 1 + uint64(rng.IntN(3))
			var chs []Change
			seen := map[objKey]bool{}
			for range rng.IntN(4) {
				c := datamodel.VMClass
				mk := vm
				if rng.IntN(2) == 0 {
					c, mk = datamodel.NetworkClass, net
				}
				k := objKey{c, fmt.Sprintf("r%d", rng.IntN(6))}
				if seen[k] {
					continue // one change per object per entry, as the store publishes
				}
				seen[k] = true
				name := fmt.Sprintf("s%d", step)
				var ch Change
				if _, ok := m.state[k]; !ok {
					ch = Change{Class: c, Ref: k.ref, Kind: Add, Obj: mk(name)}
				} else if rng.IntN(3) == 0 {
					ch = Change{Class: c, Ref: k.ref, Kind: Del, Obj: m.state[k]}
				} else {
					ch = Change{Class: c, Ref: k.ref, Kind: Mod, Obj: mk(name)}
				}
				if ch.Kind == Del {
					delete(m.state, k)
				} else {
					m.state[k] = ch.Obj
				}
				chs = append(chs, ch)
				m.hist = append(m.hist, ch)
				m.idx = append(m.idx, index)
			}
			b.Publish(index, chs)

			// random token check against the model
			from := uint64(rng.IntN(int(index) + 2))
			got, err := b.Collect(f, from)
			floor := b.FloorFor(f)
			switch {
			case from < floor:
				if !errors.Is(err, ErrLost) {
					t.Fatalf("seed %d: from %d < floor %d: err %v", seed, from, floor, err)
				}
			case err != nil:
				t.Fatalf("seed %d: from %d: %v", seed, from, err)
			default:
				if want := m.expect(f, from); !slices.Equal(render(got.Events), want) {
					t.Fatalf("seed %d step %d from %d filter %v:\n got %q\nwant %q", seed, step, from, fs, render(got.Events), want)
				}
				if got.Token != max(from, index) {
					t.Fatalf("token %d, want %d", got.Token, index)
				}
			}
			// retention: at most maxChanges kept, and every change after floor kept
			floor = b.Floor()
			kept := 0
			for _, i := range m.idx {
				if i > floor {
					kept++
				}
			}
			if kept > maxChanges {
				t.Fatalf("seed %d: floor %d leaves %d changes > max %d", seed, floor, kept, maxChanges)
			}

			// the following client
			if rng.IntN(3) == 0 {
				got, err := b.Collect(f, cl.token)
				if errors.Is(err, ErrLost) {
					// re-read everything, as a client does after EVENTS_LOST
					clear(cl.cache)
					for k, o := range m.state {
						if f.Match(k.class, k.ref) {
							cl.cache[k] = datamodel.NameLabelOf(o)
						}
					}
					cl.token = index
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range got.Events {
					k := objKey{e.Class, e.Ref}
					_, had := cl.cache[k]
					switch {
					case e.Kind == Add && had, e.Kind != Add && !had:
						t.Fatalf("seed %d: %s of %s (cached %v)", seed, e.Kind, e.Ref, had)
					case e.Kind == Del:
						delete(cl.cache, k)
					default:
						cl.cache[k] = datamodel.NameLabelOf(e.Obj)
					}
				}
				if got.Token <= cl.token && len(got.Events) > 0 {
					t.Fatalf("token did not advance")
				}
				cl.token = got.Token
				for k, o := range m.state {
					if f.Match(k.class, k.ref) && cl.cache[k] != datamodel.NameLabelOf(o) {
						t.Fatalf("seed %d: client has %q for %s, want %q", seed, cl.cache[k], k.ref, datamodel.NameLabelOf(o))
					}
				}
				n := 0
				for k := range m.state {
					if f.Match(k.class, k.ref) {
						n++
					}
				}
				if len(cl.cache) != n {
					t.Fatalf("seed %d: client caches %d objects, want %d", seed, len(cl.cache), n)
				}
				var vms int32
				for k := range m.state {
					if k.class == datamodel.VMClass {
						vms++
					}
				}
				if got.Counts[0] != vms {
					t.Fatalf("seed %d: vm count %d, want %d", seed, got.Counts[0], vms)
				}
			}
		}
	}
}

func TestWaitTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := anchored(t, Config{})
		start := time.Now()
		got, err := b.Wait(context.Background(), ParseFilter([]string{"*"}, nil), 10, 1500*time.Millisecond)
		if err != nil || len(got.Events) != 0 || got.Token != 10 || got.Counts == nil {
			t.Fatalf("%+v %v", got, err)
		}
		if d := time.Since(start); d != 1500*time.Millisecond {
			t.Errorf("waited %v", d)
		}
		// non-matching changes advance the token but do not end the wait
		go func() {
			time.Sleep(time.Second)
			b.Publish(11, []Change{{Class: datamodel.NetworkClass, Ref: "n", Kind: Add, Obj: net("n")}})
		}()
		start = time.Now()
		got, err = b.Wait(context.Background(), ParseFilter([]string{"vm"}, nil), 10, 2*time.Second)
		if err != nil || len(got.Events) != 0 || got.Token != 11 || time.Since(start) != 2*time.Second {
			t.Fatalf("%+v %v after %v", got, err, time.Since(start))
		}
		// zero timeout: no wait at all
		got, err = b.Wait(context.Background(), ParseFilter([]string{"vm"}, nil), 11, 0)
		if err != nil || got.Token != 11 || time.Since(start) != 2*time.Second {
			t.Fatalf("%+v %v", got, err)
		}
		if b.Waiters() != 0 {
			t.Errorf("%d waiters left", b.Waiters())
		}
	})
}

func TestWaitWakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := anchored(t, Config{})
		type res struct {
			b   Batch
			err error
			at  time.Duration
		}
		start := time.Now()
		wait := func(specs ...string) chan res {
			ch := make(chan res, 1)
			go func() {
				got, err := b.Wait(context.Background(), ParseFilter(specs, nil), 10, time.Hour)
				ch <- res{got, err, time.Since(start)}
			}()
			return ch
		}
		all, vms, one, nets := wait("*"), wait("vm"), wait("vm/b"), wait("network", "pool")
		synctest.Wait()
		if b.Waiters() != 4 {
			t.Fatalf("%d waiters", b.Waiters())
		}
		time.Sleep(time.Minute)
		b.Publish(11, []Change{{Class: datamodel.VMClass, Ref: "a", Kind: Add, Obj: vm("a")}})
		synctest.Wait()
		for name, ch := range map[string]chan res{"all": all, "vm": vms} {
			select {
			case r := <-ch:
				if r.err != nil || len(r.b.Events) != 1 || r.b.Token != 11 || r.at != time.Minute {
					t.Errorf("%s: %+v", name, r)
				}
			default:
				t.Errorf("%s not woken", name)
			}
		}
		if b.wokenLast != 3 {
			t.Errorf("woke %d waiters, want 3 (all, vm, vm/b)", b.wokenLast)
		}
		select {
		case r := <-one:
			t.Fatalf("vm/b woken by vm/a: %+v", r)
		case r := <-nets:
			t.Fatalf("network woken by vm: %+v", r)
		default:
		}
		time.Sleep(time.Second)
		b.Publish(12, []Change{{Class: datamodel.VMClass, Ref: "b", Kind: Add, Obj: vm("b")}})
		r := <-one
		if r.err != nil || len(r.b.Events) != 1 || r.b.Events[0].Ref != "b" || r.b.Token != 12 {
			t.Errorf("vm/b: %+v", r)
		}
		ctx, cancel := context.WithCancelCause(context.Background())
		cause := errors.New("session gone")
		done := make(chan error)
		go func() {
			_, err := b.Wait(ctx, ParseFilter([]string{"vm"}, nil), 12, time.Hour)
			done <- err
		}()
		synctest.Wait()
		cancel(cause)
		if err := <-done; err != cause {
			t.Errorf("cancel: %v", err)
		}
		b.Reset(100, nil)
		if r := <-nets; !errors.Is(r.err, ErrLost) {
			t.Errorf("reset: %+v", r)
		}
		if b.Waiters() != 0 {
			t.Errorf("%d waiters left", b.Waiters())
		}
	})
}

// TestWaitFutureToken: a token ahead of this replica waits until it catches up.
func TestWaitFutureToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := anchored(t, Config{})
		done := make(chan Batch)
		go func() {
			got, _ := b.Wait(context.Background(), ParseFilter([]string{"*"}, nil), 12, time.Minute)
			done <- got
		}()
		synctest.Wait()
		b.Publish(11, []Change{{Class: datamodel.VMClass, Ref: "old", Kind: Add, Obj: vm("a")}})
		b.Publish(12, nil)
		b.Publish(13, []Change{{Class: datamodel.VMClass, Ref: "new", Kind: Add, Obj: vm("b")}})
		got := <-done
		if len(got.Events) != 1 || got.Events[0].Ref != "new" || got.Token != 13 {
			t.Errorf("%+v", got)
		}
	})
}
