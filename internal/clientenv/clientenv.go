package clientenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Required reports whether missing clients fail tests instead of skipping
// them (XAPI_CLIENT_TESTS_REQUIRED is set).
func Required() bool { return os.Getenv("XAPI_CLIENT_TESTS_REQUIRED") != "" }

// Missing skips the test because a client is missing, or fails it when the
// clients are required.
func Missing(t testing.TB, why string) {
	t.Helper()
	if Required() {
		t.Fatalf("%s (XAPI_CLIENT_TESTS_REQUIRED is set, so this is a failure)", why)
	}
	t.Skipf("%s; skipping (set XAPI_CLIENT_TESTS_REQUIRED=1 to make this a failure)", why)
}

// Python returns an interpreter that can import os_xenapi's XenAPI, or ""
// and why not. Debian installs python3-os-xenapi for /usr/bin/python3, which
// a pyenv or virtualenv python3 earlier in PATH cannot see, so that one is
// tried first ($XAPI_PYTHON before it).
func Python() (string, string) {
	var candidates []string
	if p := os.Getenv("XAPI_PYTHON"); p != "" {
		candidates = append(candidates, p)
	}
	candidates = append(candidates, "/usr/bin/python3")
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		if err := exec.Command(p, "-c", "from os_xenapi.client import XenAPI").Run(); err == nil {
			return p, ""
		}
	}
	return "", fmt.Sprintf("no python3 can import os_xenapi.client.XenAPI (tried %s): apt-get install python3-os-xenapi", strings.Join(candidates, ", "))
}

// Node returns node if dir (tests/clients) has the xen-api package
// installed, or "" and why not.
func Node(dir string) (string, string) {
	node, err := exec.LookPath("node")
	if err != nil {
		return "", "node is not installed"
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "xen-api", "package.json")); err != nil {
		return "", "npm package xen-api is not installed: run `npm ci --prefix tests/clients`"
	}
	return node, ""
}
