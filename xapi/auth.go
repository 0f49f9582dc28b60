package xapi

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/xapi-go/xapi-go/store"
)

// Auth verifies passwords: the local superuser (root) and local users with a
// role (see docs/rbac.md). It keeps only salted PBKDF2-SHA256 hashes.
//
// The pool's credentials (root's hash and the local users) are replicated:
// they live in the raft store as records of datamodel.LocalAccountClass, so
// every host of a pool checks passwords against the same copy and a
// session.change_password takes effect everywhere (see auth_replicated.go).
// DATA/auth.json (mode 0600) holds the pool secret and a copy of the
// credentials, kept current from the replicated ones: it is what a host uses
// while its store has no replicated copy (first start, emergency mode) and
// what seeds the replicated copy of a new pool. Users added with AddUser
// (`xapid user add`) wait in DATA/auth-pending.json until the running server
// applies them to the replicated copy.
type Auth struct {
	mu   sync.Mutex
	path string // auth.json; "" for an in-memory Auth
	st   authState
	// pinHash is the hash of a root password given at start
	// (--root-password, XAPI_ROOT_PASSWORD): it replaces the replicated
	// one once, when the server syncs
	pinHash string
	// pending are users added with AddUser and not yet replicated
	pending []LocalUser
	// bound is the store of the running server, whose replicated copy the
	// exported methods (CheckRoot, CheckUser, Users, export) consult
	bound atomic.Pointer[store.Store]
}

type authState struct {
	RootHash   string      `json:"root_hash"`
	PoolSecret string      `json:"pool_secret"`
	Users      []LocalUser `json:"users,omitempty"`
}

// LocalUser is a non-root account that logs in with a password and acts with a role.
type LocalUser struct {
	Name string `json:"name"`
	Role string `json:"role"`
	Hash string `json:"hash"`
}

const pbkdf2Iterations = 100_000

// HashPassword returns a salted PBKDF2-SHA256 hash string.
func HashPassword(pwd string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key, err := pbkdf2.Key(sha256.New, pwd, salt, pbkdf2Iterations, 32)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("pbkdf2-sha256$%d$%s$%s", pbkdf2Iterations, hex.EncodeToString(salt), hex.EncodeToString(key)), nil
}

// CheckPassword verifies pwd against a hash made by HashPassword.
func CheckPassword(hash, pwd string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 4 || parts[0] != "pbkdf2-sha256" {
		return false
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter <= 0 || iter > 10_000_000 {
		return false
	}
	salt, err1 := hex.DecodeString(parts[2])
	want, err2 := hex.DecodeString(parts[3])
	if err1 != nil || err2 != nil {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, pwd, salt, iter, len(want))
	return err == nil && subtle.ConstantTimeCompare(got, want) == 1
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// LoadAuth reads DATA/auth.json (and the users waiting in
// DATA/auth-pending.json). A non-empty rootPassword replaces root's password,
// also the pool's replicated one once the server runs. When there is no root
// password at all, one is generated and written to DATA/root-password
// (0600); its path is returned.
func LoadAuth(dataDir, rootPassword string) (*Auth, string, error) {
	a := &Auth{path: filepath.Join(dataDir, "auth.json")}
	b, err := os.ReadFile(a.path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &a.st); err != nil {
			return nil, "", fmt.Errorf("auth: %s: %w", a.path, err)
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return nil, "", err
	}
	pending, err := a.readPending()
	if err != nil {
		return nil, "", err
	}
	a.pending = pending
	generated := ""
	given := rootPassword != ""
	if !given && a.st.RootHash == "" {
		rootPassword = randomToken(18)
		generated = filepath.Join(dataDir, "root-password")
		if err := os.WriteFile(generated, []byte(rootPassword+"\n"), 0o600); err != nil {
			return nil, "", err
		}
	}
	if rootPassword != "" && !CheckPassword(a.st.RootHash, rootPassword) {
		h, err := HashPassword(rootPassword)
		if err != nil {
			return nil, "", err
		}
		a.st.RootHash = h
	}
	if given {
		a.pinHash = a.st.RootHash
	}
	if a.st.PoolSecret == "" {
		a.st.PoolSecret = randomToken(32)
	}
	if err := a.save(); err != nil {
		return nil, "", err
	}
	return a, generated, nil
}

// NewMemoryAuth returns an Auth that is not saved anywhere (tests).
func NewMemoryAuth(rootPassword string) *Auth {
	h, _ := HashPassword(rootPassword)
	return &Auth{st: authState{RootHash: h, PoolSecret: randomToken(32)}}
}

// save writes auth.json; a.mu is held or a is not shared yet.
func (a *Auth) save() error {
	if a.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(&a.st, "", " ")
	if err != nil {
		return err
	}
	return writeFileAtomic(a.path, b)
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// CheckRoot verifies root's password (the pool's when the server runs).
func (a *Auth) CheckRoot(pwd string) bool { return a.checkRootIn(a.bound.Load(), pwd) }

// SetRootPassword replaces root's password in this host's copy. A running
// server changes the pool's password with session.change_password.
func (a *Auth) SetRootPassword(pwd string) error {
	h, err := HashPassword(pwd)
	if err != nil {
		return err
	}
	return a.setLocalRoot(h)
}

func (a *Auth) setLocalRoot(h string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.st.RootHash = h
	return a.save()
}

// CheckUser verifies a local user's password and returns the user.
func (a *Auth) CheckUser(name, pwd string) (LocalUser, bool) {
	return a.checkUserIn(a.bound.Load(), name, pwd)
}

// Users lists the local users (the pool's when the server runs).
func (a *Auth) Users() []LocalUser { return a.usersIn(a.bound.Load()) }

// AddUser creates or replaces a local user with a role. The user is
// recorded as pending (in DATA/auth-pending.json for an Auth read by
// LoadAuth): a running server adds it to the pool's replicated accounts
// within authSyncInterval, otherwise the server does at its next start.
func (a *Auth) AddUser(name, role, pwd string) error {
	if name == "" || name == "root" {
		return fmt.Errorf("auth: invalid user name %q", name)
	}
	if roleRank(role) < 0 || role == "client-cert" {
		return fmt.Errorf("auth: unknown role %q", role)
	}
	h, err := HashPassword(pwd)
	if err != nil {
		return err
	}
	u := LocalUser{Name: name, Role: role, Hash: h}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.path != "" {
		// merge with what is on disk: another process may have added users
		onDisk, err := a.readPending()
		if err != nil {
			return err
		}
		a.pending = mergeUsers(a.pending, onDisk)
	}
	a.pending = mergeUsers(a.pending, []LocalUser{u})
	return a.writePending(a.pending)
}

// mergeUsers returns base with the users of over added or replacing the
// ones of the same name, sorted by name.
func mergeUsers(base, over []LocalUser) []LocalUser {
	m := make(map[string]LocalUser, len(base)+len(over))
	for _, u := range base {
		m[u.Name] = u
	}
	for _, u := range over {
		m[u.Name] = u
	}
	out := make([]LocalUser, 0, len(m))
	for _, u := range m {
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (a *Auth) pendingPath() string {
	if a.path == "" {
		return ""
	}
	return filepath.Join(filepath.Dir(a.path), "auth-pending.json")
}

// readPending reads DATA/auth-pending.json (nil for an in-memory Auth or no file).
func (a *Auth) readPending() ([]LocalUser, error) {
	p := a.pendingPath()
	if p == "" {
		return nil, nil
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var us []LocalUser
	if err := json.Unmarshal(b, &us); err != nil {
		return nil, fmt.Errorf("auth: %s: %w", p, err)
	}
	return us, nil
}

// writePending writes (or with no users removes) DATA/auth-pending.json.
func (a *Auth) writePending(us []LocalUser) error {
	p := a.pendingPath()
	if p == "" {
		return nil
	}
	if len(us) == 0 {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	b, err := json.MarshalIndent(us, "", " ")
	if err != nil {
		return err
	}
	return writeFileAtomic(p, b)
}

// PoolSecret is the secret hosts use to log in to each other (session.slave_login).
func (a *Auth) PoolSecret() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st.PoolSecret
}

// AuthExport is the part of Auth a joining host takes over from the pool:
// root's password hash, the local users and the pool secret.
type AuthExport struct {
	State json.RawMessage `json:"state"`
}

// export returns the state a joining host adopts: the pool's credentials
// (the replicated ones when the server runs) and the pool secret.
func (a *Auth) export() AuthExport {
	st := a.bound.Load()
	root := a.rootHashIn(st)
	users := a.usersIn(st)
	a.mu.Lock()
	e := authState{RootHash: root, PoolSecret: a.st.PoolSecret, Users: users}
	a.mu.Unlock()
	b, _ := json.Marshal(&e)
	return AuthExport{State: b}
}

// adopt replaces this host's credentials with the pool's (pool.join). The
// host restarts on the pool's replica, whose accounts then replace these.
func (a *Auth) adopt(e AuthExport) error {
	var st authState
	if err := json.Unmarshal(e.State, &st); err != nil {
		return err
	}
	if st.RootHash == "" || st.PoolSecret == "" {
		return errors.New("incomplete credentials")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	// this host's replica is about to be replaced: stop consulting (and
	// copying from) it, and forget what was meant for it
	a.bound.Store(nil)
	a.pinHash = ""
	a.pending = nil
	a.st = st
	if err := a.writePending(nil); err != nil {
		return err
	}
	return a.save()
}

// checkPoolSecret compares a presented pool secret in constant time.
func (a *Auth) checkPoolSecret(ps string) bool {
	want := a.PoolSecret()
	return ps != "" && subtle.ConstantTimeCompare([]byte(ps), []byte(want)) == 1
}
