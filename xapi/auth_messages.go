package xapi

import (
	"context"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/xapi-go/xapi-go/datamodel"
)

// authMessages implements the explicit messages of class auth for the local
// users of docs/rbac.md (subject identifier "local:<name>"); there is no
// external directory, so every other subject cannot be resolved. XenCenter
// calls get_subject_information_from_identifier and get_group_membership
// when a non-superuser connects (xapi-semantics §10.1 step 5).
//
// The implementations take the server from the call, so they work however
// they are wired in (builtinImpl: impl.Auth = &authMessages{}).
type authMessages struct {
	UnimplementedAuthMessages
}

// localUserBySID finds the local user of a "local:<name>" subject identifier.
func localUserBySID(s *Server, sid string) (LocalUser, bool) {
	name, ok := strings.CutPrefix(sid, "local:")
	if !ok || name == "" {
		return LocalUser{}, false
	}
	return localUserByName(s, name)
}

func localUserByName(s *Server, name string) (LocalUser, bool) {
	for _, u := range s.auth.usersIn(s.store) {
		if u.Name == name {
			return u, true
		}
	}
	return LocalUser{}, false
}

// localUID is a local user's numeric id, the same on every host: derived
// from the name, in 10000..59999 (clear of system and directory ranges).
func localUID(name string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return 10000 + int(h.Sum32()%50000)
}

// GetSubjectIdentifier is auth.get_subject_identifier: "local:<name>" for a local user.
func (authMessages) GetSubjectIdentifier(ctx context.Context, call *Call, subjectName string) (string, error) {
	u, ok := localUserByName(call.Server, subjectName)
	if !ok {
		return "", datamodel.ErrSubjectCannotBeResolved()
	}
	return localSubjectID(u.Name), nil
}

// GetSubjectInformationFromIdentifier is
// auth.get_subject_information_from_identifier: the keys xapi's directory
// plugins return for a user.
func (authMessages) GetSubjectInformationFromIdentifier(ctx context.Context, call *Call, subjectIdentifier string) (map[string]string, error) {
	u, ok := localUserBySID(call.Server, subjectIdentifier)
	if !ok {
		return nil, datamodel.ErrSubjectCannotBeResolved()
	}
	id := strconv.Itoa(localUID(u.Name))
	return map[string]string{
		"subject-name":             u.Name,
		"subject-displayname":      u.Name,
		"subject-gecos":            u.Name,
		"subject-upn":              u.Name,
		"subject-sid":              localSubjectID(u.Name),
		"subject-uid":              id,
		"subject-gid":              id,
		"subject-is-group":         "false",
		"subject-account-disabled": "false",
		"subject-account-expired":  "false",
		"subject-account-locked":   "false",
		"subject-password-expired": "false",
	}, nil
}

// GetGroupMembership is auth.get_group_membership: local users belong to no group.
func (authMessages) GetGroupMembership(ctx context.Context, call *Call, subjectIdentifier string) ([]string, error) {
	if _, ok := localUserBySID(call.Server, subjectIdentifier); !ok {
		return nil, datamodel.ErrSubjectCannotBeResolved()
	}
	return []string{}, nil
}
