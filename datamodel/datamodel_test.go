package datamodel

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestRegistry(t *testing.T) {
	if n := len(AllClasses()); n != 73 {
		t.Fatalf("classes: got %d, want 73", n)
	}
	fields := 0
	for _, c := range AllClasses() {
		fields += len(c.Fields)
		if got, ok := ClassByLower(c.Lower); !ok || got != c {
			t.Errorf("ClassByLower(%q) broken", c.Lower)
		}
		if c.InDatabase && c.UUIDField < 0 && c.Name != "event" {
			t.Errorf("%s has no uuid", c.Name)
		}
	}
	if fields != 950 {
		t.Fatalf("fields: got %d, want 950", fields)
	}
	vm, _ := ClassByName("VM")
	if f, ok := vm.FieldByDBName("name__label"); !ok || f.Name != "name_label" {
		t.Fatalf("FieldByDBName: %v %v", f, ok)
	}
}

func TestDefaultsAreValid(t *testing.T) {
	// every field of every new record must encode and decode to the same value
	for _, c := range AllClasses() {
		if c.New == nil {
			continue
		}
		o := c.New()
		for _, f := range c.Fields {
			if f.Type.Kind == KindOption {
				continue // options are omitted from records when absent
			}
			v := o.Field(f.Index)
			b := MarshalValue(f.Type, v)
			back, err := UnmarshalValue(f.Type, b)
			if err != nil {
				t.Errorf("%s.%s: %v (%s)", c.Name, f.Name, err, b)
				continue
			}
			if b2 := MarshalValue(f.Type, back); !bytes.Equal(b, b2) {
				t.Errorf("%s.%s: %s != %s", c.Name, f.Name, b, b2)
			}
		}
	}
	vm := NewVMRecord()
	if vm.PowerState != VMPowerStateHalted || vm.Affinity != HostRef(NullRef) {
		t.Fatalf("VM defaults: %v %v", vm.PowerState, vm.Affinity)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	vm := NewVMRecord()
	vm.UUID = NewUUID()
	vm.NameLabel = "a <b> & \"c\""
	vm.OtherConfig = map[string]string{"k": "v", "a": "b"}
	vm.Tags = []string{"x", "y"}
	vm.MemoryStaticMax = 1 << 40
	vm.BlockedOperations = map[VMOperations]string{VMOperationsStart: "no"}
	vm.PowerState = VMPowerStateRunning
	b := MarshalRecord(vm)
	o, err := UnmarshalRecord(VMClass, b)
	if err != nil {
		t.Fatal(err)
	}
	if b2 := MarshalRecord(o); !bytes.Equal(b, b2) {
		t.Fatalf("round trip:\n%s\n%s", b, b2)
	}
}

func TestDecodeLeniency(t *testing.T) {
	tests := []struct {
		typ  *Type
		in   any
		want any
		bad  bool
	}{
		{Tint, "123", int64(123), false},
		{Tint, int64(5), int64(5), false},
		{Tint, "x", nil, true},
		{Tfloat, "1.5", 1.5, false},
		{Tfloat, int64(2), 2.0, false},
		{Tbool, "true", nil, true},
		{Tenumvm_power_state, "running", VMPowerStateRunning, false},
		{Tenumvm_power_state, "nope", nil, true},
		{Tdatetime, "20250319T04:16:24Z", time.Date(2025, 3, 19, 4, 16, 24, 0, time.UTC), false},
		{Tdatetime, "2025-03-19T04:16:24Z", time.Date(2025, 3, 19, 4, 16, 24, 0, time.UTC), false},
		{TsetOfstring, []any{"a", int64(1)}, nil, true},
	}
	for _, tc := range tests {
		got, err := tc.typ.Decode(tc.in)
		if tc.bad {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Errorf("%s(%v): want DecodeError, got %v %v", tc.typ.Name, tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s(%v) = %v, %v; want %v", tc.typ.Name, tc.in, got, err, tc.want)
		}
	}
}

func TestFormatDateTime(t *testing.T) {
	if got := FormatDateTime(time.Date(2025, 3, 19, 16, 6, 7, 0, time.UTC)); got != "20250319T16:06:07Z" {
		t.Fatal(got)
	}
	if got := FormatDateTime(Epoch); got != "19700101T00:00:00Z" {
		t.Fatal(got)
	}
}

func TestErrorConstructors(t *testing.T) {
	e := ErrHandleInvalid("VM", "OpaqueRef:x")
	if e.Code != "HANDLE_INVALID" || len(e.Params) != 2 || e.Params[0] != "VM" {
		t.Fatal(e)
	}
	if len(ErrorParams) < 600 {
		t.Fatal(len(ErrorParams))
	}
}
