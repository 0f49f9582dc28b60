package schema

import (
	"strings"
	"testing"
)

func TestModelCounts(t *testing.T) {
	m, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	classes, fields, explicit, implicit := 0, 0, 0, 0
	for _, c := range m.Classes {
		classes++
		fields += len(c.Fields)
		for _, msg := range m.Messages(c) {
			if msg.Implicit != "" {
				implicit++
			} else {
				explicit++
			}
		}
	}
	want := [4]int{73, 950, 678, 1580}
	if got := [4]int{classes, fields, explicit, implicit}; got != want {
		t.Fatalf("classes, fields, explicit, implicit messages = %v, want %v", got, want)
	}
	if len(m.Enums) != 75 || len(m.Errors) != 635 {
		t.Fatalf("enums %d, errors %d", len(m.Enums), len(m.Errors))
	}
}

func TestParseType(t *testing.T) {
	for _, s := range []string{
		"string", "int", "float", "bool", "datetime", "ref:VM", "enum:vm_power_state", "record:VM",
		"set<ref:VBD>", "map<string,string>", "map<ref:VIF,set<string>>", "option<record:sr_stat>",
		"set<map<string,string>>",
	} {
		ty, err := ParseType(s)
		if err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		if ty.String() != s {
			t.Errorf("round trip %s -> %s", s, ty)
		}
	}
	for _, bad := range []string{"", "set<int", "map<int>", "list<int>", "set<int>>", "map<a,b>"} {
		if _, err := ParseType(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestRoleAllowed(t *testing.T) {
	m := MustLoad()
	cases := []struct {
		req, role string
		want      bool
	}{
		{"read-only", "read-only", true},
		{"vm-admin", "vm-operator", false},
		{"vm-admin", "pool-admin", true},
		{"pool-operator+client-cert", "client-cert", true},
		{"vm-admin", "client-cert", false},
		{"read-only", "client-cert", true},
		{"local-root-only", "pool-admin", false},
	}
	for _, c := range cases {
		if got := m.RoleAllowed(c.req, c.role); got != c.want {
			t.Errorf("RoleAllowed(%s, %s) = %v", c.req, c.role, got)
		}
	}
}

func TestValidateRejectsBadModels(t *testing.T) {
	bad := `{"roles":[{"name":"read-only"}],"enums":[],"errors":[],"classes":[{"name":"X","in_db":true,"default_role":"read-only","implicit_role":"read-only","state":"published",
	 "fields":[{"name":"f","type":"ref:Nope","qual":"Weird","get_role":"read-only","set_role":"emperor","state":"published"}],
	 "messages":[{"name":"m","params":[{"name":"p","type":"enum:missing"}],"errors":["NO_SUCH"],"role":"read-only","state":"published"}]}],"special":{}}`
	_, err := Parse([]byte(bad))
	if err == nil {
		t.Fatal("invalid model accepted")
	}
	for _, want := range []string{`unknown class "Nope"`, "bad qualifier", `unknown role "emperor"`, `unknown enum "missing"`, "unknown error NO_SUCH"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}
