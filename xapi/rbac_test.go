package xapi_test

import (
	"reflect"
	"testing"

	"github.com/xapi-go/xapi-go/xapi/xapitest"
)

// TestRBACMatrix logs in as a local user of each role and checks which calls
// are allowed, against the minimum roles xapi documents for them.
func TestRBACMatrix(t *testing.T) {
	roles := []string{"read-only", "vm-operator", "vm-admin", "vm-power-admin", "pool-operator", "pool-admin"}
	users := map[string]string{}
	for _, r := range roles {
		users["u-"+r] = r
	}
	srv := xapitest.NewServer(t, xapitest.Options{Users: users})
	root := login(t, srv.URL)
	vms, _ := jsonCall(t, srv.URL, "VM.get_all", root)
	vm := vms.([]any)[0].(string)
	pools, _ := jsonCall(t, srv.URL, "pool.get_all", root)
	pool := pools.([]any)[0].(string)

	type check struct {
		name    string
		minRole string // least privileged role allowed
		perm    string // permission named in RBAC_PERMISSION_DENIED
		call    func(s string) []string
	}
	checks := []check{
		{"VM.get_record", "read-only", "vm.get_record", func(s string) []string { _, e := jsonCall(t, srv.URL, "VM.get_record", s, vm); return e }},
		{"VM.set_name_label", "vm-admin", "vm.set_name_label", func(s string) []string {
			_, e := jsonCall(t, srv.URL, "VM.set_name_label", s, vm, "x")
			return e
		}},
		{"VM.add_tags", "vm-operator", "vm.add_tags", func(s string) []string { _, e := jsonCall(t, srv.URL, "VM.add_tags", s, vm, "t"); return e }},
		{"VM.add_to_other_config folder", "vm-operator", "vm.add_to_other_config/key:folder", func(s string) []string {
			jsonCall(t, srv.URL, "VM.remove_from_other_config", root, vm, "folder")
			_, e := jsonCall(t, srv.URL, "VM.add_to_other_config", s, vm, "folder", "/f")
			return e
		}},
		{"VM.add_to_other_config other key", "vm-admin", "vm.add_to_other_config", func(s string) []string {
			jsonCall(t, srv.URL, "VM.remove_from_other_config", root, vm, "k")
			_, e := jsonCall(t, srv.URL, "VM.add_to_other_config", s, vm, "k", "v")
			return e
		}},
		{"pool.set_name_label", "pool-operator", "pool.set_name_label", func(s string) []string {
			_, e := jsonCall(t, srv.URL, "pool.set_name_label", s, pool, "p")
			return e
		}},
		{"session.change_password", "local-root-only", "session.change_password", func(s string) []string {
			_, e := jsonCall(t, srv.URL, "session.change_password", s, "a", "b")
			return e
		}},
	}
	rank := map[string]int{}
	for i, r := range roles {
		rank[r] = i
	}
	for _, role := range roles {
		s, e := jsonCall(t, srv.URL, "session.login_with_password", "u-"+role, "u-"+role)
		if e != nil {
			t.Fatalf("login as %s: %v", role, e)
		}
		sess := s.(string)
		if su, _ := jsonCall(t, srv.URL, "session.get_is_local_superuser", sess, sess); su != false {
			t.Errorf("%s is superuser", role)
		}
		perms, _ := jsonCall(t, srv.URL, "session.get_rbac_permissions", sess, sess)
		if !contains(perms, role) {
			t.Errorf("%s: get_rbac_permissions lacks its role", role)
		}
		for _, c := range checks {
			allowed := c.minRole != "local-root-only" && rank[role] >= rank[c.minRole]
			e := c.call(sess)
			denied := len(e) > 0 && e[0] == "RBAC_PERMISSION_DENIED"
			if allowed && e != nil {
				t.Errorf("%s as %s: want allowed, got %v", c.name, role, e)
			}
			if !allowed {
				if !denied {
					t.Errorf("%s as %s: want RBAC_PERMISSION_DENIED, got %v", c.name, role, e)
					continue
				}
				if e[1] != c.perm || len(e) != 3 {
					t.Errorf("%s as %s: params %v", c.name, role, e)
				}
			}
		}
	}
	// the denial message lists the roles holding the permission, as xapi does
	s, _ := jsonCall(t, srv.URL, "session.login_with_password", "u-read-only", "u-read-only")
	_, e := jsonCall(t, srv.URL, "VM.set_name_label", s, vm, "x")
	want := []string{"RBAC_PERMISSION_DENIED", "vm.set_name_label", "No permission in user session. (Roles with this permission: pool-admin, pool-operator, vm-power-admin, vm-admin)"}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("denial: %v", e)
	}
	// root can do everything, including local-root-only calls
	if _, e := jsonCall(t, srv.URL, "session.change_password", root, xapitest.RootPassword, xapitest.RootPassword); e != nil {
		t.Errorf("root change_password: %v", e)
	}
}

func contains(list any, s string) bool {
	l, _ := list.([]any)
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
