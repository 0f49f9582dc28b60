package gen

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/xapi-go/xapi-go/schema"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestGeneratedCodeIsFresh fails when `make generate` would change the committed files.
func TestGeneratedCodeIsFresh(t *testing.T) {
	m, err := schema.Load()
	if err != nil {
		t.Fatal(err)
	}
	files, err := Generate(m)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range files {
		got, err := os.ReadFile(filepath.Join("..", "..", path))
		if err != nil {
			t.Errorf("%s: %v (run make generate)", path, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run make generate", path)
		}
	}
	// no stray generated files
	for _, dir := range []string{"datamodel", "xapi"} {
		matches, _ := filepath.Glob(filepath.Join("..", "..", dir, "*.gen.go"))
		for _, mth := range matches {
			rel := dir + "/" + filepath.Base(mth)
			if _, ok := files[rel]; !ok {
				t.Errorf("%s is not produced by the generator", rel)
			}
		}
	}
}

// TestGolden generates from a tiny schema and compares with testdata/golden.
func TestGolden(t *testing.T) {
	b, err := os.ReadFile("testdata/mini.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := schema.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	files, err := Generate(m)
	if err != nil {
		t.Fatal(err)
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		golden := filepath.Join("testdata", "golden", strings.ReplaceAll(p, "/", "_")+".txt")
		if *update {
			if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(golden, files[p], 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run go test ./internal/gen -update)", err)
		}
		if !bytes.Equal(files[p], want) {
			t.Errorf("%s differs from %s (run go test ./internal/gen -update and review)", p, golden)
		}
	}
}

// TestMiniModelShape checks the generated code of the tiny schema for the
// constructs every class relies on.
func TestMiniModelShape(t *testing.T) {
	b, _ := os.ReadFile("testdata/mini.json")
	m, err := schema.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	files, err := Generate(m)
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string][]string{
		"datamodel/classes.gen.go": {
			"type VMRecord struct", "PowerState: PowerHalted", "func (r *VMRecord) WriteRecord(w Writer, internal bool)",
			"if internal {", `DBName: "name__label"`, `MapKeyRoles: []MapKeyRole{{Key: "folder", Role: "read-only"}`,
		},
		"datamodel/enums.gen.go":  {"PowerHalted  Power = \"Halted\"", "PowerRunning Power = \"Running\""},
		"datamodel/errors.gen.go": {"func ErrVMBadPowerState(vm, expected, actual string) *Error"},
		"xapi/messages.gen.go":    {"Start(ctx context.Context, call *Call, vm datamodel.VMRef, paused bool) error", "GetStats(ctx context.Context, call *Call, self datamodel.VMRef) (map[string]float64, error)"},
		"xapi/dispatch.gen.go": {
			`{Name: "VM.get_record"`, `{Name: "VM.set_name_label"`, `{Name: "VM.add_to_other_config"`, `{Name: "VM.add_tags"`,
			`{Name: "VM.get_all_records_where"`, `Default: "false"`, `Role: "read-only+client-cert"`,
		},
	}
	for file, wants := range checks {
		src := string(files[file])
		for _, w := range wants {
			if !strings.Contains(src, w) {
				t.Errorf("%s lacks %q", file, w)
			}
		}
	}
	// internal fields get no getter
	if strings.Contains(string(files["xapi/dispatch.gen.go"]), `"VM.get_secret"`) {
		t.Error("internal field has a getter")
	}
}
