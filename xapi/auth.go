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
	"strconv"
	"strings"
	"sync"
)

// Auth verifies passwords: the local superuser (root) and local users with a
// role (see docs/rbac.md). It keeps only salted PBKDF2-SHA256 hashes, in
// DATA/auth.json (mode 0600), together with the pool secret.
type Auth struct {
	mu   sync.Mutex
	path string
	st   authState
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

// LoadAuth reads DATA/auth.json. A non-empty rootPassword replaces root's
// password. When there is no root password at all, one is generated and
// written to DATA/root-password (0600); its path is returned.
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
	generated := ""
	if rootPassword == "" && a.st.RootHash == "" {
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

func (a *Auth) save() error {
	if a.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(&a.st, "", " ")
	if err != nil {
		return err
	}
	tmp := a.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, a.path)
}

// CheckRoot verifies root's password.
func (a *Auth) CheckRoot(pwd string) bool {
	a.mu.Lock()
	h := a.st.RootHash
	a.mu.Unlock()
	return CheckPassword(h, pwd)
}

// SetRootPassword replaces root's password.
func (a *Auth) SetRootPassword(pwd string) error {
	h, err := HashPassword(pwd)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.st.RootHash = h
	return a.save()
}

// CheckUser verifies a local user's password and returns the user.
func (a *Auth) CheckUser(name, pwd string) (LocalUser, bool) {
	a.mu.Lock()
	var u LocalUser
	found := false
	for _, x := range a.st.Users {
		if x.Name == name {
			u, found = x, true
		}
	}
	a.mu.Unlock()
	if !found || !CheckPassword(u.Hash, pwd) {
		return LocalUser{}, false
	}
	return u, true
}

// Users lists the local users.
func (a *Auth) Users() []LocalUser {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]LocalUser(nil), a.st.Users...)
}

// AddUser creates or replaces a local user with a role.
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
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.st.Users[:0]
	for _, u := range a.st.Users {
		if u.Name != name {
			out = append(out, u)
		}
	}
	a.st.Users = append(out, LocalUser{Name: name, Role: role, Hash: h})
	return a.save()
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

// export returns the state a joining host adopts.
func (a *Auth) export() AuthExport {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, _ := json.Marshal(&a.st)
	return AuthExport{State: b}
}

// adopt replaces this host's credentials with the pool's (pool.join).
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
	a.st = st
	return a.save()
}

// checkPoolSecret compares a presented pool secret in constant time.
func (a *Auth) checkPoolSecret(ps string) bool {
	want := a.PoolSecret()
	return ps != "" && subtle.ConstantTimeCompare([]byte(ps), []byte(want)) == 1
}
