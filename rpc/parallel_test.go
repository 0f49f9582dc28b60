package rpc

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

type flushWriter interface {
	Writer
	Flush() error
	Parallel(n int, fn func(i int, w Writer))
}

func writers(out *bytes.Buffer) map[string]flushWriter {
	return map[string]flushWriter{"xml": NewXMLWriter(out), "json": NewJSONWriter(out)}
}

// TestParallelMatchesSequential: the parallel encoding of a struct of records
// and of an array is byte-identical to the sequential one.
func TestParallelMatchesSequential(t *testing.T) {
	record := func(w Writer, i int) {
		w.BeginStruct()
		w.Member("name")
		w.String(fmt.Sprintf("vm-%d <&>", i))
		w.Member("n")
		w.Int(int64(i))
		w.Member("tags")
		w.BeginArray()
		w.String("a")
		w.EndArray()
		w.EndStruct()
	}
	for _, total := range []int{0, 1, 7, 100, 5000} {
		for _, parts := range []int{1, 3, 16} {
			for _, proto := range []string{"xml", "json"} {
				var seq, par bytes.Buffer
				sw, pw := writers(&seq)[proto], writers(&par)[proto]
				per := (total + parts - 1) / parts
				// struct of records, with a member before and after the parallel part
				sw.BeginStruct()
				sw.Member("first")
				sw.Bool(true)
				for i := 0; i < total; i++ {
					sw.Member(fmt.Sprintf("OpaqueRef:%d", i))
					record(sw, i)
				}
				sw.Member("last")
				sw.Int(1)
				sw.EndStruct()
				sw.BeginArray()
				for i := 0; i < total; i++ {
					sw.Int(int64(i))
				}
				sw.EndArray()
				_ = sw.Flush()

				pw.BeginStruct()
				pw.Member("first")
				pw.Bool(true)
				pw.Parallel(parts, func(p int, w Writer) {
					for i := p * per; i < min(total, (p+1)*per); i++ {
						w.Member(fmt.Sprintf("OpaqueRef:%d", i))
						record(w, i)
					}
				})
				pw.Member("last")
				pw.Int(1)
				pw.EndStruct()
				pw.BeginArray()
				pw.Parallel(parts, func(p int, w Writer) {
					for i := p * per; i < min(total, (p+1)*per); i++ {
						w.Int(int64(i))
					}
				})
				pw.EndArray()
				_ = pw.Flush()
				if !bytes.Equal(seq.Bytes(), par.Bytes()) {
					t.Fatalf("%s total=%d parts=%d differ:\n%.300s\n%.300s", proto, total, parts, seq.String(), par.String())
				}
			}
		}
	}
}

func TestParallelPanicReachesCaller(t *testing.T) {
	var out bytes.Buffer
	w := NewJSONWriter(&out)
	defer func() {
		if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), "boom") {
			t.Fatalf("panic not propagated: %v", p)
		}
	}()
	w.BeginArray()
	w.Parallel(8, func(i int, w Writer) {
		if i == 5 {
			panic("boom")
		}
		w.Int(int64(i))
	})
}
