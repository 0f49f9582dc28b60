package where

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// mapRow is a Row backed by a map.
type mapRow map[string]string

func (m mapRow) Column(name string) (string, bool) {
	v, ok := m[name]
	return v, ok
}

var vmRow = mapRow{
	"_ref":               "OpaqueRef:1b6a0e0a-0000-4000-8000-000000000001",
	"uuid":               "abc",
	"name__label":        "vm1",
	"name__description":  "",
	"power_state":        "Running",
	"is_a_template":      "false",
	"is_control_domain":  "false",
	"memory__static_max": "4294967296",
	"other":              "vm1",
	"quote":              `has "quotes"`,
}

func TestEval(t *testing.T) {
	tests := []struct {
		expr string
		want bool
	}{
		// Constants.
		{`true`, true},
		{`false`, false},
		// Field against literal, both orders.
		{`field "name__label" = "vm1"`, true},
		{`field "name__label" = "vm2"`, false},
		{`"vm1" = field "name__label"`, true},
		{`field "is_a_template"="false"`, true},
		{`field "is_a_template"="true"`, false},
		{`field "_ref" = "OpaqueRef:1b6a0e0a-0000-4000-8000-000000000001"`, true},
		{`field "name__description" = ""`, true},
		{`field "memory__static_max" = "4294967296"`, true},
		// Comparison is exact, case-sensitive and does not trim.
		{`field "power_state" = "running"`, false},
		{`field "name__label" = "vm1 "`, false},
		// Literal against literal.
		{`"a" = "a"`, true},
		{`"a" = "b"`, false},
		{`"" = ""`, true},
		{`"with space" = "with space"`, true},
		{`"a=b" = "a=b"`, true},
		{`"and" = "and"`, true},
		{`"(" = "("`, true},
		// Field against field.
		{`field "name__label" = field "other"`, true},
		{`field "name__label" = field "uuid"`, false},
		{`field "uuid" = field "uuid"`, true},
		// and / or.
		{`true and true`, true},
		{`true and false`, false},
		{`false and true`, false},
		{`false or true`, true},
		{`false or false`, false},
		{`true or false`, true},
		{`(field "uuid"="abc") or (field "name__label"="x")`, true},
		{`(field "uuid"="zzz") or (field "name__label"="x")`, false},
		{`(field "uuid"="zzz") or (field "name__label"="vm1")`, true},
		// Same precedence, left-associative.
		{`"a"="a" or "a"="b" and "a"="b"`, false},       // (T or F) and F
		{`("a"="a" or "a"="b") and "a"="b"`, false},     // explicit
		{`"a"="a" or ("a"="b" and "a"="b")`, true},      // explicit other grouping
		{`false and true or true`, true},                // (F and T) or T
		{`false and (true or true)`, false},             // explicit other grouping
		{`true or false and false`, false},              // (T or F) and F
		{`false or true and true or false`, true},       // ((F or T) and T) or F
		{`false or true and false or false`, false},     // ((F or T) and F) or F
		{`true and false or true and false`, false},     // (((T and F) or T) and F)
		{`(true and false) or (true and false)`, false}, // explicit
		// not.
		{`not true`, false},
		{`not false`, true},
		{`not not true`, true},
		{`not field "power_state" = "Running"`, false},
		{`not (field "power_state" = "Running") and true`, false},
		{`not (field "power_state" = "Halted") and true`, true},
		// not binds tighter than and/or.
		{`not true and false`, false}, // (not T) and F; not (T and F) would be true
		{`not false or true`, true},
		{`not true or true`, true},    // (not T) or T; not (T or T) would be false
		{`not (true or true)`, false}, // explicit
		{`true and not false`, true},
		{`false or not false and false`, false}, // (F or (not F)) and F
		// Parentheses.
		{`(true)`, true},
		{`((((false))))`, false},
		{`(not (true))`, false},
		{`((field "uuid" = "abc"))`, true},
		// Whitespace is free between tokens, and optional next to quotes.
		{"field\"uuid\"=\"abc\"", true},
		{" \t\n field \r\n \"uuid\"\n=\n\"abc\"\t ", true},
		{`(true)and(false)`, false},
		{`"a"="a"and"b"="b"`, true},
		{`not(false)`, true},
		// Literals hold anything but '"'.
		{"field \"name__description\" = \"\"or\"x\n\ty\"=\"x\n\ty\"", true},
		{`field "quote" = "has "`, false},
		{"\"\xff\xfe\" = \"\xff\xfe\"", true},
		{`"héllo" = "héllo"`, true},
	}
	for _, tt := range tests {
		e, err := Parse(tt.expr)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.expr, err)
			continue
		}
		got, err := e.Eval(vmRow)
		if err != nil {
			t.Errorf("Parse(%q).Eval: %v", tt.expr, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Parse(%q).Eval = %v, want %v (String %q)", tt.expr, got, tt.want, e.String())
		}
		// The canonical form must mean the same.
		e2, err := Parse(e.String())
		if err != nil {
			t.Errorf("Parse(%q) = %q, which does not parse: %v", tt.expr, e.String(), err)
			continue
		}
		if got2, err := e2.Eval(vmRow); err != nil || got2 != got {
			t.Errorf("String form %q of %q evaluates to %v, %v; want %v", e.String(), tt.expr, got2, err, got)
		}
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		expr, want string
	}{
		{`true`, `true`},
		{`  false `, `false`},
		{`field"a"="b"`, `field "a" = "b"`},
		{`"a"=field"b"`, `"a" = field "b"`},
		{`field "a" = field "b"`, `field "a" = field "b"`},
		{`(field "uuid"="abc") or (field "name__label"="x")`, `field "uuid" = "abc" or field "name__label" = "x"`},
		{`not (field "power_state" = "Running") and true`, `not field "power_state" = "Running" and true`},
		{`not (true and false)`, `not (true and false)`},
		{`not not (true)`, `not not true`},
		{`((true and false) or true) and false`, `true and false or true and false`},
		{`true and (false or true)`, `true and (false or true)`},
		{`true and (false or (true and false))`, `true and (false or (true and false))`},
		{`((((true))))`, `true`},
		{`(not (true))`, `not true`},
		{"\"x\ny\" = \"\"", "\"x\ny\" = \"\""},
	}
	for _, tt := range tests {
		e, err := Parse(tt.expr)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.expr, err)
			continue
		}
		if got := e.String(); got != tt.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.expr, got, tt.want)
		}
	}
}

func TestSyntaxErrors(t *testing.T) {
	tests := []struct {
		name string
		expr string
		pos  int
		msg  string // substring of Msg
	}{
		{"empty", ``, 0, "empty expression"},
		{"blank", "  \t\n", 4, "empty expression"},
		{"unclosed quote", `field "name__label" = "vm1`, 22, "unterminated string literal"},
		{"unclosed column quote", `field "name__label = "vm1"`, 22, `unexpected word "vm1"`},
		{"lone quote", `"`, 0, "unterminated string literal"},
		{"missing right operand", `field "a" =`, 11, `expected a value`},
		{"missing right operand before and", `field "a" = and true`, 12, `expected a value`},
		{"missing left operand", `= "a"`, 0, "expected an expression"},
		{"missing =", `field "a" "b"`, 10, `expected "="`},
		{"value alone", `"a"`, 3, `expected "="`},
		{"missing and operand", `true and`, 8, "expected an expression"},
		{"missing or operand", `true or )`, 8, "expected an expression"},
		{"missing not operand", `not`, 3, "expected an expression"},
		{"leading and", `and true`, 0, "expected an expression"},
		{"double and", `true and and true`, 9, "expected an expression"},
		{"trailing tokens", `true false`, 5, `unexpected "false" after a complete expression`},
		{"trailing comparison", `field "a" = "b" "c"`, 16, `unexpected string literal "c"`},
		{"trailing paren", `(true))`, 6, `unmatched ")"`},
		{"trailing not", `true not`, 5, `unexpected "not"`},
		{"chained =", `"a" = "b" = "c"`, 10, `unexpected "="`},
		{"field without quote", `field name__label = "vm1"`, 6, `unexpected word "name__label"`},
		{"field followed by =", `field = "vm1"`, 6, `expected a quoted column name after "field"`},
		{"field at end", `field`, 5, `expected a quoted column name after "field"`},
		{"field field", `field field "a" = "b"`, 6, `expected a quoted column name after "field"`},
		{"unclosed paren", `(true`, 5, `expected ")" to close "(" at offset 0`},
		{"unclosed inner paren", `true and ((false) or true`, 25, `expected ")" to close "(" at offset 9`},
		{"empty parens", `()`, 1, "expected an expression"},
		{"unknown word", `true And false`, 5, `unexpected word "And"`},
		{"upper-case keyword", `TRUE`, 0, `unexpected word "TRUE"`},
		{"glued keywords", `true andfalse`, 5, `unexpected word "andfalse"`},
		{"bare column", `name__label = "vm1"`, 0, `unexpected word "name__label"`},
		{"bad character", `field "a" == "b"`, 11, `expected a value`},
		{"not-equals", `field "a" != "b"`, 10, `unexpected character "!"`},
		{"single quotes", `field 'a' = 'b'`, 6, `unexpected character "'"`},
		{"non-ascii outside literal", `true and é`, 9, `unexpected character "é"`},
		{"invalid utf-8 outside literal", "true \xff", 5, `unexpected character "\xff"`},
		{"number", `1 = 1`, 0, `unexpected character "1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse(tt.expr)
			if err == nil {
				t.Fatalf("Parse(%q) = %q, want error", tt.expr, e.String())
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) error %T %v, want *SyntaxError", tt.expr, err, err)
			}
			if se.Expr != tt.expr {
				t.Errorf("SyntaxError.Expr = %q, want %q", se.Expr, tt.expr)
			}
			if se.Pos != tt.pos {
				t.Errorf("Parse(%q): Pos = %d, want %d (%v)", tt.expr, se.Pos, tt.pos, err)
			}
			if !strings.Contains(se.Msg, tt.msg) {
				t.Errorf("Parse(%q): Msg = %q, want it to contain %q", tt.expr, se.Msg, tt.msg)
			}
			if !strings.Contains(err.Error(), se.Msg) {
				t.Errorf("Error() = %q does not contain Msg %q", err.Error(), se.Msg)
			}
		})
	}
}

func TestSyntaxErrorString(t *testing.T) {
	_, err := Parse(`true false`)
	want := `where: syntax error at offset 5: unexpected "false" after a complete expression`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

func TestDeepNesting(t *testing.T) {
	const n = 100000
	tests := []struct {
		name string
		expr string
	}{
		{"open parens", strings.Repeat("(", n)},
		{"balanced parens", strings.Repeat("(", n) + "true" + strings.Repeat(")", n)},
		{"nots", strings.Repeat("not ", n) + "true"},
		{"not paren", strings.Repeat("not (", n) + "true" + strings.Repeat(")", n)},
		{"right-nested and", strings.Repeat("true and (", n) + "true" + strings.Repeat(")", n)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.expr)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v, want *SyntaxError", err)
			}
			if !strings.Contains(se.Msg, "nested more than 1000 levels") {
				t.Errorf("Msg = %q", se.Msg)
			}
		})
	}

	// Exactly MaxDepth levels is accepted; one more is not.
	half := MaxDepth / 2
	limits := []struct {
		name     string
		ok, over string
	}{
		{"parens",
			strings.Repeat("(", MaxDepth) + "true" + strings.Repeat(")", MaxDepth),
			strings.Repeat("(", MaxDepth+1) + "true" + strings.Repeat(")", MaxDepth+1)},
		{"nots",
			strings.Repeat("not ", MaxDepth) + "true",
			strings.Repeat("not ", MaxDepth+1) + "true"},
		{"not parens",
			strings.Repeat("not (", half) + "true" + strings.Repeat(")", half),
			strings.Repeat("not (", half) + "not true" + strings.Repeat(")", half)},
	}
	for _, tc := range limits {
		e, err := Parse(tc.ok)
		if err != nil {
			t.Errorf("%s: depth %d rejected: %v", tc.name, MaxDepth, err)
		} else {
			if _, err := Parse(e.String()); err != nil {
				t.Errorf("%s: String form of depth %d rejected: %v", tc.name, MaxDepth, err)
			}
			if _, err := e.Eval(vmRow); err != nil {
				t.Errorf("%s: Eval: %v", tc.name, err)
			}
		}
		if _, err := Parse(tc.over); err == nil {
			t.Errorf("%s: depth %d accepted", tc.name, MaxDepth+1)
		}
	}
}

func TestLongChain(t *testing.T) {
	// Chains are not nesting: 100,000 terms parse and evaluate iteratively.
	const n = 100000
	var b strings.Builder
	b.WriteString(`field "uuid" = "nope"`)
	for i := 0; i < n; i++ {
		b.WriteString(` or field "uuid" = "nope"`)
	}
	b.WriteString(` or field "name__label" = "vm1"`)
	e, err := Parse(b.String())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.Eval(vmRow); err != nil || !got {
		t.Errorf("Eval = %v, %v; want true", got, err)
	}
	if got := Columns(e); !reflect.DeepEqual(got, []string{"uuid", "name__label"}) {
		t.Errorf("Columns = %q", got)
	}
	// A chain of parenthesised chains in first position is flattened.
	s := strings.Repeat("(", 999) + "true" + strings.Repeat(" and true)", 999) + " and false"
	e, err = Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.Eval(vmRow); err != nil || got {
		t.Errorf("Eval = %v, %v; want false", got, err)
	}
	if want := "true" + strings.Repeat(" and true", 999) + " and false"; e.String() != want {
		t.Errorf("String not flattened: %.80q…", e.String())
	}
}

func TestUnknownColumn(t *testing.T) {
	tests := []struct {
		expr   string
		column string // "" for no error
		want   bool
	}{
		{`field "nope" = "x"`, "nope", false},
		{`"x" = field "nope"`, "nope", false},
		{`field "nope" = field "uuid"`, "nope", false},
		{`field "uuid" = field "nope"`, "nope", false},
		{`field "name_label" = "vm1"`, "name_label", false},
		{`not field "nope" = "x"`, "nope", false},
		{`true and field "nope" = "x"`, "nope", false},
		{`false or field "nope" = "x"`, "nope", false},
		{`(field "nope" = "x") or true`, "nope", false},
		// Short-circuit: the unknown column is never reached.
		{`false and field "nope" = "x"`, "", false},
		{`true or field "nope" = "x"`, "", true},
		{`field "uuid" = "abc" or field "nope" = "x"`, "", true},
	}
	for _, tt := range tests {
		e, err := Parse(tt.expr)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.expr, err)
			continue
		}
		got, err := e.Eval(vmRow)
		if tt.column == "" {
			if err != nil || got != tt.want {
				t.Errorf("Parse(%q).Eval = %v, %v; want %v, nil", tt.expr, got, err, tt.want)
			}
			continue
		}
		var uc *UnknownColumnError
		if !errors.As(err, &uc) {
			t.Errorf("Parse(%q).Eval error = %v, want *UnknownColumnError", tt.expr, err)
			continue
		}
		if uc.Column != tt.column {
			t.Errorf("Parse(%q).Eval: Column = %q, want %q", tt.expr, uc.Column, tt.column)
		}
		if got {
			t.Errorf("Parse(%q).Eval = true with error", tt.expr)
		}
		if want := `where: unknown column "` + tt.column + `"`; err.Error() != want {
			t.Errorf("Error() = %q, want %q", err.Error(), want)
		}
	}
}

func TestColumns(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`true`, nil},
		{`"a" = "b"`, nil},
		{`field "name__label" = "vm1"`, []string{"name__label"}},
		{`"vm1" = field "name__label"`, []string{"name__label"}},
		{`field "a" = field "b"`, []string{"a", "b"}},
		{`field "a" = field "a"`, []string{"a"}},
		{`(field "uuid"="abc") or (field "name__label"="x")`, []string{"uuid", "name__label"}},
		{`not (field "b" = "1" and (field "a" = "2" or not field "_ref" = "3")) or field "b" = "4"`, []string{"b", "a", "_ref"}},
		{`false and field "never" = "evaluated"`, []string{"never"}},
	}
	for _, tt := range tests {
		e, err := Parse(tt.expr)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.expr, err)
			continue
		}
		if got := Columns(e); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Columns(%q) = %q, want %q", tt.expr, got, tt.want)
		}
	}
}

func TestEvalDoesNotAllocate(t *testing.T) {
	e, err := Parse(`not (field "power_state" = "Halted") and (field "uuid"="zzz" or field "name__label" = field "other") and not field "is_a_template" = "true" or false`)
	if err != nil {
		t.Fatal(err)
	}
	row := vmRow
	allocs := testing.AllocsPerRun(1000, func() {
		if ok, err := e.Eval(row); !ok || err != nil {
			t.Fatalf("Eval = %v, %v", ok, err)
		}
	})
	if allocs != 0 {
		t.Errorf("Eval allocates %v times per row, want 0", allocs)
	}
}
