package rpc

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxDepth bounds the nesting of arrays and structs in a request.
const maxDepth = 512

// MalformedError reports a request that cannot be decoded. The HTTP handler
// answers it with status 500.
type MalformedError struct{ Msg string }

func (e *MalformedError) Error() string { return "malformed RPC request: " + e.Msg }

func malformed(format string, a ...any) error {
	return &MalformedError{Msg: fmt.Sprintf(format, a...)}
}

type xmlDecoder struct {
	d      *xml.Decoder
	depth  int
	text   []byte // scratch for character data
	reject *Fault // first parameter string that is not UTF-8
}

// DecodeXMLCall decodes an XML-RPC methodCall. Values decode to string
// (untyped <value>, <string>, and unparsable <dateTime.iso8601>), int64 (<int>,
// <i4>, <i8>), float64, bool, time.Time, []any, map[string]any, nil (<nil/>),
// and string (<base64>, decoded). Whitespace between tags is ignored. Errors
// are *MalformedError. A document that is not valid UTF-8 is malformed (as
// for xapi's XML parser); a <base64> string that decodes to invalid UTF-8 is
// kept as is and the call gets Reject = InvalidUTF8Fault.
func DecodeXMLCall(r io.Reader) (*Call, error) {
	br := bufio.NewReader(r)
	if bom, _ := br.Peek(3); string(bom) == "\xef\xbb\xbf" {
		_, _ = br.Discard(3)
	}
	x := &xmlDecoder{d: xml.NewDecoder(br)}
	x.d.CharsetReader = charsetReader
	root, err := x.nextStart()
	if err != nil {
		return nil, err
	}
	if root.Name.Local != "methodCall" {
		return nil, malformed("root element is <%s>, not <methodCall>", root.Name.Local)
	}
	c := &Call{Protocol: XMLRPC}
	haveName := false
	for {
		se, done, err := x.child()
		if err != nil {
			return nil, err
		}
		if done {
			break
		}
		switch se.Name.Local {
		case "methodName":
			s, err := x.readText()
			if err != nil {
				return nil, err
			}
			c.Method = strings.TrimSpace(s)
			haveName = true
		case "params":
			if c.Params, err = x.params(); err != nil {
				return nil, err
			}
		default:
			return nil, malformed("unexpected <%s> in <methodCall>", se.Name.Local)
		}
	}
	if !haveName {
		return nil, malformed("no <methodName>")
	}
	// Only whitespace, comments and processing instructions may follow.
	for {
		tok, err := x.d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, malformed("%v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return nil, malformed("unexpected <%s> after </methodCall>", t.Name.Local)
		case xml.CharData:
			if !isSpace(t) {
				return nil, malformed("text after </methodCall>")
			}
		}
	}
	if c.Params == nil {
		c.Params = []any{}
	}
	c.Reject = x.reject
	return c, nil
}

// token returns the next token, turning errors into *MalformedError.
func (x *xmlDecoder) token() (xml.Token, error) {
	tok, err := x.d.Token()
	if err != nil {
		if err == io.EOF {
			return nil, malformed("unexpected end of document")
		}
		return nil, malformed("%v", err)
	}
	return tok, nil
}

// nextStart skips to the first start element of the document.
func (x *xmlDecoder) nextStart() (xml.StartElement, error) {
	for {
		tok, err := x.token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.CharData:
			if !isSpace(t) {
				return xml.StartElement{}, malformed("text before the root element")
			}
		}
	}
}

// child returns the next child element of the current element, or done at its
// end tag. Whitespace, comments and processing instructions are skipped.
func (x *xmlDecoder) child() (se xml.StartElement, done bool, err error) {
	for {
		tok, err := x.token()
		if err != nil {
			return se, false, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, false, nil
		case xml.EndElement:
			return se, true, nil
		case xml.CharData:
			if !isSpace(t) {
				return se, false, malformed("unexpected text %q", truncate(t))
			}
		}
	}
}

// readText reads the character data of a text-only element up to its end tag.
func (x *xmlDecoder) readText() (string, error) {
	x.text = x.text[:0]
	for {
		tok, err := x.token()
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.CharData:
			x.text = append(x.text, t...)
		case xml.StartElement:
			return "", malformed("unexpected <%s> in text element", t.Name.Local)
		case xml.EndElement:
			return string(x.text), nil
		}
	}
}

func (x *xmlDecoder) params() ([]any, error) {
	ps := []any{}
	for {
		se, done, err := x.child()
		if err != nil {
			return nil, err
		}
		if done {
			return ps, nil
		}
		if se.Name.Local != "param" {
			return nil, malformed("unexpected <%s> in <params>", se.Name.Local)
		}
		var v any
		have := false
		for {
			se, done, err := x.child()
			if err != nil {
				return nil, err
			}
			if done {
				break
			}
			if se.Name.Local != "value" || have {
				return nil, malformed("unexpected <%s> in <param>", se.Name.Local)
			}
			if v, err = x.value(); err != nil {
				return nil, err
			}
			have = true
		}
		if !have {
			return nil, malformed("<param> without <value>")
		}
		ps = append(ps, v)
	}
}

// value decodes the content of a <value> element whose start tag has been read.
func (x *xmlDecoder) value() (any, error) {
	var text []byte
	var v any
	typed := false
	for {
		tok, err := x.token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if typed {
				if !isSpace(t) {
					return nil, malformed("text after typed value")
				}
			} else {
				text = append(text, t...)
			}
		case xml.StartElement:
			if typed {
				return nil, malformed("<value> with several children")
			}
			if !isSpace(text) {
				return nil, malformed("<value> with text and <%s>", t.Name.Local)
			}
			if v, err = x.typed(t); err != nil {
				return nil, err
			}
			typed = true
		case xml.EndElement:
			if typed {
				return v, nil
			}
			return string(text), nil
		}
	}
}

func (x *xmlDecoder) typed(se xml.StartElement) (any, error) {
	switch name := se.Name.Local; name {
	case "string":
		return x.readText()
	case "int", "i4", "i8":
		s, err := x.readText()
		if err != nil {
			return nil, err
		}
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, malformed("bad <%s> %q", name, truncate([]byte(s)))
		}
		return n, nil
	case "double":
		s, err := x.readText()
		if err != nil {
			return nil, err
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, malformed("bad <double> %q", truncate([]byte(s)))
		}
		return f, nil
	case "boolean":
		s, err := x.readText()
		if err != nil {
			return nil, err
		}
		switch strings.TrimSpace(s) {
		case "1", "true":
			return true, nil
		case "0", "false":
			return false, nil
		}
		return nil, malformed("bad <boolean> %q", truncate([]byte(s)))
	case "dateTime.iso8601":
		s, err := x.readText()
		if err != nil {
			return nil, err
		}
		if t, ok := parseDateTime(strings.TrimSpace(s)); ok {
			return t, nil
		}
		return s, nil
	case "base64":
		s, err := x.readText()
		if err != nil {
			return nil, err
		}
		s = strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
				return -1
			}
			return r
		}, s)
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, malformed("bad <base64>")
		}
		if x.reject == nil && !utf8.Valid(b) {
			x.reject = InvalidUTF8Fault(replaceInvalidUTF8(b))
		}
		return string(b), nil
	case "nil":
		if err := x.d.Skip(); err != nil {
			return nil, malformed("%v", err)
		}
		return nil, nil
	case "array":
		return x.array()
	case "struct":
		return x.strct()
	default:
		return nil, malformed("unknown value type <%s>", name)
	}
}

func (x *xmlDecoder) enter() error {
	x.depth++
	if x.depth > maxDepth {
		return malformed("values nested deeper than %d", maxDepth)
	}
	return nil
}

func (x *xmlDecoder) array() (any, error) {
	if err := x.enter(); err != nil {
		return nil, err
	}
	defer func() { x.depth-- }()
	a := []any{}
	for {
		se, done, err := x.child()
		if err != nil {
			return nil, err
		}
		if done {
			return a, nil
		}
		switch se.Name.Local {
		case "data":
			for {
				se, done, err := x.child()
				if err != nil {
					return nil, err
				}
				if done {
					break
				}
				if se.Name.Local != "value" {
					return nil, malformed("unexpected <%s> in <data>", se.Name.Local)
				}
				v, err := x.value()
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
		case "value": // lenient: values directly inside <array>
			v, err := x.value()
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		default:
			return nil, malformed("unexpected <%s> in <array>", se.Name.Local)
		}
	}
}

func (x *xmlDecoder) strct() (any, error) {
	if err := x.enter(); err != nil {
		return nil, err
	}
	defer func() { x.depth-- }()
	m := map[string]any{}
	for {
		se, done, err := x.child()
		if err != nil {
			return nil, err
		}
		if done {
			return m, nil
		}
		if se.Name.Local != "member" {
			return nil, malformed("unexpected <%s> in <struct>", se.Name.Local)
		}
		var name string
		var v any
		haveName, haveValue := false, false
		for {
			se, done, err := x.child()
			if err != nil {
				return nil, err
			}
			if done {
				break
			}
			switch {
			case se.Name.Local == "name" && !haveName:
				if name, err = x.readText(); err != nil {
					return nil, err
				}
				haveName = true
			case se.Name.Local == "value" && !haveValue:
				if v, err = x.value(); err != nil {
					return nil, err
				}
				haveValue = true
			default:
				return nil, malformed("unexpected <%s> in <member>", se.Name.Local)
			}
		}
		if !haveName || !haveValue {
			return nil, malformed("<member> without <name> or <value>")
		}
		m[name] = v
	}
}

func isSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// replaceInvalidUTF8 replaces each invalid byte of b by U+FFFD, as
// encoding/json and the encoders do.
func replaceInvalidUTF8(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		sb.WriteRune(r)
		b = b[n:]
	}
	return sb.String()
}

func truncate(b []byte) string {
	if len(b) > 40 {
		b = b[:40]
	}
	return string(b)
}

// charsetReader accepts the single-byte charsets some XML-RPC clients declare.
func charsetReader(charset string, input io.Reader) (io.Reader, error) {
	switch strings.ToLower(charset) {
	case "us-ascii", "ascii":
		return input, nil
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1":
		b, err := io.ReadAll(input)
		if err != nil {
			return nil, err
		}
		var out bytes.Buffer
		out.Grow(len(b))
		for _, c := range b {
			if c < utf8.RuneSelf {
				out.WriteByte(c)
			} else {
				out.WriteRune(rune(c))
			}
		}
		return &out, nil
	}
	return nil, errors.New("unsupported charset " + charset)
}
