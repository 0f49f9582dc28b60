package rpc

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestInvoke(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jsonrpc" || r.Header.Get("X-Test") != "yes" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		call, id, err := DecodeJSONCall(mustRead(t, r))
		if err != nil {
			t.Error(err)
			return
		}
		resp := Response{Value: func(w Writer) { w.String(call.Method) }}
		if call.Method == "fail" {
			resp = Response{Err: &Fault{Code: "HANDLE_INVALID", Params: []string{"VM", "OpaqueRef:x"}}}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = WriteJSONResponse(w, call.Protocol, id, resp)
	}))
	defer srv.Close()
	hdr := http.Header{"X-Test": {"yes"}}
	ctx := context.Background()

	res, err := InvokeWithHeader(ctx, nil, srv.URL, hdr, "VM.get_all", "OpaqueRef:s")
	if err != nil || string(res) != `"VM.get_all"` {
		t.Fatalf("result %s, %v", res, err)
	}
	_, err = InvokeWithHeader(ctx, nil, srv.URL, hdr, "fail")
	var f *Fault
	if !errors.As(err, &f) || f.Code != "HANDLE_INVALID" || len(f.Params) != 2 || f.Error() != "HANDLE_INVALID VM OpaqueRef:x" {
		t.Fatalf("fault: %v", err)
	}
	if _, err := Invoke(ctx, nil, srv.URL, "x"); err == nil || errors.Is(err, ErrTransport) || errors.As(err, &f) {
		t.Fatalf("a reply that is not JSON-RPC: %v", err)
	}
	srv.Close()
	if _, err := Invoke(ctx, nil, srv.URL, "x"); !errors.Is(err, ErrTransport) {
		t.Fatalf("no server: %v", err)
	}
}

func mustRead(t *testing.T, r *http.Request) []byte {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Error(err)
	}
	return b
}
