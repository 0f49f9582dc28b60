package xapi_test

import (
	"strings"
	"testing"

	"github.com/xapi-go/xapi-go/xapi/xapitest"
)

// TestXenCenterConnectSequence replays XenCenter's connect sequence
// (xapi-semantics §10.1) over JSON-RPC 2.0: every call succeeds and the
// ""-token event.from returns every object of every class as an add.
func TestXenCenterConnectSequence(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{Users: map[string]string{"alice": "vm-operator"}})
	u := srv.URL
	// 1. four-argument login
	sv, e := jsonCall(t, u, "session.login_with_password", "root", xapitest.RootPassword, "2.20", "XenCenter 2023.4")
	if e != nil {
		t.Fatalf("login: %v", e)
	}
	s := sv.(string)
	// 2. pool.get_all_records
	pools, e := jsonCall(t, u, "pool.get_all_records", s)
	if e != nil || len(pools.(map[string]any)) != 1 {
		t.Fatalf("pool.get_all_records: %v %v", pools, e)
	}
	var master string
	for _, p := range pools.(map[string]any) {
		master = p.(map[string]any)["master"].(string)
	}
	// 3. host.get_record(master): API version ≥ 2.6, platform_version ≥ 2.9.50
	hv, e := jsonCall(t, u, "host.get_record", s, master)
	if e != nil {
		t.Fatalf("host.get_record: %v", e)
	}
	host := hv.(map[string]any)
	if maj, min := host["API_version_major"].(float64), host["API_version_minor"].(float64); maj != 2 || min != 23 {
		t.Fatalf("API version %v.%v, want 2.23 (docs/design.md)", maj, min)
	}
	if pv := host["software_version"].(map[string]any)["platform_version"]; pv != "3.4.0" {
		t.Fatalf("platform_version %v, want 3.4.0 (XenCenter needs ≥ 2.9.50)", pv)
	}
	// 4-6. superuser, rbac permissions: root has every right, so xapi answers
	// an empty permission list, a NULL subject and an empty sid
	if su, e := jsonCall(t, u, "session.get_is_local_superuser", s, s); e != nil || su != true {
		t.Fatalf("get_is_local_superuser: %v %v", su, e)
	}
	if p, e := jsonCall(t, u, "session.get_rbac_permissions", s, s); e != nil || len(p.([]any)) != 0 {
		t.Fatalf("get_rbac_permissions: %v %v", p, e)
	}
	if v, e := jsonCall(t, u, "session.get_subject", s, s); e != nil || v != "OpaqueRef:NULL" {
		t.Fatalf("get_subject: %v %v", v, e)
	}
	if v, e := jsonCall(t, u, "session.get_auth_user_sid", s, s); e != nil || v != "" {
		t.Fatalf("get_auth_user_sid: %v %v", v, e)
	}
	// 5. a user who is not the superuser: subject, sid, subject information
	// and group membership, then their permissions
	a, e := jsonCall(t, u, "session.login_with_password", "alice", "alice", "2.20", "XenCenter 2023.4")
	if e != nil {
		t.Fatalf("login as alice: %v", e)
	}
	as := a.(string)
	if su, e := jsonCall(t, u, "session.get_is_local_superuser", as, as); e != nil || su != false {
		t.Fatalf("alice get_is_local_superuser: %v %v", su, e)
	}
	subj, e := jsonCall(t, u, "session.get_subject", as, as)
	if e != nil || !strings.HasPrefix(subj.(string), "OpaqueRef:") || subj == "OpaqueRef:NULL" {
		t.Fatalf("alice get_subject: %v %v", subj, e)
	}
	sid, e := jsonCall(t, u, "session.get_auth_user_sid", as, as)
	if e != nil || sid == "" {
		t.Fatalf("alice get_auth_user_sid: %v %v", sid, e)
	}
	info, e := jsonCall(t, u, "auth.get_subject_information_from_identifier", as, sid)
	if e != nil || info.(map[string]any)["subject-name"] != "alice" || info.(map[string]any)["subject-is-group"] != "false" {
		t.Fatalf("alice subject information: %v %v", info, e)
	}
	if g, e := jsonCall(t, u, "auth.get_group_membership", as, sid); e != nil || len(g.([]any)) != 0 {
		t.Fatalf("alice group membership: %v %v", g, e)
	}
	if p, e := jsonCall(t, u, "session.get_rbac_permissions", as, as); e != nil || len(p.([]any)) == 0 {
		t.Fatalf("alice get_rbac_permissions: %v %v", p, e)
	}
	// 7-8. roles
	for i := 0; i < 2; i++ {
		roles, e := jsonCall(t, u, "role.get_all_records", s)
		if e != nil || len(roles.(map[string]any)) < 6 {
			t.Fatalf("role.get_all_records: %v", e)
		}
	}
	// 9. the full load through events
	batch, e := jsonCall(t, u, "event.from", s, []any{"*"}, "", 30.0)
	if e != nil {
		t.Fatalf("event.from: %v", e)
	}
	b := batch.(map[string]any)
	events := b["events"].([]any)
	byClass := map[string]int{}
	for _, ev := range events {
		m := ev.(map[string]any)
		if m["operation"] != "add" {
			t.Fatalf("initial event %v is not an add", m)
		}
		if _, ok := m["snapshot"].(map[string]any); !ok {
			t.Fatalf("initial event without snapshot: %v", m)
		}
		if cls := m["class"].(string); cls != strings.ToLower(cls) {
			t.Fatalf("class %q not lower-case", cls)
		}
		byClass[m["class"].(string)]++
	}
	for _, cls := range []string{"pool", "host", "vm", "network", "pif", "sr", "pbd", "host_metrics", "role"} {
		all, e := jsonCall(t, u, classWireName(cls)+".get_all", s)
		if e != nil {
			t.Fatalf("%s.get_all: %v", cls, e)
		}
		if n := len(all.([]any)); byClass[cls] != n {
			t.Errorf("event.from returned %d %s objects, get_all %d", byClass[cls], cls, n)
		}
	}
	token, _ := b["token"].(string)
	if token == "" {
		t.Fatal("no token")
	}
	// 10. heartbeat
	if _, e := jsonCall(t, u, "host.get_servertime", s, master); e != nil {
		t.Fatalf("host.get_servertime: %v", e)
	}
	// 11. the event loop continues from the token
	if _, e := jsonCall(t, u, "pool.set_name_description", s, firstKey(pools), "changed"); e != nil {
		t.Fatal(e)
	}
	next, e := jsonCall(t, u, "event.from", s, []any{"*"}, token, 30.0)
	if e != nil {
		t.Fatalf("event.from(token): %v", e)
	}
	found := false
	for _, ev := range next.(map[string]any)["events"].([]any) {
		m := ev.(map[string]any)
		if m["class"] == "pool" && m["operation"] == "mod" {
			found = m["snapshot"].(map[string]any)["name_description"] == "changed"
		}
	}
	if !found {
		t.Fatalf("pool mod not delivered: %v", next)
	}
}

func firstKey(m any) string {
	for k := range m.(map[string]any) {
		return k
	}
	return ""
}

// classWireName maps an event class name back to the API class name.
func classWireName(lower string) string {
	switch lower {
	case "vm":
		return "VM"
	case "pif":
		return "PIF"
	case "sr":
		return "SR"
	case "pbd":
		return "PBD"
	}
	return lower
}
