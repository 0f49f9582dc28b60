package rrd

import (
	"math"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// Sizes used by RetainedBytes.
var (
	rrdSample     RRD
	dsSample      dsState
	archiveSample archive
	cdpSample     cdpPrep
)

const (
	unsafeSizeofRRD     = unsafe.Sizeof(rrdSample)
	unsafeSizeofDS      = unsafe.Sizeof(dsSample)
	unsafeSizeofArchive = unsafe.Sizeof(archiveSample)
	unsafeSizeofCDP     = unsafe.Sizeof(cdpSample)
)

// AppendValue appends v the way xapi prints RRD values (rrd_utils.ml
// f_to_s): C's "%0.5g" for normal and subnormal numbers, "0.0" for
// (either) zero, "NaN", "Infinity" and "-Infinity". Go's 'g' format with
// precision 5 produces the same bytes as C's %.5g (trailing zeros
// dropped, exponent with a sign and at least two digits).
func AppendValue(dst []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(dst, "NaN"...)
	case math.IsInf(v, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(v, -1):
		return append(dst, "-Infinity"...)
	case v == 0:
		return append(dst, "0.0"...)
	}
	if b, ok := appendG5(dst, v); ok {
		return b
	}
	return strconv.AppendFloat(dst, v, 'g', 5, 64)
}

var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// appendG5 is a fast %.5g for finite non-zero v. It scales v to five
// integer digits with one correctly rounded operation on exact powers of
// ten, so the scaled value is within 1e-11 of the true one; whenever that
// could change the rounding (the fraction is within 1e-7 of one half) or
// the power of ten is not exact, it reports false and the caller uses
// strconv. TestAppendG5 compares it with strconv on millions of values.
func appendG5(dst []byte, v float64) ([]byte, bool) {
	bits := math.Float64bits(v)
	exp := int(bits>>52) & 0x7ff
	if exp == 0 || exp == 0x7ff {
		return dst, false // subnormal, or not finite
	}
	a := math.Float64frombits(bits &^ (1 << 63))
	// floor(log10(a)) is e or e+1.
	e := ((exp - 1023) * 78913) >> 18
	var m float64
	for range 3 {
		k := 4 - e
		var sc float64
		switch {
		case k >= 0 && k < len(pow10):
			sc = a * pow10[k]
		case k < 0 && -k < len(pow10):
			sc = a / pow10[-k]
		default:
			return dst, false
		}
		if sc < 10000 {
			e--
			continue
		}
		if sc >= 100000 {
			e++
			continue
		}
		m = sc
		break
	}
	if m == 0 {
		return dst, false
	}
	n := int(m) // m > 0: truncation is floor
	frac := m - float64(n)
	if frac > 0.5-1e-7 && frac < 0.5+1e-7 {
		return dst, false
	}
	if frac > 0.5 {
		n++
	}
	if n == 100000 {
		n = 10000
		e++
	}
	var d [5]byte
	d[4] = byte('0' + n%10)
	d[3] = byte('0' + n/10%10)
	d[2] = byte('0' + n/100%10)
	d[1] = byte('0' + n/1000%10)
	d[0] = byte('0' + n/10000)
	nd := 5
	for nd > 1 && d[nd-1] == '0' {
		nd--
	}
	var buf [24]byte
	p := 0
	if bits>>63 != 0 {
		buf[p] = '-'
		p++
	}
	switch {
	case e < -4 || e >= 5:
		buf[p] = d[0]
		p++
		if nd > 1 {
			buf[p] = '.'
			p++
			p += copy(buf[p:], d[1:nd])
		}
		buf[p] = 'e'
		p++
		if e < 0 {
			buf[p] = '-'
			e = -e
		} else {
			buf[p] = '+'
		}
		p++
		if e >= 100 {
			buf[p] = byte('0' + e/100)
			p++
		}
		buf[p] = byte('0' + e/10%10)
		buf[p+1] = byte('0' + e%10)
		p += 2
	case e >= 0:
		if nd <= e+1 {
			p += copy(buf[p:], d[:nd])
			for range e + 1 - nd {
				buf[p] = '0'
				p++
			}
		} else {
			p += copy(buf[p:], d[:e+1])
			buf[p] = '.'
			p++
			p += copy(buf[p:], d[e+1:nd])
		}
	default:
		buf[p], buf[p+1] = '0', '.'
		p += 2
		for range -e - 1 {
			buf[p] = '0'
			p++
		}
		p += copy(buf[p:], d[:nd])
	}
	return append(dst, buf[:p]...), true
}

// FormatValue is AppendValue returning a string.
func FormatValue(v float64) string { return string(AppendValue(nil, v)) }

// appendXMLText appends s escaped as XML character data.
func appendXMLText(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			dst = append(dst, "&amp;"...)
		case '<':
			dst = append(dst, "&lt;"...)
		case '>':
			dst = append(dst, "&gt;"...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// appendJSONString appends s as a quoted JSON string.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendJSONInner(dst, s)
	return append(dst, '"')
}

func appendJSONInner(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}
