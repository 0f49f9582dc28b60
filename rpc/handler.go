package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
)

type handler struct {
	d       Dispatcher
	maxBody int64
	other   http.Handler
	log     *slog.Logger
}

// NewHandler returns the XenAPI RPC handler: POST /jsonrpc* is JSON-RPC, any
// other POST is XML-RPC, OPTIONS is a CORS pre-flight, and everything else is
// passed to o.Other (see Options.Other when nil). See the package
// documentation.
func NewHandler(d Dispatcher, o Options) http.Handler {
	h := &handler{d: d, maxBody: o.MaxBody, other: o.Other, log: o.Logger}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBody
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		h.serveRPC(w, r)
	case http.MethodOptions:
		serveOptions(w, r)
	default:
		if h.other != nil {
			h.other.ServeHTTP(w, r)
			return
		}
		noHandler(w, r)
	}
}

// noHandler answers a request no handler serves like xapi: a method it does
// not know is 501 (Http_svr.handle_one), PUT and CONNECT (known methods with
// no "/" handler) get default_callback's 403, and GET falls on the static
// file server's 404 (Fileserver.send_file). All close the connection.
func noHandler(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		htmlError(w, http.StatusNotFound, `<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN"> <html><head> <title>404 Not Found</title> </head><body> <h1>Not Found</h1> <p>The requested URL `+
			html.EscapeString(r.URL.Path)+` was not found on this server.</p> <hr><address>Xapi Server</address></body></html>`)
	case http.MethodPut, http.MethodConnect:
		htmlError(w, http.StatusForbidden, "<html><body><h1>HTTP 403 forbidden</h1>Access to the requested resource is forbidden.</body></html>")
	default:
		htmlError(w, http.StatusNotImplemented, "<html><body><h1>HTTP 501 Method Not Implemented</h1><p>Unknown "+
			html.EscapeString(r.Method)+" not supported.<br /></p></body></html>")
	}
}

// htmlError sends an xapi-style error page and closes the connection.
func htmlError(w http.ResponseWriter, status int, body string) {
	hd := w.Header()
	hd.Set("Content-Type", "text/html")
	hd.Set("Connection", "close")
	hd.Set("Cache-Control", "no-cache, no-store")
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// serveOptions answers a CORS pre-flight like xapi.
func serveOptions(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Access-Control-Allow-Origin", "*")
	allow := "X-Requested-With"
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		allow = req + ", X-Requested-With"
	}
	hd.Set("Access-Control-Allow-Headers", allow)
	hd.Set("Access-Control-Allow-Methods", "PUT")
	setConnection(hd, r)
	hd.Set("Cache-Control", "no-cache, no-store")
	hd.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// isJSONPath reports whether path selects JSON-RPC. xapi dispatches by the
// longest registered prefix, so /jsonrpc/anything is JSON-RPC too.
func isJSONPath(path string) bool { return strings.HasPrefix(path, "/jsonrpc") }

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (h *handler) serveRPC(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.ContentLength < 0 && r.ProtoMajor == 1 {
		// A chunked body: xapi's read_body fails ("We require a
		// content-length: HTTP header"), which Http_svr answers with 500
		// and closes the connection. (HTTP/2, which xapi does not speak,
		// need not send a length and is accepted.)
		h.log.WarnContext(ctx, "rpc: request without Content-Length", "remote", r.RemoteAddr, "path", r.URL.Path)
		malformedReply(w, errNoContentLength)
		return
	}
	if r.ContentLength > h.maxBody {
		h.tooLarge(ctx, w, r)
		return
	}
	body := bodyPool.Get().(*bytes.Buffer)
	defer func() {
		if body.Cap() <= 2*int(h.maxBody) {
			body.Reset()
			bodyPool.Put(body)
		}
	}()
	body.Reset()
	if r.ContentLength > 0 {
		body.Grow(int(r.ContentLength))
	}
	n, err := body.ReadFrom(io.LimitReader(r.Body, h.maxBody+1))
	if n > h.maxBody {
		h.tooLarge(ctx, w, r)
		return
	}
	if err != nil {
		h.log.DebugContext(ctx, "rpc: reading request body", "remote", r.RemoteAddr, "err", err)
		return // the client is gone or sent a broken body; nothing useful to reply
	}

	jsonPath := isJSONPath(r.URL.Path)
	var call *Call
	var id json.RawMessage
	if jsonPath {
		call, id, err = DecodeJSONCall(body.Bytes())
	} else {
		call, err = DecodeXMLCall(bytes.NewReader(body.Bytes()))
	}
	if err != nil {
		h.log.WarnContext(ctx, "rpc: malformed request", "remote", r.RemoteAddr, "path", r.URL.Path, "err", err)
		malformedReply(w, err)
		return
	}
	call.RemoteAddr = r.RemoteAddr
	call.UserAgent = r.Header.Get("User-Agent")

	start := time.Now()
	var resp Response
	if call.Reject != nil {
		resp = Response{Err: call.Reject}
	} else {
		resp = h.dispatch(ctx, call)
	}
	h.writeResponse(ctx, w, r, call, id, resp)
	if h.log.Enabled(ctx, slog.LevelDebug) {
		attrs := []any{"method", call.Method, "protocol", call.Protocol.String(), "remote", call.RemoteAddr,
			"duration", time.Since(start)}
		if resp.Err != nil {
			attrs = append(attrs, "error", resp.Err.Code)
		}
		h.log.DebugContext(ctx, "rpc: call", attrs...)
	}
}

// dispatch calls the Dispatcher, turning a panic into INTERNAL_ERROR.
func (h *handler) dispatch(ctx context.Context, c *Call) (resp Response) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.log.ErrorContext(ctx, "rpc: panic in dispatch", "method", c.Method, "panic", p, "stack", string(debug.Stack()))
			resp = internalError(p)
		}
	}()
	return h.d.Dispatch(ctx, c)
}

func internalError(p any) Response {
	return Response{Err: &Fault{Code: "INTERNAL_ERROR", Params: []string{fmt.Sprint(p)}}}
}

// httpSink writes the response headers before the first body bytes; a
// response that never overflows the encoder's buffer is instead sent in one
// piece with Content-Length by finish.
type httpSink struct {
	w       http.ResponseWriter
	r       *http.Request
	ctype   string
	started bool
}

func setRPCHeaders(hd http.Header, r *http.Request, ctype string) {
	hd.Set("Content-Type", ctype)
	setConnection(hd, r)
	hd.Set("Access-Control-Allow-Origin", "*")
	hd.Set("Access-Control-Allow-Headers", "X-Requested-With")
	hd.Set("Cache-Control", "no-cache, no-store")
}

func (s *httpSink) Write(p []byte) (int, error) {
	if !s.started {
		s.started = true
		setRPCHeaders(s.w.Header(), s.r, s.ctype)
		s.w.WriteHeader(http.StatusOK)
	}
	return s.w.Write(p)
}

// finish sends what is left in out.
func (s *httpSink) finish(out *outBuf) {
	if !s.started {
		s.started = true
		hd := s.w.Header()
		setRPCHeaders(hd, s.r, s.ctype)
		hd.Set("Content-Length", strconv.Itoa(len(out.buf)))
		s.w.WriteHeader(http.StatusOK)
		if len(out.buf) > 0 {
			_, out.err = s.w.Write(out.buf)
		}
		out.buf = out.buf[:0]
		return
	}
	out.flush()
}

// setConnection sets the Connection header xapi sends (response_of_request):
// "close" when the request asks for it (HTTP/1.0 without keep-alive, or
// Connection: close; that is r.Close), else "keep-alive", which net/http
// leaves out for HTTP/1.1. net/http keeps the connection open when !r.Close;
// should it close anyway (e.g. an HTTP/1.0 reply without Content-Length, or
// the server shutting down) it replaces the header by "close" itself (or
// drops it for HTTP/1.0). HTTP/2 has no Connection header.
func setConnection(hd http.Header, r *http.Request) {
	if r.ProtoMajor != 1 {
		return
	}
	if r.Close {
		hd.Set("Connection", "close")
	} else {
		hd.Set("Connection", "keep-alive")
	}
}

func (h *handler) writeResponse(ctx context.Context, w http.ResponseWriter, r *http.Request, c *Call, id json.RawMessage, resp Response) {
	sink := &httpSink{w: w, r: r}
	var ob *outBuf
	var encode, encodeErr func()
	switch c.Protocol {
	case XMLRPC:
		sink.ctype = "text/xml"
		xw := getXMLWriter(sink)
		defer releaseXMLWriter(xw)
		ob = &xw.outBuf
		encode = func() { encodeXMLResponse(xw, resp) }
		encodeErr = func() { xw.Reset(sink); encodeXMLResponse(xw, resp) }
	default:
		sink.ctype = "application/json"
		jw := getJSONWriter(sink)
		defer releaseJSONWriter(jw)
		ob = &jw.outBuf
		encode = func() { encodeJSONResponse(jw, c.Protocol, id, resp) }
		encodeErr = func() { jw.Reset(sink); encodeJSONResponse(jw, c.Protocol, id, resp) }
	}
	if p, panicked := h.safeEncode(ctx, c, encode); panicked {
		if sink.started {
			// Part of the reply is on the wire: all we can do is cut it.
			panic(http.ErrAbortHandler)
		}
		resp = internalError(p)
		encodeErr()
	}
	sink.finish(ob)
	if ob.err != nil {
		h.log.DebugContext(ctx, "rpc: writing response", "method", c.Method, "remote", c.RemoteAddr, "err", ob.err)
	}
}

// safeEncode runs encode, reporting a panic (from Response.Value) instead of
// propagating it.
func (h *handler) safeEncode(ctx context.Context, c *Call, encode func()) (p any, panicked bool) {
	defer func() {
		if p = recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			panicked = true
			h.log.ErrorContext(ctx, "rpc: panic while encoding response", "method", c.Method, "panic", p, "stack", string(debug.Stack()))
		}
	}()
	encode()
	return nil, false
}

var errNoContentLength = &MalformedError{Msg: "We require a content-length: HTTP header"}

// malformedReply answers an undecodable request like xapi: HTTP 500 with a
// short HTML body, and the connection is closed.
func malformedReply(w http.ResponseWriter, err error) {
	htmlError(w, http.StatusInternalServerError,
		"<html><body><h1>HTTP 500 internal server error</h1><p>"+html.EscapeString(err.Error())+"</p></body></html>")
}

const tooLargeBody = "<html><body><h1>HTTP 413 request entity too large</h1></body></html>"

// tooLarge answers a request whose body exceeds MaxBody with 413 and closes
// the connection (the rest of the body is not read).
func (h *handler) tooLarge(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	h.log.WarnContext(ctx, "rpc: request body too large", "remote", r.RemoteAddr, "limit", h.maxBody, "content_length", r.ContentLength)
	htmlError(w, http.StatusRequestEntityTooLarge, tooLargeBody)
}
