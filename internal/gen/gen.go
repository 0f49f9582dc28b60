package gen

import (
	"fmt"
	"go/format"

	"github.com/xapi-go/xapi-go/schema"
)

// Generate returns every generated file, keyed by path relative to the module root.
func Generate(m *schema.Model) (map[string][]byte, error) {
	g := newGenerator(m)
	classes, err := g.genClasses()
	if err != nil {
		return nil, err
	}
	files := map[string]string{
		"datamodel/enums.gen.go":   g.genEnums(),
		"datamodel/types.gen.go":   g.genTypes(),
		"datamodel/classes.gen.go": classes,
		"datamodel/errors.gen.go":  g.genErrors(),
		"datamodel/meta.gen.go":    g.genMeta(),
		"xapi/messages.gen.go":     g.genMessages(),
		"xapi/dispatch.gen.go":     g.genDispatch(),
	}
	out := map[string][]byte{}
	for path, src := range files {
		b, err := format.Source([]byte(src))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out[path] = b
	}
	return out, nil
}
