package main

import (
	"bytes"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCertCreatedOnceAndReloadedIdentically(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	names := defaultCertNames("xapi-test-host", []net.IP{net.ParseIP("192.0.2.10")})

	c1, err := loadOrCreateCert(dir, names, now)
	if err != nil {
		t.Fatal(err)
	}
	if !c1.Created {
		t.Error("first call: Created = false, want true")
	}
	path := filepath.Join(dir, certFileName)
	if c1.Path != path {
		t.Errorf("Path = %q, want %q", c1.Path, path)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("cert file mode = %o, want 600", perm)
	}
	before, _ := os.ReadFile(path)

	// A restart with other names must reuse the stored certificate unchanged.
	other := defaultCertNames("renamed-host", []net.IP{net.ParseIP("198.51.100.7")})
	c2, err := loadOrCreateCert(dir, other, now.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if c2.Created {
		t.Error("second call: Created = true, want false")
	}
	if !bytes.Equal(c1.Leaf.Raw, c2.Leaf.Raw) {
		t.Error("reloaded certificate differs from the generated one")
	}
	if c1.SHA256() != c2.SHA256() || c1.SHA1() != c2.SHA1() {
		t.Errorf("thumbprints changed: %s/%s -> %s/%s", c1.SHA256(), c1.SHA1(), c2.SHA256(), c2.SHA1())
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("cert file rewritten on reload")
	}
	if m := c2.missingSANs(other); strings.Join(m, ",") != "198.51.100.7,renamed-host" {
		t.Errorf("missingSANs = %v, want the new IP and hostname", m)
	}
}

func TestCertProperties(t *testing.T) {
	now := time.Now()
	names := defaultCertNames("xapi-test-host", []net.IP{net.ParseIP("192.0.2.10"), net.ParseIP("127.0.0.1")})
	c, err := loadOrCreateCert(t.TempDir(), names, now)
	if err != nil {
		t.Fatal(err)
	}
	leaf := c.Leaf
	if _, ok := leaf.PublicKey.(*rsa.PublicKey); !ok {
		t.Errorf("public key is %T, want RSA (xapi's TLS policy is ECDHE-RSA)", leaf.PublicKey)
	}
	if leaf.PublicKey.(*rsa.PublicKey).N.BitLen() < 2048 {
		t.Error("RSA key shorter than 2048 bits")
	}
	for _, name := range []string{"xapi-test-host", "localhost", "127.0.0.1", "192.0.2.10", "::1"} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("certificate does not cover %s: %v", name, err)
		}
	}
	if leaf.VerifyHostname("203.0.113.1") == nil {
		t.Error("certificate covers an address it was not made for")
	}
	if leaf.Subject.CommonName != "xapi-test-host" {
		t.Errorf("CN = %q", leaf.Subject.CommonName)
	}
	if !leaf.NotBefore.Before(now) || !leaf.NotAfter.After(now.Add(5*365*24*time.Hour)) {
		t.Errorf("validity %v .. %v does not cover now and the next years", leaf.NotBefore, leaf.NotAfter)
	}
	// Self-signed: it verifies against itself as the only root.
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost", CurrentTime: now}); err != nil {
		t.Errorf("self-verification: %v", err)
	}
	if got := c.SHA256(); len(got) != 32*3-1 || strings.ToUpper(got) != got {
		t.Errorf("SHA256 thumbprint %q not colon-separated upper-case hex", got)
	}
	if got := c.SHA1(); len(got) != 20*3-1 {
		t.Errorf("SHA1 thumbprint %q has the wrong length", got)
	}
}

func TestCertServesHTTPS(t *testing.T) {
	c, err := loadOrCreateCert(t.TempDir(), defaultCertNames("h", nil), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.TLS = c.TLSConfig()
	srv.StartTLS()
	defer srv.Close()

	pool := x509.NewCertPool()
	pool.AddCert(c.Leaf)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := resp.TLS.PeerCertificates[0]; !bytes.Equal(got.Raw, c.Leaf.Raw) {
		t.Error("server presented another certificate")
	}
}

func TestCertCorruptFileIsAnError(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, certFileName), []byte("not a pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadOrCreateCert(dir, defaultCertNames("h", nil), time.Now()); err == nil {
		t.Fatal("corrupt certificate file accepted; it must not be silently replaced (clients pin it)")
	}
}

func TestDefaultCertNamesUnspecifiedListen(t *testing.T) {
	n := defaultCertNames("h", []net.IP{net.IPv4zero})
	has := func(ip string) bool {
		for _, x := range n.IPs {
			if x.Equal(net.ParseIP(ip)) {
				return true
			}
		}
		return false
	}
	if !has("127.0.0.1") {
		t.Error("127.0.0.1 missing")
	}
	for _, x := range n.IPs {
		if x.IsUnspecified() {
			t.Error("unspecified address put in the certificate")
		}
	}
}
