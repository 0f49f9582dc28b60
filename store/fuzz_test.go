package store

import (
	"encoding/json"
	"testing"

	"github.com/xapi-go/xapi-go/datamodel"
)

// FuzzApplyOp applies arbitrary well-formed operations to an FSM holding one
// VM: whatever the op, apply returns nil or a *datamodel.Error and never panics.
func FuzzApplyOp(f *testing.F) {
	f.Add(uint8(OpSet), "VM", "OpaqueRef:a", "name_label", "", []byte(`"x"`))
	f.Add(uint8(OpMapAdd), "VM", "OpaqueRef:a", "other_config", "k", []byte(`"v"`))
	f.Add(uint8(OpMapPut), "VM", "OpaqueRef:a", "blocked_operations", "start", []byte(`"v"`))
	f.Add(uint8(OpSetAdd), "VM", "OpaqueRef:a", "tags", "", []byte(`3`))
	f.Add(uint8(OpSetRemove), "VM", "OpaqueRef:a", "allowed_operations", "", []byte(`"start"`))
	f.Add(uint8(OpCreate), "VM", "OpaqueRef:b", "", "", []byte(`{"uuid":"u2","VCPUs_max":"x"}`))
	f.Add(uint8(OpMapRemove), "VM_metrics", "OpaqueRef:a", "VCPUs_utilisation", "x", []byte(nil))
	f.Add(uint8(OpDelete), "VM", "OpaqueRef:a", "", "", []byte(nil))
	f.Fuzz(func(t *testing.T, kind uint8, class, ref, field, key string, value []byte) {
		if len(value) > 0 && !json.Valid(value) {
			return
		}
		fsm := newFSM(testLogger(t))
		if err := fsmApply(t, fsm, 1, Create("OpaqueRef:a", newVM(t, "u1", "a"))); err != nil {
			t.Fatal(err)
		}
		op := Op{Kind: OpKind(kind), Class: class, Ref: ref, Field: field, Key: key, Value: value}
		err := fsmApply(t, fsm, 2, op)
		if err != nil && err.Code == "" {
			t.Fatal("error without a code")
		}
		if o, ok := fsm.get(mustClass(t, "VM"), "OpaqueRef:a"); ok {
			_ = datamodel.MarshalRecord(o)
		}
	})
}
