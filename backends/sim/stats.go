package sim

import (
	"context"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/xapi-go/xapi-go/backends"
)

// domStats holds a domain's simulated activity. Counters are cumulative
// since the domain was built.
type domStats struct {
	rng      *rand.Rand
	last     time.Time
	load     []float64 // per vCPU, fraction of one CPU
	cpu      []float64 // per vCPU, seconds
	vif      []backends.VIFSample
	vifRate  []float64 // bytes/s baseline per VIF
	vbd      []backends.VBDSample
	vbdRate  []float64 // bytes/s baseline per VBD
	freeFrac float64   // guest free memory / total
}

func newDomStats(seed uint64, uuid string, domid int, spec backends.DomainSpec, now time.Time) *domStats {
	h := fnv.New64a()
	_, _ = h.Write([]byte(uuid))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()^uint64(domid)))
	st := &domStats{rng: rng, last: now, freeFrac: 0.5 + 0.3*rng.Float64()}
	st.resize(spec.VCPUs)
	for _, n := range spec.NICs {
		st.vif = append(st.vif, backends.VIFSample{Device: n.Device})
		st.vifRate = append(st.vifRate, 2e4+1e6*rng.Float64())
	}
	for _, d := range spec.Disks {
		st.vbd = append(st.vbd, backends.VBDSample{Device: d.Device})
		st.vbdRate = append(st.vbdRate, 1e4+5e5*rng.Float64())
	}
	return st
}

func (st *domStats) resize(n int) {
	for len(st.load) < n {
		st.load = append(st.load, 0.05+0.4*st.rng.Float64())
		st.cpu = append(st.cpu, 0)
	}
	st.load = st.load[:n]
	st.cpu = st.cpu[:n]
}

func clamp(v, lo, hi float64) float64 { return min(max(v, lo), hi) }

// advance moves the counters to now. A paused domain accrues nothing.
func (st *domStats) advance(now time.Time, running bool) {
	dt := now.Sub(st.last).Seconds()
	st.last = now
	if dt <= 0 || !running {
		return
	}
	r := st.rng
	for i := range st.load {
		st.load[i] = clamp(st.load[i]+0.1*r.NormFloat64(), 0.01, 0.98)
		st.cpu[i] += st.load[i] * dt
	}
	for i := range st.vif {
		rx := st.vifRate[i] * (0.5 + r.Float64()) * dt
		tx := st.vifRate[i] * (0.2 + 0.6*r.Float64()) * dt
		st.vif[i].RxBytes += uint64(rx)
		st.vif[i].TxBytes += uint64(tx)
		st.vif[i].RxPackets += uint64(rx / 900)
		st.vif[i].TxPackets += uint64(tx / 700)
	}
	for i := range st.vbd {
		rd := st.vbdRate[i] * (0.3 + r.Float64()) * dt
		wr := st.vbdRate[i] * (0.2 + 0.8*r.Float64()) * dt
		st.vbd[i].ReadBytes += uint64(rd)
		st.vbd[i].WriteBytes += uint64(wr)
		st.vbd[i].ReadOps += uint64(rd / 4096)
		st.vbd[i].WriteOps += uint64(wr / 4096)
	}
	st.freeFrac = clamp(st.freeFrac+0.02*r.NormFloat64(), 0.05, 0.9)
}

// hostStats holds the host's cumulative per-pCPU busy time.
type hostStats struct {
	last time.Time
	busy []float64
}

func (h *hostStats) init(cpus int, now time.Time) {
	h.last = now
	h.busy = make([]float64, cpus)
}

// control-domain load on every pCPU
const dom0Load = 0.02

// Sample implements backends.Backend.
func (s *Sim) Sample(ctx context.Context) (backends.Sample, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return backends.Sample{}, backends.ErrClosed
	}
	now := s.cfg.Now()
	pload := make([]float64, len(s.host.busy))
	for i := range pload {
		pload[i] = dom0Load
	}
	var doms []backends.DomainSample
	for _, d := range s.doms {
		if !d.defined || !d.state.Active() {
			continue
		}
		st := d.stats
		st.advance(now, d.state == backends.Running)
		ds := backends.DomainSample{
			UUID:               d.uuid,
			DomID:              d.domid,
			VCPUSeconds:        slices.Clone(st.cpu),
			MemoryActual:       d.target,
			MemoryTarget:       d.target,
			MemoryInternalFree: -1,
			VIFs:               slices.Clone(st.vif),
			VBDs:               slices.Clone(st.vbd),
		}
		if d.agent != nil {
			ds.MemoryInternalFree = int64(float64(d.target) * 0.97 * st.freeFrac)
		}
		if d.state == backends.Running {
			for j, l := range st.load {
				pload[(d.domid+j)%len(pload)] += l
			}
		}
		doms = append(doms, ds)
	}
	if dt := now.Sub(s.host.last).Seconds(); dt > 0 {
		for i, l := range pload {
			s.host.busy[i] += min(l, 1) * dt
		}
		s.host.last = now
	}
	slices.SortFunc(doms, func(a, b backends.DomainSample) int { return a.DomID - b.DomID })
	return backends.Sample{
		Time: now,
		Host: backends.HostSample{
			PCPUSeconds: slices.Clone(s.host.busy),
			MemoryTotal: s.cfg.MemoryTotal,
			MemoryFree:  s.freeLocked(),
		},
		Domains: doms,
	}, nil
}
