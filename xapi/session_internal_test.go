package xapi

import (
	"context"
	"io"
	"log/slog"
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
	var first datamodel.SessionRef
	for i := 0; i < maxSessionsPerGroup+5; i++ {
		rec := datamodel.NewSessionRecord()
		rec.IsLocalSuperuser, rec.AuthUserName, rec.Originator = true, "root", "XenCenter"
		ref, err := s.newSession(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = ref
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for countSessions(s, "XenCenter") > maxSessionsPerGroup && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := countSessions(s, "XenCenter"); n != maxSessionsPerGroup {
		t.Fatalf("sessions of the originator: %d, want %d", n, maxSessionsPerGroup)
	}
	if _, ok := s.store.Get(datamodel.SessionClass, string(first)); ok {
		t.Fatal("the oldest session survived")
	}
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
	idle, active := mk(), mk()
	old := time.Now().Add(-25 * time.Hour).UTC()
	op, _ := store.Set(datamodel.SessionClass, string(idle), "last_active", old)
	if _, err := s.store.Apply(ctx, op); err != nil {
		t.Fatal(err)
	}
	s.expireSessions(ctx, time.Now().Add(-sessionInactiveTimeout))
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
	op, _ = store.Set(datamodel.SessionClass, string(active), "last_active", time.Now().Add(-11*time.Minute).UTC())
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
	s.expireTasks(ctx, time.Now().Add(-taskRetention))
	if _, ok := s.store.Get(datamodel.TaskClass, done); ok {
		t.Fatal("old finished task kept")
	}
	if _, ok := s.store.Get(datamodel.TaskClass, pending); !ok {
		t.Fatal("pending task removed")
	}
}
