package rrd

import (
	"io"
	"math"
	"strconv"
)

// dumpStep is the step written in dumps. xapi's RRDs have a 5 s primary
// step and XenCenter derives each archive's resolution from pdp_per_row
// assuming it (1, 12, 720, 17280), so dumps present the archives in that
// frame and leave out the ones finer than 5 s.
const dumpStep = 5

// WriteRRD writes the full RRD in xapi's /host_rrds and /vm_rrds layout
// (rrdtool dump style: <rrd><version>0003</version><step>5</step>
// <lastupdate>…</lastupdate><ds>…</ds>…<rra>…</rra>…</rrd>, rows oldest
// first) or, with json set, the JSON rendering xapi produces for ?json
// (same structure, every scalar a string). It writes with a single Write.
func WriteRRD(w io.Writer, r *RRD, json bool) error {
	r.mu.RLock()
	var out []byte
	if json {
		out = r.dumpJSON()
	} else {
		out = r.dumpXML()
	}
	r.mu.RUnlock()
	_, err := w.Write(out)
	return err
}

// WriteHostRRD writes the host RRD (see WriteRRD).
func (s *Store) WriteHostRRD(w io.Writer, json bool) error { return WriteRRD(w, s.host, json) }

// WriteVMRRD writes a VM's RRD (see WriteRRD); ErrNotFound if it has none.
func (s *Store) WriteVMRRD(w io.Writer, uuid string, json bool) error {
	r, ok := s.LookupVM(uuid)
	if !ok {
		return ErrNotFound
	}
	return WriteRRD(w, r, json)
}

// dumpArchives returns the archives shown in dumps.
func (r *RRD) dumpArchives() []*archive {
	var out []*archive
	for i := range r.arch {
		if a := &r.arch[i]; a.Step%dumpStep == 0 {
			out = append(out, a)
		}
	}
	return out
}

func (r *RRD) lastUpdateSeconds() int64 {
	if !r.started {
		return 0
	}
	return int64(r.lastUpdate)
}

func lastDS(v float64) float64 {
	if math.IsNaN(v) {
		return 0 // xapi prints an unknown last reading as 0.0
	}
	return v
}

// unknownDumpPDPs converts a count of base-step PDPs to dump-step PDPs.
func unknownDumpPDPs(n int32) int64 { return int64(n) * BaseStep / dumpStep }

type dumpWriter struct{ b []byte }

func (d *dumpWriter) open(tag string)  { d.b = append(append(append(d.b, '<'), tag...), '>') }
func (d *dumpWriter) close(tag string) { d.b = append(append(append(d.b, '<', '/'), tag...), '>') }
func (d *dumpWriter) text(tag, s string) {
	d.open(tag)
	d.b = appendXMLText(d.b, s)
	d.close(tag)
}
func (d *dumpWriter) num(tag string, v float64) {
	d.open(tag)
	d.b = AppendValue(d.b, v)
	d.close(tag)
}
func (d *dumpWriter) int(tag string, v int64) {
	d.open(tag)
	d.b = strconv.AppendInt(d.b, v, 10)
	d.close(tag)
}

func (r *RRD) dumpSizeHint() int {
	n := 512 + len(r.ds)*256
	for _, a := range r.dumpArchives() {
		n += 256 + len(r.ds)*(140+a.Rows*12) + a.Rows*11
	}
	return n
}

func (r *RRD) dumpXML() []byte {
	d := &dumpWriter{b: make([]byte, 0, r.dumpSizeHint())}
	d.b = append(d.b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n<rrd>"...)
	d.text("version", "0003")
	d.int("step", dumpStep)
	d.int("lastupdate", r.lastUpdateSeconds())
	for j := range r.ds {
		ds := &r.ds[j]
		d.open("ds")
		d.text("name", ds.Name)
		d.text("type", ds.Type.String())
		d.num("minimal_heartbeat", r.heartbeat)
		d.num("min", ds.Min)
		d.num("max", ds.Max)
		d.num("last_ds", lastDS(ds.last))
		d.num("value", ds.accum)
		d.int("unknown_sec", int64(ds.unknownSec))
		d.close("ds")
	}
	for _, a := range r.dumpArchives() {
		d.open("rra")
		d.text("cf", a.CF.String())
		d.int("pdp_per_row", int64(a.Step/dumpStep))
		d.open("params")
		d.num("xff", a.XFF)
		d.close("params")
		if len(a.cdp) == 0 {
			d.b = append(d.b, "<cdp_prep/><database/>"...)
			d.close("rra")
			continue
		}
		d.open("cdp_prep")
		for j := range a.cdp {
			c := &a.cdp[j]
			d.open("ds")
			d.num("primary_value", 0)
			d.num("secondary_value", 0)
			d.num("value", c.current(a.CF))
			d.int("unknown_datapoints", unknownDumpPDPs(c.unknown))
			d.close("ds")
		}
		d.close("cdp_prep")
		d.open("database")
		for k := a.Rows - 1; k >= 0; k-- { // oldest first
			slot := (a.head - k + a.Rows) % a.Rows
			d.open("row")
			for j := range r.ds {
				d.num("v", float64(r.slab[a.off+j*a.Rows+slot]))
			}
			d.close("row")
		}
		d.close("database")
		d.close("rra")
	}
	d.close("rrd")
	return d.b
}

// JSON dump helpers: xapi's JSON dump encodes every scalar as a string.
func jsonField(b []byte, first bool, key string) []byte {
	if !first {
		b = append(b, ',')
	}
	b = appendJSONString(b, key)
	return append(b, ':')
}

func jsonNum(b []byte, v float64) []byte {
	b = append(b, '"')
	b = AppendValue(b, v)
	return append(b, '"')
}

func jsonInt(b []byte, v int64) []byte {
	b = append(b, '"')
	b = strconv.AppendInt(b, v, 10)
	return append(b, '"')
}

func (r *RRD) dumpJSON() []byte {
	b := make([]byte, 0, r.dumpSizeHint())
	b = append(b, '{')
	b = jsonField(b, true, "version")
	b = appendJSONString(b, "0003")
	b = jsonField(b, false, "step")
	b = jsonInt(b, dumpStep)
	b = jsonField(b, false, "lastupdate")
	b = jsonNum(b, float64(r.lastUpdateSeconds()))
	b = jsonField(b, false, "ds")
	b = append(b, '[')
	for j := range r.ds {
		ds := &r.ds[j]
		if j > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		b = jsonField(b, true, "name")
		b = appendJSONString(b, ds.Name)
		b = jsonField(b, false, "type")
		b = appendJSONString(b, ds.Type.String())
		b = jsonField(b, false, "minimal_heartbeat")
		b = jsonNum(b, r.heartbeat)
		b = jsonField(b, false, "min")
		b = jsonNum(b, ds.Min)
		b = jsonField(b, false, "max")
		b = jsonNum(b, ds.Max)
		b = jsonField(b, false, "last_ds")
		b = jsonNum(b, lastDS(ds.last))
		b = jsonField(b, false, "value")
		b = jsonNum(b, ds.accum)
		b = jsonField(b, false, "unknown_sec")
		b = jsonNum(b, math.Trunc(ds.unknownSec))
		b = append(b, '}')
	}
	b = append(b, ']')
	b = jsonField(b, false, "rra")
	b = append(b, '[')
	for i, a := range r.dumpArchives() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		b = jsonField(b, true, "cf")
		b = appendJSONString(b, a.CF.String())
		b = jsonField(b, false, "pdp_per_row")
		b = jsonInt(b, int64(a.Step/dumpStep))
		b = jsonField(b, false, "params")
		b = append(b, '{')
		b = jsonField(b, true, "xff")
		b = jsonNum(b, a.XFF)
		b = append(b, '}')
		b = jsonField(b, false, "cdp_prep")
		b = append(b, '{')
		b = jsonField(b, true, "ds")
		b = append(b, '[')
		for j := range a.cdp {
			c := &a.cdp[j]
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			b = jsonField(b, true, "primary_value")
			b = jsonNum(b, 0)
			b = jsonField(b, false, "secondary_value")
			b = jsonNum(b, 0)
			b = jsonField(b, false, "value")
			b = jsonNum(b, c.current(a.CF))
			b = jsonField(b, false, "unknown_datapoints")
			b = jsonInt(b, unknownDumpPDPs(c.unknown))
			b = append(b, '}')
		}
		b = append(b, "]}"...)
		b = jsonField(b, false, "database")
		b = append(b, '[')
		if len(r.ds) > 0 {
			for k := a.Rows - 1; k >= 0; k-- {
				if k < a.Rows-1 {
					b = append(b, ',')
				}
				slot := (a.head - k + a.Rows) % a.Rows
				b = append(b, '[')
				for j := range r.ds {
					if j > 0 {
						b = append(b, ',')
					}
					b = jsonNum(b, float64(r.slab[a.off+j*a.Rows+slot]))
				}
				b = append(b, ']')
			}
		}
		b = append(b, "]}"...)
	}
	return append(b, "]}"...)
}
