package rrd

import (
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"
)

// t0 is a multiple of every archive step (a UTC midnight).
const t0 = 1_728_000_000

func at(sec int) time.Time { return time.Unix(t0+int64(sec), 0) }

func mustNew(t testing.TB, o Options) *RRD {
	t.Helper()
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// rowValue returns data source j of row k (0 = newest) of an archive.
func rowValue(t *testing.T, r *RRD, step int, cf CF, k, j int) (time.Time, float64) {
	t.Helper()
	rows, ok := r.Rows(step, cf, 0)
	if !ok {
		t.Fatalf("no archive step=%d cf=%v", step, cf)
	}
	return rows[k].Time, rows[k].Values[j]
}

func near(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= 1e-5*math.Max(1, math.Abs(b))
}

func TestAppendValue(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0.0"},
		{math.Copysign(0, -1), "0.0"},
		{math.NaN(), "NaN"},
		{math.Inf(1), "Infinity"},
		{math.Inf(-1), "-Infinity"},
		{0.0282, "0.0282"},
		{1, "1"},
		{1.5, "1.5"},
		{-2.5, "-2.5"},
		{300, "300"},
		{12345, "12345"},
		{123456, "1.2346e+05"},
		{100000, "1e+05"},
		{1573600, "1.5736e+06"},
		{0.0001, "0.0001"},
		{0.00001234, "1.234e-05"},
		{float64(float32(0.1)), "0.1"},
		{float64(float32(0.13)), "0.13"},
		{1e300, "1e+300"},
		{5e-324, "4.9407e-324"},
	} {
		if got := FormatValue(tc.in); got != tc.want {
			t.Errorf("FormatValue(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseCF(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want CF
		ok   bool
	}{
		{"AVERAGE", Average, true}, {"MIN", Min, true}, {"MAX", Max, true},
		{"average", 0, false}, {"LAST", 0, false}, {"", 0, false},
	} {
		got, err := ParseCF(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseCF(%q) = %v, %v", tc.in, got, err)
		}
		if tc.ok && got.String() != tc.in {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
}

func TestLayoutValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    []Archive
		ok   bool
	}{
		{"default", DefaultLayout(false), true},
		{"minmax", DefaultLayout(true), true},
		{"empty", []Archive{}, false},
		{"zero step", []Archive{{Step: 0, Rows: 1}}, false},
		{"zero rows", []Archive{{Step: 1, Rows: 0}}, false},
		{"xff", []Archive{{Step: 1, Rows: 1, XFF: 2}}, false},
		{"order", []Archive{{Step: 5, Rows: 1}, {Step: 1, Rows: 1}}, false},
	} {
		_, err := New(Options{Layout: tc.l})
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
}

// TestConsolidation feeds one gauge sample per second and checks every
// archive step and CF against values computed from the samples.
func TestConsolidation(t *testing.T) {
	r := mustNew(t, Options{Layout: DefaultLayout(true)})
	f := func(i int) float64 { return float64((i*37)%101) + 0.25 }
	r.Add(at(0), map[string]float64{"x": f(0)})
	const n = 2 * 3600
	for i := 1; i <= n; i++ {
		r.Add(at(i), map[string]float64{"x": f(i)})
	}
	agg := func(lo, hi int) (avg, mn, mx float64) {
		mn, mx = math.Inf(1), math.Inf(-1)
		for i := lo; i <= hi; i++ {
			avg += f(i)
			mn = math.Min(mn, f(i))
			mx = math.Max(mx, f(i))
		}
		return avg / float64(hi-lo+1), mn, mx
	}
	for _, tc := range []struct {
		step, k int
	}{
		{1, 0}, {1, 17}, {5, 0}, {5, 3}, {5, 119}, {60, 0}, {60, 59}, {3600, 0}, {3600, 1},
	} {
		end := n - tc.k*tc.step
		wantAvg, wantMin, wantMax := agg(end-tc.step+1, end)
		for _, c := range []struct {
			cf   CF
			want float64
		}{{Average, wantAvg}, {Min, wantMin}, {Max, wantMax}} {
			if tc.step < 60 && c.cf != Average {
				continue
			}
			ts, got := rowValue(t, r, tc.step, c.cf, tc.k, 0)
			if ts.Unix() != int64(t0+end) {
				t.Errorf("step %d row %d: time %d, want %d", tc.step, tc.k, ts.Unix(), t0+end)
			}
			if !near(got, c.want) {
				t.Errorf("step %d row %d %v = %v, want %v", tc.step, tc.k, c.cf, got, c.want)
			}
		}
	}
	// The hour archive has only two complete rows; older ones are unknown.
	if _, v := rowValue(t, r, 3600, Average, 2, 0); !math.IsNaN(v) {
		t.Errorf("hour row 2 = %v, want NaN", v)
	}
	if v, ok := r.Latest("x"); !ok || !near(v, f(n)) {
		t.Errorf("Latest = %v %v, want %v", v, ok, f(n))
	}
}

// TestRates checks Derive, Absolute and irregular Gauge sampling.
func TestRates(t *testing.T) {
	r := mustNew(t, Options{})
	r.Define(
		DataSource{Name: "rx", Type: Derive, Min: 0, Max: math.Inf(1), Units: "B/s"},
		DataSource{Name: "abs", Type: Absolute},
		DataSource{Name: "g", Type: Gauge},
	)
	r.Add(at(0), map[string]float64{"rx": 5000, "abs": 0, "g": 1})
	// Samples every 2 s: counter +300 per 2 s = 150/s; absolute 40 per 2 s = 20/s.
	for i := 2; i <= 20; i += 2 {
		r.Add(at(i), map[string]float64{"rx": 5000 + 150*float64(i), "abs": 40, "g": float64(i)})
	}
	// 5 s row ending at 20 covers (15, 20]: gauge value 16 for (14,16], 18, 20.
	for _, tc := range []struct {
		j    int
		want float64
	}{{0, 150}, {1, 20}, {2, (16 + 18*2 + 20*2) / 5.0}} {
		if _, v := rowValue(t, r, 5, Average, 0, tc.j); !near(v, tc.want) {
			t.Errorf("ds %d = %v, want %v", tc.j, v, tc.want)
		}
	}
	// A counter going backwards gives a negative rate, below Min: unknown.
	r.Add(at(21), map[string]float64{"rx": 0, "abs": 20, "g": 1})
	if _, v := rowValue(t, r, 1, Average, 0, 0); !math.IsNaN(v) {
		t.Errorf("counter reset = %v, want NaN", v)
	}
	ds := r.DataSources()
	if len(ds) != 3 || ds[0].Type != Derive || ds[0].Units != "B/s" || !math.IsInf(ds[1].Max, 1) {
		t.Errorf("DataSources = %+v", ds)
	}
}

// TestMissingSamples checks NaN PDPs, the XFF rule and heartbeat gaps.
func TestMissingSamples(t *testing.T) {
	r := mustNew(t, Options{})
	r.Add(at(0), map[string]float64{"a": 1, "b": 1})
	for i := 1; i <= 10; i++ {
		v := map[string]float64{"a": float64(i)}
		// b is missing for 2 s of the first 5 s row and 3 s of the second.
		if i != 2 && i != 4 && i != 6 && i != 7 && i != 9 {
			v["b"] = float64(i)
		}
		if i == 5 {
			v["b"] = math.NaN() // a NaN value is unknown too
		}
		r.Add(at(i), v)
	}
	// Row (0,5] of b: known 1, 3; unknown 2, 4, 5 → 3 unknown → NaN.
	// Row (5,10] of b: known 8, 10; unknown 6, 7, 9 → NaN.
	for k := 0; k < 2; k++ {
		if _, v := rowValue(t, r, 5, Average, k, 1); !math.IsNaN(v) {
			t.Errorf("b row %d = %v, want NaN", k, v)
		}
	}
	r.Add(at(11), map[string]float64{"a": 11, "b": 11})
	r.Add(at(12), map[string]float64{"a": 12})
	r.Add(at(13), map[string]float64{"a": 13, "b": 13})
	r.Add(at(14), map[string]float64{"a": 14})
	r.Add(at(15), map[string]float64{"a": 15, "b": 15})
	// Row (10,15] of b: known 11, 13, 15; 2 unknown ≤ 2 → average of known.
	if _, v := rowValue(t, r, 5, Average, 0, 1); !near(v, 13) {
		t.Errorf("b row (10,15] = %v, want 13", v)
	}
	if _, v := rowValue(t, r, 5, Average, 0, 0); !near(v, 13) {
		t.Errorf("a row (10,15] = %v, want 13", v)
	}
	// A gap longer than the heartbeat: every PDP of the gap is unknown.
	r.Add(at(15+400), map[string]float64{"a": 1, "b": 1})
	r.Add(at(15+401), map[string]float64{"a": 1, "b": 1})
	rows, _ := r.Rows(1, Average, 0)
	if !near(rows[0].Values[0], 1) {
		t.Errorf("after gap: %v, want 1", rows[0].Values[0])
	}
	for k := 1; k <= 400; k++ {
		if !math.IsNaN(rows[k].Values[0]) {
			t.Fatalf("gap row %d = %v, want NaN", k, rows[k].Values[0])
		}
	}
	if !near(rows[401].Values[0], 15) {
		t.Errorf("before gap: %v, want 15", rows[401].Values[0])
	}
	// Out-of-order samples are dropped.
	if r.Add(at(10), map[string]float64{"a": 99}) {
		t.Error("Add accepted an old sample")
	}
}

// TestShortGap: a gap within the heartbeat gives each PDP the interval's value.
func TestShortGap(t *testing.T) {
	r := mustNew(t, Options{})
	r.Add(at(0), map[string]float64{"g": 0})
	r.Add(at(1), map[string]float64{"g": 2})
	r.Add(at(31), map[string]float64{"g": 7})
	rows, _ := r.Rows(1, Average, 31)
	for k := 0; k < 30; k++ {
		if !near(rows[k].Values[0], 7) {
			t.Fatalf("row %d = %v, want 7", k, rows[k].Values[0])
		}
	}
	if !near(rows[30].Values[0], 2) {
		t.Errorf("row 30 = %v, want 2", rows[30].Values[0])
	}
}

func TestWraparound(t *testing.T) {
	for _, tc := range []struct {
		name    string
		samples int
		rows    int
	}{
		{"partial", 2, 4},
		{"exact", 4, 4},
		{"wrapped", 11, 4},
		{"huge gap", 3, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustNew(t, Options{Layout: []Archive{{CF: Average, Step: 1, Rows: tc.rows, XFF: 0.5}}, Heartbeat: time.Hour})
			r.Add(at(0), nil)
			last := 0
			for i := 1; i <= tc.samples; i++ {
				last = i
				if tc.name == "huge gap" && i == tc.samples {
					last = 3000 // 3000 PDPs in one update, far more than the rows
				}
				r.Add(at(last), map[string]float64{"v": float64(i)})
			}
			rows, _ := r.Rows(1, Average, 0)
			if len(rows) != tc.rows {
				t.Fatalf("%d rows", len(rows))
			}
			for k, row := range rows {
				if row.Time.Unix() != int64(t0+last-k) {
					t.Errorf("row %d time %d", k, row.Time.Unix()-t0)
				}
				want := math.NaN()
				switch {
				case tc.name == "huge gap":
					want = float64(tc.samples)
				case k < tc.samples:
					want = float64(tc.samples - k)
				}
				if !near(row.Values[0], want) {
					t.Errorf("row %d = %v, want %v", k, row.Values[0], want)
				}
			}
		})
	}
}

// TestNewDataSource: a source appearing mid-way has unknown history, and
// the PDPs of the current row before it appeared count as unknown.
func TestNewDataSource(t *testing.T) {
	r := mustNew(t, Options{})
	r.Add(at(0), map[string]float64{"cpu0": 0.5})
	for i := 1; i <= 12; i++ {
		v := map[string]float64{"cpu0": 0.5}
		if i >= 7 {
			v["vif_1_rx"] = float64(i)
		}
		r.Add(at(i), v)
	}
	names := []string{}
	for _, d := range r.DataSources() {
		names = append(names, d.Name)
	}
	if len(names) != 2 || names[1] != "vif_1_rx" {
		t.Fatalf("sources %v", names)
	}
	// 5 s rows: (5,10] has PDP 6 from before the source → 1 unknown → mean of 7..10.
	if _, v := rowValue(t, r, 5, Average, 0, 1); !near(v, 8.5) {
		t.Errorf("row (5,10] = %v, want 8.5", v)
	}
	if _, v := rowValue(t, r, 5, Average, 1, 1); !math.IsNaN(v) {
		t.Errorf("row (0,5] = %v, want NaN", v)
	}
	if _, v := rowValue(t, r, 5, Average, 0, 0); !near(v, 0.5) {
		t.Errorf("cpu0 = %v (history must survive the slab growth)", v)
	}
	if _, v := rowValue(t, r, 1, Average, 0, 1); !near(v, 12) {
		t.Errorf("1 s newest = %v, want 12", v)
	}
	// The minute row in progress has 6 unknown PDPs: it completes known.
	for i := 13; i <= 60; i++ {
		r.Add(at(i), map[string]float64{"cpu0": 0.5, "vif_1_rx": 1})
	}
	want := (7.0 + 8 + 9 + 10 + 11 + 12 + 48*1) / 54
	if _, v := rowValue(t, r, 60, Average, 0, 1); !near(v, want) {
		t.Errorf("minute row = %v, want %v", v, want)
	}
}

func TestRemoveAndStale(t *testing.T) {
	r := mustNew(t, Options{StaleAfter: 10 * time.Second})
	r.Add(at(0), map[string]float64{"a": 1, "b": 2, "c": 3})
	for i := 1; i <= 5; i++ {
		r.Add(at(i), map[string]float64{"a": 1, "b": 2, "c": 3})
	}
	if !r.RemoveDS("b") || r.RemoveDS("b") {
		t.Fatal("RemoveDS")
	}
	if _, v := rowValue(t, r, 5, Average, 0, 1); !near(v, 3) {
		t.Errorf("c after removing b = %v", v)
	}
	for i := 6; i <= 20; i++ {
		r.Add(at(i), map[string]float64{"a": 1})
	}
	ds := r.DataSources()
	if len(ds) != 1 || ds[0].Name != "a" {
		t.Errorf("after stale expiry: %+v", ds)
	}
	never := mustNew(t, Options{StaleAfter: -1})
	never.Add(at(0), map[string]float64{"a": 1, "b": 1})
	never.Add(at(100000), map[string]float64{"a": 1})
	if len(never.DataSources()) != 2 {
		t.Error("StaleAfter < 0 removed a source")
	}
}

func TestDefineUpdatesBounds(t *testing.T) {
	r := mustNew(t, Options{})
	r.Add(at(0), map[string]float64{"cpu0": 0.5})
	r.Define(DataSource{Name: "cpu0", Min: 0, Max: 1, Units: "(fraction)"})
	r.Define(DataSource{Name: "n"}, DataSource{Name: "n"})
	r.Add(at(1), map[string]float64{"cpu0": 1.5, "n": 1})
	if _, v := rowValue(t, r, 1, Average, 0, 0); !math.IsNaN(v) {
		t.Errorf("out of bounds value = %v, want NaN", v)
	}
	if len(r.DataSources()) != 2 {
		t.Error("Define duplicated a source")
	}
}

// TestConcurrent runs a writer and readers together (meaningful with -race).
func TestConcurrent(t *testing.T) {
	s := NewStore(StoreOptions{})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; i < 300; i++ {
			s.AddHost(at(i), map[string]float64{"cpu0": 0.1})
			for v := 0; v < 20; v++ {
				vals := map[string]float64{"cpu0": 0.2}
				if i > 100 {
					vals["vif_0_rx"] = float64(i)
				}
				s.AddVM(string(rune('a'+v)), at(i), vals)
			}
			if i == 200 {
				s.RemoveVM("c")
			}
		}
		close(stop)
	})
	for range 3 {
		wg.Go(func() {
			var sink countWriter
			for {
				select {
				case <-stop:
					return
				default:
				}
				q := UpdatesQuery{RelativeStart: -30, Host: true, Interval: 5}
				if err := s.WriteUpdates(&sink, q, "h"); err != nil {
					t.Error(err)
					return
				}
				q.JSON = true
				_ = s.WriteUpdates(&sink, q, "h")
				_ = s.WriteHostRRD(&sink, false)
				_ = s.WriteVMRRD(&sink, "a", true)
			}
		})
	}
	wg.Wait()
}

type countWriter struct{ n int }

func (c *countWriter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

// TestAppendG5 checks the fast formatter against strconv's %.5g.
func TestAppendG5(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(v float64) {
		if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return
		}
		want := strconv.FormatFloat(v, 'g', 5, 64)
		if got := string(AppendValue(nil, v)); got != want {
			t.Fatalf("%v (%b): got %q, want %q", v, v, got, want)
		}
	}
	for _, v := range []float64{1, 9.99995, 9.99994, 99999.5, 99999.4, 0.000099999, 0.0001, 1e-5, 12345.5, 12344.5,
		1.00005, 0.5, 2.5e-5, 123456789, 1e22, 1e23, 1e-22, 1e-30, 5e-324, math.MaxFloat64, math.SmallestNonzeroFloat32} {
		check(v)
		check(-v)
	}
	n := 2_000_000
	if testing.Short() {
		n = 100_000
	}
	for range n {
		check(float64(math.Float32frombits(rng.Uint32())))
		check(math.Float64frombits(rng.Uint64()))
		check(float64(float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(24)-12)))))
		check(float64(rng.IntN(2_000_000)) / float64(int(1)<<rng.IntN(12)))
	}
}
