package store

import (
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/xapi-go/xapi-go/datamodel"
)

func testLogger(t testing.TB) *slog.Logger {
	t.Helper()
	if os.Getenv("STORE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func mustClass(t testing.TB, name string) *datamodel.Class {
	t.Helper()
	c, ok := datamodel.ClassByName(name)
	if !ok {
		t.Fatalf("no class %s", name)
	}
	return c
}

func mustField(t testing.TB, c *datamodel.Class, name string) *datamodel.Field {
	t.Helper()
	f, ok := c.FieldByName(name)
	if !ok {
		t.Fatalf("no field %s.%s", c.Name, name)
	}
	return f
}

// newRecord builds a record of c with the given wire fields set (typed values).
func newRecord(t testing.TB, c *datamodel.Class, fields map[string]any) datamodel.Object {
	t.Helper()
	o := c.New()
	for name, v := range fields {
		if err := o.SetField(mustField(t, c, name).Index, v); err != nil {
			t.Fatalf("set %s.%s: %v", c.Name, name, err)
		}
	}
	return o
}

func newVM(t testing.TB, uuid, name string) datamodel.Object {
	return newRecord(t, mustClass(t, "VM"), map[string]any{"uuid": uuid, "name_label": name})
}

func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// fsmApply applies ops directly to an FSM as raft would, at index idx.
func fsmApply(t testing.TB, f *fsm, idx uint64, ops ...Op) *datamodel.Error {
	t.Helper()
	data, err := encodeBatch(ops)
	if err != nil {
		t.Fatal(err)
	}
	r := f.Apply(&raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: data})
	if r == nil {
		return nil
	}
	return r.(*datamodel.Error)
}

func field(t testing.TB, o datamodel.Object, name string) any {
	t.Helper()
	return o.Field(mustField(t, o.ClassInfo(), name).Index)
}

func errString(e *datamodel.Error) string {
	if e == nil {
		return "<nil>"
	}
	return e.Error()
}

func uuidRef(f *fsm, c *datamodel.Class, uuid string) string {
	r, _ := f.refByUUID(c, uuid)
	return r
}
