package xapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/xapi"
	"github.com/xapi-go/xapi-go/xapi/xapitest"
)

// slowVM stands in for a long VM operation: VM.start waits until cancelled or
// released; VM.get_boot_record answers at once.
type slowVM struct {
	xapi.UnimplementedVMMessages
	release chan struct{}
}

func (v *slowVM) Start(ctx context.Context, call *xapi.Call, vm datamodel.VMRef, paused, force bool) error {
	if err := call.SetProgress(ctx, 0.5); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-v.release:
		return nil
	}
}

func (v *slowVM) Clone(ctx context.Context, call *xapi.Call, vm datamodel.VMRef, newName string) (datamodel.VMRef, error) {
	return "OpaqueRef:clone-of-" + vm, nil
}

func waitTask(t *testing.T, url, s, task string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		rec, e := jsonCall(t, url, "task.get_record", s, task)
		if e != nil {
			t.Fatalf("task.get_record: %v", e)
		}
		r := rec.(map[string]any)
		if r["status"] != "pending" && r["status"] != "cancelling" {
			return r
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("task did not finish")
	return nil
}

// slowServer is a server whose VM messages are slowVM's, a root session and a VM.
func slowServer(t *testing.T) (*slowVM, *xapitest.Server, string, string) {
	t.Helper()
	slow := &slowVM{release: make(chan struct{})}
	srv := xapitest.NewServer(t, xapitest.Options{Configure: func(c *xapi.Config) {
		c.Override = func(impl *xapi.Impl) { impl.VM = slow }
	}})
	s := login(t, srv.URL)
	vms, _ := jsonCall(t, srv.URL, "VM.get_all", s)
	return slow, srv, s, vms.([]any)[0].(string)
}

func TestAsyncTasks(t *testing.T) {
	slow, srv, s, vm := slowServer(t)

	// success: the result is an XML-RPC <value> string
	task, e := jsonCall(t, srv.URL, "Async.VM.clone", s, vm, "copy")
	if e != nil {
		t.Fatal(e)
	}
	r := waitTask(t, srv.URL, s, task.(string))
	if r["status"] != "success" || r["progress"] != 1.0 || r["finished"] == "19700101T00:00:00Z" {
		t.Fatalf("task: %v", r)
	}
	if res := r["result"].(string); res != "<value>OpaqueRef:clone-of-"+vm+"</value>" {
		t.Fatalf("result %q", res)
	}
	if r["name_label"] != "Async.VM.clone" || r["resident_on"] == datamodel.NullRef {
		t.Fatalf("task fields: %v", r)
	}

	// immediate failures (bad parameters) are answered without a task
	if task, e := jsonCall(t, srv.URL, "Async.VM.clone", s, vm); task != nil || e[0] != "MESSAGE_PARAMETER_COUNT_MISMATCH" {
		t.Fatalf("bad call: %v %v", task, e)
	}
	// failures of the operation end the task with error_info
	task, _ = jsonCall(t, srv.URL, "Async.VM.snapshot", s, vm, "snap", []any{})
	if r = waitTask(t, srv.URL, s, task.(string)); r["status"] != "failure" {
		t.Fatalf("failed task: %v", r)
	} else if ei := r["error_info"].([]any); ei[0] != "NOT_IMPLEMENTED" || ei[1] != "VM.snapshot" {
		t.Fatalf("error_info: %v", ei)
	}

	// cancel reaches the running operation; progress reported meanwhile is visible
	task, e = jsonCall(t, srv.URL, "Async.VM.start", s, vm, false, false)
	if e != nil {
		t.Fatal(e)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		if p, _ := jsonCall(t, srv.URL, "task.get_progress", s, task); p == 0.5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("progress 0.5 never visible")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, e := jsonCall(t, srv.URL, "task.cancel", s, task); e != nil {
		t.Fatal(e)
	}
	r = waitTask(t, srv.URL, s, task.(string))
	if r["status"] != "cancelled" {
		t.Fatalf("cancelled task: %v", r)
	}
	if ei := r["error_info"].([]any); len(ei) != 2 || ei[0] != "TASK_CANCELLED" || ei[1] != task {
		t.Fatalf("error_info %v", ei)
	}
	// cancelling a finished task is refused
	if _, e := jsonCall(t, srv.URL, "task.cancel", s, task); e == nil || e[0] != "OPERATION_NOT_ALLOWED" {
		t.Fatalf("cancel finished: %v", e)
	}

	// a released operation succeeds with an empty result (void)
	task, _ = jsonCall(t, srv.URL, "Async.VM.start", s, vm, false, false)
	close(slow.release)
	if r = waitTask(t, srv.URL, s, task.(string)); r["status"] != "success" || r["result"] != "" {
		t.Fatalf("void task: %v", r)
	}

	// no async mode for task messages
	if _, e := jsonCall(t, srv.URL, "Async.task.get_record", s, task); e == nil || e[0] != "Fault" {
		t.Fatalf("async task.get_record: %v", e)
	}

	// client-made tasks: create, cancel, destroy
	ct, e := jsonCall(t, srv.URL, "task.create", s, "import", "an import")
	if e != nil {
		t.Fatal(e)
	}
	if st, _ := jsonCall(t, srv.URL, "task.get_status", s, ct); st != "pending" {
		t.Fatalf("created task status %v", st)
	}
	if _, e := jsonCall(t, srv.URL, "task.cancel", s, ct); e != nil {
		t.Fatal(e)
	}
	if st, _ := jsonCall(t, srv.URL, "task.get_status", s, ct); st != "cancelled" {
		t.Fatalf("cancelled client task status %v", st)
	}
	if _, e := jsonCall(t, srv.URL, "task.destroy", s, ct); e != nil {
		t.Fatal(e)
	}
	if _, e := jsonCall(t, srv.URL, "task.get_record", s, ct); e == nil || e[0] != "HANDLE_INVALID" || e[1] != "task" {
		t.Fatalf("destroyed task: %v", e)
	}
}

func TestTaskDestroyOfOthersNeedsPoolOperator(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{Users: map[string]string{"op": "vm-operator", "po": "pool-operator"}})
	root := login(t, srv.URL)
	task, _ := jsonCall(t, srv.URL, "task.create", root, "x", "")
	op, _ := jsonCall(t, srv.URL, "session.login_with_password", "op", "op")
	if _, e := jsonCall(t, srv.URL, "task.destroy", op, task); e == nil || e[0] != "RBAC_PERMISSION_DENIED" || e[1] != "task.destroy/any" {
		t.Fatalf("vm-operator destroying root's task: %v", e)
	}
	po, _ := jsonCall(t, srv.URL, "session.login_with_password", "po", "po")
	if _, e := jsonCall(t, srv.URL, "task.destroy", po, task); e != nil {
		t.Fatalf("pool-operator: %v", e)
	}
	own, _ := jsonCall(t, srv.URL, "task.create", op, "mine", "")
	if _, e := jsonCall(t, srv.URL, "task.destroy", op, own); e != nil {
		t.Fatalf("own task: %v", e)
	}
}

// TestTaskCancelRacesCompletion: a task.cancel that races the end of a quick
// operation leaves a consistent task: success with its result and no error,
// or cancelled with TASK_CANCELLED [task] and no result; never a mix.
func TestTaskCancelRacesCompletion(t *testing.T) {
	_, srv, s, vm := slowServer(t)
	outcomes := map[string]int{}
	for i := 0; i < 100; i++ {
		task, e := jsonCall(t, srv.URL, "Async.VM.clone", s, vm, "c")
		if e != nil {
			t.Fatal(e)
		}
		_, _ = jsonCall(t, srv.URL, "task.cancel", s, task) // may come too late: OPERATION_NOT_ALLOWED
		r := waitTask(t, srv.URL, s, task.(string))
		info, _ := r["error_info"].([]any)
		switch r["status"] {
		case "success":
			if len(info) != 0 || r["result"] == "" {
				t.Fatalf("success with error_info %v, result %q", info, r["result"])
			}
		case "cancelled":
			if len(info) != 2 || info[0] != "TASK_CANCELLED" || info[1] != task || r["result"] != "" {
				t.Fatalf("cancelled with error_info %v, result %q", info, r["result"])
			}
		default:
			t.Fatalf("status %v", r["status"])
		}
		outcomes[r["status"].(string)]++
	}
	t.Logf("outcomes: %v", outcomes)
}
