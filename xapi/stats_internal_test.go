package xapi

import (
	"math"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/backends"
)

func TestStatsValues(t *testing.T) {
	t0 := time.Unix(1000, 0)
	prev := backends.Sample{Time: t0,
		Host: backends.HostSample{PCPUSeconds: []float64{10, 20}, MemoryTotal: 8 << 30, MemoryFree: 4 << 30},
		Domains: []backends.DomainSample{{UUID: "a", DomID: 1, VCPUSeconds: []float64{5}, MemoryActual: 1 << 30, MemoryInternalFree: -1,
			VIFs: []backends.VIFSample{{Device: 0, RxBytes: 1000, TxBytes: 500}}, VBDs: []backends.VBDSample{{Device: "xvda", ReadBytes: 0, WriteBytes: 100}}}},
	}
	cur := backends.Sample{Time: t0.Add(2 * time.Second),
		Host: backends.HostSample{PCPUSeconds: []float64{11, 22}, MemoryTotal: 8 << 30, MemoryFree: 3 << 30},
		Domains: []backends.DomainSample{
			{UUID: "a", DomID: 1, VCPUSeconds: []float64{6.5}, MemoryActual: 1 << 30, MemoryTarget: 1 << 30, MemoryInternalFree: 512 << 20,
				VIFs: []backends.VIFSample{{Device: 0, RxBytes: 3000, TxBytes: 400}}, VBDs: []backends.VBDSample{{Device: "xvda", ReadBytes: 4096, WriteBytes: 100}}},
			{UUID: "b", DomID: 2, VCPUSeconds: []float64{1}, MemoryActual: 2 << 30, MemoryInternalFree: -1},
		},
	}
	host, vms := statsValues(prev, cur)
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	near("host cpu0", host["cpu0"], 0.5)
	near("host cpu1", host["cpu1"], 1)
	near("host cpu_avg", host["cpu_avg"], 0.75)
	near("host memory_free_kib", host["memory_free_kib"], float64(3<<30)/1024)
	a := vms["a"]
	near("vm cpu0", a["cpu0"], 0.75)
	near("vm vif_0_rx", a["vif_0_rx"], 1000)
	near("vm vif_0_tx (counter reset)", a["vif_0_tx"], 0)
	near("vm vbd_xvda_read", a["vbd_xvda_read"], 2048)
	near("vm memory_internal_free", a["memory_internal_free"], 512*1024)
	if _, ok := vms["b"]["cpu0"]; ok {
		t.Error("a domain without a previous sample has no rate yet")
	}
	if _, ok := vms["b"]["memory_internal_free"]; ok {
		t.Error("memory_internal_free reported without a guest agent")
	}
}
