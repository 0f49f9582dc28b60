package schemaimport

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/xapi-go/xapi-go/schema"
)

// repoRoot is the repository's top directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// TestImportReproducesModel: importing the reference facts gives exactly the
// committed schema/model.json. The reference lives outside the repository
// (../shared/reference, or $XAPI_REFERENCE_MODEL); without it the test skips.
func TestImportReproducesModel(t *testing.T) {
	root := repoRoot(t)
	ref := os.Getenv("XAPI_REFERENCE_MODEL")
	if ref == "" {
		ref = filepath.Join(root, "..", "shared", "reference", "xenapi-datamodel.json")
	}
	in, err := os.ReadFile(ref)
	if os.IsNotExist(err) {
		t.Skipf("reference model %s not present (set XAPI_REFERENCE_MODEL)", ref)
	}
	if err != nil {
		t.Fatal(err)
	}
	m, err := Import(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(root, "schema", "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(got, '\n'), want) {
		t.Fatal("schema/model.json differs from the import of the reference: run go run ./cmd/schemaimport")
	}
}

func TestConversions(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Published_s", "published"}, {"Prototyped_s", "prototyped"}, {"Deprecated_s", "deprecated"}, {"Removed_s", "removed"},
	} {
		if got := state(tc.in); got != tc.want {
			t.Errorf("state(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		min        string
		clientCert bool
		want       string
	}{
		{"", false, "local-root-only"},
		{"local-root-only", true, "local-root-only"},
		{"pool-admin", false, "pool-admin"},
		{"pool-operator", true, "pool-operator+client-cert"},
		{"read-only", true, "read-only"},
		{"client-cert", true, "client-cert"},
	} {
		if got := role(tc.min, tc.clientCert); got != tc.want {
			t.Errorf("role(%q, %v) = %q, want %q", tc.min, tc.clientCert, got, tc.want)
		}
	}
	if r := (refLifecycle{State: "Published_s"}).releases(); r != nil {
		t.Errorf("empty summary gave %+v, want nil", r)
	}
	l := refLifecycle{Summary: schema.Releases{Published: "rio", Changed: []string{"22.16.0"}}}
	if r := l.releases(); r == nil || r.Published != "rio" || len(r.Changed) != 1 {
		t.Errorf("releases() = %+v", r)
	}
}

// TestImportRejectsGarbage: a broken reference is an error, not a panic.
func TestImportRejectsGarbage(t *testing.T) {
	for _, in := range []string{"", "{", "[]", `{"classes": 3}`} {
		if _, err := Import([]byte(in)); err == nil {
			t.Errorf("Import(%q) succeeded", in)
		}
	}
}
