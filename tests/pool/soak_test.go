package pool_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestElectionStability runs a 3-host pool under a steady write load on a
// busy machine for XAPI_POOL_ELECTION_SOAK (a duration, e.g. 10m; skipped
// when unset) and fails if the pool held a single leader election after it
// formed. It checks that the raft timeouts (store.Config) are not so short
// that a loaded machine makes followers time out their leader.
//
// Load: XAPI_POOL_ELECTION_CLIENTS clients (default 16), each writing a
// 64-byte network.set_name_description on its own network through the
// master as fast as it is answered (following HOST_IS_SLAVE), plus
// XAPI_POOL_ELECTION_BURN goroutines spinning on the CPU (default: one per
// CPU) so the hosts compete for the cores.
//
// Elections are counted two ways: every 100 ms each host is asked for
// pool.get_master (a change of master on any host is an election), and at
// the end each host's log since the load started is searched for raft's
// "entering candidate state" and "entering leader state" lines (which also
// catch an election the old leader won again).
//
//	make pool-election-soak                      # 10 minutes
//	XAPI_POOL_ELECTION_SOAK=2m go test -count=1 -timeout 30m -v -run TestElectionStability ./tests/pool/
func TestElectionStability(t *testing.T) {
	v := os.Getenv("XAPI_POOL_ELECTION_SOAK")
	if v == "" {
		t.Skip("set XAPI_POOL_ELECTION_SOAK to a duration (e.g. 10m) to run")
	}
	dur, err := time.ParseDuration(v)
	if err != nil || dur <= 0 {
		t.Fatalf("XAPI_POOL_ELECTION_SOAK=%q: want a positive duration", v)
	}
	clients := envInt("XAPI_POOL_ELECTION_CLIENTS", 16)
	burners := runtime.NumCPU()
	if b, err := strconv.Atoi(os.Getenv("XAPI_POOL_ELECTION_BURN")); err == nil && b >= 0 {
		burners = b
	}

	c := newCluster(t, 3)
	ctx := context.Background()
	m, err := c.master(ctx)
	if err != nil {
		t.Fatal(err)
	}
	murl := c.hosts[m].url
	sess, err := login(ctx, murl)
	if err != nil {
		t.Fatal(err)
	}
	nets := make([]string, clients)
	for k := range nets {
		if err := callInto(ctx, murl, &nets[k], "network.create", sess, map[string]any{
			"name_label": fmt.Sprintf("soak-%d", k), "name_description": "init", "MTU": 1500, "other_config": map[string]string{},
		}); err != nil {
			t.Fatalf("network.create: %v", err)
		}
	}
	// Pool sessions on every host, for pool.get_master.
	var pool string
	var pools []string
	if err := callInto(ctx, murl, &pools, "pool.get_all", sess); err != nil || len(pools) != 1 {
		t.Fatalf("pool.get_all: %v %v", pools, err)
	}
	pool = pools[0]
	psess := make([]string, len(c.hosts))
	initial := make([]string, len(c.hosts))
	for i, h := range c.hosts {
		if psess[i], err = c.slaveLogin(ctx, h.url); err != nil {
			t.Fatalf("session.slave_login on host%d: %v", i+1, err)
		}
		if err := callInto(ctx, h.url, &initial[i], "pool.get_master", psess[i], pool); err != nil {
			t.Fatalf("pool.get_master on host%d: %v", i+1, err)
		}
	}
	for i := range initial {
		if initial[i] != initial[0] {
			t.Fatalf("hosts disagree on the master before the load: %v", initial)
		}
	}

	// Where each log stands now: only lines written from here on count.
	offsets := make([]int64, len(c.hosts))
	for i, h := range c.hosts {
		if st, err := os.Stat(h.logPath); err == nil {
			offsets[i] = st.Size()
		}
	}
	cpu0 := readCPU()
	proc0 := make([]float64, len(c.hosts))
	for i := range c.hosts {
		proc0[i] = c.procCPUSeconds(i)
	}

	lctx, stop := context.WithTimeout(ctx, dur)
	defer stop()
	start := time.Now()
	var wg sync.WaitGroup

	// CPU burners.
	for range burners {
		wg.Go(func() {
			x := uint64(1)
			for lctx.Err() == nil {
				for range 1 << 16 {
					x = x*6364136223846793005 + 1442695040888963407
				}
			}
			_ = x
		})
	}

	// Writers.
	var writes, errs atomic.Int64
	var errMu sync.Mutex
	errKinds := map[string]int{}
	var lats []time.Duration
	var latMu sync.Mutex
	for k := range clients {
		wg.Go(func() {
			url, s := "", ""
			var mine []time.Duration
			next := k
			val := fmt.Sprintf("%-64s", "")
			for seq := 0; lctx.Err() == nil; seq++ {
				if s == "" {
					url, s = c.connectMaster(lctx, &next)
					if s == "" {
						time.Sleep(50 * time.Millisecond)
						continue
					}
				}
				v := fmt.Sprintf("c%02d-%d", k, seq)
				v += val[len(v):]
				t0 := time.Now()
				_, err := call(lctx, url, "network.set_name_description", s, nets[k], v)
				if err == nil {
					writes.Add(1)
					mine = append(mine, time.Since(t0))
					continue
				}
				if lctx.Err() != nil {
					break
				}
				errs.Add(1)
				errMu.Lock()
				errKinds[errKind(err)]++
				errMu.Unlock()
				s = ""
			}
			latMu.Lock()
			lats = append(lats, mine...)
			latMu.Unlock()
		})
	}

	// Master watcher: every 100 ms, every host's view of pool.get_master.
	type change struct {
		at       time.Duration
		host     int
		from, to string
	}
	var changes []change
	pollErrs := 0
	wg.Go(func() {
		last := slices.Clone(initial)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-tick.C:
			}
			for i, h := range c.hosts {
				cctx, cancel := context.WithTimeout(lctx, 5*time.Second)
				var got string
				err := callInto(cctx, h.url, &got, "pool.get_master", psess[i], pool)
				cancel()
				if err != nil {
					if lctx.Err() == nil {
						pollErrs++
						t.Logf("%s: pool.get_master on host%d: %v", time.Since(start).Round(time.Millisecond), i+1, err)
					}
					continue
				}
				if got != last[i] {
					changes = append(changes, change{at: time.Since(start), host: i, from: last[i], to: got})
					t.Logf("%s: host%d: master changed %s -> %s", time.Since(start).Round(time.Millisecond), i+1, last[i], got)
					last[i] = got
				}
			}
		}
	})

	// Progress every minute.
	wg.Go(func() {
		tick := time.NewTicker(time.Minute)
		defer tick.Stop()
		prev := int64(0)
		for {
			select {
			case <-lctx.Done():
				return
			case <-tick.C:
			}
			w := writes.Load()
			la, _ := os.ReadFile("/proc/loadavg")
			t.Logf("%s: %d writes (%.0f/s over the last minute), %d errors, loadavg %s",
				time.Since(start).Round(time.Second), w, float64(w-prev)/60, errs.Load(), strings.TrimSpace(string(la)))
			prev = w
		}
	})

	wg.Wait()
	elapsed := time.Since(start)
	cpu1 := readCPU()
	la, _ := os.ReadFile("/proc/loadavg")

	// Raft's own account of elections, per host.
	var candidate, leader, hbTimeout [3]int
	totalElections := 0
	terms := map[string]bool{} // raft terms in which some host stood for election
	for i, h := range c.hosts {
		b, err := os.ReadFile(h.logPath)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) < offsets[i] {
			offsets[i] = 0
		}
		for line := range strings.SplitSeq(string(b[offsets[i]:]), "\n") {
			switch {
			case strings.Contains(line, "entering candidate state"):
				candidate[i]++
				if _, after, ok := strings.Cut(line, " term="); ok {
					terms[strings.Fields(after)[0]] = true
				}
				t.Logf("host%d: %s", i+1, line)
			case strings.Contains(line, "entering leader state"):
				leader[i]++
				t.Logf("host%d: %s", i+1, line)
			case strings.Contains(line, "heartbeat timeout reached"):
				hbTimeout[i]++
				t.Logf("host%d: %s", i+1, line)
			}
		}
		totalElections += candidate[i]
	}

	slices.Sort(lats)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	busy := cpu1.busyFraction(cpu0)
	var procs []string
	for i := range c.hosts {
		procs = append(procs, fmt.Sprintf("host%d %.0f%%", i+1, 100*(c.procCPUSeconds(i)-proc0[i])/elapsed.Seconds()))
	}
	w := writes.Load()
	t.Logf("load: %s, %d clients, %d CPU burners, %d CPUs", elapsed.Round(time.Second), clients, burners, runtime.NumCPU())
	t.Logf("writes: %d acknowledged, %.0f writes/s, %d errors %v", w, float64(w)/elapsed.Seconds(), errs.Load(), errKinds)
	if len(lats) > 0 {
		t.Logf("write latency: p50 %.2f ms, p99 %.2f ms, max %.2f ms",
			ms(percentile(lats, 0.50)), ms(percentile(lats, 0.99)), ms(lats[len(lats)-1]))
	}
	t.Logf("cpu: machine %.1f%% busy over the run, loadavg at the end %s; xapid processes (100%% = one core): %s",
		100*busy, strings.TrimSpace(string(la)), strings.Join(procs, ", "))
	var perHost [3]int
	for _, ch := range changes {
		perHost[ch.host]++
	}
	t.Logf("elections: master changes seen by pool.get_master polls per host: %v (poll errors %d); raft terms with an election: %d; raft log lines per host: candidate %v, leader %v, heartbeat timeout %v",
		perHost, pollErrs, len(terms), candidate, leader, hbTimeout)
	if w == 0 {
		t.Error("no write was acknowledged")
	}
	if len(changes) > 0 || totalElections > 0 || leader != [3]int{} {
		t.Errorf("master changed %d times (max over hosts), %d candidate and %v leader transitions after the pool formed; want none",
			slices.Max(perHost[:]), totalElections, leader)
	}
}

// connectMaster logs in at host *next (then the following ones), following
// HOST_IS_SLAVE to the master; it returns the master's URL and a session, or
// "" if no host answered.
func (c *cluster) connectMaster(ctx context.Context, next *int) (string, string) {
	for range len(c.hosts) {
		h := c.hosts[*next%len(c.hosts)]
		*next++
		s, err := login(ctx, h.url)
		if err == nil {
			return h.url, s
		}
		var f *fault
		if errors.As(err, &f) && f.Code == "HOST_IS_SLAVE" && len(f.Params) > 0 {
			url := fmt.Sprintf("http://%s:%d", f.Params[0], c.port)
			if s, err := login(ctx, url); err == nil {
				return url, s
			}
		}
	}
	return "", ""
}

// procCPUSeconds is the user+system CPU time host i's process has used
// (0 if unknown).
func (c *cluster) procCPUSeconds(i int) float64 {
	h := c.hosts[i]
	h.mu.Lock()
	cmd := h.cmd
	h.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return 0
	}
	s := string(b)
	// fields after the command name, which is in parentheses
	j := strings.LastIndexByte(s, ')')
	if j < 0 {
		return 0
	}
	f := strings.Fields(s[j+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// cpuTimes is the "cpu" line of /proc/stat.
type cpuTimes struct{ busy, total float64 }

func readCPU() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var ct cpuTimes
	for i, x := range f[1:] {
		v, _ := strconv.ParseFloat(x, 64)
		if i >= 8 { // guest time is counted in user already
			break
		}
		ct.total += v
		if i != 3 && i != 4 { // idle, iowait
			ct.busy += v
		}
	}
	return ct
}

func (ct cpuTimes) busyFraction(before cpuTimes) float64 {
	if ct.total <= before.total {
		return 0
	}
	return (ct.busy - before.busy) / (ct.total - before.total)
}
