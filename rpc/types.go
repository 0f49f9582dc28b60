package rpc

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// Writer is a streaming encoder of XenAPI values. Package datamodel defines an
// identical interface; generated record code writes through it.
//
// A value is one scalar call, or BeginArray, values, EndArray, or BeginStruct,
// then (Member, value) pairs, then EndStruct. Writers never fail: an output
// error is remembered and reported by the writer's Flush method.
type Writer interface {
	String(s string)
	Int(v int64)          // XML: untyped <value>123</value>; JSON: number
	Int32(v int32)        // XML: <value><i4>7</i4></value>; JSON: number
	Float(v float64)      // XML: <value><double>%.16g</double></value>; JSON: number
	Bool(v bool)          // XML: <value><boolean>1</boolean></value>; JSON: true/false
	DateTime(t time.Time) // compact UTC yyyymmddTHH:MM:SSZ
	BeginArray()
	EndArray()
	BeginStruct()
	Member(name string)
	// Field is Member for a name that needs no escaping (a wire field name
	// of the model: ASCII letters, digits, '_' and '-'), written as is.
	Field(name string)
	EndStruct()
}

// Protocol is the wire protocol of a call.
type Protocol int

// The wire protocols.
const (
	XMLRPC Protocol = iota
	JSONRPC1
	JSONRPC2
)

func (p Protocol) String() string {
	switch p {
	case XMLRPC:
		return "xmlrpc"
	case JSONRPC1:
		return "jsonrpc1"
	case JSONRPC2:
		return "jsonrpc2"
	}
	return "unknown"
}

// Call is a decoded RPC request.
type Call struct {
	Method string
	// Params are the decoded positional parameters. Each is one of string,
	// int64, float64, bool, time.Time, []any, map[string]any or nil.
	Params     []any
	Protocol   Protocol
	RemoteAddr string
	UserAgent  string
	// Reject, when non-nil, is a XenAPI error to answer instead of
	// dispatching the call: xapi checks some things before dispatch (e.g. a
	// parameter string that is not valid UTF-8, see InvalidUTF8Fault).
	Reject *Fault
}

// Fault is a XenAPI error: ErrorDescription = [Code, Params...].
type Fault struct {
	Code   string
	Params []string
}

// Response is the result of a call.
type Response struct {
	// Value writes the success value; nil means void (the empty string). A
	// Value that writes nothing is also sent as void.
	Value func(w Writer)
	// Err, when non-nil, makes the response a failure; Value is then ignored.
	Err *Fault
	// Raw (XML-RPC only) sends the value without the {Status, Value}
	// envelope, as xapi does for system.listMethods.
	Raw bool
}

// Dispatcher executes calls.
type Dispatcher interface {
	Dispatch(ctx context.Context, c *Call) Response
}

// DefaultMaxBody is the default request body limit, xapi's
// http_limit_max_rpc_size.
const DefaultMaxBody = 300 * 1024

// Options configure NewHandler.
type Options struct {
	// MaxBody is the request body limit in bytes; 0 means DefaultMaxBody.
	MaxBody int64
	// Other serves requests that are neither POST (RPC) nor OPTIONS, e.g.
	// GET /rrd_updates. Nil means xapi's answers for a path no handler
	// serves: 404 for GET, 403 for PUT and CONNECT, 501 for other methods.
	Other http.Handler
	// Logger receives warnings (malformed requests, panics) and, at debug
	// level, one line per call. Nil means slog.Default().
	Logger *slog.Logger
}
