package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/xapi-go/xapi-go/datamodel"
)

// testConfig tightens raft's timers for tests.
func testConfig(t testing.TB, id string) Config {
	return Config{
		NodeID:             id,
		Logger:             testLogger(t).With("node", id),
		HeartbeatTimeout:   200 * time.Millisecond,
		ElectionTimeout:    200 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		StartupTimeout:     20 * time.Second,
	}
}

func openStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open %s: %v", cfg.NodeID, err)
	}
	return s
}

func newMemStore(t testing.TB) *Store {
	t.Helper()
	_, trans := raft.NewInmemTransport("")
	cfg := testConfig(t, "n0")
	cfg.InMemory, cfg.Bootstrap, cfg.Transport = true, true, trans
	s := openStore(t, cfg)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func apply(t testing.TB, s *Store, ops ...Op) uint64 {
	t.Helper()
	idx, err := s.Apply(context.Background(), ops...)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return idx
}

func TestApplyThroughRaft(t *testing.T) {
	t.Parallel()
	s := newMemStore(t)
	vm := mustClass(t, "VM")
	if !s.IsLeader() {
		t.Fatal("one-node store does not lead")
	}
	u := datamodel.NewUUID()
	idx := apply(t, s, Create("OpaqueRef:a", newVM(t, u, "a")))
	if s.AppliedIndex() != idx {
		t.Fatalf("applied %d, apply returned %d", s.AppliedIndex(), idx)
	}
	if o, ok := s.Get(vm, "OpaqueRef:a"); !ok || datamodel.NameLabelOf(o) != "a" {
		t.Fatal("read after write failed")
	}
	idx2, err := s.Apply(context.Background(), Create("OpaqueRef:b", newVM(t, u, "b")))
	var derr *datamodel.Error
	if !errors.As(err, &derr) || derr.Code != "DB_UNIQUENESS_CONSTRAINT_VIOLATION" || idx2 <= idx {
		t.Fatalf("duplicate uuid: %v (index %d after %d)", err, idx2, idx)
	}
	if s.AppliedIndex() != idx2 {
		t.Fatal("failed entry did not advance the applied index")
	}
	if r, ok := s.RefByUUID(vm, u); !ok || r != "OpaqueRef:a" {
		t.Fatal("RefByUUID")
	}
	if got := s.RefsByName(vm, "a"); !slices.Equal(got, []string{"OpaqueRef:a"}) {
		t.Fatalf("RefsByName: %v", got)
	}
	if s.Count(vm) != 1 || len(s.List(vm)) != 1 {
		t.Fatal("Count/List")
	}
	if idx, err := s.Apply(context.Background()); err != nil || idx != s.AppliedIndex() {
		t.Fatal("empty apply")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Apply(ctx, Delete(vm, "OpaqueRef:a")); !errors.Is(err, context.Canceled) {
		t.Logf("apply with a cancelled context: %v", err) // may win the race; must not hang
	}
}

func TestSubscribe(t *testing.T) {
	t.Parallel()
	s := newMemStore(t)
	vm := mustClass(t, "VM")
	var (
		mu   sync.Mutex
		sets []*ChangeSet
	)
	cancel := s.Subscribe(func(cs *ChangeSet) {
		mu.Lock()
		sets = append(sets, cs)
		mu.Unlock()
	})
	type step struct {
		ops   []Op
		kinds []ChangeKind
	}
	steps := []step{
		{[]Op{Create("OpaqueRef:a", newVM(t, "ua", "a")), Create("OpaqueRef:b", newVM(t, "ub", "b"))}, []ChangeKind{Add, Add}},
		{[]Op{must(Set(vm, "OpaqueRef:a", "name_label", "A"))(t)}, []ChangeKind{Mod}},
		{[]Op{Create("OpaqueRef:c", newVM(t, "ua", "dup"))}, nil}, // fails: empty change set
		{[]Op{Delete(vm, "OpaqueRef:b"), must(SetAdd(vm, "OpaqueRef:a", "tags", "t"))(t)}, []ChangeKind{Del, Mod}},
	}
	var idxs []uint64
	for _, st := range steps {
		idx, _ := s.Apply(context.Background(), st.ops...)
		idxs = append(idxs, idx)
	}
	cancel()
	apply(t, s, Delete(vm, "OpaqueRef:a"))
	mu.Lock()
	defer mu.Unlock()
	if len(sets) != len(steps) {
		t.Fatalf("%d change sets, want %d", len(sets), len(steps))
	}
	for i, cs := range sets {
		if cs.Index != idxs[i] {
			t.Errorf("set %d: index %d, want %d", i, cs.Index, idxs[i])
		}
		var kinds []ChangeKind
		for _, c := range cs.Changes {
			kinds = append(kinds, c.Kind)
		}
		if !slices.Equal(kinds, steps[i].kinds) {
			t.Errorf("set %d: kinds %v, want %v", i, kinds, steps[i].kinds)
		}
	}
	if c := sets[3].Changes[0]; c.Ref != "OpaqueRef:b" || datamodel.NameLabelOf(c.Obj) != "b" || c.Class != vm {
		t.Errorf("delete change %+v", c)
	}
	if c := sets[1].Changes[0]; datamodel.NameLabelOf(c.Obj) != "A" {
		t.Errorf("mod change carries %q", datamodel.NameLabelOf(c.Obj))
	}
}

func TestRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	vm := mustClass(t, "VM")
	cfg := testConfig(t, "n0")
	cfg.DataDir, cfg.Bootstrap = dir, true

	s := openStore(t, cfg)
	type rec struct{ ref, uuid string }
	var recs []rec
	var batch []Op
	for i := range 1000 {
		r := rec{datamodel.NewRef(), datamodel.NewUUID()}
		recs = append(recs, r)
		batch = append(batch, Create(r.ref, newVM(t, r.uuid, fmt.Sprintf("vm-%d", i))))
		if len(batch) == 50 {
			apply(t, s, batch...)
			batch = nil
		}
		if i == 499 {
			// A snapshot in the middle: the restart replays snapshot + log.
			if err := s.Raft().Snapshot().Error(); err != nil {
				t.Fatalf("snapshot: %v", err)
			}
		}
	}
	deleted := map[string]bool{}
	for i := 0; i < 1000; i += 10 {
		apply(t, s, must(Set(vm, recs[i].ref, "name_label", "renamed"))(t), must(MapPut(vm, recs[i].ref, "other_config", "k", "v"))(t))
		if i%20 == 0 {
			apply(t, s, Delete(vm, recs[i+1].ref))
			deleted[recs[i+1].ref] = true
		}
	}
	before := map[string][]byte{}
	for _, e := range s.List(vm) {
		before[e.Ref] = datamodel.MarshalRecord(e.Obj)
	}
	lastIdx := s.AppliedIndex()
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	start := time.Now()
	s = openStore(t, cfg)
	defer s.Close()
	t.Logf("reopened in %v", time.Since(start))
	if s.AppliedIndex() != lastIdx {
		t.Fatalf("applied index %d after restart, want %d", s.AppliedIndex(), lastIdx)
	}
	if s.Count(vm) != 1000-len(deleted) {
		t.Fatalf("count %d, want %d", s.Count(vm), 1000-len(deleted))
	}
	for i, r := range recs {
		o, ok := s.Get(vm, r.ref)
		if deleted[r.ref] {
			if ok {
				t.Fatalf("deleted %s is back", r.ref)
			}
			continue
		}
		if !ok {
			t.Fatalf("record %d lost", i)
		}
		if !bytes.Equal(datamodel.MarshalRecord(o), before[r.ref]) {
			t.Fatalf("record %d differs", i)
		}
		if got, _ := s.RefByUUID(vm, r.uuid); got != r.ref {
			t.Fatalf("uuid of record %d not indexed", i)
		}
	}
	if n := len(s.RefsByName(vm, "renamed")); n != 100 {
		t.Fatalf("%d renamed", n)
	}
	idx := apply(t, s, must(Set(vm, recs[0].ref, "name_label", "after"))(t))
	if idx <= lastIdx {
		t.Fatalf("index went back: %d after %d", idx, lastIdx)
	}
}

// cluster starts n in-memory replicas over raft's in-memory transport; the
// first bootstraps and the others join as voters.
func cluster(t *testing.T, n int) []*Store {
	t.Helper()
	trans := make([]*raft.InmemTransport, n)
	for i := range trans {
		_, trans[i] = raft.NewInmemTransport("")
	}
	for i := range trans {
		for j := range trans {
			if i != j {
				trans[i].Connect(trans[j].LocalAddr(), trans[j])
			}
		}
	}
	stores := make([]*Store, n)
	for i := range stores {
		cfg := testConfig(t, fmt.Sprintf("n%d", i))
		cfg.InMemory, cfg.Transport, cfg.Bootstrap = true, trans[i], i == 0
		stores[i] = openStore(t, cfg)
		s := stores[i]
		t.Cleanup(func() { _ = s.Close() })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, s := range stores[1:] {
		if err := stores[0].AddVoter(ctx, s.NodeID(), s.LocalAddr()); err != nil {
			t.Fatalf("add voter: %v", err)
		}
	}
	return stores
}

func TestCluster(t *testing.T) {
	t.Parallel()
	stores := cluster(t, 3)
	leader := stores[0]
	vm := mustClass(t, "VM")
	for i := range 30 {
		ref := fmt.Sprintf("OpaqueRef:%d", i)
		apply(t, leader, Create(ref, newVM(t, datamodel.NewUUID(), "x")), must(MapAdd(vm, ref, "other_config", "i", fmt.Sprint(i)))(t))
	}
	last := apply(t, leader, Delete(vm, "OpaqueRef:0"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range stores[1:] {
		if err := s.WaitApplied(ctx, last); err != nil {
			t.Fatalf("%s did not catch up: %v", s.NodeID(), err)
		}
		if s.Count(vm) != 29 {
			t.Fatalf("%s has %d VMs", s.NodeID(), s.Count(vm))
		}
		for _, e := range leader.List(vm) {
			o, ok := s.Get(vm, e.Ref)
			if !ok || !bytes.Equal(datamodel.MarshalRecord(o), datamodel.MarshalRecord(e.Obj)) {
				t.Fatalf("%s: %s differs", s.NodeID(), e.Ref)
			}
		}
		_, err := s.Apply(context.Background(), Delete(vm, "OpaqueRef:1"))
		var nl *NotLeaderError
		if !errors.Is(err, ErrNotLeader) || !errors.As(err, &nl) {
			t.Fatalf("follower apply: %v", err)
		}
		if nl.LeaderAddr != leader.LocalAddr() || nl.LeaderID != "n0" {
			t.Fatalf("follower names leader %q %q, want %q", nl.LeaderAddr, nl.LeaderID, leader.LocalAddr())
		}
		if addr, id := s.Leader(); addr != leader.LocalAddr() || id != "n0" {
			t.Fatalf("Leader() = %q %q", addr, id)
		}
	}
	members, err := leader.Members()
	if err != nil || len(members) != 3 {
		t.Fatalf("members %v %v", members, err)
	}

	// Leadership moves; the new leader accepts writes and the old one refuses.
	if err := leader.TransferLeadership(ctx, "", ""); err != nil {
		t.Fatalf("transfer: %v", err)
	}
	var nl *Store
	for nl == nil {
		for _, s := range stores[1:] {
			if s.IsLeader() {
				nl = s
			}
		}
		if ctx.Err() != nil {
			t.Fatal("no new leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	idx := apply(t, nl, must(Set(vm, "OpaqueRef:1", "name_label", "moved"))(t))
	if err := leader.WaitApplied(ctx, idx); err != nil {
		t.Fatal(err)
	}
	if o, _ := leader.Get(vm, "OpaqueRef:1"); datamodel.NameLabelOf(o) != "moved" {
		t.Fatal("old leader did not get the write")
	}
	if _, err := leader.Apply(context.Background(), Delete(vm, "OpaqueRef:1")); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("old leader apply: %v", err)
	}
}

func TestConcurrentApplyAndRead(t *testing.T) {
	t.Parallel()
	s := newMemStore(t)
	vm := mustClass(t, "VM")
	const writers, perWriter = 4, 40
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, e := range s.List(vm) {
					_ = datamodel.MarshalRecord(e.Obj)
					if o, ok := s.Get(vm, e.Ref); ok {
						s.RefByUUID(vm, datamodel.UUIDOf(o))
					}
				}
				s.RefsByName(vm, "w0")
				s.Count(vm)
				s.AppliedIndex()
			}
		})
	}
	var writersWG sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		writersWG.Go(func() {
			for i := range perWriter {
				ref := fmt.Sprintf("OpaqueRef:%d-%d", w, i)
				ops := []Op{Create(ref, newVM(t, datamodel.NewUUID(), fmt.Sprintf("w%d", w)))}
				op, err := MapPut(vm, ref, "other_config", "k", "v")
				if err != nil {
					errs <- err
					return
				}
				ops = append(ops, op)
				if _, err := s.Apply(context.Background(), ops...); err != nil {
					errs <- err
					return
				}
				if i%2 == 1 {
					if _, err := s.Apply(context.Background(), Delete(vm, fmt.Sprintf("OpaqueRef:%d-%d", w, i-1))); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	writersWG.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := s.Count(vm); n != writers*perWriter/2 {
		t.Fatalf("count %d", n)
	}
}

// A replica that joins after the leader compacted its log gets a snapshot
// install (FSM.Restore through raft) and then follows the log.
func TestClusterSnapshotInstall(t *testing.T) {
	t.Parallel()
	vm := mustClass(t, "VM")
	_, t0 := raft.NewInmemTransport("")
	_, t1 := raft.NewInmemTransport("")
	t0.Connect(t1.LocalAddr(), t1)
	t1.Connect(t0.LocalAddr(), t0)
	cfg := testConfig(t, "n0")
	cfg.InMemory, cfg.Transport, cfg.Bootstrap, cfg.TrailingLogs = true, t0, true, 2
	leader := openStore(t, cfg)
	defer leader.Close()
	for i := range 50 {
		apply(t, leader, Create(fmt.Sprintf("OpaqueRef:%d", i), newVM(t, datamodel.NewUUID(), "x")))
	}
	if err := leader.Raft().Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	cfg = testConfig(t, "n1")
	cfg.InMemory, cfg.Transport = true, t1
	follower := openStore(t, cfg)
	defer follower.Close()
	resets := make(chan uint64, 10)
	follower.Subscribe(func(cs *ChangeSet) {
		if cs.Reset {
			resets <- cs.Index
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := leader.AddNonvoter(ctx, "n1", follower.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	last := apply(t, leader, Delete(vm, "OpaqueRef:0"))
	if err := follower.WaitApplied(ctx, last); err != nil {
		t.Fatal(err)
	}
	select {
	case <-resets:
	default:
		t.Fatal("no snapshot install seen")
	}
	if follower.Count(vm) != 49 {
		t.Fatalf("follower has %d", follower.Count(vm))
	}
}

// A follower on disk restarts: Open replays its log, finds the leader and
// catches up with what was committed while it was down before returning.
func TestFollowerRestart(t *testing.T) {
	t.Parallel()
	vm := mustClass(t, "VM")
	addrs := []raft.ServerAddress{"a0", "a1", "a2"}
	trans := make([]*raft.InmemTransport, 3)
	connect := func(i int) {
		for j := range trans {
			if i != j && trans[j] != nil {
				trans[i].Connect(addrs[j], trans[j])
				trans[j].Connect(addrs[i], trans[i])
			}
		}
	}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	cfgs := make([]Config, 3)
	stores := make([]*Store, 3)
	for i := range stores {
		_, trans[i] = raft.NewInmemTransport(addrs[i])
		connect(i)
		cfgs[i] = testConfig(t, fmt.Sprintf("n%d", i))
		cfgs[i].DataDir, cfgs[i].Transport, cfgs[i].Bootstrap = dirs[i], trans[i], i == 0
		stores[i] = openStore(t, cfgs[i])
	}
	defer func() {
		for _, s := range stores {
			_ = s.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 1; i < 3; i++ {
		if err := stores[0].AddVoter(ctx, stores[i].NodeID(), string(addrs[i])); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		apply(t, stores[0], Create(fmt.Sprintf("OpaqueRef:%d", i), newVM(t, datamodel.NewUUID(), "x")))
	}
	// n2 goes down; the other two keep a quorum and commit more.
	if err := stores[2].Close(); err != nil {
		t.Fatal(err)
	}
	trans[0].Disconnect(addrs[2])
	trans[1].Disconnect(addrs[2])
	var last uint64
	for i := 20; i < 40; i++ {
		last = apply(t, stores[0], Create(fmt.Sprintf("OpaqueRef:%d", i), newVM(t, datamodel.NewUUID(), "x")))
	}
	_, trans[2] = raft.NewInmemTransport(addrs[2])
	connect(2)
	cfgs[2].Transport = trans[2]
	stores[2] = openStore(t, cfgs[2])
	if got := stores[2].AppliedIndex(); got < last {
		t.Fatalf("restarted follower returned from Open at %d, before %d", got, last)
	}
	if stores[2].Count(vm) != 40 {
		t.Fatalf("restarted follower has %d", stores[2].Count(vm))
	}
}

func TestHCLogFormatArgs(t *testing.T) {
	if got := hclogValue(hclog.Fmt("%d-%s", 7, "x")); got != "7-x" {
		t.Fatalf("hclog.Fmt rendered as %v", got)
	}
	if got := hclogValue(42); got != 42 {
		t.Fatalf("plain value changed: %v", got)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	s := newMemStore(t)
	vm := mustClass(t, "VM")
	apply(t, s, Create("OpaqueRef:a", newVM(t, datamodel.NewUUID(), "a")))
	tests := []struct {
		name    string
		ops     []Op
		wantErr bool
		label   string
	}{
		{"holds", []Op{must(Check(vm, "OpaqueRef:a", "name_label", "a"))(t), must(Set(vm, "OpaqueRef:a", "name_label", "b"))(t)}, false, "b"},
		{"fails and rolls back", []Op{must(Set(vm, "OpaqueRef:a", "name_label", "c"))(t), must(Check(vm, "OpaqueRef:a", "name_label", "a"))(t)}, true, "b"},
		{"sees earlier ops of its batch", []Op{must(Set(vm, "OpaqueRef:a", "name_label", "d"))(t), must(Check(vm, "OpaqueRef:a", "name_label", "d"))(t)}, false, "d"},
		{"set-typed field", []Op{must(Check(vm, "OpaqueRef:a", "tags", []string{"x"}))(t)}, true, "d"},
	}
	for _, tc := range tests {
		_, err := s.Apply(context.Background(), tc.ops...)
		if IsCheckFailed(err) != tc.wantErr {
			t.Errorf("%s: err %v", tc.name, err)
		}
		if o, _ := s.Get(vm, "OpaqueRef:a"); datamodel.NameLabelOf(o) != tc.label {
			t.Errorf("%s: name %q, want %q", tc.name, datamodel.NameLabelOf(o), tc.label)
		}
	}
	if _, err := s.Apply(context.Background(), must(Check(vm, "OpaqueRef:gone", "name_label", "a"))(t)); err == nil || IsCheckFailed(err) {
		t.Errorf("check of a missing record: %v", err)
	}
}

func TestBatchIDTakesEffectOnce(t *testing.T) {
	t.Parallel()
	s := newMemStore(t)
	vm := mustClass(t, "VM")
	apply(t, s, Create("OpaqueRef:a", newVM(t, datamodel.NewUUID(), "a")))
	var id batchID
	id[0] = 7
	data, err := encodeBatchID(id, []Op{must(SetAdd(vm, "OpaqueRef:a", "tags", "x"))(t), must(MapAdd(vm, "OpaqueRef:a", "other_config", "k", "v"))(t)})
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.ApplyEncoded(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	// sent again (the first answer was lost): the leader answers from memory
	again, err := s.ApplyEncoded(context.Background(), data)
	if err != nil || again != first {
		t.Fatalf("resend: index %d (first %d), err %v", again, first, err)
	}
	// proposed again anyway (by a leader that had not seen it): the FSM skips it
	f := s.raft.Apply(data, time.Second)
	if err := f.Error(); err != nil || f.Response() != nil {
		t.Fatalf("duplicate entry: %v %v", err, f.Response())
	}
	// the memory survives a snapshot
	snap, err := s.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.(*fsmSnapshot).write(&buf); err != nil {
		t.Fatal(err)
	}
	f2 := newFSM(testLogger(t))
	if err := f2.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	if r, ok := f2.batches.get(id); !ok || r.index != first {
		t.Fatalf("after restore: %v %v", r, ok)
	}
}
