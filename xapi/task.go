package xapi

import (
	"bytes"
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/rpc"
	"github.com/xapi-go/xapi-go/store"
)

// Task garbage collection, with xapi's limits (xapi_globs: completed_task_timeout,
// pending_task_timeout, max_tasks).
const (
	// taskRetention is how long a finished task is kept when nobody destroys it.
	taskRetention = 65 * time.Minute
	// pendingTaskTimeout is the age after which a pending task whose progress
	// has not moved between two collections is considered hung and removed.
	pendingTaskTimeout = 24 * time.Hour
	// maxYoungTasks bounds the tasks kept; beyond it the oldest finished ones go.
	maxYoungTasks = 200
)

// runningTasks maps the tasks running on this host to their cancel functions.
type runningTasks struct {
	mu      sync.Mutex
	cancels map[string]context.CancelFunc
}

func (r *runningTasks) add(ref string, cancel context.CancelFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancels == nil {
		r.cancels = map[string]context.CancelFunc{}
	}
	r.cancels[ref] = cancel
}

func (r *runningTasks) remove(ref string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.cancels, ref)
}

// refs lists the tasks running on this host.
func (r *runningTasks) refs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.cancels))
	for ref := range r.cancels {
		out = append(out, ref)
	}
	return out
}

// running reports whether ref is an operation running on this host.
func (r *runningTasks) running(ref string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.cancels[ref]
	return ok
}

func (r *runningTasks) cancel(ref string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.cancels[ref]
	if ok {
		c()
	}
	return ok
}

// newTaskRecord is a pending task owned by a session.
func (s *Server) newTaskRecord(label, description string, sess datamodel.SessionRef) *datamodel.TaskRecord {
	rec := datamodel.NewTaskRecord()
	rec.UUID = datamodel.NewUUID()
	rec.NameLabel = label
	rec.NameDescription = description
	rec.Created = time.Now().UTC()
	rec.Status = datamodel.TaskStatusTypePending
	rec.Session = sess
	rec.ResidentOn = s.hostRef
	rec.AllowedOperations = []datamodel.TaskAllowedOperations{datamodel.TaskAllowedOperationsCancel}
	return rec
}

// startAsync creates a task for an Async.* call, runs the call in the
// background with a context that task.cancel cancels, and records its outcome.
func (s *Server) startAsync(ctx context.Context, call *Call, args []any) (datamodel.TaskRef, error) {
	rec := s.newTaskRecord("Async."+call.Method.Name, "", call.Session)
	ref := datamodel.NewRef()
	// The operation is registered before its task exists, so a task.cancel
	// that comes at once finds it running.
	tctx, cancel := context.WithCancel(s.ctx)
	s.tasks.add(ref, cancel)
	if err := s.apply(ctx, store.Create(ref, rec)); err != nil {
		s.tasks.remove(ref)
		cancel()
		return "", err
	}
	call.Task = datamodel.TaskRef(ref)
	s.goBackground(func(bg context.Context) {
		out, err := s.run(tctx, call, args)
		cancelled := tctx.Err() != nil && bg.Err() == nil
		if cancelled && (err == nil || errors.Is(err, context.Canceled)) {
			err = datamodel.ErrTaskCancelled(ref)
		}
		// The task leaves the running set only once its outcome is recorded:
		// a task.cancel meanwhile finds it running (and is too late to
		// matter) instead of taking it for a client-made task to cancel.
		s.finishTask(bg, ref, call.Method, out, err)
		s.tasks.remove(ref)
		cancel()
	})
	return call.Task, nil
}

func mustCheck(c *datamodel.Class, ref, field string, v any) store.Op {
	op, err := store.Check(c, ref, field, v)
	if err != nil {
		panic(err) // field names and types are fixed by the model
	}
	return op
}

func mustSet(c *datamodel.Class, ref, field string, v any) store.Op {
	op, err := store.Set(c, ref, field, v)
	if err != nil {
		panic(err) // field names and types are fixed by the model
	}
	return op
}

// finishTask records success (result as an XML-RPC <value>), cancellation or failure.
func (s *Server) finishTask(ctx context.Context, ref string, m *Method, out any, err error) {
	c := datamodel.TaskClass
	ops := []store.Op{
		mustSet(c, ref, "finished", time.Now().UTC()),
		mustSet(c, ref, "progress", 1.0),
		mustSet(c, ref, "allowed_operations", []datamodel.TaskAllowedOperations{}),
	}
	var de *datamodel.Error
	switch {
	case errors.As(err, &de) && de.Code == datamodel.CodeTaskCancelled:
		ops = append(ops, mustSet(c, ref, "status", datamodel.TaskStatusTypeCancelled), mustSet(c, ref, "error_info", []string{de.Code, ref}))
	case err != nil:
		f := s.toFault(m.Name, err)
		ops = append(ops, mustSet(c, ref, "status", datamodel.TaskStatusTypeFailure), mustSet(c, ref, "error_info", append([]string{f.Code}, f.Params...)))
	default:
		ops = append(ops, mustSet(c, ref, "status", datamodel.TaskStatusTypeSuccess), mustSet(c, ref, "result", xmlValue(resultWriter(m, out))))
	}
	if _, err := s.store.Apply(ctx, ops...); err != nil {
		// the task may have been destroyed meanwhile; nothing else to record
		s.log.Debug("task completion not recorded", "err", err)
	}
}

// xmlValue renders a value as an XML-RPC <value> string, as task.result carries it.
func xmlValue(write func(w rpc.Writer)) string {
	if write == nil {
		return ""
	}
	var buf bytes.Buffer
	w := rpc.NewXMLWriter(&buf)
	write(w)
	_ = w.Flush()
	return buf.String()
}

// expireTasks is the task GC (leader only) as of now: finished tasks older
// than taskRetention go; pending tasks older than pendingTaskTimeout whose
// progress has not moved since the previous run go; and if more than
// maxYoungTasks remain, the oldest finished ones go.
func (s *Server) expireTasks(ctx context.Context, now time.Time) {
	if !s.store.IsLeader() {
		return
	}
	before, pendingBefore := now.Add(-taskRetention), now.Add(-pendingTaskTimeout)
	type done struct {
		ref      string
		finished time.Time
	}
	var (
		ops       []store.Op
		young     []done
		pending   int
		probation = map[string]float64{}
	)
	for _, e := range s.store.List(datamodel.TaskClass) {
		t := e.Obj.(*datamodel.TaskRecord)
		switch {
		case t.Status != datamodel.TaskStatusTypePending && t.Status != datamodel.TaskStatusTypeCancelling:
			if t.Finished.Before(before) {
				ops = append(ops, store.Delete(datamodel.TaskClass, e.Ref))
			} else {
				young = append(young, done{e.Ref, t.Finished})
			}
		case t.Created.Before(pendingBefore):
			if p, ok := s.taskProbation[e.Ref]; ok && t.Progress <= p {
				s.log.Warn("removing a hung pending task", "task", t.UUID, "name", t.NameLabel, "created", t.Created)
				ops = append(ops, store.Delete(datamodel.TaskClass, e.Ref))
				continue
			}
			probation[e.Ref] = t.Progress
			pending++
		default:
			pending++
		}
	}
	s.taskProbation = probation
	if keep := max(maxYoungTasks-pending, 0); len(young) > keep {
		sort.Slice(young, func(i, j int) bool { return young[i].finished.After(young[j].finished) })
		for _, d := range young[keep:] {
			ops = append(ops, store.Delete(datamodel.TaskClass, d.ref))
		}
	}
	s.deleteEach(ctx, ops)
}

// SetProgress records the progress (0..1) of the call's task, if it runs as
// an Async task; clients watching the task see it through events.
func (c *Call) SetProgress(ctx context.Context, p float64) error {
	if c.Task == "" || c.Task == datamodel.TaskRef(datamodel.NullRef) {
		return nil
	}
	p = min(max(p, 0), 1)
	return c.Server.apply(ctx, mustSet(datamodel.TaskClass, string(c.Task), "progress", p))
}
