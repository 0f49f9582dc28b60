package rrd

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// DSType says how a sample handed to Add is turned into a per-second value.
type DSType uint8

const (
	// Gauge samples are instantaneous values (memory, load); the stored
	// value is their time-weighted average.
	Gauge DSType = iota
	// Absolute samples are amounts accumulated since the previous sample
	// (a counter that is reset at each read); the stored value is the
	// amount per second.
	Absolute
	// Derive samples are readings of a monotonic counter; the stored value
	// is the difference between consecutive readings per second.
	Derive
)

// String returns the rrdtool spelling used in dumps: GAUGE, ABSOLUTE, DERIVE.
func (t DSType) String() string {
	switch t {
	case Absolute:
		return "ABSOLUTE"
	case Derive:
		return "DERIVE"
	default:
		return "GAUGE"
	}
}

// CF is a consolidation function.
type CF uint8

const (
	// Average is the mean of the known primary data points of a row.
	Average CF = iota
	// Min is the smallest known primary data point of a row.
	Min
	// Max is the largest known primary data point of a row.
	Max
)

// String returns AVERAGE, MIN or MAX (the spelling of legends and dumps).
func (c CF) String() string {
	switch c {
	case Min:
		return "MIN"
	case Max:
		return "MAX"
	default:
		return "AVERAGE"
	}
}

// ParseCF parses the exact, case-sensitive spellings AVERAGE, MIN and MAX.
func ParseCF(s string) (CF, error) {
	switch s {
	case "AVERAGE":
		return Average, nil
	case "MIN":
		return Min, nil
	case "MAX":
		return Max, nil
	}
	return 0, fmt.Errorf("rrd: unknown consolidation function %q", s)
}

// DataSource describes one metric of an RRD.
type DataSource struct {
	Name string
	Type DSType
	// Min and Max bound the per-second value; a value outside them is
	// stored as unknown (NaN). Min == Max == 0 means unbounded.
	Min, Max float64
	Units    string
}

func (d DataSource) normalized() DataSource {
	if d.Min == 0 && d.Max == 0 {
		d.Min, d.Max = math.Inf(-1), math.Inf(1)
	}
	return d
}

// Archive describes one round-robin archive: Rows consolidated rows of
// Step seconds each, consolidated with CF. XFF is the largest fraction of
// unknown primary data points a row may have and still be known.
type Archive struct {
	CF   CF
	Step int // seconds; a positive multiple of BaseStep
	Rows int
	XFF  float64
}

// Span is the time an archive covers.
func (a Archive) Span() time.Duration { return time.Duration(a.Step*a.Rows) * time.Second }

// BaseStep is the primary data point interval in seconds. Every archive
// step is a multiple of it.
const BaseStep = 1

// DefaultHeartbeat is xapi's minimal heartbeat: a gap between two samples
// longer than this makes the whole gap unknown.
const DefaultHeartbeat = 300 * time.Second

// DefaultLayout returns the archive layout used by the Store:
//
//	1 s   × 600 rows (10 min)   AVERAGE              (not in xapi)
//	5 s   × 120 rows (10 min)   AVERAGE
//	1 min × 120 rows (2 h)      AVERAGE [, MIN, MAX]
//	1 h   × 168 rows (1 week)   AVERAGE [, MIN, MAX]
//	1 day × 366 rows (1 year)   AVERAGE [, MIN, MAX]
//
// MIN and MAX archives exist only when minMax is set, as in xapi (the host
// RRD always has them; VM RRDs only when the pool flag
// create_min_max_in_new_VM_RRDs is set). XFF is 0.5 for AVERAGE-only
// layouts and 1.0 for the archives of a min/max layout, as in xapi.
func DefaultLayout(minMax bool) []Archive {
	l := []Archive{
		{CF: Average, Step: 1, Rows: 600, XFF: 0.5},
		{CF: Average, Step: 5, Rows: 120, XFF: 0.5},
	}
	for _, t := range []struct{ step, rows int }{{60, 120}, {3600, 168}, {86400, 366}} {
		if minMax {
			for _, cf := range []CF{Average, Min, Max} {
				l = append(l, Archive{CF: cf, Step: t.step, Rows: t.rows, XFF: 1.0})
			}
		} else {
			l = append(l, Archive{CF: Average, Step: t.step, Rows: t.rows, XFF: 0.5})
		}
	}
	return l
}

// Options configure an RRD.
type Options struct {
	// Layout lists the archives, finest first; nil means DefaultLayout(false).
	Layout []Archive
	// Heartbeat: a longer gap between samples is unknown. 0 means DefaultHeartbeat.
	Heartbeat time.Duration
	// StaleAfter: a data source absent from every sample for this long is
	// removed (with its history). 0 means one hour; negative means never.
	StaleAfter time.Duration
}

// ErrLayout reports an invalid archive layout.
var ErrLayout = errors.New("rrd: invalid archive layout")

func validateLayout(l []Archive) error {
	if len(l) == 0 {
		return fmt.Errorf("%w: no archives", ErrLayout)
	}
	for i, a := range l {
		if a.Step <= 0 || a.Step%BaseStep != 0 || a.Rows <= 0 || a.XFF < 0 || a.XFF > 1 || a.CF > Max {
			return fmt.Errorf("%w: archive %d %+v", ErrLayout, i, a)
		}
		if i > 0 && a.Step < l[i-1].Step {
			return fmt.Errorf("%w: archives must be ordered finest first", ErrLayout)
		}
	}
	return nil
}

// dsState is a data source plus its primary-data-point preparation area.
type dsState struct {
	DataSource
	last       float64 // last raw reading, NaN when none
	accum      float64 // per-second amount accumulated in the current PDP
	unknownSec float64 // seconds of the current PDP that are unknown
	lastSeen   float64 // time of the last sample carrying this source
}

// cdpPrep accumulates the current consolidated row of one archive for one
// data source.
type cdpPrep struct {
	val     float64 // sum (AVERAGE) or running min/max
	known   int32   // known PDPs in the current row
	unknown int32   // unknown PDPs in the current row
}

type archive struct {
	Archive
	off  int // offset of this archive's block in the slab
	head int // slot of the newest row
	cdp  []cdpPrep
}

// RRD is a round-robin database for one object (a host, a VM or an SR).
// Its methods are safe for concurrent use.
//
// Values are stored as float32 in a single slab, laid out archive by
// archive, data source by data source, row slot by row slot. A data source
// appearing or disappearing reallocates the slab; that is rare.
type RRD struct {
	mu         sync.RWMutex
	arch       []archive
	ds         []dsState
	slab       []float32
	started    bool
	lastUpdate float64 // seconds since the epoch
	heartbeat  float64
	staleAfter float64 // seconds, 0 = never
	scratch    []float64
}

// New returns an empty RRD.
func New(o Options) (*RRD, error) {
	l := o.Layout
	if l == nil {
		l = DefaultLayout(false)
	}
	if err := validateLayout(l); err != nil {
		return nil, err
	}
	r := &RRD{heartbeat: DefaultHeartbeat.Seconds(), staleAfter: time.Hour.Seconds()}
	if o.Heartbeat > 0 {
		r.heartbeat = o.Heartbeat.Seconds()
	}
	switch {
	case o.StaleAfter > 0:
		r.staleAfter = o.StaleAfter.Seconds()
	case o.StaleAfter < 0:
		r.staleAfter = 0
	}
	r.arch = make([]archive, len(l))
	for i, a := range l {
		r.arch[i] = archive{Archive: a}
	}
	return r, nil
}

// ring returns the row slots of data source j in archive a.
func (r *RRD) ring(a *archive, j int) []float32 {
	start := a.off + j*a.Rows
	return r.slab[start : start+a.Rows]
}

// pdpIndex is the number of base steps before t (the index of the PDP in
// progress at t).
func pdpIndex(t float64) int64 { return int64(math.Floor(t / BaseStep)) }

// Define adds data sources, or updates the type, bounds and units of ones
// that exist. New sources start with unknown history.
func (r *RRD) Define(dss ...DataSource) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var add []DataSource
	for _, d := range dss {
		d = d.normalized()
		if j := r.find(d.Name); j >= 0 {
			r.ds[j].DataSource = d
			continue
		}
		if slices.ContainsFunc(add, func(x DataSource) bool { return x.Name == d.Name }) {
			continue
		}
		add = append(add, d)
	}
	r.addLocked(add)
}

func (r *RRD) find(name string) int {
	for j := range r.ds {
		if r.ds[j].Name == name {
			return j
		}
	}
	return -1
}

// addLocked appends data sources, growing the slab once.
func (r *RRD) addLocked(add []DataSource) {
	if len(add) == 0 {
		return
	}
	oldN := len(r.ds)
	newN := oldN + len(add)
	total := 0
	for i := range r.arch {
		total += newN * r.arch[i].Rows
	}
	slab := make([]float32, total)
	off := 0
	nan := float32(math.NaN())
	for i := range r.arch {
		a := &r.arch[i]
		n := a.Rows * oldN
		copy(slab[off:off+n], r.slab[a.off:a.off+n])
		for k := off + n; k < off+newN*a.Rows; k++ {
			slab[k] = nan
		}
		a.off = off
		off += newN * a.Rows
	}
	r.slab = slab
	now := r.lastUpdate
	cur := pdpIndex(now)
	for _, d := range add {
		st := dsState{DataSource: d, last: math.NaN(), lastSeen: now}
		if r.started {
			// The part of the PDP in progress before the source existed is unknown.
			st.unknownSec = now - float64(cur*BaseStep)
		}
		r.ds = append(r.ds, st)
	}
	for i := range r.arch {
		a := &r.arch[i]
		n := int64(a.Step / BaseStep)
		before := int32(0)
		if r.started {
			before = int32(cur % n) // PDPs of the current row before the source existed
		}
		for range add {
			a.cdp = append(a.cdp, newCDP(a.CF, before))
		}
	}
}

func newCDP(cf CF, unknown int32) cdpPrep {
	return cdpPrep{val: cfInit(cf), unknown: unknown}
}

func cfInit(cf CF) float64 {
	switch cf {
	case Min:
		return math.Inf(1)
	case Max:
		return math.Inf(-1)
	}
	return 0
}

// RemoveDS removes a data source and its history. It reports whether the
// source existed.
func (r *RRD) RemoveDS(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.removeLocked(func(d *dsState) bool { return d.Name == name }) > 0
}

// removeLocked drops every data source for which drop returns true.
func (r *RRD) removeLocked(drop func(*dsState) bool) int {
	keep := make([]int, 0, len(r.ds))
	for j := range r.ds {
		if !drop(&r.ds[j]) {
			keep = append(keep, j)
		}
	}
	removed := len(r.ds) - len(keep)
	if removed == 0 {
		return 0
	}
	newN := len(keep)
	total := 0
	for i := range r.arch {
		total += newN * r.arch[i].Rows
	}
	slab := make([]float32, total)
	off := 0
	for i := range r.arch {
		a := &r.arch[i]
		cdp := make([]cdpPrep, 0, newN)
		for k, j := range keep {
			copy(slab[off+k*a.Rows:off+(k+1)*a.Rows], r.ring(a, j))
			cdp = append(cdp, a.cdp[j])
		}
		a.cdp = cdp
		a.off = off
		off += newN * a.Rows
	}
	ds := make([]dsState, 0, newN)
	for _, j := range keep {
		ds = append(ds, r.ds[j])
	}
	r.ds, r.slab = ds, slab
	return removed
}

// Add records one sample per named data source at ts. Names not defined
// yet become Gauge sources with no bounds; defined sources missing from
// values are unknown (NaN) for the interval since the previous sample, as
// are NaN values. A sample not later than the previous one is dropped and
// Add returns false.
//
// The first sample only starts the clock (and the Derive counters): a
// value describes the interval that ends at its timestamp, and the first
// one has no interval.
func (r *RRD) Add(ts time.Time, values map[string]float64) bool {
	t := float64(ts.UnixNano()) / 1e9
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started && t <= r.lastUpdate {
		return false
	}
	if len(values) > 0 {
		r.defineMissing(values)
	}
	if !r.started {
		r.started = true
		r.lastUpdate = t
		for j := range r.ds {
			d := &r.ds[j]
			d.lastSeen = t
			if v, ok := values[d.Name]; ok {
				d.last = v
			}
		}
		cur := pdpIndex(t)
		for i := range r.arch {
			a := &r.arch[i]
			n := int64(a.Step / BaseStep)
			for j := range a.cdp {
				a.cdp[j] = newCDP(a.CF, int32(cur%n))
			}
		}
		for j := range r.ds {
			r.ds[j].unknownSec = t - float64(cur*BaseStep)
		}
		return true
	}
	r.update(t, values)
	if r.staleAfter > 0 {
		r.removeLocked(func(d *dsState) bool { return t-d.lastSeen > r.staleAfter })
	}
	return true
}

// defineMissing adds Gauge sources for names of values not defined yet.
func (r *RRD) defineMissing(values map[string]float64) {
	if len(values) <= len(r.ds) {
		found := 0
		for j := range r.ds {
			if _, ok := values[r.ds[j].Name]; ok {
				found++
			}
		}
		if found == len(values) {
			return
		}
	}
	var add []DataSource
	for name := range values {
		if r.find(name) < 0 {
			add = append(add, DataSource{Name: name}.normalized())
		}
	}
	slices.SortFunc(add, func(a, b DataSource) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	r.addLocked(add)
}

func (r *RRD) update(t float64, values map[string]float64) {
	interval := t - r.lastUpdate
	proc := pdpIndex(r.lastUpdate)
	occu := pdpIndex(t)
	elapsed := occu - proc
	gap := interval > r.heartbeat
	boundary := float64(occu * BaseStep)
	pre, post := interval, 0.0
	if elapsed > 0 {
		pre = boundary - r.lastUpdate
		post = t - boundary
	}
	if cap(r.scratch) < len(r.ds) {
		r.scratch = make([]float64, len(r.ds))
	}
	pdps := r.scratch[:len(r.ds)]
	for j := range r.ds {
		d := &r.ds[j]
		amount := math.NaN() // per-second amount times interval
		if v, ok := values[d.Name]; ok {
			d.lastSeen = t
			switch d.Type {
			case Gauge:
				amount = v * interval
			case Absolute:
				amount = v
			case Derive:
				amount = v - d.last // NaN when there is no previous reading
			}
			d.last = v
		}
		if gap {
			amount = math.NaN()
		}
		if elapsed == 0 {
			if math.IsNaN(amount) {
				d.unknownSec += interval
			} else {
				d.accum += amount
			}
			continue
		}
		if math.IsNaN(amount) {
			d.unknownSec += pre
		} else {
			d.accum += amount * pre / interval
		}
		p := math.NaN()
		if den := float64(elapsed*BaseStep) - d.unknownSec; !gap && den > 1e-9 {
			p = d.accum / den
			if p < d.Min || p > d.Max {
				p = math.NaN()
			}
		}
		pdps[j] = p
		if math.IsNaN(amount) {
			d.accum, d.unknownSec = 0, post
		} else {
			d.accum, d.unknownSec = amount*post/interval, 0
		}
	}
	r.lastUpdate = t
	if elapsed > 0 {
		for i := range r.arch {
			r.feed(&r.arch[i], proc, elapsed, pdps)
		}
	}
}

// feed consolidates k PDPs, all equal to pdps[j] for data source j, that
// end at the base-step boundaries after the one with index from.
func (r *RRD) feed(a *archive, from, k int64, pdps []float64) {
	n := int64(a.Step / BaseStep)
	pos := from // index of the last boundary consumed
	for k > 0 {
		toRow := n - pos%n // PDPs until the row boundary
		take := min(toRow, k)
		for j := range a.cdp {
			accumulate(a.CF, &a.cdp[j], pdps[j], int32(take))
		}
		pos += take
		k -= take
		if pos%n != 0 {
			return
		}
		r.push(a, func(j int) float64 { return finish(&a.cdp[j], a.CF, a.XFF, n) })
		for j := range a.cdp {
			a.cdp[j] = newCDP(a.CF, 0)
		}
		if whole := k / n; whole > 0 {
			for w := int64(0); w < min(whole, int64(a.Rows)); w++ {
				r.push(a, func(j int) float64 { return pdps[j] })
			}
			pos += whole * n
			k -= whole * n
		}
	}
}

func accumulate(cf CF, c *cdpPrep, p float64, count int32) {
	if math.IsNaN(p) {
		c.unknown += count
		return
	}
	switch cf {
	case Average:
		c.val += p * float64(count)
	case Min:
		c.val = math.Min(c.val, p)
	case Max:
		c.val = math.Max(c.val, p)
	}
	c.known += count
}

// finish returns the consolidated value of a complete row.
func finish(c *cdpPrep, cf CF, xff float64, n int64) float64 {
	if c.known == 0 || float64(c.unknown) > math.Floor(xff*float64(n)) {
		return math.NaN()
	}
	if cf == Average {
		return c.val / float64(c.known)
	}
	return c.val
}

// current returns the value the row in progress would have now.
func (c *cdpPrep) current(cf CF) float64 {
	if cf == Average {
		if c.known == 0 {
			return 0
		}
		return c.val / float64(c.known)
	}
	return c.val
}

func (r *RRD) push(a *archive, value func(j int) float64) {
	a.head++
	if a.head == a.Rows {
		a.head = 0
	}
	for j := range r.ds {
		r.slab[a.off+j*a.Rows+a.head] = float32(value(j))
	}
}

// LastUpdate returns the time of the last accepted sample (zero if none).
func (r *RRD) LastUpdate() time.Time {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if !r.started {
		return time.Time{}
	}
	return fromSeconds(r.lastUpdate)
}

func fromSeconds(s float64) time.Time {
	sec, frac := math.Modf(s)
	return time.Unix(int64(sec), int64(math.Round(frac*1e9)))
}

// DataSources returns the data sources, in definition order.
func (r *RRD) DataSources() []DataSource {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]DataSource, len(r.ds))
	for j := range r.ds {
		out[j] = r.ds[j].DataSource
	}
	return out
}

// Layout returns the archive layout.
func (r *RRD) Layout() []Archive {
	out := make([]Archive, len(r.arch))
	for i := range r.arch {
		out[i] = r.arch[i].Archive
	}
	return out
}

// Latest returns the newest consolidated value of a data source in the
// finest AVERAGE archive (what xapi's query_data_source returns). It
// reports false if the source does not exist.
func (r *RRD) Latest(name string) (float64, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	j := r.find(name)
	if j < 0 {
		return 0, false
	}
	for i := range r.arch {
		a := &r.arch[i]
		if a.CF == Average {
			return float64(r.ring(a, j)[a.head]), true
		}
	}
	return math.NaN(), true
}

// Row is one consolidated row of an archive.
type Row struct {
	Time   time.Time // end of the interval the row covers
	Values []float64 // one per data source, in DataSources order
}

// Rows returns up to n newest rows of the archive with the given step and
// CF, newest first (n <= 0: all rows). It reports false if there is no
// such archive.
func (r *RRD) Rows(step int, cf CF, n int) ([]Row, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for i := range r.arch {
		a := &r.arch[i]
		if a.Step != step || a.CF != cf {
			continue
		}
		if n <= 0 || n > a.Rows {
			n = a.Rows
		}
		if !r.started {
			return nil, true
		}
		last := lastRowTime(r.lastUpdate, a.Step)
		out := make([]Row, n)
		for k := range out {
			vals := make([]float64, len(r.ds))
			slot := (a.head - k + a.Rows) % a.Rows
			for j := range r.ds {
				vals[j] = float64(r.slab[a.off+j*a.Rows+slot])
			}
			out[k] = Row{Time: time.Unix(last-int64(k*a.Step), 0), Values: vals}
		}
		return out, true
	}
	return nil, false
}

// lastRowTime is the end time of the newest complete row of an archive
// with the given step: the last multiple of step not after t.
func lastRowTime(t float64, step int) int64 {
	return int64(math.Floor(t/float64(step))) * int64(step)
}

// RetainedBytes returns the bytes this RRD keeps allocated for its values
// and bookkeeping (capacities, not Go allocator rounding).
func (r *RRD) RetainedBytes() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := 4*cap(r.slab) + 8*cap(r.scratch)
	n += int(unsafeSizeofRRD)
	for j := range r.ds {
		n += int(unsafeSizeofDS) + len(r.ds[j].Name) + len(r.ds[j].Units)
	}
	n += (cap(r.ds) - len(r.ds)) * int(unsafeSizeofDS)
	for i := range r.arch {
		n += int(unsafeSizeofArchive) + cap(r.arch[i].cdp)*int(unsafeSizeofCDP)
	}
	return n
}
