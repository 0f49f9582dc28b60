package rpc

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// DecodeJSONCall decodes a JSON-RPC request. The version is 1.0 when
// "jsonrpc" is absent and 2.0 when it is "2.0"; anything else (null
// included) is malformed. "id" is required and must be an integer or a string; it is
// returned as canonical raw JSON to be echoed with WriteJSONResponse. In 1.0,
// "params" is required and must be an array; in 2.0 it may be absent or null
// (no params), an array, or an object (a single struct param). Values decode
// to string, int64 (numbers without fraction or exponent that fit), float64,
// bool, []any, map[string]any and nil. Errors are *MalformedError. A string
// in params (key or value) that is not valid UTF-8 decodes with U+FFFD for
// each bad byte, and the call gets Reject = InvalidUTF8Fault(first such
// string), as xapi checks before dispatch.
func DecodeJSONCall(b []byte) (call *Call, id json.RawMessage, err error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, nil, malformed("%v", err)
	}
	if m == nil {
		return nil, nil, malformed("request is not a JSON object")
	}
	rawID, ok := m["id"]
	if !ok {
		return nil, nil, malformed("no id")
	}
	if id, err = canonicalID(rawID); err != nil {
		return nil, nil, err
	}
	c := &Call{Protocol: JSONRPC1}
	if v, ok := m["jsonrpc"]; ok {
		var s string
		if json.Unmarshal(v, &s) != nil || s != "2.0" {
			return nil, id, malformed("unsupported jsonrpc version %s", truncate(v))
		}
		c.Protocol = JSONRPC2
	}
	rawMethod, ok := m["method"]
	if !ok || json.Unmarshal(rawMethod, &c.Method) != nil {
		return nil, id, malformed("method missing or not a string")
	}
	rawParams, ok := m["params"]
	if !ok || isNull(rawParams) {
		if c.Protocol == JSONRPC1 {
			return nil, id, malformed("no params")
		}
		c.Params = []any{}
		return c, id, nil
	}
	v, err := decodeJSONValue(rawParams)
	if err != nil {
		return nil, id, err
	}
	switch v := v.(type) {
	case []any:
		c.Params = v
	case map[string]any:
		if c.Protocol == JSONRPC1 {
			return nil, id, malformed("params is not an array")
		}
		c.Params = []any{v}
	default:
		return nil, id, malformed("params is not an array")
	}
	if !utf8.Valid(rawParams) {
		if s, ok := firstInvalidJSONString(rawParams); ok {
			c.Reject = InvalidUTF8Fault(s)
		}
	}
	return c, id, nil
}

// InvalidUTF8Fault is xapi's answer to a call with a parameter string that
// is not valid UTF-8; s is that string (with U+FFFD for the bad bytes, as
// the raw bytes cannot be sent back).
func InvalidUTF8Fault(s string) *Fault {
	return &Fault{Code: "INVALID_VALUE", Params: []string{"Invalid UTF-8 string in parameter", s}}
}

// firstInvalidJSONString returns the decoded form of the first string token
// (object key or value) of the valid JSON raw whose raw bytes are not valid
// UTF-8. Only bytes inside strings can be non-ASCII in valid JSON, and the
// span between two offsets holds one token plus ASCII delimiters.
func firstInvalidJSONString(raw []byte) (string, bool) {
	d := json.NewDecoder(bytes.NewReader(raw))
	for {
		start := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			return "", false
		}
		if s, ok := tok.(string); ok && !utf8.Valid(raw[start:d.InputOffset()]) {
			return s, true
		}
	}
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// canonicalID validates a JSON-RPC id (integer or string) and returns it
// re-encoded compactly.
func canonicalID(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, malformed("bad id")
		}
		return appendJSONString(nil, s), nil
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return nil, malformed("id is not an integer or a string")
	}
	return strconv.AppendInt(nil, n, 10), nil
}

func decodeJSONValue(raw []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, malformed("%v", err)
	}
	return convertNumbers(v)
}

// convertNumbers replaces json.Number by int64 or float64, in place.
func convertNumbers(v any) (any, error) {
	switch t := v.(type) {
	case json.Number:
		return convertNumber(string(t))
	case []any:
		for i, e := range t {
			c, err := convertNumbers(e)
			if err != nil {
				return nil, err
			}
			t[i] = c
		}
	case map[string]any:
		for k, e := range t {
			if n, ok := e.(json.Number); ok {
				c, err := convertNumber(string(n))
				if err != nil {
					return nil, err
				}
				t[k] = c
			} else if _, ok := e.([]any); ok {
				if _, err := convertNumbers(e); err != nil {
					return nil, err
				}
			} else if _, ok := e.(map[string]any); ok {
				if _, err := convertNumbers(e); err != nil {
					return nil, err
				}
			}
		}
	}
	return v, nil
}

func convertNumber(s string) (any, error) {
	if !bytes.ContainsAny([]byte(s), ".eE") {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, malformed("number %s out of range", truncate([]byte(s)))
	}
	return f, nil
}
