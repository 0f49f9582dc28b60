package store

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/xapi-go/xapi-go/datamodel"
)

func TestFSMApply(t *testing.T) {
	vm := mustClass(t, "VM")
	vmm := mustClass(t, "VM_metrics")
	const (
		u1, u2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
		r1, r2 = "OpaqueRef:r1", "OpaqueRef:r2"
	)
	base := []Op{Create(r1, newVM(t, u1, "one")), Create(r2, newVM(t, u2, "two"))}
	set := func(ref, f string, v any) Op { return must(Set(vm, ref, f, v))(t) }
	mapAdd := func(ref, f, k string, v any) Op { return must(MapAdd(vm, ref, f, k, v))(t) }
	mapPut := func(ref, f, k string, v any) Op { return must(MapPut(vm, ref, f, k, v))(t) }
	mapRemove := func(ref, f, k string) Op { return must(MapRemove(vm, ref, f, k))(t) }
	setAdd := func(ref, f string, v any) Op { return must(SetAdd(vm, ref, f, v))(t) }
	setRemove := func(ref, f string, v any) Op { return must(SetRemove(vm, ref, f, v))(t) }
	get := func(t *testing.T, f *fsm, ref string) datamodel.Object {
		t.Helper()
		o, ok := f.get(vm, ref)
		if !ok {
			t.Fatalf("%s missing", ref)
		}
		return o
	}
	eq := func(t *testing.T, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %#v, want %#v", got, want)
		}
	}

	tests := []struct {
		name    string
		setup   []Op
		ops     []Op
		want    *datamodel.Error
		changes []ChangeKind
		check   func(t *testing.T, f *fsm)
	}{
		{
			name: "create", ops: base, changes: []ChangeKind{Add, Add},
			check: func(t *testing.T, f *fsm) {
				eq(t, field(t, get(t, f, r1), "name_label"), "one")
				eq(t, uuidRef(f, vm, u2), r2)
				eq(t, f.refsByName(vm, "one"), []string{r1})
				eq(t, f.count(vm), 2)
			},
		},
		{
			name: "create existing ref", setup: base, ops: []Op{Create(r1, newVM(t, datamodel.NewUUID(), "x"))},
			want: datamodel.NewError("DB_UNIQUENESS_CONSTRAINT_VIOLATION", "VM", "_ref", r1),
		},
		{
			name: "create duplicate uuid", setup: base, ops: []Op{Create("OpaqueRef:r3", newVM(t, u1, "x"))},
			want: datamodel.NewError("DB_UNIQUENESS_CONSTRAINT_VIOLATION", "VM", "uuid", u1),
		},
		{
			name: "unknown class", ops: []Op{{Kind: OpCreate, Class: "Nope", Ref: r1, Value: json.RawMessage(`{}`)}},
			want: datamodel.NewError("INTERNAL_ERROR"),
		},
		{
			name: "unknown op kind", setup: base, ops: []Op{{Kind: 99, Class: "VM", Ref: r1, Field: "name_label"}},
			want: datamodel.NewError("INTERNAL_ERROR"),
		},
		{
			name: "create bad record", ops: []Op{{Kind: OpCreate, Class: "VM", Ref: r1, Value: json.RawMessage(`{"memory_static_max":"lots"}`)}},
			want: datamodel.NewError("INTERNAL_ERROR"),
		},
		{
			name: "set name_label", setup: base, ops: []Op{set(r1, "name_label", "uno")}, changes: []ChangeKind{Mod},
			check: func(t *testing.T, f *fsm) {
				eq(t, field(t, get(t, f, r1), "name_label"), "uno")
				eq(t, f.refsByName(vm, "one"), []string(nil))
				eq(t, f.refsByName(vm, "uno"), []string{r1})
			},
		},
		{
			name: "set enum and int", setup: base, changes: []ChangeKind{Mod},
			ops: []Op{set(r1, "power_state", datamodel.VMPowerStateRunning), set(r1, "memory_static_max", int64(1<<33))},
			check: func(t *testing.T, f *fsm) {
				eq(t, field(t, get(t, f, r1), "power_state"), datamodel.VMPowerStateRunning)
				eq(t, field(t, get(t, f, r1), "memory_static_max"), int64(1<<33))
			},
		},
		{
			name: "set uuid", setup: base, ops: []Op{set(r1, "uuid", "33333333-3333-4333-8333-333333333333")}, changes: []ChangeKind{Mod},
			check: func(t *testing.T, f *fsm) {
				_, ok := f.refByUUID(vm, u1)
				eq(t, ok, false)
				eq(t, uuidRef(f, vm, "33333333-3333-4333-8333-333333333333"), r1)
			},
		},
		{
			name: "set duplicate uuid", setup: base, ops: []Op{set(r1, "uuid", u2)},
			want: datamodel.NewError("DB_UNIQUENESS_CONSTRAINT_VIOLATION", "VM", "uuid", u2),
		},
		{
			name: "set unknown field", setup: base, ops: []Op{{Kind: OpSet, Class: "VM", Ref: r1, Field: "nope", Value: json.RawMessage(`"x"`)}},
			want: datamodel.NewError("INTERNAL_ERROR"),
		},
		{
			name: "set bad value", setup: base, ops: []Op{{Kind: OpSet, Class: "VM", Ref: r1, Field: "memory_static_max", Value: json.RawMessage(`"x"`)}},
			want: datamodel.NewError("INTERNAL_ERROR"),
		},
		{
			name: "set missing ref", setup: base, ops: []Op{set("OpaqueRef:gone", "name_label", "x")},
			want: datamodel.NewError("HANDLE_INVALID", "VM", "OpaqueRef:gone"),
		},
		{
			name: "delete", setup: base, ops: []Op{Delete(vm, r1)}, changes: []ChangeKind{Del},
			check: func(t *testing.T, f *fsm) {
				_, ok := f.get(vm, r1)
				eq(t, ok, false)
				_, ok = f.refByUUID(vm, u1)
				eq(t, ok, false)
				eq(t, f.refsByName(vm, "one"), []string(nil))
				eq(t, f.count(vm), 1)
				eq(t, f.list(vm)[0].Ref, r2)
			},
		},
		{
			name: "delete missing ref", setup: base, ops: []Op{Delete(vm, "OpaqueRef:gone")},
			want: datamodel.NewError("HANDLE_INVALID", "VM", "OpaqueRef:gone"),
		},
		{
			name: "map add", setup: base, changes: []ChangeKind{Mod},
			ops: []Op{mapAdd(r1, "other_config", "a", "1"), mapAdd(r1, "other_config", "b", "2")},
			check: func(t *testing.T, f *fsm) {
				eq(t, field(t, get(t, f, r1), "other_config"), map[string]string{"a": "1", "b": "2"})
			},
		},
		{
			name: "map add duplicate key", setup: append(slices.Clone(base), mapAdd(r1, "other_config", "a", "1")),
			ops:  []Op{mapAdd(r1, "other_config", "a", "2")},
			want: datamodel.NewError("MAP_DUPLICATE_KEY", "VM", "other_config", u1, "a"),
		},
		{
			name: "map add enum key", setup: base, changes: []ChangeKind{Mod},
			ops: []Op{mapAdd(r1, "blocked_operations", "start", "no")},
			check: func(t *testing.T, f *fsm) {
				eq(t, field(t, get(t, f, r1), "blocked_operations"), map[datamodel.VMOperations]string{datamodel.VMOperationsStart: "no"})
			},
		},
		{
			name: "map put replaces", setup: append(slices.Clone(base), mapAdd(r1, "other_config", "a", "1")),
			ops: []Op{mapPut(r1, "other_config", "a", "2"), mapPut(r1, "other_config", "c", "3")}, changes: []ChangeKind{Mod},
			check: func(t *testing.T, f *fsm) {
				eq(t, field(t, get(t, f, r1), "other_config"), map[string]string{"a": "2", "c": "3"})
			},
		},
		{
			name: "map remove present and absent", setup: append(slices.Clone(base), mapAdd(r1, "other_config", "a", "1"), mapAdd(r1, "other_config", "b", "1")),
			ops: []Op{mapRemove(r1, "other_config", "a"), mapRemove(r1, "other_config", "zz")}, changes: []ChangeKind{Mod},
			check: func(t *testing.T, f *fsm) {
				eq(t, field(t, get(t, f, r1), "other_config"), map[string]string{"b": "1"})
			},
		},
		{
			name: "map op on missing ref", setup: base, ops: []Op{mapPut("OpaqueRef:gone", "other_config", "a", "1")},
			want: datamodel.NewError("HANDLE_INVALID", "VM", "OpaqueRef:gone"),
		},
		{
			name: "map op on a non-map field", setup: base,
			ops:  []Op{{Kind: OpMapPut, Class: "VM", Ref: r1, Field: "name_label", Key: "a", Value: json.RawMessage(`"1"`)}},
			want: datamodel.NewError("INTERNAL_ERROR"),
		},
		{
			name: "int-keyed map", changes: []ChangeKind{Add},
			ops: []Op{
				Create("OpaqueRef:m", newRecord(t, vmm, map[string]any{"uuid": u1})),
				must(MapPut(vmm, "OpaqueRef:m", "VCPUs_utilisation", "3", 0.5))(t),
				must(MapAdd(vmm, "OpaqueRef:m", "VCPUs_utilisation", "10", 0.25))(t),
				must(MapRemove(vmm, "OpaqueRef:m", "VCPUs_utilisation", "3"))(t),
				must(MapPut(vmm, "OpaqueRef:m", "VCPUs_flags", "1", []string{"a", "b"}))(t),
			},
			check: func(t *testing.T, f *fsm) {
				o, _ := f.get(vmm, "OpaqueRef:m")
				eq(t, field(t, o, "VCPUs_utilisation"), map[int64]float64{10: 0.25})
				eq(t, field(t, o, "VCPUs_flags"), map[int64][]string{1: {"a", "b"}})
			},
		},
		{
			name: "int-keyed map duplicate", setup: []Op{
				Create("OpaqueRef:m", newRecord(t, vmm, map[string]any{"uuid": u1})),
				must(MapPut(vmm, "OpaqueRef:m", "VCPUs_utilisation", "3", 0.5))(t),
			},
			ops:  []Op{must(MapAdd(vmm, "OpaqueRef:m", "VCPUs_utilisation", "03", 0.5))(t)},
			want: datamodel.NewError("MAP_DUPLICATE_KEY", "VM_metrics", "VCPUs_utilisation", u1, "03"),
		},
		{
			name: "set add and remove", setup: base, changes: []ChangeKind{Mod},
			ops: []Op{setAdd(r1, "tags", "a"), setAdd(r1, "tags", "b"), setAdd(r1, "tags", "a"), setRemove(r1, "tags", "b"), setRemove(r1, "tags", "zz"), setAdd(r1, "tags", "c")},
			check: func(t *testing.T, f *fsm) {
				eq(t, field(t, get(t, f, r1), "tags"), []string{"a", "c"})
			},
		},
		{
			name: "set add enum", setup: base, changes: []ChangeKind{Mod},
			ops: []Op{setAdd(r1, "allowed_operations", datamodel.VMOperationsStart), setAdd(r1, "allowed_operations", datamodel.VMOperationsStart)},
			check: func(t *testing.T, f *fsm) {
				eq(t, field(t, get(t, f, r1), "allowed_operations"), []datamodel.VMOperations{datamodel.VMOperationsStart})
			},
		},
		{
			name: "set op on missing ref", setup: base, ops: []Op{setAdd("OpaqueRef:gone", "tags", "a")},
			want: datamodel.NewError("HANDLE_INVALID", "VM", "OpaqueRef:gone"),
		},
		{
			name: "set op on a non-set field", setup: base,
			ops:  []Op{{Kind: OpSetAdd, Class: "VM", Ref: r1, Field: "other_config", Value: json.RawMessage(`"1"`)}},
			want: datamodel.NewError("INTERNAL_ERROR"),
		},
		{
			name: "batch is atomic", setup: base,
			ops: []Op{
				Create("OpaqueRef:r3", newVM(t, "33333333-3333-4333-8333-333333333333", "three")),
				set(r1, "name_label", "changed"),
				Delete(vm, r2),
				mapAdd(r1, "other_config", "a", "1"),
				mapAdd(r1, "other_config", "a", "2"), // fails
			},
			want: datamodel.NewError("MAP_DUPLICATE_KEY", "VM", "other_config", u1, "a"),
			check: func(t *testing.T, f *fsm) {
				eq(t, f.count(vm), 2)
				_, ok := f.get(vm, "OpaqueRef:r3")
				eq(t, ok, false)
				eq(t, field(t, get(t, f, r1), "name_label"), "one")
				eq(t, field(t, get(t, f, r1), "other_config"), map[string]string{})
				get(t, f, r2)
				_, ok = f.refByUUID(vm, "33333333-3333-4333-8333-333333333333")
				eq(t, ok, false)
			},
		},
		{
			name: "batch sees its earlier ops", changes: []ChangeKind{Add},
			ops: []Op{Create(r1, newVM(t, u1, "one")), set(r1, "name_label", "uno"), setAdd(r1, "tags", "t")},
			check: func(t *testing.T, f *fsm) {
				eq(t, field(t, get(t, f, r1), "name_label"), "uno")
				eq(t, f.refsByName(vm, "uno"), []string{r1})
			},
		},
		{
			name: "batch frees a uuid then reuses it", setup: base, changes: []ChangeKind{Del, Add},
			ops: []Op{Delete(vm, r1), Create("OpaqueRef:r3", newVM(t, u1, "again"))},
			check: func(t *testing.T, f *fsm) {
				eq(t, uuidRef(f, vm, u1), "OpaqueRef:r3")
			},
		},
		{
			name: "batch swaps uuids", setup: base, changes: []ChangeKind{Mod, Mod},
			ops: []Op{set(r1, "uuid", "tmp"), set(r2, "uuid", u1), set(r1, "uuid", u2)},
			check: func(t *testing.T, f *fsm) {
				eq(t, uuidRef(f, vm, u1), r2)
				eq(t, uuidRef(f, vm, u2), r1)
				_, ok := f.refByUUID(vm, "tmp")
				eq(t, ok, false)
			},
		},
		{
			name: "created and deleted in one batch", changes: []ChangeKind{},
			ops: []Op{Create(r1, newVM(t, u1, "one")), Delete(vm, r1)},
			check: func(t *testing.T, f *fsm) {
				eq(t, f.count(vm), 0)
			},
		},
		{
			name: "op after delete in batch", setup: base, ops: []Op{Delete(vm, r1), set(r1, "name_label", "x")},
			want: datamodel.NewError("HANDLE_INVALID", "VM", r1),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFSM(testLogger(t))
			if err := fsmApply(t, f, 1, tt.setup...); err != nil {
				t.Fatalf("setup: %v", err)
			}
			var got *ChangeSet
			f.subscribe(func(cs *ChangeSet) { got = cs })
			err := fsmApply(t, f, 2, tt.ops...)
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.want != nil && err == nil:
				t.Fatalf("no error, want %v", tt.want)
			case tt.want != nil && (err.Code != tt.want.Code || tt.want.Params != nil && !slices.Equal(err.Params, tt.want.Params)):
				t.Fatalf("error %v, want %v", errString(err), tt.want)
			}
			if got == nil || got.Index != 2 || f.applied.Load() != 2 {
				t.Fatalf("change set %+v, applied %d", got, f.applied.Load())
			}
			if tt.want != nil && len(got.Changes) != 0 {
				t.Fatalf("failed batch published %d changes", len(got.Changes))
			}
			if tt.changes != nil {
				var kinds []ChangeKind
				for _, c := range got.Changes {
					kinds = append(kinds, c.Kind)
				}
				if !slices.Equal(kinds, tt.changes) {
					t.Fatalf("change kinds %v, want %v", kinds, tt.changes)
				}
			}
			if tt.check != nil {
				tt.check(t, f)
			}
		})
	}
}

func TestConstructorErrors(t *testing.T) {
	vm := mustClass(t, "VM")
	if _, err := Set(vm, "r", "nope", "x"); err == nil {
		t.Error("Set of unknown field")
	}
	if _, err := Set(vm, "r", "memory_static_max", "not an int"); err == nil {
		t.Error("Set with a value of the wrong Go type")
	}
	if _, err := MapAdd(vm, "r", "name_label", "k", "v"); err == nil {
		t.Error("MapAdd on a string field")
	}
	if _, err := SetAdd(vm, "r", "other_config", "v"); err == nil {
		t.Error("SetAdd on a map field")
	}
	if _, err := MapPut(mustClass(t, "VM_metrics"), "r", "VCPUs_utilisation", "x", 1.0); err == nil {
		t.Error("MapPut with a non-int key on an int-keyed map")
	}
	// Values of the same kind convert: int → int64, string → ref and enum types.
	f := newFSM(testLogger(t))
	ops := []Op{
		Create("OpaqueRef:a", newVM(t, "u", "n")),
		must(Set(vm, "OpaqueRef:a", "memory_static_max", 5))(t),
		must(Set(vm, "OpaqueRef:a", "resident_on", "OpaqueRef:h"))(t),
		must(Set(vm, "OpaqueRef:a", "power_state", "Running"))(t),
	}
	if err := fsmApply(t, f, 1, ops...); err != nil {
		t.Fatal(err)
	}
	o, _ := f.get(vm, "OpaqueRef:a")
	if field(t, o, "memory_static_max") != int64(5) || field(t, o, "resident_on") != datamodel.HostRef("OpaqueRef:h") || field(t, o, "power_state") != datamodel.VMPowerStateRunning {
		t.Fatalf("converted values: %s", datamodel.MarshalRecord(o))
	}
	var derr *datamodel.Error
	_, err := Set(vm, "r", "nope", "x")
	if !asError(err, &derr) || derr.Code != "INTERNAL_ERROR" {
		t.Errorf("constructor error %v is not INTERNAL_ERROR", err)
	}
}

func asError(err error, target **datamodel.Error) bool {
	e, ok := err.(*datamodel.Error)
	if ok {
		*target = e
	}
	return ok
}

// Stored records are never changed in place: a reader holding a record keeps
// seeing the value it got.
func TestCopyOnWrite(t *testing.T) {
	vm := mustClass(t, "VM")
	f := newFSM(testLogger(t))
	if err := fsmApply(t, f, 1, Create("OpaqueRef:a", newVM(t, "u", "n")), must(MapPut(vm, "OpaqueRef:a", "other_config", "k", "1"))(t), must(SetAdd(vm, "OpaqueRef:a", "tags", "x"))(t)); err != nil {
		t.Fatal(err)
	}
	old, _ := f.get(vm, "OpaqueRef:a")
	before := datamodel.MarshalRecord(old)
	if err := fsmApply(t, f, 2,
		must(MapPut(vm, "OpaqueRef:a", "other_config", "k", "2"))(t),
		must(MapRemove(vm, "OpaqueRef:a", "other_config", "k"))(t),
		must(SetAdd(vm, "OpaqueRef:a", "tags", "y"))(t),
		must(SetRemove(vm, "OpaqueRef:a", "tags", "x"))(t),
		must(Set(vm, "OpaqueRef:a", "name_label", "m"))(t),
	); err != nil {
		t.Fatal(err)
	}
	if after := datamodel.MarshalRecord(old); !bytes.Equal(before, after) {
		t.Fatalf("stored record changed in place:\n%s\n%s", before, after)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	vm := mustClass(t, "VM")
	host := mustClass(t, "host")
	f := newFSM(testLogger(t))
	var ops []Op
	for i := range 200 {
		o := newVM(t, datamodel.NewUUID(), "vm")
		ref := datamodel.NewRef()
		ops = append(ops, Create(ref, o), must(MapPut(vm, ref, "other_config", "i", "x"))(t))
		if i%3 == 0 {
			ops = append(ops, must(SetAdd(vm, ref, "tags", "three"))(t))
		}
	}
	ops = append(ops, Create("OpaqueRef:h", newRecord(t, host, map[string]any{"uuid": datamodel.NewUUID(), "name_label": "h"})))
	if err := fsmApply(t, f, 7, ops...); err != nil {
		t.Fatal(err)
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.(*fsmSnapshot).write(&buf); err != nil {
		t.Fatal(err)
	}
	// Changes after the snapshot must not leak into it.
	if err := fsmApply(t, f, 8, Delete(host, "OpaqueRef:h")); err != nil {
		t.Fatal(err)
	}

	g := newFSM(testLogger(t))
	var reset *ChangeSet
	g.subscribe(func(cs *ChangeSet) { reset = cs })
	if err := g.Restore(nopCloser{&buf}); err != nil {
		t.Fatal(err)
	}
	if reset == nil || !reset.Reset || reset.Index != 7 || g.applied.Load() != 7 {
		t.Fatalf("restore notification %+v applied %d", reset, g.applied.Load())
	}
	if g.count(host) != 1 || g.count(vm) != 200 {
		t.Fatalf("counts host %d vm %d", g.count(host), g.count(vm))
	}
	for _, e := range f.list(vm) {
		o, ok := g.get(vm, e.Ref)
		if !ok || !bytes.Equal(datamodel.MarshalRecord(o), datamodel.MarshalRecord(e.Obj)) {
			t.Fatalf("%s differs after restore", e.Ref)
		}
		if r, _ := g.refByUUID(vm, datamodel.UUIDOf(o)); r != e.Ref {
			t.Fatalf("uuid index broken for %s", e.Ref)
		}
	}
	if n := len(g.refsByName(vm, "vm")); n != 200 {
		t.Fatalf("name index has %d", n)
	}
}

type nopCloser struct{ *bytes.Buffer }

func (nopCloser) Close() error { return nil }

func TestDeleteChangeCarriesLastValue(t *testing.T) {
	vm := mustClass(t, "VM")
	f := newFSM(testLogger(t))
	if err := fsmApply(t, f, 1, Create("OpaqueRef:a", newVM(t, "u", "old"))); err != nil {
		t.Fatal(err)
	}
	var got *ChangeSet
	f.subscribe(func(cs *ChangeSet) { got = cs })
	if err := fsmApply(t, f, 2, must(Set(vm, "OpaqueRef:a", "name_label", "new"))(t), Delete(vm, "OpaqueRef:a")); err != nil {
		t.Fatal(err)
	}
	if len(got.Changes) != 1 || got.Changes[0].Kind != Del || datamodel.NameLabelOf(got.Changes[0].Obj) != "new" {
		t.Fatalf("changes %+v", got.Changes)
	}
	if len(f.refsByName(vm, "old"))+len(f.refsByName(vm, "new")) != 0 {
		t.Fatal("name index not cleaned")
	}
}

func TestListConsistent(t *testing.T) {
	f := newFSM(testLogger(t))
	vm := mustClass(t, "VM")
	host := mustClass(t, "host")
	if e := fsmApply(t, f, 1, Create("OpaqueRef:a", newVM(t, "u-a", "a"))); e != nil {
		t.Fatal(e)
	}
	if e := fsmApply(t, f, 2, Create("OpaqueRef:b", newVM(t, "u-b", "b"))); e != nil {
		t.Fatal(e)
	}
	idx, all := f.listConsistent([]*datamodel.Class{vm, host})
	if idx != 2 || len(all[vm]) != 2 || len(all[host]) != 0 {
		t.Fatalf("index %d, vms %d, hosts %d", idx, len(all[vm]), len(all[host]))
	}
	// an entry without changes (a failed batch) does not move the tables' index
	if e := fsmApply(t, f, 3, Delete(vm, "OpaqueRef:missing")); e == nil {
		t.Fatal("delete of a missing ref succeeded")
	}
	if idx, _ := f.listConsistent([]*datamodel.Class{vm}); idx != 2 {
		t.Fatalf("index after failed batch: %d", idx)
	}
}
