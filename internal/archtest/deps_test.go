package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/xapi-go/xapi-go"

func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", module+"/"+pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func allPackages(t *testing.T) []string {
	out, err := exec.Command("go", "list", module+"/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	var pkgs []string
	for _, p := range strings.Fields(string(out)) {
		pkgs = append(pkgs, strings.TrimPrefix(strings.TrimPrefix(p, module), "/"))
	}
	return pkgs
}

func TestDependencyRules(t *testing.T) {
	// project packages each may import (besides the standard library and itself)
	allowed := map[string][]string{
		"schema":         {},
		"datamodel":      {},
		"rpc":            {},
		"internal/where": {},
		"store":          {"datamodel"},
	}
	for pkg, ok := range allowed {
		for _, d := range deps(t, pkg) {
			if !strings.HasPrefix(d, module) || d == module+"/"+pkg {
				continue
			}
			rel := strings.TrimPrefix(d, module+"/")
			permitted := false
			for _, a := range ok {
				if rel == a {
					permitted = true
				}
			}
			if !permitted {
				t.Errorf("%s must not import %s", pkg, rel)
			}
		}
	}
	// only store imports raft and badger (and the in-process test cluster,
	// which wires stores together over raft's in-memory transport)
	for _, pkg := range allPackages(t) {
		if pkg == "store" || strings.HasPrefix(pkg, "store/") || pkg == "internal/testcluster" {
			continue
		}
		out, err := exec.Command("go", "list", "-f", `{{join .Imports " "}}`, module+"/"+pkg).Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range strings.Fields(string(out)) {
			if strings.HasPrefix(imp, "github.com/hashicorp/raft") || strings.HasPrefix(imp, "github.com/dgraph-io/badger") {
				t.Errorf("%s imports %s; only store may", pkg, imp)
			}
		}
	}
}
