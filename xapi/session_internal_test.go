package xapi

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

func newInternalServer(t *testing.T) *Server {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(context.Background(), store.Config{NodeID: "n1", InMemory: true, Bootstrap: true, Logger: log,
		HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond, LeaderLeaseTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), Config{Store: st, Auth: NewMemoryAuth("pw"), Logger: log, Hostname: "h", Address: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(); _ = st.Close() })
	return s
}

func countSessions(s *Server, originator string) int {
	n := 0
	for _, e := range s.store.List(datamodel.SessionClass) {
		if e.Obj.(*datamodel.SessionRecord).Originator == originator {
			n++
		}
	}
	return n
}

// TestSessionCapPerOriginator: beyond 500 root sessions of one originator,
// the least recently active ones are destroyed, as xapi does.
func TestSessionCapPerOriginator(t *testing.T) {
	s := newInternalServer(t)
	ctx := context.Background()
	overfillGroup(t, s, "XenCenter", maxSessionsPerGroup)
	// another originator is a separate bucket
	rec := datamodel.NewSessionRecord()
	rec.IsLocalSuperuser, rec.AuthUserName, rec.Originator = true, "root", "other"
	if _, err := s.newSession(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if n := countSessions(s, "other"); n != 1 {
		t.Fatalf("other originator: %d", n)
	}
}

// TestSessionIdleExpiry: sessions idle longer than the timeout are destroyed;
// checking a session refreshes last_active only when it is older than 600 s.
func TestSessionIdleExpiry(t *testing.T) {
	s := newInternalServer(t)
	ctx := context.Background()
	mk := func() datamodel.SessionRef {
		rec := datamodel.NewSessionRecord()
		rec.IsLocalSuperuser = true
		ref, err := s.newSession(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
	idle, active, idleBusy := mk(), mk(), mk()
	old := time.Now().Add(-25 * time.Hour).UTC()
	for _, ref := range []datamodel.SessionRef{idle, idleBusy} {
		op, _ := store.Set(datamodel.SessionClass, string(ref), "last_active", old)
		if _, err := s.store.Apply(ctx, op); err != nil {
			t.Fatal(err)
		}
	}
	// an idle session whose task is still pending is in use (xapi keeps it)
	if _, err := s.store.Apply(ctx, store.Create(datamodel.NewRef(), s.newTaskRecord("t", "", idleBusy))); err != nil {
		t.Fatal(err)
	}
	s.expireSessions(ctx, time.Now().Add(-sessionInactiveTimeout))
	if _, ok := s.store.Get(datamodel.SessionClass, string(idleBusy)); !ok {
		t.Fatal("idle session with a pending task expired")
	}
	if _, ok := s.store.Get(datamodel.SessionClass, string(idle)); ok {
		t.Fatal("idle session not expired")
	}
	if _, err := s.checkSession(ctx, string(idle)); err == nil {
		t.Fatal("expired session accepted")
	} else if de := err.(*datamodel.Error); de.Code != "SESSION_INVALID" || de.Params[0] != string(idle) {
		t.Fatalf("error %v", de)
	}
	if _, ok := s.store.Get(datamodel.SessionClass, string(active)); !ok {
		t.Fatal("active session expired")
	}
	// a session last active 11 minutes ago is refreshed when used
	op, _ := store.Set(datamodel.SessionClass, string(active), "last_active", time.Now().Add(-11*time.Minute).UTC())
	if _, err := s.store.Apply(ctx, op); err != nil {
		t.Fatal(err)
	}
	if _, err := s.checkSession(ctx, string(active)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		o, _ := s.store.Get(datamodel.SessionClass, string(active))
		if time.Since(o.(*datamodel.SessionRecord).LastActive) < time.Minute {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("last_active not refreshed")
}

func TestFinishedTasksExpire(t *testing.T) {
	s := newInternalServer(t)
	ctx := context.Background()
	rec := s.newTaskRecord("t", "", datamodel.SessionRef(datamodel.NullRef))
	rec.Status = datamodel.TaskStatusTypeSuccess
	rec.Finished = time.Now().Add(-2 * taskRetention).UTC()
	done := datamodel.NewRef()
	pending := datamodel.NewRef()
	if _, err := s.store.Apply(ctx, store.Create(done, rec), store.Create(pending, s.newTaskRecord("p", "", datamodel.SessionRef(datamodel.NullRef)))); err != nil {
		t.Fatal(err)
	}
	s.expireTasks(ctx, time.Now())
	if _, ok := s.store.Get(datamodel.TaskClass, done); ok {
		t.Fatal("old finished task kept")
	}
	if _, ok := s.store.Get(datamodel.TaskClass, pending); !ok {
		t.Fatal("pending task removed")
	}
}

// TestSessionCapAnonymous: root sessions without an originator share one
// bucket of 400.
func TestSessionCapAnonymous(t *testing.T) {
	overfillGroup(t, newInternalServer(t), "", maxSessionsAnonymous)
}

// overfillGroup opens limit+5 root sessions of originator and checks that the
// cap leaves the limit newest ones.
func overfillGroup(t *testing.T, s *Server, originator string, limit int) {
	t.Helper()
	var first datamodel.SessionRef
	for i := 0; i < limit+5; i++ {
		rec := datamodel.NewSessionRecord()
		rec.IsLocalSuperuser, rec.AuthUserName, rec.Originator = true, "root", originator
		ref, err := s.newSession(context.Background(), rec)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			// strictly the least recently active (last_active has one-second resolution)
			first = ref
			op, _ := store.Set(datamodel.SessionClass, string(ref), "last_active", time.Now().Add(-time.Minute).UTC())
			if _, err := s.store.Apply(context.Background(), op); err != nil {
				t.Fatal(err)
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for countSessions(s, originator) > limit && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := countSessions(s, originator); n != limit {
		t.Fatalf("sessions of originator %q: %d, want %d", originator, n, limit)
	}
	if _, ok := s.store.Get(datamodel.SessionClass, string(first)); ok {
		t.Fatal("the oldest session survived")
	}
}

// TestSessionCapKeepsSessionsWithPendingTasks: a session that is the
// session of a pending task is in use (xapi-semantics §3.6): the cap neither
// destroys nor counts it; once its task has finished it is unused again.
func TestSessionCapKeepsSessionsWithPendingTasks(t *testing.T) {
	s := newInternalServer(t)
	ctx := context.Background()
	mk := func() datamodel.SessionRef {
		rec := datamodel.NewSessionRecord()
		rec.IsLocalSuperuser, rec.AuthUserName, rec.Originator = true, "root", "XO"
		ref, err := s.newSession(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
	busy, finished := mk(), mk()
	// the least recently active (last_active has one-second resolution)
	for _, ref := range []datamodel.SessionRef{busy, finished} {
		op, _ := store.Set(datamodel.SessionClass, string(ref), "last_active", time.Now().Add(-time.Minute).UTC())
		if _, err := s.store.Apply(ctx, op); err != nil {
			t.Fatal(err)
		}
	}
	task := func(sess datamodel.SessionRef, status datamodel.TaskStatusType) {
		rec := s.newTaskRecord("t", "", sess)
		rec.Status = status
		if err := s.apply(ctx, store.Create(datamodel.NewRef(), rec)); err != nil {
			t.Fatal(err)
		}
	}
	task(busy, datamodel.TaskStatusTypePending)
	task(finished, datamodel.TaskStatusTypeSuccess)
	for i := 0; i < maxSessionsPerGroup+3; i++ {
		mk()
	}
	deadline := time.Now().Add(5 * time.Second)
	for countSessions(s, "XO") > maxSessionsPerGroup+1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := countSessions(s, "XO"); n != maxSessionsPerGroup+1 {
		t.Fatalf("sessions: %d, want %d unused + 1 in use", n, maxSessionsPerGroup)
	}
	if _, ok := s.store.Get(datamodel.SessionClass, string(busy)); !ok {
		t.Fatal("the session of a pending task was destroyed")
	}
	if _, ok := s.store.Get(datamodel.SessionClass, string(finished)); ok {
		t.Fatal("the oldest unused session survived")
	}
}

// TestSessionRefsAre128BitRandom: session refs carry 128 random bits (no
// fixed UUID version or variant), unlike other refs (uuid v4).
func TestSessionRefsAre128BitRandom(t *testing.T) {
	versions, variants := map[byte]bool{}, map[byte]bool{}
	seen := map[string]bool{}
	for range 2000 {
		r := datamodel.NewSecretRef()
		id, ok := strings.CutPrefix(r, "OpaqueRef:")
		if !ok || len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' || seen[r] {
			t.Fatalf("bad or repeated ref %q", r)
		}
		seen[r] = true
		versions[id[14]], variants[id[19]] = true, true
	}
	// every nibble value shows up in 2000 draws (P(miss) ≈ 16·(15/16)^2000)
	if len(versions) != 16 || len(variants) != 16 {
		t.Fatalf("version nibbles %d, variant nibbles %d: not 128 random bits", len(versions), len(variants))
	}
	// the refs of real sessions are made so
	s := newInternalServer(t)
	versions = map[byte]bool{}
	for range 64 {
		rec := datamodel.NewSessionRecord()
		rec.IsLocalSuperuser, rec.AuthUserName = true, "root"
		ref, err := s.newSession(context.Background(), rec)
		if err != nil {
			t.Fatal(err)
		}
		versions[string(ref)[len("OpaqueRef:")+14]] = true
		versions[string(s.newLocalSession(rec))[len("OpaqueRef:")+14]] = true
	}
	if len(versions) < 4 {
		t.Fatalf("session refs have a fixed version nibble: %v", versions)
	}
}

// TestSessionLocalLogout: a slave_local_login_with_password session works
// on this host only and ends with session.local_logout.
func TestSessionLocalLogout(t *testing.T) {
	s, u := authTestServer(t, nil, NewMemoryAuth("pw"))
	if _, e := call(t, u, "session.slave_local_login_with_password", "root", "wrong"); e == nil || e[0] != "SESSION_AUTHENTICATION_FAILED" {
		t.Fatalf("wrong password: %v", e)
	}
	ls := mustCallURL(t, u, "session.slave_local_login_with_password", "root", "pw").(string)
	if _, ok := s.store.Get(datamodel.SessionClass, ls); ok {
		t.Fatal("a local session is replicated")
	}
	mustCallURL(t, u, "pool.get_all", ls)
	// its record reads like any session's
	if r := mustCallURL(t, u, "session.get_record", ls, ls).(map[string]any); r["is_local_superuser"] != true || r["this_host"] != string(s.hostRef) {
		t.Fatalf("local session record %v", r)
	}
	if v := mustCallURL(t, u, "session.get_this_host", ls, ls); v != string(s.hostRef) {
		t.Fatalf("session.get_this_host = %v", v)
	}
	mustCallURL(t, u, "session.local_logout", ls)
	if _, e := call(t, u, "pool.get_all", ls); e == nil || e[0] != "SESSION_INVALID" {
		t.Fatalf("after local_logout: %v", e)
	}
	if _, ok := s.localSession(ls); ok {
		t.Fatal("local session kept")
	}
	// a pool-secret local session too
	ps := mustCallURL(t, u, "session.slave_local_login", s.auth.PoolSecret()).(string)
	mustCallURL(t, u, "session.local_logout", ps)
	if _, e := call(t, u, "pool.get_all", ps); e == nil || e[0] != "SESSION_INVALID" {
		t.Fatalf("after local_logout: %v", e)
	}
	// other sessions are untouched
	rs := mustCallURL(t, u, "session.login_with_password", "root", "pw").(string)
	mustCallURL(t, u, "pool.get_all", rs)
}
