package xapi_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/kolo/xmlrpc"
	"github.com/xapi-go/xapi-go/rpc"
	"github.com/xapi-go/xapi-go/xapi/xapitest"
)

// jsonCall makes a JSON-RPC 2.0 call and returns result or error data.
func jsonCall(t *testing.T, url, method string, params ...any) (any, []string) {
	t.Helper()
	v, err := rpc.InvokeAny(context.Background(), nil, url, method, params...)
	if d := rpc.FaultDescription(err); d != nil {
		return nil, d
	}
	if err != nil {
		t.Fatal(err)
	}
	return v, nil
}

func login(t *testing.T, url string) string {
	t.Helper()
	r, e := jsonCall(t, url, "session.login_with_password", "root", xapitest.RootPassword, "2.20", "test")
	if e != nil {
		t.Fatalf("login: %v", e)
	}
	return r.(string)
}

func TestLoginAndErrors(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	if !strings.HasPrefix(s, "OpaqueRef:") || len(s) != len("OpaqueRef:")+36 {
		t.Fatalf("session ref %q", s)
	}
	vms, e := jsonCall(t, srv.URL, "VM.get_all", s)
	if e != nil || len(vms.([]any)) == 0 {
		t.Fatalf("VM.get_all: %v %v", vms, e)
	}
	vm := vms.([]any)[0].(string)
	tests := []struct {
		name   string
		method string
		params []any
		want   []string
	}{
		{"bad password", "session.login_with_password", []any{"root", "nope"}, []string{"SESSION_AUTHENTICATION_FAILED", "root", "Authentication failure"}},
		{"count mismatch", "session.login_with_password", []any{"root"}, []string{"MESSAGE_PARAMETER_COUNT_MISMATCH", "session.login_with_password", "2", "1"}},
		// received counts the params after the session: -1 when even that is missing, as xapi sends it
		{"no params at all", "VM.get_all", []any{}, []string{"MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.get_all", "0", "-1"}},
		{"unknown enum value", "VM.set_actions_after_crash", []any{s, vm, "explode"}, []string{"INVALID_VALUE", "value", "explode"}},
		{"bad session", "VM.get_all", []any{"OpaqueRef:nope"}, []string{"SESSION_INVALID", "OpaqueRef:nope"}},
		{"unknown method", "VM.frobnicate", []any{s}, []string{"MESSAGE_METHOD_UNKNOWN", "VM.frobnicate"}},
		{"unknown method bad session", "VM.frobnicate", []any{"x"}, []string{"SESSION_INVALID", "x"}},
		{"handle invalid", "VM.get_record", []any{s, "OpaqueRef:missing"}, []string{"HANDLE_INVALID", "VM", "OpaqueRef:missing"}},
		{"uuid invalid", "VM.get_by_uuid", []any{s, "nope"}, []string{"UUID_INVALID", "VM", "nope"}},
		{"wrong type", "VM.get_record", []any{s, int64(3)}, []string{"FIELD_TYPE_ERROR", "self"}},
		{"too many", "VM.get_record", []any{s, "a", "b"}, []string{"MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.get_record", "1", "2"}},
		{"bad where", "VM.get_all_records_where", []any{s, `field "x`}, nil},
		{"not implemented", "VM.send_sysrq", []any{s, "OpaqueRef:x", "b"}, []string{"NOT_IMPLEMENTED", "VM.send_sysrq"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, e := jsonCall(t, srv.URL, tc.method, tc.params...)
			if e == nil {
				t.Fatalf("no error")
			}
			if tc.want == nil {
				if e[0] != "INVALID_VALUE" {
					t.Fatalf("got %v", e)
				}
				return
			}
			if !reflect.DeepEqual(e, tc.want) {
				t.Fatalf("got %v, want %v", e, tc.want)
			}
		})
	}
}

func TestImplicitMessages(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	pools, e := jsonCall(t, srv.URL, "pool.get_all", s)
	if e != nil || len(pools.([]any)) != 1 {
		t.Fatalf("pool.get_all: %v %v", pools, e)
	}
	pool := pools.([]any)[0].(string)
	if _, e := jsonCall(t, srv.URL, "pool.set_name_label", s, pool, "my pool"); e != nil {
		t.Fatal(e)
	}
	if v, _ := jsonCall(t, srv.URL, "pool.get_name_label", s, pool); v != "my pool" {
		t.Fatalf("name %v", v)
	}
	if _, e := jsonCall(t, srv.URL, "pool.add_to_other_config", s, pool, "k", "v"); e != nil {
		t.Fatal(e)
	}
	_, e = jsonCall(t, srv.URL, "pool.add_to_other_config", s, pool, "k", "v")
	if e == nil || e[0] != "MAP_DUPLICATE_KEY" || len(e) != 5 || e[1] != "pool" || e[2] != "other_config" || e[4] != "k" {
		t.Fatalf("dup: %v", e)
	}
	if _, e := jsonCall(t, srv.URL, "pool.remove_from_other_config", s, pool, "k"); e != nil {
		t.Fatal(e)
	}
	if _, e := jsonCall(t, srv.URL, "pool.remove_from_other_config", s, pool, "k"); e != nil {
		t.Fatalf("remove of missing key must succeed: %v", e)
	}
	recs, e := jsonCall(t, srv.URL, "pool.get_all_records_where", s, `field "name_label"="my pool"`)
	if e != nil || len(recs.(map[string]any)) != 1 {
		t.Fatalf("where: %v %v", recs, e)
	}
	recs, _ = jsonCall(t, srv.URL, "pool.get_all_records_where", s, `field "name_label"="other"`)
	if len(recs.(map[string]any)) != 0 {
		t.Fatalf("where mismatch: %v", recs)
	}
	// XML-RPC through an independent client
	c, err := xmlrpc.NewClient(srv.URL+"/RPC2", nil)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Status string
		Value  struct {
			NameLabel string            `xmlrpc:"name_label"`
			Master    string            `xmlrpc:"master"`
			Other     map[string]string `xmlrpc:"other_config"`
			HAEnabled bool              `xmlrpc:"ha_enabled"`
		}
	}
	if err := c.Call("pool.get_record", []any{s, pool}, &out); err != nil {
		t.Fatal(err)
	}
	if out.Status != "Success" || out.Value.NameLabel != "my pool" || !strings.HasPrefix(out.Value.Master, "OpaqueRef:") {
		t.Fatalf("xml record: %+v", out)
	}
}
