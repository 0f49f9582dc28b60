package xapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/rpc"
	"github.com/xapi-go/xapi-go/store"
)

// authTestServer starts a server on st (a new in-memory store if nil) with
// auth and serves its API over HTTP.
func authTestServer(t *testing.T, st *store.Store, auth *Auth) (*Server, string) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if st == nil {
		var err error
		st, err = store.Open(context.Background(), store.Config{NodeID: "n1", InMemory: true, Bootstrap: true, Logger: log,
			HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond, LeaderLeaseTimeout: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
	}
	s, err := New(context.Background(), Config{Store: st, Auth: auth, Logger: log, Hostname: "h", Address: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() { hs.Close(); _ = s.Close() })
	return s, hs.URL
}

// call makes a JSON-RPC 2.0 call; it returns the result or the error description.
func call(t *testing.T, url, method string, params ...any) (any, []string) {
	t.Helper()
	v, err := rpc.InvokeAny(context.Background(), nil, url, method, params...)
	if d := rpc.FaultDescription(err); d != nil {
		return nil, d
	}
	if err != nil {
		t.Fatal(err)
	}
	return v, nil
}

func mustCallURL(t *testing.T, url, method string, params ...any) any {
	t.Helper()
	v, e := call(t, url, method, params...)
	if e != nil {
		t.Fatalf("%s: %v", method, e)
	}
	return v
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func replicatedRootHash(st *store.Store) string {
	r, _ := replicatedAccount(st, rootAccountRef)
	if r == nil {
		return ""
	}
	return r.Hash
}

// TestAuthXenCenterNonSuperuserConnect replays XenCenter's step 5 for a
// vm-operator local user (xapi-semantics §10.1): get_subject,
// get_auth_user_sid, then the auth calls on the sid.
func TestAuthXenCenterNonSuperuserConnect(t *testing.T) {
	a := NewMemoryAuth("pw")
	if err := a.AddUser("alice", "vm-operator", "alice-pw"); err != nil {
		t.Fatal(err)
	}
	_, u := authTestServer(t, nil, a)
	s := mustCallURL(t, u, "session.login_with_password", "alice", "alice-pw", "2.20", "XenCenter 2023.4").(string)
	if su := mustCallURL(t, u, "session.get_is_local_superuser", s, s); su != false {
		t.Fatalf("is_local_superuser %v", su)
	}
	subj := mustCallURL(t, u, "session.get_subject", s, s).(string)
	if id := mustCallURL(t, u, "subject.get_subject_identifier", s, subj); id != "local:alice" {
		t.Fatalf("subject_identifier %v", id)
	}
	sid := mustCallURL(t, u, "session.get_auth_user_sid", s, s).(string)
	if sid != "local:alice" {
		t.Fatalf("auth_user_sid %q", sid)
	}
	if name := mustCallURL(t, u, "session.get_auth_user_name", s, s); name != "alice" {
		t.Fatalf("auth_user_name %v", name)
	}
	info := mustCallURL(t, u, "auth.get_subject_information_from_identifier", s, sid).(map[string]any)
	for k, want := range map[string]string{
		"subject-name": "alice", "subject-displayname": "alice", "subject-sid": "local:alice",
		"subject-is-group": "false", "subject-account-disabled": "false",
		"subject-account-expired": "false", "subject-account-locked": "false",
	} {
		if info[k] != want {
			t.Errorf("%s = %v, want %q", k, info[k], want)
		}
	}
	if info["subject-uid"] == "" || info["subject-uid"] != info["subject-gid"] {
		t.Errorf("uid/gid %v/%v", info["subject-uid"], info["subject-gid"])
	}
	groups := mustCallURL(t, u, "auth.get_group_membership", s, sid)
	if g, ok := groups.([]any); !ok || len(g) != 0 {
		t.Fatalf("group membership %#v", groups)
	}
	if id := mustCallURL(t, u, "auth.get_subject_identifier", s, "alice"); id != "local:alice" {
		t.Fatalf("get_subject_identifier %v", id)
	}
	if _, e := call(t, u, "session.get_rbac_permissions", s, s); e != nil {
		t.Fatal(e)
	}
	// anything else cannot be resolved (the error has no parameters)
	for _, bad := range []string{"local:nobody", "local:", "local:root", "S-1-5-21-1", ""} {
		for _, m := range []string{"auth.get_subject_information_from_identifier", "auth.get_group_membership"} {
			if _, e := call(t, u, m, s, bad); !reflect.DeepEqual(e, []string{"SUBJECT_CANNOT_BE_RESOLVED"}) {
				t.Errorf("%s(%q): %v", m, bad, e)
			}
		}
	}
	if _, e := call(t, u, "auth.get_subject_identifier", s, "nobody"); !reflect.DeepEqual(e, []string{"SUBJECT_CANNOT_BE_RESOLVED"}) {
		t.Errorf("get_subject_identifier(nobody): %v", e)
	}
}

// TestAuthChangePasswordIsReplicated: session.change_password writes the
// pool's replicated root hash (and this host's copy); the store, not the
// local copy, decides.
func TestAuthChangePasswordIsReplicated(t *testing.T) {
	dir := t.TempDir()
	a, _, err := LoadAuth(dir, "old-pw")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AddUser("bob", "read-only", "bob-pw"); err != nil {
		t.Fatal(err)
	}
	s, u := authTestServer(t, nil, a)
	// the server seeds the replicated copy from this host's
	waitFor(t, "the replicated copy", func() bool { return replicatedRootHash(s.store) != "" })
	waitFor(t, "bob in the replicated copy", func() bool {
		_, ok := replicatedAccount(s.store, accountRef("bob"))
		return ok
	})
	sess := mustCallURL(t, u, "session.login_with_password", "root", "old-pw").(string)
	if _, e := call(t, u, "session.change_password", sess, "wrong", "new-pw"); e == nil || e[0] != "CHANGE_PASSWORD_REJECTED" {
		t.Fatalf("wrong old password: %v", e)
	}
	mustCallURL(t, u, "session.change_password", sess, "old-pw", "new-pw")
	if !CheckPassword(replicatedRootHash(s.store), "new-pw") {
		t.Fatal("replicated hash not changed")
	}
	if _, e := call(t, u, "session.login_with_password", "root", "old-pw"); e == nil || e[0] != "SESSION_AUTHENTICATION_FAILED" {
		t.Fatalf("old password: %v", e)
	}
	mustCallURL(t, u, "session.login_with_password", "root", "new-pw")
	mustCallURL(t, u, "session.login_with_password", "bob", "bob-pw")
	// this host's copy (the emergency fallback) follows
	b, _, err := LoadAuth(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if !b.CheckRoot("new-pw") {
		t.Fatal("auth.json not updated")
	}
	if _, ok := b.CheckUser("bob", "bob-pw"); !ok {
		t.Fatal("bob not in auth.json")
	}
	// the replicated copy wins over a stale local one
	h, _ := HashPassword("stale")
	a.mu.Lock()
	a.st.RootHash = h
	a.mu.Unlock()
	if !s.checkRoot("new-pw") || s.checkRoot("stale") {
		t.Fatal("the local copy decided")
	}
}

// TestAuthUserAddReachesRunningServer: a user added by another process
// (`xapid user add`) is applied to the replicated accounts, with its
// subject, by the running server; a password given at start replaces the
// replicated one.
func TestAuthUserAddReachesRunningServer(t *testing.T) {
	dir := t.TempDir()
	a, _, err := LoadAuth(dir, "pw1")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(context.Background(), store.Config{NodeID: "n1", InMemory: true, Bootstrap: true, Logger: log,
		HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond, LeaderLeaseTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	s, u := authTestServer(t, st, a)
	waitFor(t, "the replicated copy", func() bool { return CheckPassword(replicatedRootHash(st), "pw1") })

	cli, _, err := LoadAuth(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.AddUser("carol", "vm-admin", "carol-pw"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "carol in the replicated copy", func() bool {
		_, ok := replicatedAccount(st, accountRef("carol"))
		return ok
	})
	sess := mustCallURL(t, u, "session.login_with_password", "carol", "carol-pw").(string)
	if sid := mustCallURL(t, u, "session.get_auth_user_sid", sess, sess); sid != "local:carol" {
		t.Fatalf("sid %v", sid)
	}
	if _, ok := s.subjectFor("carol"); !ok {
		t.Fatal("no subject for carol")
	}
	waitFor(t, "the pending file to go", func() bool {
		p, _ := cli.readPending()
		return len(p) == 0
	})
	_ = s.Close()

	// a restart with --root-password on the existing pool sets the pool's password
	a2, _, err := LoadAuth(dir, "pw2")
	if err != nil {
		t.Fatal(err)
	}
	_, u2 := authTestServer(t, st, a2)
	waitFor(t, "the pinned password", func() bool { return CheckPassword(replicatedRootHash(st), "pw2") })
	mustCallURL(t, u2, "session.login_with_password", "root", "pw2")
	if _, e := call(t, u2, "session.login_with_password", "root", "pw1"); e == nil {
		t.Fatal("old password accepted")
	}
	mustCallURL(t, u2, "session.login_with_password", "carol", "carol-pw")
}

// TestAuthExportIsReplicated: what a joining host adopts is the pool's
// replicated credentials.
func TestAuthExportIsReplicated(t *testing.T) {
	a := NewMemoryAuth("pw")
	s, u := authTestServer(t, nil, a)
	waitFor(t, "the replicated copy", func() bool { return replicatedRootHash(s.store) != "" && a.bound.Load() == s.store })
	sess := mustCallURL(t, u, "session.login_with_password", "root", "pw").(string)
	mustCallURL(t, u, "session.change_password", sess, "pw", "pw2")
	var st authState
	if err := json.Unmarshal(a.export().State, &st); err != nil {
		t.Fatal(err)
	}
	if !CheckPassword(st.RootHash, "pw2") || st.PoolSecret != a.PoolSecret() {
		t.Fatal("export is not the pool's")
	}
	b := NewMemoryAuth("other")
	if err := b.adopt(a.export()); err != nil {
		t.Fatal(err)
	}
	if !b.CheckRoot("pw2") || b.PoolSecret() != a.PoolSecret() {
		t.Fatal("adopt")
	}
}
