package xapi

import (
	"context"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

// TestTaskGCLimits: beyond maxYoungTasks the oldest finished tasks go and
// every pending one stays; a pending task past pendingTaskTimeout goes once
// its progress has not moved between two collections.
func TestTaskGCLimits(t *testing.T) {
	s := newInternalServer(t)
	ctx := context.Background()
	now := time.Now().UTC()
	null := datamodel.SessionRef(datamodel.NullRef)
	var ops []store.Op
	finished := map[string]int{} // ref -> age in seconds
	for i := 0; i < maxYoungTasks+50; i++ {
		rec := s.newTaskRecord("done", "", null)
		rec.Status = datamodel.TaskStatusTypeSuccess
		rec.Finished = now.Add(-time.Duration(i) * time.Second)
		ref := datamodel.NewRef()
		finished[ref] = i
		ops = append(ops, store.Create(ref, rec))
	}
	const pendingYoung = 10
	for i := 0; i < pendingYoung; i++ {
		ops = append(ops, store.Create(datamodel.NewRef(), s.newTaskRecord("pending", "", null)))
	}
	hung, moving := datamodel.NewRef(), datamodel.NewRef()
	for _, ref := range []string{hung, moving} {
		rec := s.newTaskRecord("old", "", null)
		rec.Created = now.Add(-pendingTaskTimeout - time.Hour)
		rec.Progress = 0.3
		ops = append(ops, store.Create(ref, rec))
	}
	if _, err := s.store.Apply(ctx, ops...); err != nil {
		t.Fatal(err)
	}

	s.expireTasks(ctx, now)
	pending := pendingYoung + 2 // the two old ones are on probation
	keep := maxYoungTasks - pending
	for ref, age := range finished {
		_, ok := s.store.Get(datamodel.TaskClass, ref)
		if want := age < keep; ok != want {
			t.Fatalf("finished task aged %ds kept=%v, want %v (keep the %d newest)", age, ok, want, keep)
		}
	}
	for _, ref := range []string{hung, moving} {
		if _, ok := s.store.Get(datamodel.TaskClass, ref); !ok {
			t.Fatal("old pending task removed at its first collection")
		}
	}
	if _, err := s.store.Apply(ctx, mustSet(datamodel.TaskClass, moving, "progress", 0.6)); err != nil {
		t.Fatal(err)
	}
	s.expireTasks(ctx, now)
	if _, ok := s.store.Get(datamodel.TaskClass, hung); ok {
		t.Fatal("hung pending task kept")
	}
	if _, ok := s.store.Get(datamodel.TaskClass, moving); !ok {
		t.Fatal("old pending task that made progress removed")
	}
	n := 0
	for _, e := range s.store.List(datamodel.TaskClass) {
		if st := e.Obj.(*datamodel.TaskRecord).Status; st == datamodel.TaskStatusTypePending {
			n++
		}
	}
	if n != pendingYoung+1 {
		t.Fatalf("%d pending tasks, want %d", n, pendingYoung+1)
	}
}
