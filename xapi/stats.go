package xapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/xapi-go/xapi-go/backends"
	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/rrd"
	"github.com/xapi-go/xapi-go/store"
)

// Stats: every second the host samples its backend into the round-robin
// archives of package rrd (never through raft). Counters from the backend are
// cumulative; the data sources are rates and levels named as xapi names them
// (cpuN, memory_total_kib, memory_free_kib for the host; cpuN, memory,
// memory_target, memory_internal_free, vif_N_rx/tx, vbd_DEV_read/write for VMs).

// statsValues turns two consecutive samples into data-source values.
func statsValues(prev, cur backends.Sample) (host map[string]float64, vms map[string]map[string]float64) {
	dt := cur.Time.Sub(prev.Time).Seconds()
	host = map[string]float64{
		"memory_total_kib": float64(cur.Host.MemoryTotal) / 1024,
		"memory_free_kib":  float64(cur.Host.MemoryFree) / 1024,
	}
	if dt > 0 {
		var sum float64
		for i, busy := range cur.Host.PCPUSeconds {
			u := 0.0
			if i < len(prev.Host.PCPUSeconds) {
				u = clamp01((busy - prev.Host.PCPUSeconds[i]) / dt)
			}
			host["cpu"+strconv.Itoa(i)] = u
			sum += u
		}
		if n := len(cur.Host.PCPUSeconds); n > 0 {
			host["cpu_avg"] = sum / float64(n)
		}
	}
	before := map[string]*backends.DomainSample{}
	for i := range prev.Domains {
		before[prev.Domains[i].UUID] = &prev.Domains[i]
	}
	vms = map[string]map[string]float64{}
	for _, d := range cur.Domains {
		v := map[string]float64{
			"memory":        float64(d.MemoryActual),
			"memory_target": float64(d.MemoryTarget),
		}
		if d.MemoryInternalFree >= 0 {
			v["memory_internal_free"] = float64(d.MemoryInternalFree) / 1024
		}
		p := before[d.UUID]
		if p != nil && dt > 0 && p.DomID == d.DomID {
			for i, t := range d.VCPUSeconds {
				if i < len(p.VCPUSeconds) {
					v["cpu"+strconv.Itoa(i)] = clamp01((t - p.VCPUSeconds[i]) / dt)
				}
			}
			rate := func(a, b uint64) float64 {
				if a < b {
					return 0 // counter reset
				}
				return float64(a-b) / dt
			}
			for _, x := range d.VIFs {
				for _, y := range p.VIFs {
					if y.Device == x.Device {
						n := strconv.Itoa(x.Device)
						v["vif_"+n+"_rx"] = rate(x.RxBytes, y.RxBytes)
						v["vif_"+n+"_tx"] = rate(x.TxBytes, y.TxBytes)
					}
				}
			}
			for _, x := range d.VBDs {
				for _, y := range p.VBDs {
					if y.Device == x.Device {
						v["vbd_"+x.Device+"_read"] = rate(x.ReadBytes, y.ReadBytes)
						v["vbd_"+x.Device+"_write"] = rate(x.WriteBytes, y.WriteBytes)
					}
				}
			}
		}
		vms[d.UUID] = v
	}
	return host, vms
}

func clamp01(x float64) float64 { return min(max(x, 0), 1) }

// metricsEvery is how many samples pass between two writes of the metrics
// objects (VM_metrics, host_metrics): coarse, batched, through raft.
const metricsEvery = 30

// runStats samples b every interval into st until ctx ends, and every
// metricsEvery samples writes the latest values to the metrics objects.
func (s *Server) runStats(ctx context.Context, b backends.Backend, st *rrd.Store, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var prev backends.Sample
	have := false
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur, err := b.Sample(ctx)
		if err != nil {
			continue
		}
		if have {
			host, vms := statsValues(prev, cur)
			st.AddHost(cur.Time, host)
			for uuid, v := range vms {
				st.AddVM(uuid, cur.Time, v)
			}
			if n%metricsEvery == 0 {
				s.writeMetrics(ctx, cur, vms)
			}
		}
		prev, have = cur, true
	}
}

// writeMetrics stores the coarse metrics of a sample in one batch (leader only):
// host_metrics memory_free/live/last_updated and, per running VM,
// VM_metrics memory_actual, VCPUs_utilisation and last_updated.
func (s *Server) writeMetrics(ctx context.Context, cur backends.Sample, vms map[string]map[string]float64) {
	if !s.store.IsLeader() {
		return
	}
	now := cur.Time.UTC().Truncate(time.Second)
	var ops []store.Op
	if h, ok := s.store.Get(datamodel.HostClass, string(s.hostRef)); ok {
		hm := string(h.(*datamodel.HostRecord).Metrics)
		if _, ok := s.store.Get(datamodel.HostMetricsClass, hm); ok {
			c := datamodel.HostMetricsClass
			ops = append(ops, mustSet(c, hm, "memory_free", cur.Host.MemoryFree), mustSet(c, hm, "live", true), mustSet(c, hm, "last_updated", now))
		}
	}
	for _, d := range cur.Domains {
		ref, ok := s.store.RefByUUID(datamodel.VMClass, d.UUID)
		if !ok {
			continue
		}
		o, _ := s.store.Get(datamodel.VMClass, ref)
		mref := string(o.(*datamodel.VMRecord).Metrics)
		if _, ok := s.store.Get(datamodel.VMMetricsClass, mref); !ok {
			continue
		}
		util := map[int64]float64{}
		for i := range d.VCPUSeconds {
			util[int64(i)] = vms[d.UUID]["cpu"+strconv.Itoa(i)]
		}
		c := datamodel.VMMetricsClass
		ops = append(ops, mustSet(c, mref, "memory_actual", d.MemoryActual), mustSet(c, mref, "VCPUs_utilisation", util), mustSet(c, mref, "last_updated", now))
	}
	if len(ops) > 0 {
		if _, err := s.store.Apply(ctx, ops...); err != nil {
			s.log.Debug("metrics not written", "err", err)
		}
	}
}

// httpHandlers serves the stats handlers and hands everything else to
// Config.Other (or answers 404).
func (s *Server) httpHandlers() http.Handler {
	stats := rrd.NewHandler(s.rrd, rrd.HandlerOptions{
		HostUUID: func() string {
			if o, ok := s.store.Get(datamodel.HostClass, string(s.hostRef)); ok {
				return datamodel.UUIDOf(o)
			}
			return ""
		},
		Authorize: s.authorizeHTTP,
	})
	mux := http.NewServeMux()
	for _, p := range []string{"/rrd_updates", "/host_rrd", "/host_rrds", "/vm_rrd", "/vm_rrds"} {
		mux.Handle(p, stats)
	}
	other := s.cfg.Other
	if other == nil {
		other = http.NotFoundHandler()
	}
	mux.Handle("/", other)
	return mux
}

// authorizeHTTP accepts a request carrying a valid session (query parameter
// or cookie session_id, as xapi's HTTP handlers take it) or the pool secret.
// Any session may read stats (read-only).
func (s *Server) authorizeHTTP(r *http.Request) error {
	ref := r.URL.Query().Get("session_id")
	if ref == "" {
		if c, err := r.Cookie("session_id"); err == nil {
			ref = c.Value
		}
	}
	if ref != "" {
		if _, ok := s.store.Get(datamodel.SessionClass, ref); ok {
			return nil
		}
		return datamodel.ErrSessionInvalid(ref)
	}
	if ps := r.URL.Query().Get("pool_secret"); ps != "" && ps == s.auth.PoolSecret() {
		return nil
	}
	return datamodel.ErrSessionInvalid("")
}
