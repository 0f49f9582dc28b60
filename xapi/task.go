package xapi

import (
	"bytes"
	"context"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/rpc"
	"github.com/xapi-go/xapi-go/store"
)

// startAsync creates a task for an Async.* call, runs the call in the
// background and records its outcome on the task.
func (s *Server) startAsync(ctx context.Context, call *Call, args []any) (datamodel.TaskRef, error) {
	rec := datamodel.NewTaskRecord()
	rec.UUID = datamodel.NewUUID()
	rec.NameLabel = "Async." + call.Method.Name
	rec.Created = time.Now().UTC()
	rec.Status = datamodel.TaskStatusTypePending
	rec.Session = call.Session
	rec.ResidentOn = s.hostRef
	rec.AllowedOperations = []datamodel.TaskAllowedOperations{datamodel.TaskAllowedOperationsCancel}
	ref := datamodel.NewRef()
	if err := s.apply(ctx, store.Create(ref, rec)); err != nil {
		return "", err
	}
	call.Task = datamodel.TaskRef(ref)
	s.goBackground(func(bg context.Context) {
		out, err := s.run(bg, call, args)
		s.finishTask(bg, ref, call.Method, out, err)
	})
	return call.Task, nil
}

// finishTask records success (result as an XML-RPC <value>) or failure.
func (s *Server) finishTask(ctx context.Context, ref string, m *Method, out any, err error) {
	c := datamodel.TaskClass
	set := func(field string, v any) store.Op {
		op, e := store.Set(c, ref, field, v)
		if e != nil {
			panic(e) // field names and types are fixed by the model
		}
		return op
	}
	ops := []store.Op{
		set("finished", time.Now().UTC()),
		set("progress", 1.0),
		set("allowed_operations", []datamodel.TaskAllowedOperations{}),
	}
	if err != nil {
		f := toFault(s.log, m.Name, err)
		ops = append(ops, set("status", datamodel.TaskStatusTypeFailure), set("error_info", append([]string{f.Code}, f.Params...)))
	} else {
		ops = append(ops, set("status", datamodel.TaskStatusTypeSuccess), set("result", xmlValue(resultWriter(m, out))))
	}
	if _, err := s.store.Apply(ctx, ops...); err != nil {
		s.log.Warn("task completion not recorded", "task_uuid", ref, "err", err)
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
