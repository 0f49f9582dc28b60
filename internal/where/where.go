package where

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxDepth is the deepest nesting of parentheses and "not" that Parse
// accepts.
const MaxDepth = 1000

// Row is one database row as seen by an expression.
type Row interface {
	// Column returns the value of the named column in its database string
	// representation, and whether the row has such a column.
	Column(name string) (value string, ok bool)
}

// Expr is a parsed filter expression.
type Expr interface {
	// Eval reports whether the row matches. It returns an
	// *UnknownColumnError if a comparison it reaches reads a column the row
	// does not have.
	Eval(r Row) (bool, error)
	// String returns the canonical source form of the expression.
	String() string
}

// SyntaxError is returned by Parse for malformed input.
type SyntaxError struct {
	Expr string // the whole input
	Pos  int    // 0-based byte offset of the error in Expr
	Msg  string // what is wrong
}

func (e *SyntaxError) Error() string {
	return "where: syntax error at offset " + strconv.Itoa(e.Pos) + ": " + e.Msg
}

// UnknownColumnError is returned by Eval when the expression reads a column
// that the row does not have.
type UnknownColumnError struct {
	Column string
}

func (e *UnknownColumnError) Error() string {
	return "where: unknown column " + strconv.Quote(e.Column)
}

// ---------------------------------------------------------------------------
// Expression nodes.

// constExpr is "true" or "false".
type constExpr bool

func (c constExpr) Eval(Row) (bool, error) { return bool(c), nil }

func (c constExpr) String() string {
	if c {
		return "true"
	}
	return "false"
}

// operand is one side of "=": a literal, or a column reference.
type operand struct {
	field bool
	s     string // literal text or column name
}

func (o *operand) value(r Row) (string, error) {
	if !o.field {
		return o.s, nil
	}
	v, ok := r.Column(o.s)
	if !ok {
		return "", &UnknownColumnError{Column: o.s}
	}
	return v, nil
}

func (o *operand) write(b *strings.Builder) {
	if o.field {
		b.WriteString("field ")
	}
	b.WriteByte('"')
	b.WriteString(o.s)
	b.WriteByte('"')
}

// eqExpr is value "=" value.
type eqExpr struct {
	l, r operand
}

func (e *eqExpr) Eval(row Row) (bool, error) {
	l, err := e.l.value(row)
	if err != nil {
		return false, err
	}
	r, err := e.r.value(row)
	if err != nil {
		return false, err
	}
	return l == r, nil
}

func (e *eqExpr) String() string { return exprString(e) }

// notExpr is "not" expr.
type notExpr struct {
	x Expr
}

func (n *notExpr) Eval(r Row) (bool, error) {
	v, err := n.x.Eval(r)
	if err != nil {
		return false, err
	}
	return !v, nil
}

func (n *notExpr) String() string { return exprString(n) }

type opKind uint8

const (
	opAnd opKind = iota
	opOr
)

func (op opKind) String() string {
	if op == opAnd {
		return "and"
	}
	return "or"
}

type chainTerm struct {
	op opKind
	x  Expr
}

// chainExpr is a left-associative sequence x0 op1 x1 op2 x2 …, meaning
// ((x0 op1 x1) op2 x2) …. It is never nested as its own first operand (the
// parser flattens that case), so its length costs no recursion.
type chainExpr struct {
	first Expr
	rest  []chainTerm // at least one
}

func (c *chainExpr) Eval(r Row) (bool, error) {
	v, err := c.first.Eval(r)
	if err != nil {
		return false, err
	}
	for i := range c.rest {
		t := &c.rest[i]
		if (t.op == opAnd) != v {
			// false and …, true or …: already decided for this step.
			continue
		}
		if v, err = t.x.Eval(r); err != nil {
			return false, err
		}
	}
	return v, nil
}

func (c *chainExpr) String() string { return exprString(c) }

// ---------------------------------------------------------------------------
// Printing.

func exprString(e Expr) string {
	var b strings.Builder
	writeExpr(&b, e)
	return b.String()
}

// writeExpr writes e in canonical form. Recursion depth is bounded by the
// nesting depth of e, which Parse limits to MaxDepth.
func writeExpr(b *strings.Builder, e Expr) {
	switch e := e.(type) {
	case constExpr:
		b.WriteString(e.String())
	case *eqExpr:
		e.l.write(b)
		b.WriteString(" = ")
		e.r.write(b)
	case *notExpr:
		b.WriteString("not ")
		writeOperand(b, e.x)
	case *chainExpr:
		writeOperand(b, e.first)
		for _, t := range e.rest {
			b.WriteByte(' ')
			b.WriteString(t.op.String())
			b.WriteByte(' ')
			writeOperand(b, t.x)
		}
	default:
		// An Expr implemented outside this package.
		b.WriteByte('(')
		b.WriteString(e.String())
		b.WriteByte(')')
	}
}

// writeOperand writes e as the operand of "not", "and" or "or",
// parenthesising it if it is itself a chain.
func writeOperand(b *strings.Builder, e Expr) {
	if _, ok := e.(*chainExpr); ok {
		b.WriteByte('(')
		writeExpr(b, e)
		b.WriteByte(')')
		return
	}
	writeExpr(b, e)
}

// ---------------------------------------------------------------------------
// Columns.

// Columns returns the names of the columns that e reads, each once, in the
// order of their first appearance, including columns in operands that
// short-circuiting may skip. It returns nil if e reads no column. Only
// expressions returned by Parse are inspected.
func Columns(e Expr) []string {
	var (
		out  []string
		seen map[string]struct{}
	)
	add := func(o *operand) {
		if !o.field {
			return
		}
		if seen == nil {
			seen = make(map[string]struct{})
		}
		if _, dup := seen[o.s]; dup {
			return
		}
		seen[o.s] = struct{}{}
		out = append(out, o.s)
	}
	var walk func(Expr)
	walk = func(e Expr) {
		switch e := e.(type) {
		case *eqExpr:
			add(&e.l)
			add(&e.r)
		case *notExpr:
			walk(e.x)
		case *chainExpr:
			walk(e.first)
			for _, t := range e.rest {
				walk(t.x)
			}
		}
	}
	walk(e)
	return out
}

// ---------------------------------------------------------------------------
// Lexer.

type tokKind uint8

const (
	tEOF tokKind = iota
	tString
	tField
	tAnd
	tOr
	tNot
	tTrue
	tFalse
	tLParen
	tRParen
	tEq
)

type token struct {
	kind tokKind
	pos  int    // byte offset of the token's first byte
	text string // contents of a string literal, without the quotes
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of input"
	case tString:
		const max = 40
		if len(t.text) > max {
			return "string literal " + strconv.Quote(t.text[:max]+"…")
		}
		return "string literal " + strconv.Quote(t.text)
	case tField:
		return `"field"`
	case tAnd:
		return `"and"`
	case tOr:
		return `"or"`
	case tNot:
		return `"not"`
	case tTrue:
		return `"true"`
	case tFalse:
		return `"false"`
	case tLParen:
		return `"("`
	case tRParen:
		return `")"`
	case tEq:
		return `"="`
	}
	return "unknown token"
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func isWordStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
}

func isWordByte(c byte) bool {
	return isWordStart(c) || '0' <= c && c <= '9'
}

var keywords = map[string]tokKind{
	"field": tField,
	"and":   tAnd,
	"or":    tOr,
	"not":   tNot,
	"true":  tTrue,
	"false": tFalse,
}

// ---------------------------------------------------------------------------
// Parser: recursive descent, with recursion bounded by MaxDepth.

type parser struct {
	src   string
	off   int   // next byte to scan
	tok   token // current token
	depth int   // open parentheses and "not"s around the current token
}

// Parse parses a filter expression. Every error it returns is a
// *SyntaxError.
func Parse(s string) (Expr, error) {
	p := &parser{src: s}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tEOF {
		return nil, p.errorf(p.tok.pos, "empty expression")
	}
	e, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		msg := "unexpected " + p.tok.describe() + " after a complete expression"
		if p.tok.kind == tRParen {
			msg = `unmatched ")"`
		}
		return nil, p.errorf(p.tok.pos, "%s", msg)
	}
	return e, nil
}

func (p *parser) errorf(pos int, format string, args ...any) error {
	return &SyntaxError{Expr: p.src, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// advance scans the next token into p.tok.
func (p *parser) advance() error {
	s := p.src
	i := p.off
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	if i == len(s) {
		p.off = i
		p.tok = token{kind: tEOF, pos: i}
		return nil
	}
	start := i
	switch c := s[i]; {
	case c == '"':
		n := strings.IndexByte(s[i+1:], '"')
		if n < 0 {
			return p.errorf(start, "unterminated string literal")
		}
		p.tok = token{kind: tString, pos: start, text: s[i+1 : i+1+n]}
		p.off = i + 1 + n + 1
		return nil
	case c == '(':
		p.tok = token{kind: tLParen, pos: start}
	case c == ')':
		p.tok = token{kind: tRParen, pos: start}
	case c == '=':
		p.tok = token{kind: tEq, pos: start}
	case isWordStart(c):
		j := i + 1
		for j < len(s) && isWordByte(s[j]) {
			j++
		}
		word := s[i:j]
		k, ok := keywords[word]
		if !ok {
			if len(word) > 40 {
				word = word[:40] + "…"
			}
			return p.errorf(start, "unexpected word %q (want field, and, or, not, true, false, or a quoted string)", word)
		}
		p.tok = token{kind: k, pos: start}
		p.off = j
		return nil
	default:
		return p.errorf(start, "unexpected character %q", firstRune(s[i:]))
	}
	p.off = i + 1
	return nil
}

// firstRune returns the first UTF-8 sequence of s, or its first byte if s
// does not start with a valid one.
func firstRune(s string) string {
	for i := range s {
		if i > 0 {
			return s[:i]
		}
	}
	return s
}

// enter records one more level of nesting at pos.
func (p *parser) enter(pos int) error {
	if p.depth >= MaxDepth {
		return p.errorf(pos, "expression nested more than %d levels deep", MaxDepth)
	}
	p.depth++
	return nil
}

// parseExpr parses unary (("and" | "or") unary)*.
func (p *parser) parseExpr() (Expr, error) {
	first, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tAnd && p.tok.kind != tOr {
		return first, nil
	}
	// Left associativity makes "(a op b) op c" the same as "a op b op c",
	// so a parenthesised chain in first position is extended in place.
	c, ok := first.(*chainExpr)
	if !ok {
		c = &chainExpr{first: first}
	}
	for p.tok.kind == tAnd || p.tok.kind == tOr {
		op := opAnd
		if p.tok.kind == tOr {
			op = opOr
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		x, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		c.rest = append(c.rest, chainTerm{op: op, x: x})
	}
	return c, nil
}

// parseUnary parses "not" unary | "(" expr ")" | "true" | "false" |
// value "=" value.
func (p *parser) parseUnary() (Expr, error) {
	switch p.tok.kind {
	case tNot:
		if err := p.enter(p.tok.pos); err != nil {
			return nil, err
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		x, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		p.depth--
		return &notExpr{x: x}, nil
	case tLParen:
		open := p.tok.pos
		if err := p.enter(open); err != nil {
			return nil, err
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tRParen {
			return nil, p.errorf(p.tok.pos, `expected ")" to close "(" at offset %d, found %s`, open, p.tok.describe())
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		p.depth--
		return e, nil
	case tTrue, tFalse:
		v := p.tok.kind == tTrue
		if err := p.advance(); err != nil {
			return nil, err
		}
		return constExpr(v), nil
	case tString, tField:
		return p.parseComparison()
	}
	return nil, p.errorf(p.tok.pos, "expected an expression, found %s", p.tok.describe())
}

func (p *parser) parseComparison() (Expr, error) {
	e := &eqExpr{}
	if err := p.parseValue(&e.l); err != nil {
		return nil, err
	}
	if p.tok.kind != tEq {
		return nil, p.errorf(p.tok.pos, `expected "=" after a value, found %s`, p.tok.describe())
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if err := p.parseValue(&e.r); err != nil {
		return nil, err
	}
	return e, nil
}

func (p *parser) parseValue(o *operand) error {
	switch p.tok.kind {
	case tString:
		*o = operand{s: p.tok.text}
	case tField:
		if err := p.advance(); err != nil {
			return err
		}
		if p.tok.kind != tString {
			return p.errorf(p.tok.pos, `expected a quoted column name after "field", found %s`, p.tok.describe())
		}
		*o = operand{field: true, s: p.tok.text}
	default:
		return p.errorf(p.tok.pos, `expected a value (a quoted string or field "column"), found %s`, p.tok.describe())
	}
	return p.advance()
}
