package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseServeFlags(t *testing.T) {
	o, err := parseServeFlags([]string{
		"--data-dir", "/d", "--listen", "127.0.0.1:9000", "--tls-listen", "127.0.0.1:9443",
		"--hostname", "h1", "--log-level", "debug",
	}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.DataDir != "/d" || o.Listen != "127.0.0.1:9000" || o.TLSListen != "127.0.0.1:9443" {
		t.Errorf("got %+v", o)
	}
	if o.RaftAddr != "127.0.0.1:9001" {
		t.Errorf("RaftAddr = %q, want listen port+1", o.RaftAddr)
	}
	if o.Address != "127.0.0.1" || o.Hostname != "h1" {
		t.Errorf("Address/Hostname = %q/%q", o.Address, o.Hostname)
	}
	if o.LogLevel != slog.LevelDebug {
		t.Errorf("LogLevel = %v", o.LogLevel)
	}
}

func TestParseServeFlagsRootPassword(t *testing.T) {
	e := env(map[string]string{envRootPassword: "from-env"})
	o, err := parseServeFlags([]string{"--data-dir", "d"}, e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.RootPassword != "from-env" {
		t.Errorf("no flag: RootPassword = %q, want the env value", o.RootPassword)
	}
	o, err = parseServeFlags([]string{"--data-dir", "d", "--root-password", "from-flag"}, e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.RootPassword != "from-flag" {
		t.Errorf("flag: RootPassword = %q, want the flag value", o.RootPassword)
	}
	o, err = parseServeFlags([]string{"--data-dir", "d"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.RootPassword != "" {
		t.Errorf("neither: RootPassword = %q, want empty (keep stored / generate)", o.RootPassword)
	}
}

func TestParseServeFlagsErrors(t *testing.T) {
	for _, args := range [][]string{
		{},                                   // no data dir
		{"--data-dir", "d", "--listen", "x"}, // no port
		{"--data-dir", "d", "--listen", "127.0.0.1:99999"},
		{"--data-dir", "d", "--tls-listen", "nope"},
		{"--data-dir", "d", "--log-level", "loud"},
		{"--data-dir", "d", "extra"},
		{"--no-such-flag"},
	} {
		if _, err := parseServeFlags(args, env(nil), io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

func TestDefaultRaftAddr(t *testing.T) {
	for _, tc := range []struct{ listen, mgmt, want string }{
		{"127.0.0.1:8080", "10.0.0.1", "127.0.0.1:8081"},
		{"127.0.0.1:0", "10.0.0.1", "127.0.0.1:0"},
		{"0.0.0.0:80", "192.0.2.4", "192.0.2.4:81"},
		{":8080", "192.0.2.4", "192.0.2.4:8081"},
		{"[::1]:443", "x", "[::1]:444"},
		{"[::]:443", "2001:db8::1", "[2001:db8::1]:444"},
	} {
		got, err := defaultRaftAddr(tc.listen, tc.mgmt, "")
		if err != nil || got != tc.want {
			t.Errorf("defaultRaftAddr(%q, %q) = %q, %v; want %q", tc.listen, tc.mgmt, got, err, tc.want)
		}
	}
	if _, err := defaultRaftAddr("127.0.0.1:65535", "x", ""); err == nil {
		t.Error("port 65535: no error")
	}
}

// The default raft port (listen port+1) moves to port+2 when --tls-listen
// takes port+1 on the same (or every) address.
func TestDefaultRaftAddrAvoidsTLSListen(t *testing.T) {
	for _, tc := range []struct{ listen, mgmt, tls, want string }{
		{"127.0.0.1:8080", "x", "127.0.0.1:8081", "127.0.0.1:8082"},
		{"127.0.0.1:8080", "x", "0.0.0.0:8081", "127.0.0.1:8082"},
		{"0.0.0.0:8080", "192.0.2.4", "0.0.0.0:8081", "192.0.2.4:8082"},
		{"0.0.0.0:8080", "192.0.2.4", "192.0.2.4:8081", "192.0.2.4:8082"},
		{"127.0.0.1:8080", "x", "127.0.0.2:8081", "127.0.0.1:8081"}, // another address: no clash
		{"127.0.0.1:8080", "x", "127.0.0.1:8443", "127.0.0.1:8081"},
		{"127.0.0.1:0", "x", "127.0.0.1:1", "127.0.0.1:0"},
	} {
		got, err := defaultRaftAddr(tc.listen, tc.mgmt, tc.tls)
		if err != nil || got != tc.want {
			t.Errorf("defaultRaftAddr(%q, %q, %q) = %q, %v; want %q", tc.listen, tc.mgmt, tc.tls, got, err, tc.want)
		}
	}
	if _, err := defaultRaftAddr("127.0.0.1:65534", "x", "127.0.0.1:65535"); err == nil {
		t.Error("port 65534 with TLS on 65535: no error")
	}
	o, err := parseServeFlags([]string{"--data-dir", "d", "--listen", "127.0.0.1:9000", "--tls-listen", "127.0.0.1:9001"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.RaftAddr != "127.0.0.1:9002" {
		t.Errorf("RaftAddr = %q, want 127.0.0.1:9002 (port+1 is the TLS port)", o.RaftAddr)
	}
}

// An explicit --raft-addr on the API or HTTPS port is refused before
// anything starts.
func TestParseServeFlagsAddressClash(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "127.0.0.1:9000", "--tls-listen", "127.0.0.1:9001", "--raft-addr", "127.0.0.1:9001"}, "--raft-addr 127.0.0.1:9001 and --tls-listen"},
		{[]string{"--listen", "127.0.0.1:9000", "--raft-addr", "0.0.0.0:9000"}, "and --listen 127.0.0.1:9000 use the same port"},
		{[]string{"--listen", "127.0.0.1:9000", "--tls-listen", "0.0.0.0:9000"}, "--listen 127.0.0.1:9000 and --tls-listen"},
		{[]string{"--raft-addr", "nope"}, "--raft-addr"},
	} {
		_, err := parseServeFlags(append([]string{"--data-dir", "d"}, tc.args...), env(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
	if _, err := parseServeFlags([]string{"--data-dir", "d", "--listen", "127.0.0.1:9000", "--tls-listen", "127.0.0.2:9000", "--raft-addr", "127.0.0.3:9000"}, env(nil), io.Discard); err != nil {
		t.Errorf("same port on different addresses: %v", err)
	}
}

func TestRaftAdvertiseAddr(t *testing.T) {
	for _, tc := range []struct{ bind, mgmt, want string }{
		{"127.0.0.1:9000", "192.0.2.4", ""},
		{"0.0.0.0:9000", "192.0.2.4", "192.0.2.4:9000"},
		{":9000", "192.0.2.4", "192.0.2.4:9000"},
		{"0.0.0.0:0", "192.0.2.4", ""},
	} {
		if got := raftAdvertiseAddr(tc.bind, tc.mgmt); got != tc.want {
			t.Errorf("raftAdvertiseAddr(%q, %q) = %q, want %q", tc.bind, tc.mgmt, got, tc.want)
		}
	}
}

func TestManagementAddress(t *testing.T) {
	if got := managementAddress("192.0.2.9:80"); got != "192.0.2.9" {
		t.Errorf("explicit IP: %q", got)
	}
	if got := managementAddress("localhost:80"); got != "127.0.0.1" {
		t.Errorf("localhost: %q", got)
	}
	if got := managementAddress("0.0.0.0:80"); got == "" || got == "0.0.0.0" {
		t.Errorf("unspecified: %q", got)
	}
}

func TestRunDispatch(t *testing.T) {
	ctx := context.Background()
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "serve") {
		t.Errorf("help: code %d, out %q", code, out.String())
	}
	out.Reset()
	if code := run(ctx, []string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "xapid ") {
		t.Errorf("version: code %d, out %q", code, out.String())
	}
	errb.Reset()
	if code := run(ctx, []string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "unknown command") {
		t.Errorf("unknown: code %d, err %q", code, errb.String())
	}
	errb.Reset()
	if code := run(ctx, []string{"-h"}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "--data-dir") {
		t.Errorf("-h: code %d, err %q", code, errb.String())
	}
	errb.Reset()
	if code := run(ctx, []string{"--listen", "127.0.0.1:1"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--data-dir is required") {
		t.Errorf("missing data dir: code %d, err %q", code, errb.String())
	}
}
