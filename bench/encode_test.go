package bench

import (
	"io"
	"testing"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/rpc"
)

// BenchmarkEncodeVMRecords isolates the server's encoding of 10,000 realistic
// VM records (no HTTP, no client), to split get_all_records time.
func BenchmarkEncodeVMRecords(b *testing.B) {
	f := bigServer(b)
	entries := f.srv.Store.List(datamodel.VMClass)
	for _, proto := range []string{"xml", "json"} {
		b.Run(proto, func(b *testing.B) {
			var w interface {
				datamodel.Writer
				Flush() error
			}
			if proto == "xml" {
				w = rpc.NewXMLWriter(io.Discard)
			} else {
				w = rpc.NewJSONWriter(io.Discard)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w.BeginStruct()
				for _, e := range entries {
					w.Member(e.Ref)
					e.Obj.WriteRecord(w, false)
				}
				w.EndStruct()
				_ = w.Flush()
			}
		})
	}
}
