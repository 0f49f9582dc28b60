package schemaimport

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/xapi-go/xapi-go/schema"
)

type refTypeTree struct {
	Kind  string       `json:"kind"`
	Class string       `json:"class"`
	Name  string       `json:"name"`
	Of    *refTypeTree `json:"of"`
	Key   *refTypeTree `json:"key"`
	Value *refTypeTree `json:"value"`
}

func (t *refTypeTree) ours() (string, error) {
	if t == nil {
		return "", fmt.Errorf("nil type")
	}
	switch t.Kind {
	case "string", "int", "float", "bool", "datetime":
		return t.Kind, nil
	case "ref":
		return "ref:" + t.Class, nil
	case "record":
		return "record:" + t.Class, nil
	case "enum":
		return "enum:" + t.Name, nil
	case "set", "option":
		e, err := t.Of.ours()
		return t.Kind + "<" + e + ">", err
	case "map":
		k, err := t.Key.ours()
		if err != nil {
			return "", err
		}
		v, err := t.Value.ours()
		return "map<" + k + "," + v + ">", err
	}
	return "", fmt.Errorf("unknown kind %q", t.Kind)
}

type refLifecycle struct {
	State   string          `json:"state"`
	Summary schema.Releases `json:"summary"`
}

// releases is the lifecycle's release summary, or nil when it is empty.
func (l refLifecycle) releases() *schema.Releases {
	r := l.Summary
	if r.Prototyped == "" && r.Published == "" && r.Deprecated == "" && r.Removed == "" && len(r.Changed) == 0 && len(r.Extended) == 0 {
		return nil
	}
	return &r
}

type refField struct {
	Name          string          `json:"name"`
	NamespacePath []string        `json:"namespace_path"`
	TypeTree      *refTypeTree    `json:"type_tree"`
	Qualifier     string          `json:"qualifier"`
	DefaultValue  json.RawMessage `json:"default_value"`
	Default       *string         `json:"default"`
	InternalOnly  bool            `json:"internal_only"`
	Persist       bool            `json:"persist"`
	IgnoreFK      bool            `json:"ignore_foreign_key"`
	GetterRole    string          `json:"getter_role"`
	SetterRole    string          `json:"setter_role"`
	MapKeysRoles  []struct {
		Key     string `json:"key"`
		MinRole string `json:"min_role"`
	} `json:"map_keys_roles"`
	Lifecycle refLifecycle `json:"lifecycle"`
}

type refParam struct {
	Name         string          `json:"name"`
	TypeTree     *refTypeTree    `json:"type_tree"`
	Required     bool            `json:"required"`
	DefaultValue json.RawMessage `json:"default_value"`
}

type refMessage struct {
	Name     string     `json:"name"`
	WireName string     `json:"wire_name"`
	Params   []refParam `json:"params"`
	Result   *struct {
		TypeTree *refTypeTree `json:"type_tree"`
	} `json:"result"`
	Errors        []string     `json:"errors"`
	Async         bool         `json:"async"`
	Session       bool         `json:"session"`
	MinRole       string       `json:"min_role"`
	ClientCert    bool         `json:"client_cert"`
	Implicit      bool         `json:"implicit"`
	ImplicitKind  string       `json:"implicit_kind"`
	HideFromDocs  bool         `json:"hide_from_docs"`
	PoolInternal  bool         `json:"pool_internal"`
	CustomMarshal bool         `json:"custom_marshaller"`
	Lifecycle     refLifecycle `json:"lifecycle"`
	AllowedRoles  []string     `json:"allowed_roles"`
}

type refClass struct {
	Name            string       `json:"name"`
	InDatabase      bool         `json:"in_database"`
	Persist         string       `json:"persist"`
	GenCtorDtor     bool         `json:"gen_constructor_destructor"`
	GenEvents       bool         `json:"gen_events"`
	DefaultMinRole  string       `json:"messages_default_min_role"`
	ImplicitMinRole string       `json:"implicit_messages_min_role"`
	DefaultRoles    []string     `json:"messages_default_roles"`
	ExposesGetAll   bool         `json:"exposes_get_all"`
	Lifecycle       refLifecycle `json:"lifecycle"`
	CtorFields      []struct {
		Name     string `json:"name"`
		Required bool   `json:"required"`
	} `json:"ctor_fields"`
	Fields   []refField   `json:"fields"`
	Messages []refMessage `json:"messages"`
}

type refModel struct {
	APIVersion    schema.Version `json:"api_version"`
	SchemaVersion schema.Version `json:"schema_version"`
	Roles         []struct {
		Name     string `json:"name"`
		Internal bool   `json:"internal"`
	} `json:"roles"`
	Classes []refClass `json:"classes"`
	Enums   []struct {
		Name   string `json:"name"`
		Values []struct {
			Name string `json:"name"`
		} `json:"values"`
	} `json:"enums"`
	Errors []struct {
		Name         string   `json:"name"`
		Params       []string `json:"params"`
		Undocumented bool     `json:"undocumented"`
	} `json:"errors"`
	AlertMessages []struct {
		Name     string `json:"name"`
		Priority int    `json:"priority"`
	} `json:"alert_messages"`
	HTTPActions []struct {
		Name      string `json:"name"`
		Method    string `json:"method"`
		URI       string `json:"uri"`
		QueryArgs []any  `json:"query_args"`
		MinRole   string `json:"min_role"`
	} `json:"http_actions"`
	Relations []schema.Relation `json:"relations"`
	Special   struct {
		ExposeGetAll         []string `json:"expose_get_all_messages_for"`
		NoTaskIDFor          []string `json:"no_task_id_for"`
		CurrentOperationsFor []string `json:"current_operations_for"`
		EmergencyCalls       []string `json:"emergency_calls"`
		Whitelist            []string `json:"master_forwarding_whitelist"`
		ExtraPermissions     []struct {
			Name         string   `json:"name"`
			AllowedRoles []string `json:"allowed_roles"`
		} `json:"extra_permissions"`
	} `json:"special"`
}

func state(s string) string {
	return strings.ToLower(strings.TrimSuffix(s, "_s"))
}

func role(min string, clientCert bool) string {
	if min == "" || min == "local-root-only" {
		return "local-root-only"
	}
	if clientCert && min != "client-cert" && min != "read-only" {
		return min + "+client-cert"
	}
	return min
}

// fieldRole converts "vm-operator" / "vm-operator+client-cert" style roles.
func fieldRole(r string) string {
	if r == "" {
		return "local-root-only"
	}
	return r
}

// Import converts the reference JSON into our model. It also checks that the
// implicit messages our rules derive are exactly the ones in the reference.
func Import(ref []byte) (*schema.Model, error) {
	var r refModel
	if err := json.Unmarshal(ref, &r); err != nil {
		return nil, err
	}
	m := &schema.Model{APIVersion: r.APIVersion, SchemaVersion: r.SchemaVersion, Relations: r.Relations}
	for _, ro := range r.Roles {
		m.Roles = append(m.Roles, schema.Role{Name: ro.Name, Internal: ro.Internal})
	}
	for _, e := range r.Enums {
		en := schema.Enum{Name: e.Name}
		for _, v := range e.Values {
			en.Values = append(en.Values, v.Name)
		}
		m.Enums = append(m.Enums, en)
	}
	for _, e := range r.Errors {
		m.Errors = append(m.Errors, schema.Error{Name: e.Name, Params: e.Params, Undocumented: e.Undocumented})
	}
	for _, a := range r.AlertMessages {
		m.Alerts = append(m.Alerts, schema.Alert{Name: a.Name, Priority: a.Priority})
	}
	for _, h := range r.HTTPActions {
		ha := schema.HTTPAction{Name: h.Name, Method: h.Method, URI: h.URI, Role: role(h.MinRole, false)}
		for _, q := range h.QueryArgs {
			switch q := q.(type) {
			case string:
				ha.Query = append(ha.Query, q)
			case map[string]any:
				if n, ok := q["name"].(string); ok {
					ha.Query = append(ha.Query, n)
				}
			}
		}
		m.HTTPActions = append(m.HTTPActions, ha)
	}
	m.Special = schema.Special{
		ExposeGetAll: r.Special.ExposeGetAll, NoTaskIDFor: r.Special.NoTaskIDFor,
		CurrentOperationsFor: r.Special.CurrentOperationsFor, EmergencyCalls: r.Special.EmergencyCalls,
		MasterForwardingAllowed: r.Special.Whitelist,
	}
	for _, ep := range r.Special.ExtraPermissions {
		min := "local-root-only"
		if n := len(ep.AllowedRoles); n > 0 {
			min = ep.AllowedRoles[n-1]
		}
		m.Special.ExtraPermissions = append(m.Special.ExtraPermissions, schema.Permission{Name: ep.Name, Role: min})
	}
	getAll := map[string]bool{}
	for _, n := range r.Special.ExposeGetAll {
		getAll[n] = true
	}
	for _, rc := range r.Classes {
		c := &schema.Class{
			Name: rc.Name, InDatabase: rc.InDatabase, Persist: rc.Persist == "PersistEverything",
			Events: rc.GenEvents, GetAll: getAll[rc.Name], CtorDtor: rc.GenCtorDtor,
			DefaultRole: role(rc.DefaultMinRole, false), ImplicitRole: role(rc.ImplicitMinRole, false),
			State: state(rc.Lifecycle.State), Releases: rc.Lifecycle.releases(),
		}
		if len(rc.DefaultRoles) == 0 {
			c.DefaultRole = "local-root-only"
		}
		required := map[string]bool{}
		for _, cf := range rc.CtorFields {
			required[cf.Name] = cf.Required
		}
		for _, rf := range rc.Fields {
			t, err := rf.TypeTree.ours()
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", rc.Name, rf.Name, err)
			}
			f := &schema.Field{
				Name: rf.Name, Type: t, Qualifier: rf.Qualifier, Internal: rf.InternalOnly,
				Persist: rf.Persist, IgnoreFK: rf.IgnoreFK, GetRole: fieldRole(rf.GetterRole),
				SetRole: fieldRole(rf.SetterRole), State: state(rf.Lifecycle.State), Releases: rf.Lifecycle.releases(),
				CtorRequired: required[rf.Name],
			}
			if len(rf.NamespacePath) > 1 {
				f.Path = rf.NamespacePath
			}
			if rf.Default != nil && len(rf.DefaultValue) > 0 {
				f.Default = rf.DefaultValue
			}
			for _, mk := range rf.MapKeysRoles {
				f.MapKeyRoles = append(f.MapKeyRoles, schema.MapKeyRole{Key: mk.Key, Role: role(mk.MinRole, false)})
			}
			c.Fields = append(c.Fields, f)
		}
		for _, rm := range rc.Messages {
			if rm.Implicit {
				continue
			}
			msg := &schema.Message{
				Name: rm.Name, Errors: rm.Errors, Async: rm.Async, NoSession: !rm.Session,
				Role: role(rm.MinRole, rm.ClientCert), Hidden: rm.HideFromDocs, PoolInternal: rm.PoolInternal,
				State: state(rm.Lifecycle.State), Releases: rm.Lifecycle.releases(), Custom: rm.CustomMarshal,
			}
			if len(rm.AllowedRoles) == 0 {
				msg.Role = "local-root-only"
			}
			for i, p := range rm.Params {
				if i == 0 && rm.Session && p.Name == "session_id" {
					continue
				}
				t, err := p.TypeTree.ours()
				if err != nil {
					return nil, fmt.Errorf("%s: %w", rm.WireName, err)
				}
				sp := schema.Param{Name: p.Name, Type: t}
				if !p.Required && len(p.DefaultValue) > 0 {
					sp.Default = fixEnumDefault(&r, p.TypeTree, p.DefaultValue)
				}
				msg.Params = append(msg.Params, sp)
			}
			if rm.Result != nil {
				t, err := rm.Result.TypeTree.ours()
				if err != nil {
					return nil, fmt.Errorf("%s result: %w", rm.WireName, err)
				}
				msg.Result = t
			}
			c.Messages = append(c.Messages, msg)
		}
		m.Classes = append(m.Classes, c)
	}
	b, err := Marshal(m)
	if err != nil {
		return nil, err
	}
	loaded, err := schema.Parse(b)
	if err != nil {
		return nil, err
	}
	if err := checkImplicit(loaded, &r); err != nil {
		return nil, err
	}
	return loaded, nil
}

func checkImplicit(m *schema.Model, r *refModel) error {
	var diffs []string
	for _, rc := range r.Classes {
		c := m.Class(rc.Name)
		want := map[string]string{}
		for _, rm := range rc.Messages {
			want[rm.Name] = role(rm.MinRole, rm.ClientCert)
			if len(rm.AllowedRoles) == 0 {
				want[rm.Name] = "local-root-only"
			}
		}
		got := map[string]string{}
		for _, msg := range m.Messages(c) {
			got[msg.Name] = msg.Role
		}
		for n, ro := range want {
			g, ok := got[n]
			switch {
			case !ok:
				diffs = append(diffs, fmt.Sprintf("%s.%s missing", rc.Name, n))
			case g != ro:
				diffs = append(diffs, fmt.Sprintf("%s.%s role %s, reference %s", rc.Name, n, g, ro))
			}
		}
		for n := range got {
			if _, ok := want[n]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s.%s extra", rc.Name, n))
			}
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		return fmt.Errorf("implicit messages differ from the reference (%d):\n%s", len(diffs), strings.Join(diffs, "\n"))
	}
	return nil
}

// Marshal writes a model in our schema format (stable, indented one class per block).
func Marshal(m *schema.Model) ([]byte, error) {
	return json.MarshalIndent(m, "", " ")
}

// fixEnumDefault repairs the one enum parameter whose upstream default is not
// an enum value (host.create's latest_synced_updates_applied defaults to an
// empty collection): it takes "unknown" when the enum has it, else the first value.
func fixEnumDefault(r *refModel, t *refTypeTree, def json.RawMessage) json.RawMessage {
	if t.Kind != "enum" || (len(def) > 0 && def[0] == '"') {
		return def
	}
	for _, e := range r.Enums {
		if e.Name != t.Name || len(e.Values) == 0 {
			continue
		}
		v := e.Values[0].Name
		for _, x := range e.Values {
			if x.Name == "unknown" {
				v = x.Name
			}
		}
		b, _ := json.Marshal(v)
		return b
	}
	return def
}
