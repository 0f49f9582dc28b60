package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"
)

func TestSchemaFields(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"schema-fields"}, &out, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	var m map[string]map[string]*fieldType
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	vm, ok := m["VM"]
	if !ok {
		t.Fatal("no VM class")
	}
	for name, kind := range map[string]string{
		"uuid": "string", "memory_static_max": "int", "is_a_template": "bool",
		"power_state": "enum", "other_config": "map", "VBDs": "set", "resident_on": "ref",
	} {
		if ft := vm[name]; ft == nil || ft.Kind != kind {
			t.Errorf("VM.%s = %+v, want kind %s", name, ft, kind)
		}
	}
	if ft := vm["VBDs"]; ft != nil && (ft.Elem == nil || ft.Elem.Kind != "ref" || ft.Elem.Of != "VBD") {
		t.Errorf("VM.VBDs elem = %+v, want ref to VBD", ft.Elem)
	}
	if _, ok := m["task"]["externalpid"]; ok {
		t.Error("internal field task.externalpid listed")
	}
}
