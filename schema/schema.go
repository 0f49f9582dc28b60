package schema

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

//go:embed model.json
var modelJSON []byte

// Model is the whole XenAPI data model as xapi-go describes it.
type Model struct {
	APIVersion    Version           `json:"api_version"`
	SchemaVersion Version           `json:"schema_version"`
	Roles         []Role            `json:"roles"`
	Enums         []Enum            `json:"enums"`
	Errors        []Error           `json:"errors"`
	Classes       []*Class          `json:"classes"`
	Special       Special           `json:"special"`
	HTTPActions   []HTTPAction      `json:"http_actions"`
	Alerts        []Alert           `json:"alerts"`
	Relations     []Relation        `json:"relations"`
	classByName   map[string]*Class `json:"-"`
	enumByName    map[string]*Enum  `json:"-"`
	errorByName   map[string]*Error `json:"-"`
	roleRank      map[string]int    `json:"-"`
	parsedTypes   map[string]*Type  `json:"-"`
	implicitCache map[string][]*Message
}

// Version is a major.minor pair.
type Version struct {
	Major int `json:"major"`
	Minor int `json:"minor"`
}

// Role is one RBAC role; Roles are ordered most privileged first.
type Role struct {
	Name     string `json:"name"`
	Internal bool   `json:"internal,omitempty"`
}

// Enum is a named enumeration with its wire spellings.
type Enum struct {
	Name   string   `json:"name"`
	Values []string `json:"values"`
}

// Error is a XenAPI error code with the names of its parameters.
type Error struct {
	Name         string   `json:"name"`
	Params       []string `json:"params"`
	Undocumented bool     `json:"undocumented,omitempty"`
}

// Alert is a well-known message (alert) name and its priority.
type Alert struct {
	Name     string `json:"name"`
	Priority int    `json:"priority"`
}

// Relation ties two reference fields kept consistent by the database.
type Relation struct {
	A FieldRef `json:"a"`
	B FieldRef `json:"b"`
}

// FieldRef names one field of one class.
type FieldRef struct {
	Class string `json:"class"`
	Field string `json:"field"`
}

// HTTPAction is a non-RPC HTTP handler of the API.
type HTTPAction struct {
	Name   string   `json:"name"`
	Method string   `json:"method"`
	URI    string   `json:"uri"`
	Role   string   `json:"role"`
	Query  []string `json:"query,omitempty"`
}

// Special holds the model-wide lists that a server consults.
type Special struct {
	ExposeGetAll            []string     `json:"expose_get_all"`
	NoTaskIDFor             []string     `json:"no_task_id_for"`
	CurrentOperationsFor    []string     `json:"current_operations_for"`
	EmergencyCalls          []string     `json:"emergency_calls"`
	MasterForwardingAllowed []string     `json:"master_forwarding_whitelist"`
	ExtraPermissions        []Permission `json:"extra_permissions"`
}

// Permission is a named permission outside the message set, with its minimum role.
type Permission struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// Class is one XenAPI class.
type Class struct {
	Name         string     `json:"name"`
	InDatabase   bool       `json:"in_db"`
	Persist      bool       `json:"persist"`
	Events       bool       `json:"events"`
	GetAll       bool       `json:"get_all"`
	CtorDtor     bool       `json:"ctor_dtor"`
	DefaultRole  string     `json:"default_role"`
	ImplicitRole string     `json:"implicit_role"`
	State        string     `json:"state"`
	Releases     *Releases  `json:"releases,omitempty"`
	Fields       []*Field   `json:"fields"`
	Messages     []*Message `json:"messages"` // explicit (custom) messages only
}

// Field is one field of a class. Name is the wire name (namespace path joined with "_").
type Field struct {
	Name         string          `json:"name"`
	Path         []string        `json:"path,omitempty"` // namespace path when it differs from [Name]
	Type         string          `json:"type"`
	Qualifier    string          `json:"qual"` // RW, StaticRO, DynamicRO
	Default      json.RawMessage `json:"default,omitempty"`
	Internal     bool            `json:"internal,omitempty"`
	Persist      bool            `json:"persist"`
	IgnoreFK     bool            `json:"ignore_fk,omitempty"`
	GetRole      string          `json:"get_role"`
	SetRole      string          `json:"set_role"`
	MapKeyRoles  []MapKeyRole    `json:"map_key_roles,omitempty"`
	State        string          `json:"state"`
	Releases     *Releases       `json:"releases,omitempty"`
	CtorRequired bool            `json:"ctor_required,omitempty"`
}

// DBName is the column name xapi's database uses (namespace path joined with "__").
func (f *Field) DBName() string {
	if len(f.Path) == 0 {
		return f.Name
	}
	return strings.Join(f.Path, "__")
}

// MapKeyRole gives a map key (or key prefix ending in '*') its own writer role.
type MapKeyRole struct {
	Key  string `json:"key"`
	Role string `json:"role"`
}

// Message is one message of a class.
type Message struct {
	Name         string    `json:"name"`
	Params       []Param   `json:"params"` // without session_id
	Result       string    `json:"result,omitempty"`
	Errors       []string  `json:"errors,omitempty"`
	Async        bool      `json:"async,omitempty"`
	NoSession    bool      `json:"no_session,omitempty"`
	Role         string    `json:"role"`
	Hidden       bool      `json:"hidden,omitempty"`
	PoolInternal bool      `json:"pool_internal,omitempty"`
	State        string    `json:"state"`
	Releases     *Releases `json:"releases,omitempty"`
	Custom       bool      `json:"custom_marshaller,omitempty"`

	// Set on derived implicit messages only.
	Implicit string `json:"-"` // getter, setter, add, remove, add_to, remove_from, get_record, ...
	Field    *Field `json:"-"`
	Class    *Class `json:"-"`
}

// Releases records in which product release (by code name, e.g. "rio")
// an item went through each lifecycle step; State is where it stands now.
type Releases struct {
	Prototyped string   `json:"prototyped,omitempty"`
	Published  string   `json:"published,omitempty"`
	Changed    []string `json:"changed,omitempty"`
	Extended   []string `json:"extended,omitempty"`
	Deprecated string   `json:"deprecated,omitempty"`
	Removed    string   `json:"removed,omitempty"`
}

// Param is one message parameter.
type Param struct {
	Name    string          `json:"name"`
	Type    string          `json:"type"`
	Default json.RawMessage `json:"default,omitempty"`
}

// Load parses the embedded model and validates it.
func Load() (*Model, error) { return Parse(modelJSON) }

// MustLoad is Load for callers that cannot continue without the model.
func MustLoad() *Model {
	m, err := Load()
	if err != nil {
		panic(err)
	}
	return m
}

// Parse decodes a model in xapi-go's schema format and validates it.
func Parse(b []byte) (*Model, error) {
	var m Model
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	if err := m.index(); err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

func (m *Model) index() error {
	m.classByName = map[string]*Class{}
	m.enumByName = map[string]*Enum{}
	m.errorByName = map[string]*Error{}
	m.roleRank = map[string]int{}
	m.parsedTypes = map[string]*Type{}
	for i, r := range m.Roles {
		m.roleRank[r.Name] = i
	}
	for _, c := range m.Classes {
		if _, dup := m.classByName[c.Name]; dup {
			return fmt.Errorf("schema: duplicate class %s", c.Name)
		}
		m.classByName[c.Name] = c
		for _, msg := range c.Messages {
			msg.Class = c
		}
	}
	for i := range m.Enums {
		m.enumByName[m.Enums[i].Name] = &m.Enums[i]
	}
	for i := range m.Errors {
		m.errorByName[m.Errors[i].Name] = &m.Errors[i]
	}
	return nil
}

// Class returns the class with the given (exact-case) name.
func (m *Model) Class(name string) *Class { return m.classByName[name] }

// Enum returns the named enum.
func (m *Model) Enum(name string) *Enum { return m.enumByName[name] }

// Error returns the named error.
func (m *Model) Error(name string) *Error { return m.errorByName[name] }

// Field returns the named field of c, or nil.
func (c *Class) Field(name string) *Field {
	for _, f := range c.Fields {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// HasField reports whether c has a field with that wire name.
func (c *Class) HasField(name string) bool { return c.Field(name) != nil }

// Type parses a type string of the schema (cached).
func (m *Model) Type(s string) (*Type, error) {
	if t, ok := m.parsedTypes[s]; ok {
		return t, nil
	}
	t, err := ParseType(s)
	if err != nil {
		return nil, err
	}
	if m.parsedTypes != nil {
		m.parsedTypes[s] = t
	}
	return t, nil
}

// MustType is Type for strings already validated.
func (m *Model) MustType(s string) *Type {
	t, err := m.Type(s)
	if err != nil {
		panic(err)
	}
	return t
}

// RoleAllowed reports whether a subject holding role may use something that requires req.
// req is a minimum role, optionally with "+client-cert", or "local-root-only".
func (m *Model) RoleAllowed(req, role string) bool {
	if req == "local-root-only" {
		return false
	}
	base, cc := strings.CutSuffix(req, "+client-cert")
	if cc && role == "client-cert" {
		return true
	}
	if role == "client-cert" && base != "read-only" {
		return false
	}
	rr, ok1 := m.roleRank[role]
	br, ok2 := m.roleRank[base]
	return ok1 && ok2 && rr <= br
}

// RolesFor lists the roles (most privileged first) that satisfy req.
func (m *Model) RolesFor(req string) []string {
	var out []string
	for _, r := range m.Roles {
		if m.RoleAllowed(req, r.Name) {
			out = append(out, r.Name)
		}
	}
	return out
}

// Validate checks the internal consistency of the model.
func (m *Model) Validate() error {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	checkType := func(where, s string) {
		t, err := m.Type(s)
		if err != nil {
			bad("%s: %v", where, err)
			return
		}
		t.Walk(func(t *Type) {
			switch t.Kind {
			case KindRef, KindRecord:
				if m.Class(t.Name) == nil && t.Name != "session" {
					bad("%s: unknown class %q", where, t.Name)
				}
			case KindEnum:
				if m.Enum(t.Name) == nil {
					bad("%s: unknown enum %q", where, t.Name)
				}
			}
		})
	}
	checkRole := func(where, r string) {
		if r == "local-root-only" {
			return
		}
		base, _ := strings.CutSuffix(r, "+client-cert")
		if _, ok := m.roleRank[base]; !ok {
			bad("%s: unknown role %q", where, r)
		}
	}
	for _, c := range m.Classes {
		checkRole(c.Name+" default role", c.DefaultRole)
		checkRole(c.Name+" implicit role", c.ImplicitRole)
		seen := map[string]bool{}
		for _, f := range c.Fields {
			w := c.Name + "." + f.Name
			if seen[f.Name] {
				bad("%s: duplicate field", w)
			}
			seen[f.Name] = true
			checkType(w, f.Type)
			checkRole(w+" getter", f.GetRole)
			checkRole(w+" setter", f.SetRole)
			switch f.Qualifier {
			case "RW", "StaticRO", "DynamicRO":
			default:
				bad("%s: bad qualifier %q", w, f.Qualifier)
			}
		}
		mseen := map[string]bool{}
		for _, msg := range c.Messages {
			w := c.Name + "." + msg.Name
			if mseen[msg.Name] {
				bad("%s: duplicate message", w)
			}
			mseen[msg.Name] = true
			checkRole(w, msg.Role)
			for _, p := range msg.Params {
				checkType(w+"("+p.Name+")", p.Type)
			}
			if msg.Result != "" {
				checkType(w+" result", msg.Result)
			}
			for _, e := range msg.Errors {
				if m.Error(e) == nil {
					bad("%s: unknown error %s", w, e)
				}
			}
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		if len(errs) > 20 {
			errs = append(errs[:20], fmt.Sprintf("... and %d more", len(errs)-20))
		}
		return fmt.Errorf("schema: invalid model:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}
