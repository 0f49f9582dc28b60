package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/xapi"
)

func init() {
	commands["schema-fields"] = command{"print the wire fields and types of every class as JSON (for client tests)", runSchemaFields}
}

// fieldType is the JSON form of a datamodel type: kind is one of string, int,
// float, bool, datetime, ref, enum, set, map, record, option.
type fieldType struct {
	Kind string     `json:"kind"`
	Name string     `json:"name"`
	Of   string     `json:"of,omitempty"`
	Key  *fieldType `json:"key,omitempty"`
	Elem *fieldType `json:"elem,omitempty"`
}

var kindNames = map[datamodel.Kind]string{
	datamodel.KindString: "string", datamodel.KindInt: "int", datamodel.KindFloat: "float",
	datamodel.KindBool: "bool", datamodel.KindDateTime: "datetime", datamodel.KindRef: "ref",
	datamodel.KindEnum: "enum", datamodel.KindSet: "set", datamodel.KindMap: "map",
	datamodel.KindRecord: "record", datamodel.KindOption: "option",
}

func toFieldType(t *datamodel.Type) *fieldType {
	if t == nil {
		return nil
	}
	k, ok := kindNames[t.Kind]
	if !ok {
		k = fmt.Sprintf("kind%d", int(t.Kind))
	}
	return &fieldType{Kind: k, Name: t.Name, Of: t.Of, Key: toFieldType(t.Key), Elem: toFieldType(t.Elem)}
}

// schemaFields maps each class that has get_all_records to its public
// (non-internal) record fields and their types.
func schemaFields() map[string]map[string]*fieldType {
	out := map[string]map[string]*fieldType{}
	for _, c := range datamodel.AllClasses() {
		if !c.GetAll && !xapi.HasMessage(c.Name+".get_all_records") {
			continue
		}
		fields := map[string]*fieldType{}
		for _, f := range c.Fields {
			if !f.Internal {
				fields[f.Name] = toFieldType(f.Type)
			}
		}
		out[c.Name] = fields
	}
	return out
}

func runSchemaFields(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("xapid schema-fields", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: xapid schema-fields\n\nPrints {class: {field: type}} as JSON for every class with get_all_records (internal fields left out).")
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", " ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(schemaFields()); err != nil {
		fmt.Fprintf(stderr, "xapid: %v\n", err)
		return 1
	}
	return 0
}
