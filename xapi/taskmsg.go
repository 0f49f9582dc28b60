package xapi

import (
	"context"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

// taskMessages implements the explicit messages of class task.
type taskMessages struct {
	UnimplementedTaskMessages
	s *Server
}

// Create makes a task for the caller's own long-running work (e.g. an HTTP import).
func (m *taskMessages) Create(ctx context.Context, call *Call, label, description string) (datamodel.TaskRef, error) {
	ref := datamodel.NewRef()
	if err := m.s.apply(ctx, store.Create(ref, m.s.newTaskRecord(label, description, call.Session))); err != nil {
		return "", err
	}
	return datamodel.TaskRef(ref), nil
}

// Destroy removes a task. Destroying another session's task needs the extra
// permission task.destroy/any (pool-operator), as in xapi.
func (m *taskMessages) Destroy(ctx context.Context, call *Call, self datamodel.TaskRef) error {
	o, err := m.s.lookup(datamodel.TaskClass, self)
	if err != nil {
		return err
	}
	if err := m.s.assertTaskOwner(call, o.(*datamodel.TaskRecord), "task.destroy/any"); err != nil {
		return err
	}
	m.s.tasks.cancel(string(self))
	return m.s.apply(ctx, store.Delete(datamodel.TaskClass, string(self)))
}

// Cancel asks a pending task to stop: its status becomes cancelling and the
// operation's context is cancelled; the operation then ends as cancelled.
func (m *taskMessages) Cancel(ctx context.Context, call *Call, task datamodel.TaskRef) error {
	o, err := m.s.lookup(datamodel.TaskClass, task)
	if err != nil {
		return err
	}
	rec := o.(*datamodel.TaskRecord)
	if err := m.s.assertTaskOwner(call, rec, "task.cancel/any"); err != nil {
		return err
	}
	if rec.Status != datamodel.TaskStatusTypePending {
		return datamodel.ErrOperationNotAllowed("task " + string(task) + " is " + string(rec.Status) + ", not pending")
	}
	c := datamodel.TaskClass
	pending := mustCheck(c, string(task), "status", datamodel.TaskStatusTypePending)
	if !m.s.tasks.running(string(task)) {
		// a client-made task (task.create) has no operation here: it is cancelled at once
		return m.s.taskApply(ctx, task, pending,
			mustSet(c, string(task), "status", datamodel.TaskStatusTypeCancelled),
			mustSet(c, string(task), "error_info", []string{datamodel.CodeTaskCancelled, string(task)}),
			mustSet(c, string(task), "allowed_operations", []datamodel.TaskAllowedOperations{}))
	}
	// Record "cancelling" before the operation can see its context end, so
	// the operation's own completion (cancelled) always lands after it.
	if err := m.s.taskApply(ctx, task, pending, mustSet(c, string(task), "status", datamodel.TaskStatusTypeCancelling)); err != nil {
		return err
	}
	m.s.tasks.cancel(string(task))
	return nil
}

// taskApply applies ops guarded by a check that the task is still pending; a
// task that finished meanwhile answers OPERATION_NOT_ALLOWED.
func (s *Server) taskApply(ctx context.Context, task datamodel.TaskRef, ops ...store.Op) error {
	err := s.apply(ctx, ops...)
	if store.IsCheckFailed(err) {
		return datamodel.ErrOperationNotAllowed("task " + string(task) + " is no longer pending")
	}
	return err
}

// assertTaskOwner lets the task's own session, root and pool sessions act on a
// task; other sessions need the permission perm (pool-operator).
func (s *Server) assertTaskOwner(call *Call, t *datamodel.TaskRecord, perm string) error {
	rec := call.SessionRec
	if rec == nil || rec.IsLocalSuperuser || rec.Pool || t.Session == call.Session {
		return nil
	}
	if roleAllows("pool-operator", s.sessionRole(rec)) {
		return nil
	}
	return datamodel.ErrRbacPermissionDenied(perm, "No permission in user session. (Roles with this permission: pool-admin, pool-operator)")
}

func (m *taskMessages) SetStatus(ctx context.Context, call *Call, self datamodel.TaskRef, value datamodel.TaskStatusType) error {
	return m.s.setField(ctx, datamodel.TaskClass, self, "status", value)
}

func (m *taskMessages) SetProgress(ctx context.Context, call *Call, self datamodel.TaskRef, value float64) error {
	return m.s.setField(ctx, datamodel.TaskClass, self, "progress", value)
}

func (m *taskMessages) SetResult(ctx context.Context, call *Call, self datamodel.TaskRef, value string) error {
	return m.s.setField(ctx, datamodel.TaskClass, self, "result", value)
}

func (m *taskMessages) SetErrorInfo(ctx context.Context, call *Call, self datamodel.TaskRef, value []string) error {
	return m.s.setField(ctx, datamodel.TaskClass, self, "error_info", value)
}

func (m *taskMessages) SetOtherConfig(ctx context.Context, call *Call, self datamodel.TaskRef, value map[string]string) error {
	return m.s.setField(ctx, datamodel.TaskClass, self, "other_config", value)
}

func (m *taskMessages) AddToOtherConfig(ctx context.Context, call *Call, self datamodel.TaskRef, key, value string) error {
	return m.s.mapAdd(ctx, datamodel.TaskClass, self, "other_config", key, value)
}

func (m *taskMessages) RemoveFromOtherConfig(ctx context.Context, call *Call, self datamodel.TaskRef, key string) error {
	return m.s.mapRemove(ctx, datamodel.TaskClass, self, "other_config", key)
}
