package xapi

import (
	"context"
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
)

// The pool's credentials in the replicated store: one record of
// datamodel.LocalAccountClass per account, ref "account:<name>". The root
// record's presence means "this pool has a replicated copy": from then on the
// replicated accounts are the only ones that count, on every host.

// rootAccountRef is the ref of root's account record.
const rootAccountRef = "account:root"

func accountRef(name string) string { return "account:" + name }

// authSyncInterval is how often a running server looks for users added with
// `xapid user add` and, on a pool without a replicated copy, seeds one.
const authSyncInterval = 3 * time.Second

func replicatedAccount(st *store.Store, ref string) (*datamodel.LocalAccountRecord, bool) {
	if st == nil {
		return nil, false
	}
	o, ok := st.Get(datamodel.LocalAccountClass, ref)
	if !ok {
		return nil, false
	}
	return o.(*datamodel.LocalAccountRecord), true
}

// replicatedUsers lists the replicated local users (not root), by name.
func replicatedUsers(st *store.Store) []LocalUser {
	var out []LocalUser
	for _, e := range st.List(datamodel.LocalAccountClass) {
		if e.Ref == rootAccountRef {
			continue
		}
		r := e.Obj.(*datamodel.LocalAccountRecord)
		out = append(out, LocalUser{Name: r.Name, Role: r.Role, Hash: r.Hash})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// rootHashIn is root's hash: the replicated one if st has a copy, else this host's.
func (a *Auth) rootHashIn(st *store.Store) string {
	if r, ok := replicatedAccount(st, rootAccountRef); ok {
		return r.Hash
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st.RootHash
}

func (a *Auth) checkRootIn(st *store.Store, pwd string) bool {
	return CheckPassword(a.rootHashIn(st), pwd)
}

// checkUserIn verifies a local user's password against st's replicated
// accounts if it has them, else against this host's copy and pending users.
func (a *Auth) checkUserIn(st *store.Store, name, pwd string) (LocalUser, bool) {
	var u LocalUser
	found := false
	if _, ok := replicatedAccount(st, rootAccountRef); ok {
		if name != "root" {
			if r, ok := replicatedAccount(st, accountRef(name)); ok {
				u, found = LocalUser{Name: r.Name, Role: r.Role, Hash: r.Hash}, true
			}
		}
	} else {
		for _, x := range a.localUsers() {
			if x.Name == name {
				u, found = x, true
			}
		}
	}
	if !found || !CheckPassword(u.Hash, pwd) {
		return LocalUser{}, false
	}
	return u, true
}

// usersIn lists the local users: st's replicated ones if it has a copy,
// else this host's copy with the pending users.
func (a *Auth) usersIn(st *store.Store) []LocalUser {
	if _, ok := replicatedAccount(st, rootAccountRef); ok {
		return replicatedUsers(st)
	}
	return a.localUsers()
}

func (a *Auth) localUsers() []LocalUser {
	a.mu.Lock()
	defer a.mu.Unlock()
	return mergeUsers(a.st.Users, a.pending)
}

// checkRoot and checkUser verify passwords against this server's store.
func (s *Server) checkRoot(pwd string) bool { return s.auth.checkRootIn(s.store, pwd) }

func (s *Server) checkUser(name, pwd string) (LocalUser, bool) {
	return s.auth.checkUserIn(s.store, name, pwd)
}

// accountOps writes one account record: created, or its role and hash set.
func accountOps(st *store.Store, name, role, hash string) ([]store.Op, error) {
	ref := accountRef(name)
	cur, ok := replicatedAccount(st, ref)
	if !ok {
		return []store.Op{store.Create(ref, &datamodel.LocalAccountRecord{Name: name, Role: role, Hash: hash})}, nil
	}
	var ops []store.Op
	if cur.Role != role {
		op, err := store.Set(datamodel.LocalAccountClass, ref, "role", role)
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	if cur.Hash != hash {
		op, err := store.Set(datamodel.LocalAccountClass, ref, "hash", hash)
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// localSubjectOps gives a local user its subject object with its role (as
// bootstrap's ensureLocalSubjects does), so a user added to the replicated
// accounts is visible to RBAC and XenCenter at once.
func (s *Server) localSubjectOps(name, role string) ([]store.Op, error) {
	var want []datamodel.RoleRef
	for _, e := range s.store.List(datamodel.RoleClass) {
		if e.Obj.(*datamodel.RoleRecord).NameLabel == role {
			want = []datamodel.RoleRef{datamodel.RoleRef(e.Ref)}
		}
	}
	if want == nil {
		return nil, nil // no roles yet: bootstrap's ensureLocalSubjects does it
	}
	if ref, ok := s.subjectFor(name); ok {
		o, ok := s.store.Get(datamodel.SubjectClass, string(ref))
		if ok && slices.Equal(o.(*datamodel.SubjectRecord).Roles, want) {
			return nil, nil
		}
		op, err := store.Set(datamodel.SubjectClass, string(ref), "roles", want)
		if err != nil {
			return nil, err
		}
		return []store.Op{op}, nil
	}
	rec := datamodel.NewSubjectRecord()
	rec.UUID = datamodel.NewUUID()
	rec.SubjectIdentifier = localSubjectID(name)
	rec.OtherConfig = map[string]string{"subject-name": name, "subject-is-group": "false", "subject-account-disabled": "false"}
	rec.Roles = want
	return []store.Op{store.Create(datamodel.NewRef(), rec)}, nil
}

// userOps writes users to the replicated accounts with their subjects.
func (s *Server) userOps(users []LocalUser) ([]store.Op, error) {
	var ops []store.Op
	for _, u := range users {
		if u.Name == "" || u.Name == "root" || u.Hash == "" {
			continue // not a user (a hand-edited pending file)
		}
		o, err := accountOps(s.store, u.Name, u.Role, u.Hash)
		if err != nil {
			return nil, err
		}
		ops = append(ops, o...)
		if o, err = s.localSubjectOps(u.Name, u.Role); err != nil {
			return nil, err
		}
		ops = append(ops, o...)
	}
	return ops, nil
}

// seedOps create the replicated copy from this host's: root's hash (or
// rootHash if not "") and the local users with the pending ones.
func (s *Server) seedOps(rootHash string) ([]store.Op, []LocalUser, error) {
	a := s.auth
	a.mu.Lock()
	if rootHash == "" {
		rootHash = a.st.RootHash
	}
	users := mergeUsers(a.st.Users, a.pending)
	pending := slices.Clone(a.pending)
	a.mu.Unlock()
	ops := []store.Op{store.Create(rootAccountRef, &datamodel.LocalAccountRecord{Name: "root", Hash: rootHash})}
	uops, err := s.userOps(users)
	if err != nil {
		return nil, nil, err
	}
	return append(ops, uops...), pending, nil
}

// setRootHash makes h root's hash in the pool (session.change_password):
// in the replicated copy, created from this host's copy if there is none
// yet, and in this host's copy.
func (s *Server) setRootHash(ctx context.Context, h string) error {
	for attempt := 0; ; attempt++ {
		var ops []store.Op
		var pending []LocalUser
		if _, ok := replicatedAccount(s.store, rootAccountRef); ok {
			op, err := store.Set(datamodel.LocalAccountClass, rootAccountRef, "hash", h)
			if err != nil {
				return err
			}
			ops = []store.Op{op}
		} else {
			var err error
			if ops, pending, err = s.seedOps(h); err != nil {
				return err
			}
		}
		err := s.apply(ctx, ops...)
		var de *datamodel.Error
		if err != nil && attempt == 0 && errors.As(err, &de) && de.Code == "DB_UNIQUENESS_CONSTRAINT_VIOLATION" {
			continue // another host seeded the copy meanwhile: set it
		}
		if err != nil {
			return err
		}
		s.auth.forgetPending(pending)
		return s.auth.setLocalRoot(h)
	}
}

// forgetPending drops users that reached the replicated copy from the
// pending ones (memory and DATA/auth-pending.json), unless they were
// replaced meanwhile.
func (a *Auth) forgetPending(done []LocalUser) {
	if len(done) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	onDisk, err := a.readPending()
	if err != nil {
		onDisk = nil
	}
	rest := mergeUsers(a.pending, onDisk)
	rest = slices.DeleteFunc(rest, func(u LocalUser) bool { return slices.Contains(done, u) })
	a.pending = rest
	_ = a.writePending(rest)
}

// runAuthSync keeps this host in step with the pool's replicated
// credentials while the server runs: it makes the exported Auth methods
// consult this store, seeds the replicated copy on a pool that has none
// (leader only), applies a root password given at start and the users added
// with `xapid user add`, and copies the replicated credentials to
// DATA/auth.json whenever they change (the fallback of emergency mode).
func (s *Server) runAuthSync(ctx context.Context) {
	a := s.auth
	a.bound.Store(s.store)
	defer a.bound.CompareAndSwap(s.store, nil)
	wake := make(chan struct{}, 1)
	cancel := s.store.Subscribe(func(cs *store.ChangeSet) {
		for i := range cs.Changes {
			if cs.Changes[i].Class == datamodel.LocalAccountClass {
				select {
				case wake <- struct{}{}:
				default:
				}
				return
			}
		}
	})
	defer cancel()
	t := time.NewTicker(authSyncInterval)
	defer t.Stop()
	for {
		if err := s.syncAuthOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("syncing the pool's credentials", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-t.C:
		}
	}
}

func (s *Server) syncAuthOnce(ctx context.Context) error {
	a := s.auth
	if a.bound.Load() != s.store {
		return nil // pool.join adopted other credentials
	}
	onDisk, err := a.readPending()
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.pending = mergeUsers(a.pending, onDisk)
	pin, pending := a.pinHash, slices.Clone(a.pending)
	a.mu.Unlock()

	root, ok := replicatedAccount(s.store, rootAccountRef)
	if !ok {
		if !s.store.IsLeader() {
			return nil // the master seeds it
		}
		ops, seeded, err := s.seedOps("")
		if err != nil {
			return err
		}
		if err := s.apply(ctx, ops...); err != nil {
			return err
		}
		a.forgetPending(seeded)
		a.clearPin(pin)
		return nil // the change wakes us to copy it back
	}
	var ops []store.Op
	if pin != "" && pin != root.Hash {
		op, err := store.Set(datamodel.LocalAccountClass, rootAccountRef, "hash", pin)
		if err != nil {
			return err
		}
		ops = append(ops, op)
	}
	uops, err := s.userOps(pending)
	if err != nil {
		return err
	}
	ops = append(ops, uops...)
	if err := s.apply(ctx, ops...); err != nil {
		return err
	}
	a.forgetPending(pending)
	a.clearPin(pin)
	return a.copyReplicated(s.store)
}

func (a *Auth) clearPin(pin string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pinHash == pin {
		a.pinHash = ""
	}
}

// copyReplicated makes this host's copy (DATA/auth.json) equal to st's
// replicated credentials, if a is still bound to st.
func (a *Auth) copyReplicated(st *store.Store) error {
	root, ok := replicatedAccount(st, rootAccountRef)
	if !ok {
		return nil
	}
	users := replicatedUsers(st)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.bound.Load() != st {
		return nil
	}
	if a.st.RootHash == root.Hash && slices.Equal(a.st.Users, users) {
		return nil
	}
	a.st.RootHash, a.st.Users = root.Hash, users
	return a.save()
}
