package datamodel

import (
	"bytes"
	"testing"
)

// FuzzUnmarshalRecord feeds arbitrary bytes to the log/snapshot record decoder:
// it must never panic, and whatever it accepts must re-encode to a record that
// decodes to the same bytes again.
func FuzzUnmarshalRecord(f *testing.F) {
	vm := NewVMRecord()
	vm.UUID = "u"
	vm.NameLabel = "x\"y<z>"
	vm.OtherConfig = map[string]string{"a": "b"}
	vm.BlockedOperations = map[VMOperations]string{VMOperationsStart: "no"}
	f.Add(MarshalRecord(vm))
	f.Add([]byte(`{"uuid":"u","power_state":"running","memory_static_max":"12","tags":["a"]}`))
	f.Add([]byte(`{"VCPUs_utilisation":{"0":0.5}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, c := range []*Class{VMClass, VMMetricsClass, HostClass} {
			o, err := UnmarshalRecord(c, data)
			if err != nil {
				continue
			}
			b := MarshalRecord(o)
			o2, err := UnmarshalRecord(c, b)
			if err != nil {
				t.Fatalf("%s: re-decode of %s: %v", c.Name, b, err)
			}
			if b2 := MarshalRecord(o2); !bytes.Equal(b, b2) {
				t.Fatalf("%s: not stable:\n%s\n%s", c.Name, b, b2)
			}
		}
	})
}
