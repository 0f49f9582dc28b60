// Package where implements the row-filter expression language accepted by
// XenAPI's <Class>.get_all_where and <Class>.get_all_records_where calls.
//
// # Grammar
//
//	expr  := value "=" value
//	       | expr "and" expr
//	       | expr "or" expr
//	       | "not" expr
//	       | "true" | "false"
//	       | "(" expr ")"
//	value := '"' chars-without-quote '"'          a literal string
//	       | "field" '"' column '"'              the value of a column of the row
//
// "and" and "or" have the same precedence and are left-associative, so
//
//	"a"="a" or "a"="b" and "a"="b"
//
// means ("a"="a" or "a"="b") and "a"="b", which is false. "not" binds
// tighter than "and"/"or": not A and B means (not A) and B.
//
// Whitespace (space, tab, newline, carriage return, vertical tab, form feed)
// is free between tokens and is not needed next to quotes or parentheses.
// Keywords are lower case and must stand alone: a run of letters, digits and
// underscores that is not exactly one of field, and, or, not, true, false is
// a syntax error (so "andfield" is rejected rather than split).
//
// A string literal extends to the next double quote; there is no escaping,
// so a literal can never contain '"'. Any other byte, including newlines and
// bytes that are not valid UTF-8, may appear inside a literal.
//
// # Semantics
//
// The only comparison is byte-wise string equality. Values are compared in
// their database representation: column names use "__" as the namespace
// separator (name__label, memory__static_max), the row's own reference is
// the column _ref, booleans are "true"/"false", integers are decimal, enums
// are spelled as in the data model ("Running") and references are
// "OpaqueRef:…". Both sides of "=" may be literals or fields.
//
// Evaluation goes left to right and short-circuits: once the value of an
// and/or chain is decided, the remaining operands are not evaluated. A
// column that the Row does not have makes Eval return an
// *UnknownColumnError, but only if that comparison is actually reached; use
// Columns to validate every column an expression mentions before
// evaluating it over many rows.
//
// Evaluation does not allocate (unless it returns an error), provided the
// Row implementation's Column method does not allocate. A parsed Expr is
// immutable and safe for concurrent use.
//
// # Limits and errors
//
// Parse rejects input nested more than MaxDepth levels deep, counting every
// open parenthesis and every "not" that encloses a point of the input, with
// a *SyntaxError. This bounds the recursion of the parser, of Eval and of
// String; long and/or chains are not nested and are handled iteratively, so
// their length is not limited.
//
// Every error returned by Parse is a *SyntaxError. Its Pos is the 0-based
// byte offset in the input of the offending token (len(input) for an
// unexpected end of input; the opening quote for an unterminated literal).
//
// The String form of a parsed expression is canonical: parsing it again
// gives an expression with the same String form and the same value on every
// row. Redundant parentheses are dropped.
package where
