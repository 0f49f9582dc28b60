package rrd

import (
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// UpdatesQuery is a parsed /rrd_updates request.
type UpdatesQuery struct {
	// Start: rows older than this are not returned.
	Start time.Time
	// RelativeStart, when non-zero (negative), replaces Start: seconds
	// relative to the newest sample (xapi's negative start).
	RelativeStart int64
	// Interval is the wanted row step in seconds. 0 (absent) behaves like
	// xapi: 5 s or coarser. 1 selects the 1 s archive.
	Interval int
	// CF is AVERAGE, MIN or MAX; "" returns every CF of the chosen step.
	CF string
	// Host includes the host's data sources.
	Host bool
	// VMUUIDs restricts the VMs; nil means every VM with an RRD.
	VMUUIDs []string
	// SRUUIDs lists the SRs to include; nil means none.
	SRUUIDs []string
	// JSON selects the JSON rendering instead of XML.
	JSON bool
}

// ErrBadQuery wraps every error of ParseUpdatesQuery and WriteUpdates
// caused by the request (an HTTP handler answers 400).
var ErrBadQuery = errors.New("rrd: bad query")

func badQuery(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadQuery, fmt.Sprintf(format, a...))
}

// ParseUpdatesQuery parses the query string of /rrd_updates:
//
//	start     required integer (seconds since the epoch; negative: relative to the newest sample)
//	interval  optional integer ≥ 0 (seconds)
//	cf        optional AVERAGE | MIN | MAX (case-sensitive)
//	host      optional boolean; present without a value means true
//	vm_uuid   optional, repeatable
//	sr_uuid   optional, repeatable
//	json      optional; present with any value selects JSON (as xapi does
//	          when there is no Accept header; see NegotiateJSON)
func ParseUpdatesQuery(v url.Values) (UpdatesQuery, error) {
	var q UpdatesQuery
	ss, ok := v["start"]
	if !ok || len(ss) == 0 || ss[0] == "" {
		return q, badQuery("missing start")
	}
	start, err := strconv.ParseInt(ss[0], 10, 64)
	if err != nil {
		return q, badQuery("start %q is not an integer", ss[0])
	}
	if start < 0 {
		q.RelativeStart = start
	} else {
		q.Start = time.Unix(start, 0)
	}
	if s := v.Get("interval"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return q, badQuery("interval %q is not a non-negative integer", s)
		}
		q.Interval = n
	}
	if cf, ok := v["cf"]; ok && len(cf) > 0 {
		if _, err := ParseCF(cf[0]); err != nil {
			return q, badQuery("cf %q is not AVERAGE, MIN or MAX", cf[0])
		}
		q.CF = cf[0]
	}
	if h, ok := v["host"]; ok && len(h) > 0 {
		if h[0] == "" {
			q.Host = true
		} else if q.Host, err = strconv.ParseBool(h[0]); err != nil {
			return q, badQuery("host %q is not a boolean", h[0])
		}
	}
	for _, key := range []string{"vm_uuid", "sr_uuid"} {
		vals, ok := v[key]
		if !ok {
			continue
		}
		list := make([]string, 0, len(vals))
		for _, u := range vals {
			if u == "" {
				return q, badQuery("empty %s", key)
			}
			list = append(list, u)
		}
		if key == "vm_uuid" {
			q.VMUUIDs = list
		} else {
			q.SRUUIDs = list
		}
	}
	_, q.JSON = v["json"]
	return q, nil
}

// NegotiateJSON reports whether an /rrd_updates (or dump) reply should be
// JSON, as xapi decides: an Accept header that ranks application/json
// against text/xml wins (a wildcard counts for JSON); without one (or when
// it names neither), the presence of the json query parameter decides.
// XenCenter sends no Accept header and no json parameter: it gets XML.
func NegotiateJSON(accept string, query url.Values) bool {
	_, param := query["json"]
	if strings.TrimSpace(accept) == "" {
		return param
	}
	qJSON, qXML := -1.0, -1.0
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		qv := 1.0
		if s, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(s, 64); err == nil {
				qv = f
			}
		}
		switch mt {
		case "application/json", "application/*", "*/*":
			qJSON = math.Max(qJSON, qv)
		case "text/xml", "application/xml", "text/*":
			qXML = math.Max(qXML, qv)
		}
	}
	switch {
	case qJSON < 0 && qXML < 0:
		return param
	case qJSON <= 0 && qXML <= 0:
		return param
	}
	return qJSON >= qXML
}

// minStep is the finest archive step an interval allows.
func minStep(interval int) int {
	switch {
	case interval == 0:
		return 5 // xapi's finest step
	case interval < 5:
		return interval
	}
	return interval / 5 * 5
}

// chooseArchive picks the archive step and row count for a query, the way
// xapi's find_best_rras does: among the archives of the wanted CF whose
// step is at least the interval's, the finest whose span still reaches
// back to start; if none does, the coarsest.
func chooseArchive(layout []Archive, cf CF, allCF bool, interval int, start, last float64) (step, rows int, ok bool) {
	lastPDP := math.Floor(last / BaseStep)
	ms := minStep(interval)
	for _, a := range layout {
		if (!allCF && a.CF != cf) || a.Step < ms {
			continue
		}
		step, rows, ok = a.Step, a.Rows, true
		if start > lastPDP-float64(a.Step*a.Rows) {
			return step, rows, true
		}
	}
	return step, rows, ok
}

// column is one legend entry of an /rrd_updates reply.
type column struct {
	cf   CF
	kind Kind
	uuid string
	name string
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// WriteUpdates renders /rrd_updates for the query (rrdtool xport layout,
// newest row first) and writes it to w: in one Write for small replies,
// in a few (one per formatting goroutine) for large ones, so buffer w if
// a Content-Length is needed. hostUUID names the host in legend entries.
func (s *Store) WriteUpdates(w io.Writer, q UpdatesQuery, hostUUID string) error {
	allCF := q.CF == ""
	var cf CF
	if !allCF {
		var err error
		if cf, err = ParseCF(q.CF); err != nil {
			return badQuery("cf %q is not AVERAGE, MIN or MAX", q.CF)
		}
	}
	if q.Interval < 0 {
		return badQuery("negative interval")
	}
	members := s.selectMembers(q, hostUUID)

	// Reference time: the newest sample among the selected RRDs.
	refLast, started := 0.0, false
	totalDS := 0
	for _, m := range members {
		m.rrd.mu.RLock()
		if m.rrd.started && (!started || m.rrd.lastUpdate > refLast) {
			refLast, started = m.rrd.lastUpdate, true
		}
		totalDS += len(m.rrd.ds)
		m.rrd.mu.RUnlock()
	}
	if !started {
		refLast = float64(s.now().UnixNano()) / 1e9
	}
	var start int64
	switch {
	case q.RelativeStart != 0:
		start = q.RelativeStart + int64(refLast)
	case !q.Start.IsZero():
		start = q.Start.Unix()
	}

	step, archRows, ok := 0, 0, false
	for _, m := range members {
		if step, archRows, ok = chooseArchive(m.rrd.Layout(), cf, allCF, q.Interval, float64(start), refLast); ok {
			break
		}
	}
	if !ok {
		step, archRows, _ = chooseArchive(DefaultLayout(true), cf, allCF, q.Interval, float64(start), refLast)
	}
	s64 := int64(step)
	lastRow := lastRowTime(refLast, step)
	nrows := 0
	if started {
		for nrows < archRows && lastRow-int64(nrows)*s64 >= start {
			nrows++
		}
	}

	// Gather the values: one row-major block (nrows × its columns) per
	// RRD, so that rendering a row reads contiguous memory.
	var cols []column
	var segs []segment
	vals := make([]float32, 0, nrows*totalDS)
	nan := float32(math.NaN())
	for _, m := range members {
		r := m.rrd
		r.mu.RLock()
		if !r.started {
			r.mu.RUnlock()
			continue
		}
		// Row k of the reply is row k + shift of this RRD.
		shift := (lastRowTime(r.lastUpdate, step) - lastRow) / s64
		first := len(cols)
		for ai := range r.arch {
			a := &r.arch[ai]
			if a.Step == step && (allCF || a.CF == cf) {
				for j := range r.ds {
					cols = append(cols, column{a.CF, m.kind, m.uuid, r.ds[j].Name})
				}
			}
		}
		cm := len(cols) - first
		base := len(vals)
		vals = slices.Grow(vals, nrows*cm)[:base+nrows*cm]
		ci := 0
		for ai := range r.arch {
			a := &r.arch[ai]
			if a.Step != step || (!allCF && a.CF != cf) {
				continue
			}
			for j := range r.ds {
				ring := r.slab[a.off+j*a.Rows : a.off+(j+1)*a.Rows]
				out := vals[base+ci:]
				// Reply row k is ring row idx = k+shift (0 = newest), in
				// slot head-idx modulo the ring size.
				slot := a.head - int(shift%int64(a.Rows))
				if slot < 0 {
					slot += a.Rows
				}
				for k, idx := 0, shift; k < nrows; k, idx = k+1, idx+1 {
					v := nan
					if idx >= 0 && idx < int64(a.Rows) {
						v = ring[slot]
					}
					out[k*cm] = v
					if slot--; slot < 0 {
						slot = a.Rows - 1
					}
				}
				ci++
			}
		}
		r.mu.RUnlock()
		if cm > 0 {
			segs = append(segs, segment{off: base, cols: cm})
		}
	}
	if len(cols) == 0 {
		nrows = 0
	}
	metaStart := floorDiv(start, s64)*s64 + s64
	u := updates{start: metaStart, step: s64, end: lastRow, nrows: nrows, cols: cols, segs: segs, vals: vals}
	if q.JSON {
		return u.writeJSON(w)
	}
	return u.writeXML(w)
}

// segment is the block of values of one RRD: row k, column c is at
// vals[off+k*cols+c].
type segment struct{ off, cols int }

type updates struct {
	start, step, end int64
	nrows            int
	cols             []column
	segs             []segment
	vals             []float32
}

func (u *updates) appendLegend(dst []byte, c column, esc func([]byte, string) []byte) []byte {
	dst = append(dst, c.cf.String()...)
	dst = append(dst, ':')
	dst = append(dst, c.kind.String()...)
	dst = append(dst, ':')
	dst = esc(dst, c.uuid)
	dst = append(dst, ':')
	return esc(dst, c.name)
}

// rowChunks formats rows [0, nrows) with fn, in parallel when the reply is
// large, and returns the per-chunk buffers in row order.
func (u *updates) rowChunks(fn func(dst []byte, k int) []byte) [][]byte {
	workers := runtime.GOMAXPROCS(0)
	if u.nrows*len(u.cols) < 50000 || workers < 2 || u.nrows < 2 {
		b := make([]byte, 0, u.nrows*(len(u.cols)*14+32))
		for k := 0; k < u.nrows; k++ {
			b = fn(b, k)
		}
		return [][]byte{b}
	}
	workers = min(workers, u.nrows)
	chunks := make([][]byte, workers)
	var wg sync.WaitGroup
	per := (u.nrows + workers - 1) / workers
	for wi := range workers {
		lo, hi := wi*per, min((wi+1)*per, u.nrows)
		wg.Go(func() {
			b := make([]byte, 0, (hi-lo)*(len(u.cols)*14+32))
			for k := lo; k < hi; k++ {
				b = fn(b, k)
			}
			chunks[wi] = b
		})
	}
	wg.Wait()
	return chunks
}

func (u *updates) writeXML(w io.Writer) error {
	b := make([]byte, 0, 256+len(u.cols)*72)
	b = append(b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n<xport><meta><start>"...)
	b = strconv.AppendInt(b, u.start, 10)
	b = append(b, "</start><step>"...)
	b = strconv.AppendInt(b, u.step, 10)
	b = append(b, "</step><end>"...)
	b = strconv.AppendInt(b, u.end, 10)
	b = append(b, "</end><rows>"...)
	b = strconv.AppendInt(b, int64(u.nrows), 10)
	b = append(b, "</rows><columns>"...)
	b = strconv.AppendInt(b, int64(len(u.cols)), 10)
	b = append(b, "</columns>"...)
	if len(u.cols) == 0 {
		b = append(b, "<legend/>"...)
	} else {
		b = append(b, "<legend>"...)
		for _, c := range u.cols {
			b = append(b, "<entry>"...)
			b = u.appendLegend(b, c, appendXMLText)
			b = append(b, "</entry>"...)
		}
		b = append(b, "</legend>"...)
	}
	b = append(b, "</meta>"...)
	if u.nrows == 0 {
		_, err := w.Write(append(b, "<data/></xport>"...))
		return err
	}
	b = append(b, "<data>"...)
	return writeAll(w, b, u.rowChunks(func(b []byte, k int) []byte {
		b = append(b, "<row><t>"...)
		b = strconv.AppendInt(b, u.end-int64(k)*u.step, 10)
		b = append(b, "</t>"...)
		for _, sg := range u.segs {
			for _, v := range u.vals[sg.off+k*sg.cols : sg.off+(k+1)*sg.cols] {
				b = append(b, "<v>"...)
				b = AppendValue(b, float64(v))
				b = append(b, "</v>"...)
			}
		}
		return append(b, "</row>"...)
	}), []byte("</data></xport>"))
}

// writeAll writes head, the chunks and tail; several Writes, no copying.
func writeAll(w io.Writer, head []byte, chunks [][]byte, tail []byte) error {
	if len(chunks) == 1 {
		// Small reply: one Write.
		_, err := w.Write(append(append(head, chunks[0]...), tail...))
		return err
	}
	for _, p := range append(append([][]byte{head}, chunks...), tail) {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

func (u *updates) writeJSON(w io.Writer) error {
	b := make([]byte, 0, 256+len(u.cols)*72)
	b = append(b, `{"meta":{"start":`...)
	b = strconv.AppendInt(b, u.start, 10)
	b = append(b, `,"step":`...)
	b = strconv.AppendInt(b, u.step, 10)
	b = append(b, `,"end":`...)
	b = strconv.AppendInt(b, u.end, 10)
	b = append(b, `,"rows":`...)
	b = strconv.AppendInt(b, int64(u.nrows), 10)
	b = append(b, `,"columns":`...)
	b = strconv.AppendInt(b, int64(len(u.cols)), 10)
	b = append(b, `,"legend":[`...)
	for i, c := range u.cols {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = u.appendLegend(b, c, appendJSONInner)
		b = append(b, '"')
	}
	b = append(b, `]},"data":[`...)
	return writeAll(w, b, u.rowChunks(func(b []byte, k int) []byte {
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"t":`...)
		b = strconv.AppendInt(b, u.end-int64(k)*u.step, 10)
		b = append(b, `,"values":[`...)
		sep := false
		for _, sg := range u.segs {
			for _, v := range u.vals[sg.off+k*sg.cols : sg.off+(k+1)*sg.cols] {
				if sep {
					b = append(b, ',')
				}
				sep = true
				b = append(b, '"')
				b = AppendValue(b, float64(v))
				b = append(b, '"')
			}
		}
		return append(b, "]}"...)
	}), []byte("]}"))
}
