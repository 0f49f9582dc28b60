package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Error makes a Fault usable as an error: "CODE param1 param2".
func (f *Fault) Error() string {
	return strings.TrimSpace(f.Code + " " + strings.Join(f.Params, " "))
}

// ErrTransport marks a call that got no JSON-RPC answer: the host could not
// be reached, or the connection broke before a reply (see Invoke).
var ErrTransport = errors.New("rpc: no answer")

// maxReply bounds a reply read by Invoke.
const maxReply = 256 << 20

// Invoke makes one XenAPI call over JSON-RPC 2.0 (POST base/jsonrpc) with hc
// (http.DefaultClient if nil) and returns the raw JSON result. A XenAPI
// failure is a *Fault; an error wrapping ErrTransport means no answer came.
// It is the client hosts use to call each other, and tools and tests use.
func Invoke(ctx context.Context, hc *http.Client, base, method string, params ...any) (json.RawMessage, error) {
	return InvokeWithHeader(ctx, hc, base, nil, method, params...)
}

// InvokeWithHeader is Invoke with extra HTTP request headers.
func InvokeWithHeader(ctx context.Context, hc *http.Client, base string, header http.Header, method string, params ...any) (json.RawMessage, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	if params == nil {
		params = []any{}
	}
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/jsonrpc", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "xapi-go")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTransport, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrTransport, method, err)
	}
	var r struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Message string   `json:"message"`
			Data    []string `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: HTTP %s: not a JSON-RPC reply: %.200q", method, resp.Status, b)
	}
	if r.Error != nil {
		return nil, &Fault{Code: r.Error.Message, Params: r.Error.Data}
	}
	return r.Result, nil
}

// InvokeAny is Invoke with the result decoded as encoding/json decodes into
// an any (numbers as float64). A XenAPI failure is a *Fault.
func InvokeAny(ctx context.Context, hc *http.Client, base, method string, params ...any) (any, error) {
	raw, err := Invoke(ctx, hc, base, method, params...)
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("%s: result: %w", method, err)
	}
	return v, nil
}

// FaultDescription is err's ErrorDescription ([code, params...]) when err is a
// XenAPI failure, else nil.
func FaultDescription(err error) []string {
	var f *Fault
	if errors.As(err, &f) {
		return append([]string{f.Code}, f.Params...)
	}
	return nil
}
