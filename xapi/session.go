package xapi

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

// Session limits, as xapi's.
const (
	sessionLastActiveRefresh = 600 * time.Second
	sessionInactiveTimeout   = 24 * time.Hour
	maxSessionsAnonymous     = 400
	maxSessionsPerGroup      = 500
	sessionGCInterval        = 30 * time.Second
)

type sessionInfo struct {
	ref datamodel.SessionRef
	rec *datamodel.SessionRecord
}

// checkSession validates the session argument of a call.
func (s *Server) checkSession(ctx context.Context, raw any) (*sessionInfo, error) {
	ref, _ := raw.(string)
	if rec, ok := s.localSession(ref); ok {
		return &sessionInfo{ref: datamodel.SessionRef(ref), rec: rec}, nil
	}
	o, ok := s.store.Get(datamodel.SessionClass, ref)
	if !ok || !o.(*datamodel.SessionRecord).Pool {
		// a member answers HOST_IS_SLAVE for every session but pool ones,
		// also for one it has not seen yet (it may lag the master a little)
		if err := s.assertMaster(); err != nil {
			return nil, err
		}
	}
	if !ok {
		return nil, datamodel.ErrSessionInvalid(ref)
	}
	rec := o.(*datamodel.SessionRecord)
	if !rec.Pool {
		if err := s.assertMaster(); err != nil {
			return nil, err
		}
	}
	if time.Since(rec.LastActive) > sessionLastActiveRefresh {
		s.touchSession(ref)
	}
	return &sessionInfo{ref: datamodel.SessionRef(ref), rec: rec}, nil
}

// touchSession refreshes last_active in the background.
func (s *Server) touchSession(ref string) {
	s.goBackground(func(ctx context.Context) {
		op, err := store.Set(datamodel.SessionClass, ref, "last_active", time.Now().UTC())
		if err == nil {
			_, _ = s.store.Apply(ctx, op)
		}
	})
}

func (s *Server) goBackground(fn func(ctx context.Context)) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.bg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.bg.Done()
		fn(s.ctx)
	}()
}

// assertMaster answers HOST_IS_SLAVE on a host that is not the pool master.
//
// While no master is known (an election) or this host has just been elected
// and is catching up, the call waits up to masterWait for the outcome, so
// that clients see no error from a failover or designate_new_master; after
// that (a pool without a quorum) it fails with HOST_STILL_BOOTING.
func (s *Server) assertMaster() error {
	deadline := time.Now().Add(masterWait)
	for {
		if s.store.IsLeader() {
			return nil
		}
		addr, id := s.store.Leader()
		if id != "" && id != s.store.NodeID() {
			return datamodel.ErrHostIsSlave(s.masterAddress(addr))
		}
		if time.Now().After(deadline) {
			return datamodel.ErrHostStillBooting()
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// masterWait bounds how long a call waits for an election to end.
const masterWait = 3 * time.Second

// masterAddress maps the leader's raft address to its API address (host.address).
func (s *Server) masterAddress(raftAddr string) string {
	if _, id := s.store.Leader(); id != "" {
		if ref, ok := s.store.RefByUUID(datamodel.HostClass, id); ok {
			if h, ok := s.store.Get(datamodel.HostClass, ref); ok {
				return h.(*datamodel.HostRecord).Address
			}
		}
	}
	for _, e := range s.store.List(datamodel.PoolClass) {
		p := e.Obj.(*datamodel.PoolRecord)
		if h, ok := s.store.Get(datamodel.HostClass, string(p.Master)); ok {
			return h.(*datamodel.HostRecord).Address
		}
	}
	return raftAddr
}

// newSession creates and stores a session.
func (s *Server) newSession(ctx context.Context, rec *datamodel.SessionRecord) (datamodel.SessionRef, error) {
	now := time.Now().UTC()
	rec.UUID = datamodel.NewUUID()
	rec.ThisHost = s.hostRef
	rec.LastActive = now
	rec.ValidationTime = now
	ref := datamodel.NewSecretRef()
	if err := s.apply(ctx, store.Create(ref, rec)); err != nil {
		return "", err
	}
	s.enforceSessionLimit(rec)
	return datamodel.SessionRef(ref), nil
}

// sessionGroup is the bucket xapi limits sessions by.
func sessionGroup(r *datamodel.SessionRecord) (string, int) {
	switch {
	case r.Pool:
		return "pool", 0
	case r.IsLocalSuperuser || r.AuthUserName == "" || r.AuthUserName == "root":
		if r.Originator == "" {
			return "anonymous", maxSessionsAnonymous
		}
		return "originator:" + r.Originator, maxSessionsPerGroup
	}
	return "user:" + r.AuthUserName, maxSessionsPerGroup
}

// enforceSessionLimit destroys the least recently active unused sessions of
// the new session's group beyond the group's limit. As xapi's, a session that
// is the session of a pending task is in use: it is neither destroyed nor
// counted.
func (s *Server) enforceSessionLimit(rec *datamodel.SessionRecord) {
	group, limit := sessionGroup(rec)
	if limit == 0 {
		return
	}
	// Runs are serialized and each deletes before the next one looks, so
	// logins racing each other never destroy more than the excess.
	s.goBackground(func(ctx context.Context) {
		s.sessionCapMu.Lock()
		defer s.sessionCapMu.Unlock()
		var same []store.Entry
		for _, e := range s.store.List(datamodel.SessionClass) {
			if g, _ := sessionGroup(e.Obj.(*datamodel.SessionRecord)); g == group {
				same = append(same, e)
			}
		}
		if len(same) <= limit {
			return
		}
		busy := s.sessionsWithPendingTasks()
		same = slices.DeleteFunc(same, func(e store.Entry) bool { return busy[e.Ref] })
		if len(same) <= limit {
			return
		}
		// least recently active first; last_active has one-second resolution,
		// so ties go by ref to make every run pick the same victims
		sort.Slice(same, func(i, j int) bool {
			a, b := same[i].Obj.(*datamodel.SessionRecord).LastActive, same[j].Obj.(*datamodel.SessionRecord).LastActive
			if !a.Equal(b) {
				return a.Before(b)
			}
			return same[i].Ref < same[j].Ref
		})
		var ops []store.Op
		for _, e := range same[:len(same)-limit] {
			ops = append(ops, store.Delete(datamodel.SessionClass, e.Ref))
		}
		s.deleteEach(ctx, ops)
	})
}

// sessionsWithPendingTasks is the set of sessions that unfinished (pending or
// cancelling) tasks belong to: xapi's GC keeps those sessions.
func (s *Server) sessionsWithPendingTasks() map[string]bool {
	busy := map[string]bool{}
	for _, e := range s.store.List(datamodel.TaskClass) {
		if t := e.Obj.(*datamodel.TaskRecord); t.Status == datamodel.TaskStatusTypePending || t.Status == datamodel.TaskStatusTypeCancelling {
			busy[string(t.Session)] = true
		}
	}
	return busy
}

// deleteEach applies deletions one by one so a concurrent removal does not fail the rest.
func (s *Server) deleteEach(ctx context.Context, ops []store.Op) {
	for _, op := range ops {
		_, _ = s.store.Apply(ctx, op)
	}
}

// sessionGC expires inactive sessions and old tasks periodically (leader only).
func (s *Server) sessionGC(ctx context.Context, timeout time.Duration) {
	t := time.NewTicker(sessionGCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.expireSessions(ctx, time.Now().Add(-timeout))
		s.expireTasks(ctx, time.Now())
	}
}

// expireSessions destroys the sessions last active before before, except
// those in use by an unfinished task (as xapi's GC does).
func (s *Server) expireSessions(ctx context.Context, before time.Time) {
	if !s.store.IsLeader() {
		return
	}
	busy := s.sessionsWithPendingTasks()
	var ops []store.Op
	for _, e := range s.store.List(datamodel.SessionClass) {
		if e.Obj.(*datamodel.SessionRecord).LastActive.Before(before) && !busy[e.Ref] {
			ops = append(ops, store.Delete(datamodel.SessionClass, e.Ref))
		}
	}
	s.deleteEach(ctx, ops)
}

// sessionMessages implements the explicit messages of class session.
type sessionMessages struct {
	UnimplementedSessionMessages
	s *Server
}

func (m *sessionMessages) LoginWithPassword(ctx context.Context, call *Call, uname, pwd, version, originator string) (datamodel.SessionRef, error) {
	s := m.s
	if err := s.assertMaster(); err != nil {
		return "", err
	}
	rec := datamodel.NewSessionRecord()
	rec.Originator = originator
	switch {
	case uname == "root" && s.checkRoot(pwd):
		rec.IsLocalSuperuser = true
		rec.AuthUserName = "root"
	default:
		u, ok := s.checkUser(uname, pwd)
		if !ok {
			s.authFailureDelay(ctx)
			return "", datamodel.NewError(datamodel.CodeSessionAuthenticationFailed, uname, "Authentication failure")
		}
		subj, ok := s.subjectFor(u.Name)
		if !ok {
			return "", datamodel.NewError(datamodel.CodeSessionAuthorizationFailed, uname, "no subject for this user")
		}
		rec.Subject = subj
		rec.AuthUserName = u.Name
		rec.AuthUserSid = localSubjectID(u.Name)
		rec.RbacPermissions = s.permissionsFor(u.Role)
	}
	return s.newSession(ctx, rec)
}

func (s *Server) authFailureDelay(ctx context.Context) {
	d := s.cfg.AuthFailureDelay
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// SlaveLocalLoginWithPassword gives a local-only session to root on this host
// (emergency mode), whether or not it is the master.
func (m *sessionMessages) SlaveLocalLoginWithPassword(ctx context.Context, call *Call, uname, pwd string) (datamodel.SessionRef, error) {
	if uname != "root" || !m.s.checkRoot(pwd) {
		m.s.authFailureDelay(ctx)
		return "", datamodel.NewError(datamodel.CodeSessionAuthenticationFailed, uname, "Authentication failure")
	}
	rec := datamodel.NewSessionRecord()
	rec.IsLocalSuperuser = true
	rec.AuthUserName = "root"
	return m.s.newLocalSession(rec), nil
}

// localSessions are the sessions of slave_local_login(_with_password): valid
// on this host only, kept in memory and never replicated, so that they work
// on a host that has lost its pool master (the emergency calls).
type localSessions struct {
	mu   sync.Mutex
	recs map[string]*datamodel.SessionRecord
}

func (s *Server) newLocalSession(rec *datamodel.SessionRecord) datamodel.SessionRef {
	now := time.Now().UTC()
	rec.UUID = datamodel.NewUUID()
	rec.ThisHost = s.hostRef
	rec.LastActive, rec.ValidationTime = now, now
	ref := datamodel.NewSecretRef()
	s.local.mu.Lock()
	defer s.local.mu.Unlock()
	if s.local.recs == nil {
		s.local.recs = map[string]*datamodel.SessionRecord{}
	}
	s.local.recs[ref] = rec
	return datamodel.SessionRef(ref)
}

func (s *Server) localSession(ref string) (*datamodel.SessionRecord, bool) {
	s.local.mu.Lock()
	defer s.local.mu.Unlock()
	rec, ok := s.local.recs[ref]
	return rec, ok
}

// dropLocalSession forgets a local session; it reports whether ref was one.
func (s *Server) dropLocalSession(ref string) bool {
	s.local.mu.Lock()
	defer s.local.mu.Unlock()
	_, ok := s.local.recs[ref]
	delete(s.local.recs, ref)
	return ok
}

func (m *sessionMessages) SlaveLogin(ctx context.Context, call *Call, host datamodel.HostRef, psecret string) (datamodel.SessionRef, error) {
	return m.s.poolLogin(ctx, psecret, false)
}

func (m *sessionMessages) SlaveLocalLogin(ctx context.Context, call *Call, psecret string) (datamodel.SessionRef, error) {
	return m.s.poolLogin(ctx, psecret, true)
}

func (s *Server) poolLogin(ctx context.Context, psecret string, local bool) (datamodel.SessionRef, error) {
	if psecret == "" || psecret != s.auth.PoolSecret() {
		s.authFailureDelay(ctx)
		return "", datamodel.NewError(datamodel.CodeSessionAuthenticationFailed, "", "pool secret mismatch")
	}
	rec := datamodel.NewSessionRecord()
	rec.Pool = !local
	rec.IsLocalSuperuser = true
	rec.AuthUserName = "root"
	if local {
		return s.newLocalSession(rec), nil
	}
	return s.newSession(ctx, rec)
}

func (m *sessionMessages) Logout(ctx context.Context, call *Call) error {
	if m.s.dropLocalSession(string(call.Session)) {
		return nil
	}
	return m.s.apply(ctx, store.Delete(datamodel.SessionClass, string(call.Session)))
}

func (m *sessionMessages) LocalLogout(ctx context.Context, call *Call) error {
	return m.Logout(ctx, call)
}

func (m *sessionMessages) ChangePassword(ctx context.Context, call *Call, oldPwd, newPwd string) error {
	if !call.SessionRec.IsLocalSuperuser {
		return datamodel.NewError(datamodel.CodeUserIsNotLocalSuperuser, call.SessionRec.AuthUserName)
	}
	if !m.s.checkRoot(oldPwd) {
		return datamodel.NewError(datamodel.CodeChangePasswordRejected, "old password is not correct")
	}
	h, err := HashPassword(newPwd)
	if err != nil {
		return err
	}
	// the pool's replicated hash: every host checks against it at once
	return m.s.setRootHash(ctx, h)
}

func (m *sessionMessages) GetAllSubjectIdentifiers(ctx context.Context, call *Call) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, e := range m.s.store.List(datamodel.SessionClass) {
		sid := e.Obj.(*datamodel.SessionRecord).AuthUserSid
		if sid != "" && !seen[sid] {
			seen[sid] = true
			out = append(out, sid)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (m *sessionMessages) LogoutSubjectIdentifier(ctx context.Context, call *Call, sid string) error {
	var ops []store.Op
	for _, e := range m.s.store.List(datamodel.SessionClass) {
		if e.Obj.(*datamodel.SessionRecord).AuthUserSid == sid && e.Ref != string(call.Session) {
			ops = append(ops, store.Delete(datamodel.SessionClass, e.Ref))
		}
	}
	m.s.deleteEach(ctx, ops)
	return nil
}

func localSubjectID(name string) string { return "local:" + name }

// subjectFor finds the subject object of a local user.
func (s *Server) subjectFor(name string) (datamodel.SubjectRef, bool) {
	id := localSubjectID(name)
	for _, e := range s.store.List(datamodel.SubjectClass) {
		if e.Obj.(*datamodel.SubjectRecord).SubjectIdentifier == id {
			return datamodel.SubjectRef(e.Ref), true
		}
	}
	return "", false
}
