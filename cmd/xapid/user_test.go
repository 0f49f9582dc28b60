package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xapi-go/xapi-go/xapi"
)

func TestUserAdd(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"user", "add", "--data-dir", dir, "--name", "alice", "--role", "vm-operator", "--password", "pw"}, &out, &errb); code != 0 {
		t.Fatalf("code %d: %s", code, errb.String())
	}
	auth, _, err := xapi.LoadAuth(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := auth.CheckUser("alice", "pw"); !ok || u.Role != "vm-operator" {
		t.Fatalf("user not stored: %+v %v", u, ok)
	}
	if _, ok := auth.CheckUser("alice", "wrong"); ok {
		t.Fatal("wrong password accepted")
	}
	// the user waits for the running daemon in auth-pending.json (0600)
	if fi, err := os.Stat(filepath.Join(dir, "auth-pending.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("pending file: %v %v", fi, err)
	}
	// adding again replaces (role and password)
	if code := run(context.Background(), []string{"user", "add", "--data-dir", dir, "--name", "alice", "--role", "vm-admin", "--password", "pw2"}, &out, &errb); code != 0 {
		t.Fatalf("code %d: %s", code, errb.String())
	}
	if auth, _, err = xapi.LoadAuth(dir, ""); err != nil {
		t.Fatal(err)
	}
	if u, ok := auth.CheckUser("alice", "pw2"); !ok || u.Role != "vm-admin" || len(auth.Users()) != 1 {
		t.Fatalf("user not replaced: %+v %v %v", u, ok, auth.Users())
	}
	out.Reset()
	run(context.Background(), []string{"user", "list", "--data-dir", dir}, &out, &errb)
	if !strings.Contains(out.String(), "alice\tvm-admin") {
		t.Fatalf("list: %q", out.String())
	}
	if code := run(context.Background(), []string{"user", "add", "--data-dir", dir, "--name", "bob", "--role", "emperor", "--password", "pw"}, &out, &errb); code == 0 {
		t.Fatal("unknown role accepted")
	}
}
