package main

import (
	"bytes"
	"context"
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
	out.Reset()
	run(context.Background(), []string{"user", "list", "--data-dir", dir}, &out, &errb)
	if !strings.Contains(out.String(), "alice\tvm-operator") {
		t.Fatalf("list: %q", out.String())
	}
	if code := run(context.Background(), []string{"user", "add", "--data-dir", dir, "--name", "bob", "--role", "emperor", "--password", "pw"}, &out, &errb); code == 0 {
		t.Fatal("unknown role accepted")
	}
}
