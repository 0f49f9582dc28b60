package where

import (
	"errors"
	"reflect"
	"testing"
)

// echoRow has every column; a column's value is its name.
type echoRow struct{}

func (echoRow) Column(name string) (string, bool) { return name, true }

// evalResult is the outcome of Eval in comparable form.
type evalResult struct {
	v       bool
	err     bool
	unknown string
}

func evalOn(t *testing.T, e Expr, r Row) evalResult {
	t.Helper()
	v, err := e.Eval(r)
	if err == nil {
		return evalResult{v: v}
	}
	var uc *UnknownColumnError
	if !errors.As(err, &uc) {
		t.Fatalf("Eval error %T %v, want *UnknownColumnError", err, err)
	}
	if v {
		t.Fatalf("Eval returned true with error %v", err)
	}
	return evalResult{err: true, unknown: uc.Column}
}

// FuzzParse checks that Parse never panics, that its errors are well-formed
// *SyntaxErrors, and that the String form of a parsed expression is a fixed
// point that parses again and evaluates identically.
func FuzzParse(f *testing.F) {
	f.Add(`field "name__label" = "vm1"`)
	rows := []Row{vmRow, echoRow{}, mapRow{}, mapRow{"a": "a", "b": "a", "c": "c", "": ""}}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) error %T %v, want *SyntaxError", s, err, err)
			}
			if se.Expr != s {
				t.Fatalf("SyntaxError.Expr = %q, want %q", se.Expr, s)
			}
			if se.Pos < 0 || se.Pos > len(s) {
				t.Fatalf("Parse(%q): Pos %d out of range [0, %d]", s, se.Pos, len(s))
			}
			if se.Msg == "" {
				t.Fatalf("Parse(%q): empty Msg", s)
			}
			return
		}
		out := e.String()
		e2, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(%q) = %q, which does not parse: %v", s, out, err)
		}
		if out2 := e2.String(); out2 != out {
			t.Fatalf("String not a fixed point for %q:\n first  %q\n second %q", s, out, out2)
		}
		if c1, c2 := Columns(e), Columns(e2); !reflect.DeepEqual(c1, c2) {
			t.Fatalf("Columns differ for %q: %q vs %q", s, c1, c2)
		}
		for _, r := range rows {
			if r1, r2 := evalOn(t, e, r), evalOn(t, e2, r); r1 != r2 {
				t.Fatalf("Eval differs for %q / %q on %v: %+v vs %+v", s, out, r, r1, r2)
			}
		}
	})
}
