package xapi_test

import (
	"context"
	"slices"
	"testing"

	"github.com/xapi-go/xapi-go/xapi/xapitest"
)

func TestCoverage(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	r := srv.API.Coverage(context.Background())
	if r.Total != 678 {
		t.Fatalf("explicit messages: %d, want 678", r.Total)
	}
	if !slices.Contains(r.Implemented, "session.login_with_password") {
		t.Error("login not counted as implemented")
	}
	if !slices.Contains(r.Missing, "VM.send_sysrq") {
		t.Error("VM.send_sysrq counted as implemented")
	}
	if len(r.Implemented)+len(r.Missing) != r.Total {
		t.Error("report does not add up")
	}
	t.Log(r)
}
