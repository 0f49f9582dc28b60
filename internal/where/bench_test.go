package where

import (
	"strconv"
	"testing"
)

// structRow is a Row over a fixed struct, as a database layer might provide.
type structRow struct {
	ref, uuid, nameLabel, powerState, isATemplate string
}

func (r *structRow) Column(name string) (string, bool) {
	switch name {
	case "_ref":
		return r.ref, true
	case "uuid":
		return r.uuid, true
	case "name__label":
		return r.nameLabel, true
	case "power_state":
		return r.powerState, true
	case "is_a_template":
		return r.isATemplate, true
	}
	return "", false
}

const benchExpr = `not (field "power_state" = "Halted") and (field "uuid"="zzz" or field "name__label" = "vm1") and field "is_a_template" = "false"`

func BenchmarkEval(b *testing.B) {
	e, err := Parse(benchExpr)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("map", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if ok, err := e.Eval(vmRow); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("struct", func(b *testing.B) {
		r := &structRow{"OpaqueRef:1", "abc", "vm1", "Running", "false"}
		b.ReportAllocs()
		for b.Loop() {
			if ok, err := e.Eval(r); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
}

// BenchmarkEval100kRows filters 100,000 rows per iteration, the size of a
// large get_all_records_where call.
func BenchmarkEval100kRows(b *testing.B) {
	e, err := Parse(`(field "uuid"="uuid-77777") or (field "name__label"="vm-12345")`)
	if err != nil {
		b.Fatal(err)
	}
	rows := make([]structRow, 100000)
	for i := range rows {
		s := strconv.Itoa(i)
		rows[i] = structRow{"OpaqueRef:" + s, "uuid-" + s, "vm-" + s, "Running", "false"}
	}
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for i := range rows {
			ok, err := e.Eval(&rows[i])
			if err != nil {
				b.Fatal(err)
			}
			if ok {
				n++
			}
		}
		if n != 2 {
			b.Fatalf("matched %d rows, want 2", n)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(benchExpr); err != nil {
			b.Fatal(err)
		}
	}
}
