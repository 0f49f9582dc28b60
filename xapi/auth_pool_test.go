package xapi_test

import (
	"errors"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/internal/testcluster"
	"github.com/xapi-go/xapi-go/rpc"
)

func faultCode(err error) string {
	var f *rpc.Fault
	if errors.As(err, &f) {
		return f.Code
	}
	return ""
}

// TestAuthPoolChangePasswordSurvivesFailover: session.change_password on the
// master changes the pool's replicated password: after the master dies, the
// new master accepts the new password and refuses the old one.
func TestAuthPoolChangePasswordSurvivesFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-host pool")
	}
	c := testcluster.New(t, testcluster.Options{Hosts: 3})
	old := c.Leader()
	s, err := old.Login()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Call("session.change_password", s, testcluster.RootPassword, "changed-pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Call("session.login_with_password", "root", testcluster.RootPassword); faultCode(err) != "SESSION_AUTHENTICATION_FAILED" {
		t.Fatalf("old password on the master: %v", err)
	}
	old.Kill()
	nl := c.WaitLeader(20 * time.Second)
	if nl == nil || nl == old {
		t.Fatal("no new leader")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err = nl.Call("session.login_with_password", "root", "changed-pw", "1.0", "test")
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the new master may still be taking over
	}
	if err != nil {
		t.Fatalf("new password on the new master: %v", err)
	}
	if _, err := nl.Call("session.login_with_password", "root", testcluster.RootPassword); faultCode(err) != "SESSION_AUTHENTICATION_FAILED" {
		t.Fatalf("old password on the new master: %v", err)
	}
	// every survivor's emergency login follows the pool's password too
	for _, h := range c.Others(old) {
		if _, err := h.Call("session.slave_local_login_with_password", "root", "changed-pw"); err != nil {
			t.Fatalf("host %d: slave_local_login_with_password: %v", h.Index, err)
		}
	}
}
