// Package rrd keeps round-robin performance archives for a host, its VMs
// and SRs, and renders them the way xapi's /rrd_updates, /host_rrds and
// /vm_rrds handlers do, so that XenCenter and Xen Orchestra graphs work
// unchanged.
//
// # Archives
//
// Samples arrive through RRD.Add (or Store.AddHost / AddVM / AddSR), about
// one per second. Every Add turns the values into per-second rates
// according to the data source type (Gauge, Absolute, Derive), splits the
// interval since the previous sample over 1 s primary data points (PDPs)
// and consolidates those into the archives of DefaultLayout:
//
//	step    rows  span     CFs
//	1 s     600   10 min   AVERAGE           (finer than xapi; /rrd_updates?interval=1)
//	5 s     120   10 min   AVERAGE
//	1 min   120   2 h      AVERAGE [MIN MAX]
//	1 h     168   1 week   AVERAGE [MIN MAX]
//	1 day   366   1 year   AVERAGE [MIN MAX]
//
// The 5 s and coarser archives have xapi's steps, row counts and XFF
// values; rows end on multiples of their step in Unix time, as in xapi. MIN
// and MAX archives exist on the host RRD and, when StoreOptions.VMMinMax
// is set (xapi's create_min_max_in_new_VM_RRDs), on VM RRDs; like xapi,
// VM RRDs are AVERAGE-only by default. xapi's base step is 5 s; this
// package uses 1 s PDPs so that a 1 s archive can exist, which changes
// nothing visible at 5 s and coarser.
//
// Decisions where xapi's behaviour was not copied:
//   - A row whose PDPs are all unknown is NaN, whatever the XFF (xapi
//     writes the CF's initial value when XFF is 1.0).
//   - PDPs before a data source (or the RRD) existed count as unknown in
//     the row they fall in, for every archive (xapi does this only for
//     sources added later).
//   - The first sample only starts the clock; it contributes no value.
//   - A sample not later than the previous one is dropped (xapi pretends
//     5 s elapsed).
//   - A gap longer than the heartbeat (300 s) makes every PDP of the gap
//     unknown, as in xapi; a gap spanning several PDPs otherwise gives each
//     of them the interval's average, as in xapi.
//   - Names that appear in a sample without having been defined become
//     unbounded Gauge sources (call RRD.Define first for other types or
//     bounds). A source missing from a sample is unknown for that interval;
//     one missing for StaleAfter (default 1 h) is removed with its history,
//     which keeps memory bounded when devices come and go.
//
// # Memory
//
// Values are stored as float32 (about 7 significant digits; output has 5)
// in one slab per RRD. A VM with 20 data sources and the default
// AVERAGE-only layout holds 1374 rows × 20 × 4 B = 109,920 B of values;
// TestMemoryPerVM and BenchmarkMemoryPerVM measure the whole retained heap
// per VM with runtime.MemStats: about 121,000 B (target 130 KB). With
// VMMinMax the values take 214,560 B and the heap about 231,000 B per VM.
//
// # /rrd_updates
//
// ParseUpdatesQuery reads start, interval, cf, host, vm_uuid, sr_uuid and
// json. Store.WriteUpdates picks the archive as xapi's find_best_rras
// does: among archives of the wanted CF whose step is at least the
// interval (rounded down to a multiple of 5; interval 0 means 5 s,
// interval 1 the 1 s archive), the finest one whose span reaches back to
// start, else the coarsest. Rows run from the newest complete row back to
// start, newest first, at most the archive's row count. meta.start is the
// first step boundary after start, meta.end the newest row's time. The
// legend lists VMs (sorted by uuid, or in vm_uuid order), then the host,
// then SRs; entries are "CF:kind:uuid:name". RRDs whose newest sample is
// older than the newest overall get NaN for the rows they lack.
//
// Large replies are formatted in parallel and written with a few Writes;
// buffer the writer if a Content-Length is needed.
//
// XML is compact (no whitespace between tags) after an XML declaration
// and a newline; empty legend and data elements are written as <legend/>
// and <data/>, as xapi's Xmlm writer does. JSON is
// {"meta":{"start":N,"step":N,"end":N,"rows":N,"columns":N,"legend":[…]},"data":[{"t":N,"values":["…",…]}]}
// with numbers for meta and t and strings for values (xapi ≥ 23.31; Xen
// Orchestra checks that meta.step equals the interval it asked for).
// Values are printed as xapi's f_to_s does: C's %.5g, "0.0" for zero,
// "NaN", "Infinity", "-Infinity" (see AppendValue).
//
// NegotiateJSON implements xapi's choice between XML and JSON; XenCenter
// (no Accept header, no json parameter) gets XML.
//
// # Dumps
//
// WriteRRD renders /host_rrds and /vm_rrds in rrdtool dump layout with
// step 5 and pdp_per_row 1, 12, 720, 17280: XenCenter computes row times
// from step × pdp_per_row and recognises only those four values, so the
// 1 s archive is left out of dumps. Rows are oldest first. cdp_prep
// unknown_datapoints are converted to 5 s PDPs. The JSON dump has the same
// structure with every scalar as a string, as xapi writes it.
package rrd
