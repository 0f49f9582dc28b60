package rpc

import (
	"bytes"
	"runtime"
	"sync"
	"sync/atomic"
)

// Parallel encoding of large results: the parts of one container (e.g. the
// records of get_all_records) are encoded on several cores into their own
// buffers and appended in order, so the output is byte-for-byte what a
// sequential encoding gives. At most 2×GOMAXPROCS encoded parts are held at
// once, so memory stays bounded by the part size, not the response size.

var partPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Parallel encodes n parts with fn on up to GOMAXPROCS goroutines and writes
// them in order, as if fn(0, w) … fn(n-1, w) had been called on w in turn.
// Each part must write whole items (values, or Member and value pairs) of the
// container open in w.
func (w *XMLWriter) Parallel(n int, fn func(i int, w Writer)) {
	open := len(w.members) > 0
	runParallel(n, func(i int, out *bytes.Buffer) bool {
		sub := getXMLWriter(out)
		if open {
			sub.members = append(sub.members, false)
		}
		fn(i, sub)
		started := open && sub.members[0]
		_ = sub.Flush()
		releaseXMLWriter(sub)
		return started
	}, func(part *bytes.Buffer, started bool) {
		if part.Len() == 0 {
			return
		}
		if started && w.members[len(w.members)-1] {
			w.buf = append(w.buf, "</member>"...)
		}
		w.appendRaw(part.Bytes())
		if started {
			w.members[len(w.members)-1] = true
		}
	})
}

// Parallel encodes n parts with fn on up to GOMAXPROCS goroutines and writes
// them in order, as if fn(0, w) … fn(n-1, w) had been called on w in turn.
// Each part must write whole items (values, or Member and value pairs) of the
// container open in w.
func (w *JSONWriter) Parallel(n int, fn func(i int, w Writer)) {
	runParallel(n, func(i int, out *bytes.Buffer) bool {
		sub := getJSONWriter(out)
		fn(i, sub)
		_ = sub.Flush()
		releaseJSONWriter(sub)
		return false
	}, func(part *bytes.Buffer, _ bool) {
		if part.Len() == 0 {
			return
		}
		if w.comma {
			w.buf = append(w.buf, ',')
		}
		w.appendRaw(part.Bytes())
		w.comma = true
	})
}

// appendRaw adds already-encoded bytes to the output.
func (o *outBuf) appendRaw(p []byte) {
	if len(o.buf)+len(p) <= flushSize {
		o.buf = append(o.buf, p...)
		return
	}
	o.flush()
	if o.err == nil {
		var n int
		n, o.err = o.out.Write(p)
		o.written += int64(n)
	}
}

type partResult struct {
	buf     *bytes.Buffer
	started bool
	panic   any
}

// runParallel runs encode for parts 0..n-1 on a bounded set of goroutines and
// calls emit for each part in order on the calling goroutine. A panic in encode
// is re-raised on the calling goroutine.
func runParallel(n int, encode func(i int, out *bytes.Buffer) bool, emit func(part *bytes.Buffer, started bool)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	results := make([]chan partResult, n)
	for i := range results {
		results[i] = make(chan partResult, 1)
	}
	tokens := make(chan struct{}, 2*workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				tokens <- struct{}{}
				i := int(next.Add(1) - 1)
				if i >= n {
					<-tokens
					return
				}
				buf := partPool.Get().(*bytes.Buffer)
				buf.Reset()
				results[i] <- encodePart(i, buf, encode)
			}
		}()
	}
	var pending any
	for i := range n {
		r := <-results[i]
		if r.panic != nil && pending == nil {
			pending = r.panic
		}
		if pending == nil {
			emit(r.buf, r.started)
		}
		if r.buf.Cap() <= 4*maxPooledCap {
			partPool.Put(r.buf)
		}
		<-tokens
	}
	wg.Wait()
	if pending != nil {
		panic(pending)
	}
}

func encodePart(i int, buf *bytes.Buffer, encode func(int, *bytes.Buffer) bool) (r partResult) {
	r.buf = buf
	defer func() {
		if p := recover(); p != nil {
			r.panic = p
		}
	}()
	r.started = encode(i, buf)
	return r
}
