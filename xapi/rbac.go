package xapi

import (
	"strings"

	"github.com/xapi-go/xapi-go/datamodel"
)

// roleRank is the position of a role in datamodel.Roles (0 = most privileged), or -1.
func roleRank(role string) int {
	for i, r := range datamodel.Roles {
		if r == role {
			return i
		}
	}
	return -1
}

// roleAllows reports whether a subject holding role may do what requires req
// (a minimum role, optionally "+client-cert", or "local-root-only").
func roleAllows(req, role string) bool {
	if req == "local-root-only" || role == "" {
		return false
	}
	base, cc := strings.CutSuffix(req, "+client-cert")
	if role == "client-cert" {
		return cc || base == "read-only"
	}
	rr, br := roleRank(role), roleRank(base)
	return rr >= 0 && br >= 0 && rr <= br
}

// rolesWith lists the roles (most privileged first, internal ones left out) that satisfy req.
func rolesWith(req string) []string {
	var out []string
	for _, r := range datamodel.Roles {
		if datamodel.InternalRoles[r] {
			continue
		}
		if roleAllows(req, r) {
			out = append(out, r)
		}
	}
	return out
}

// mapKeyRole finds the per-key writer role of a map field, if any.
func mapKeyRole(f *datamodel.Field, key string) (string, string, bool) {
	for _, mk := range f.MapKeyRoles {
		if p, ok := strings.CutSuffix(mk.Key, "*"); ok {
			if strings.HasPrefix(key, p) {
				return mk.Role, mk.Key, true
			}
		} else if mk.Key == key {
			return mk.Role, mk.Key, true
		}
	}
	return "", "", false
}

// authorize enforces the message's roles for the caller's session.
func (s *Server) authorize(call *Call, m *Method, args []any) error {
	if !m.Session || call.SessionRec == nil {
		return nil
	}
	rec := call.SessionRec
	if rec.IsLocalSuperuser || rec.Pool {
		return nil
	}
	req, perm := m.Role, m.permission
	if m.Field != nil && len(m.Field.MapKeyRoles) > 0 && (strings.HasPrefix(m.Message, "add_to_") || strings.HasPrefix(m.Message, "remove_from_")) {
		if r, k, ok := mapKeyRole(m.Field, keyString(args[1])); ok {
			req, perm = r, perm+"/key:"+strings.ToLower(k)
		}
	}
	role := s.sessionRole(rec)
	if roleAllows(req, role) {
		return nil
	}
	return datamodel.ErrRbacPermissionDenied(perm,
		"No permission in user session. (Roles with this permission: "+strings.Join(rolesWith(req), ", ")+")")
}

// sessionRole is the most privileged role the session's subject holds.
func (s *Server) sessionRole(rec *datamodel.SessionRecord) string {
	o, ok := s.store.Get(datamodel.SubjectClass, string(rec.Subject))
	if !ok {
		return ""
	}
	best, bestRank := "", len(datamodel.Roles)
	for _, rr := range o.(*datamodel.SubjectRecord).Roles {
		ro, ok := s.store.Get(datamodel.RoleClass, string(rr))
		if !ok {
			continue
		}
		name := ro.(*datamodel.RoleRecord).NameLabel
		if r := roleRank(name); r >= 0 && r < bestRank {
			best, bestRank = name, r
		}
	}
	return best
}

// permissionsFor lists role names and permission names granted to role, as
// session.get_rbac_permissions returns them.
func (s *Server) permissionsFor(role string) []string {
	var out []string
	for _, r := range datamodel.Roles {
		if roleRank(r) >= roleRank(role) && !datamodel.InternalRoles[r] {
			out = append(out, r)
		}
	}
	for _, m := range s.methods.list {
		if roleAllows(m.Role, role) {
			out = append(out, m.permission)
		}
	}
	return out
}
