package rpc

import (
	"io"
	"math"
	"strconv"
	"time"
)

const (
	// flushSize is the buffered amount after which encoders hand their
	// buffer to the underlying writer. Responses that end below it are sent
	// with Content-Length.
	flushSize = 64 << 10
	// bufCap is the initial capacity of encoder buffers: room for one more
	// typical value after reaching flushSize without growing.
	bufCap = flushSize + 8<<10
	// maxPooledCap bounds the buffers returned to the pool (a single huge
	// string can grow one).
	maxPooledCap = 1 << 20
)

// outBuf is the buffered output shared by the encoders.
type outBuf struct {
	buf     []byte
	out     io.Writer
	err     error
	written int64 // bytes handed to out
}

// flush hands the buffer to out. After an error the data is discarded.
func (o *outBuf) flush() {
	if len(o.buf) == 0 {
		return
	}
	if o.err == nil {
		var n int
		n, o.err = o.out.Write(o.buf)
		o.written += int64(n)
	}
	o.buf = o.buf[:0]
}

// total is the number of bytes produced so far.
func (o *outBuf) total() int64 { return o.written + int64(len(o.buf)) }

// Buffered returns the bytes not yet handed to the underlying writer.
func (o *outBuf) Buffered() []byte { return o.buf }

// Flush writes any buffered data and returns the first output error.
func (o *outBuf) Flush() error {
	o.flush()
	return o.err
}

// appendDateTime appends t in UTC as yyyymmddTHH:MM:SSZ.
func appendDateTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	if y >= 0 && y <= 9999 {
		b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10))
	} else {
		b = strconv.AppendInt(b, int64(y), 10)
	}
	return append(b,
		byte('0'+int(mo)/10), byte('0'+int(mo)%10),
		byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+h/10), byte('0'+h%10), ':',
		byte('0'+mi/10), byte('0'+mi%10), ':',
		byte('0'+s/10), byte('0'+s%10), 'Z')
}

// FormatDateTime formats t as XenAPI does on the wire: UTC, yyyymmddTHH:MM:SSZ.
func FormatDateTime(t time.Time) string {
	var a [24]byte
	return string(appendDateTime(a[:0], t))
}

// appendNonFinite appends NaN, Infinity or -Infinity; ok is false for finite v.
func appendNonFinite(b []byte, v float64) ([]byte, bool) {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...), true
	case math.IsInf(v, 1):
		return append(b, "Infinity"...), true
	case math.IsInf(v, -1):
		return append(b, "-Infinity"...), true
	}
	return b, false
}

// parseDateTime accepts xapi's compact form (yyyymmddTHH:MM:SS with optional
// Z or ±hh:mm) and RFC 3339 (with or without a zone). A missing zone means UTC.
func parseDateTime(s string) (time.Time, bool) {
	for _, layout := range dateLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

var dateLayouts = []string{
	"20060102T15:04:05Z07:00",
	"20060102T15:04:05",
	"20060102T150405Z07:00",
	"20060102T150405",
	time.RFC3339,
	"2006-01-02T15:04:05",
}

// widen extends an ASCII table to all byte values (false from 0x80 up), so
// scanning needs one lookup per byte.
func widen(t *[128]bool) (w [256]bool) {
	copy(w[:], t[:])
	return w
}

// plainPrefix is the length of the longest prefix of s whose bytes are all
// plain in table t (four bytes per step: most record strings are plain).
func plainPrefix(t *[256]bool, s string) int {
	i := 0
	for i+4 <= len(s) && t[s[i]] && t[s[i+1]] && t[s[i+2]] && t[s[i+3]] {
		i += 4
	}
	for i < len(s) && t[s[i]] {
		i++
	}
	return i
}
