package xapi

import (
	"slices"
	"testing"

	"github.com/xapi-go/xapi-go/backends"
	"github.com/xapi-go/xapi-go/datamodel"
)

func TestSharedVMOperations(t *testing.T) {
	var r vmRuntime
	steps := []struct {
		op      datamodel.VMOperations
		wantErr bool
	}{
		{datamodel.VMOperationsClone, false},
		{datamodel.VMOperationsCopy, false},
		{datamodel.VMOperationsStart, true},
		{datamodel.VMOperationsClone, false},
	}
	for i, st := range steps {
		err := r.begin("vm", st.op, "ref")
		if (err != nil) != st.wantErr {
			t.Fatalf("step %d (%s): %v", i, st.op, err)
		}
	}
	for range 3 {
		r.endLocked("vm")
	}
	if _, busy := r.busy["vm"]; busy {
		t.Fatal("still busy after the shared operations ended")
	}
	if err := r.begin("vm", datamodel.VMOperationsStart, "ref"); err != nil {
		t.Fatal(err)
	}
	if err := r.begin("vm", datamodel.VMOperationsClone, "ref"); err == nil {
		t.Fatal("clone during start")
	}

	rec := datamodel.NewVMRecord()
	rec.IsATemplate = true
	rec.CurrentOperations = map[string]datamodel.VMOperations{"t": datamodel.VMOperationsClone}
	ops := vmAllowedOperations(rec, backends.Features{})
	if !slices.Contains(ops, datamodel.VMOperationsClone) || slices.ContainsFunc(ops, func(o datamodel.VMOperations) bool { return !sharedOps[o] }) {
		t.Fatalf("allowed during a clone: %v", ops)
	}
	rec.CurrentOperations = map[string]datamodel.VMOperations{"t": datamodel.VMOperationsDestroy}
	if ops := vmAllowedOperations(rec, backends.Features{}); len(ops) != 0 {
		t.Fatalf("allowed during destroy: %v", ops)
	}
}
