package pool_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// TestHostIsSlave: a member refuses a login with HOST_IS_SLAVE [master
// address], and a login at that address works (what XO and XenCenter do).
func TestHostIsSlave(t *testing.T) {
	c := newCluster(t, 2)
	ctx := context.Background()
	_, err := login(ctx, c.hosts[1].url)
	var f *fault
	if !errors.As(err, &f) || f.Code != "HOST_IS_SLAVE" {
		t.Fatalf("login on the member: got %v, want HOST_IS_SLAVE", err)
	}
	if len(f.Params) != 1 || f.Params[0] != c.hosts[0].ip {
		t.Fatalf("HOST_IS_SLAVE params = %q, want [%s]", f.Params, c.hosts[0].ip)
	}
	url := fmt.Sprintf("http://%s:%d", f.Params[0], c.port)
	sess, err := login(ctx, url)
	if err != nil {
		t.Fatalf("login at the address HOST_IS_SLAVE named (%s): %v", url, err)
	}
	var hosts []string
	if err := callInto(ctx, url, &hosts, "host.get_all", sess); err != nil || len(hosts) != 2 {
		t.Fatalf("host.get_all on the master: %v, %d hosts", err, len(hosts))
	}
	// a pool session works on the member, and the member sees the pool
	ms, err := c.slaveLogin(ctx, c.hosts[1].url)
	if err != nil {
		t.Fatalf("session.slave_login on the member: %v", err)
	}
	var mhosts []string
	if err := callInto(ctx, c.hosts[1].url, &mhosts, "host.get_all", ms); err != nil || len(mhosts) != 2 {
		t.Fatalf("host.get_all on the member: %v, %d hosts", err, len(mhosts))
	}
}

// TestJoinResume: a host killed (kill -9) right after pool.join answered,
// while it restarts as a member, resumes the join when started again.
func TestJoinResume(t *testing.T) {
	c := startHosts(t, 2)
	c.join(1, "--wait", "0")
	c.kill9(1)
	c.start(1)
	c.settle()
	var f *fault
	if _, err := login(context.Background(), c.hosts[1].url); !errors.As(err, &f) || f.Code != "HOST_IS_SLAVE" {
		t.Fatalf("login on the joined host: %v, want HOST_IS_SLAVE", err)
	}
	if _, err := os.Stat(filepath.Join(c.hosts[1].dataDir, "pending-join.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pending-join marker still there after the join completed (%v)", err)
	}
}

// TestEject: pool.eject of a member makes it restart (in the same process)
// as a one-host pool of its own; the pool forgets it.
func TestEject(t *testing.T) {
	c := newCluster(t, 2)
	ctx := context.Background()
	sess, err := login(ctx, c.hosts[0].url)
	if err != nil {
		t.Fatal(err)
	}
	var member string
	var hosts map[string]struct {
		Address string `json:"address"`
	}
	if err := callInto(ctx, c.hosts[0].url, &hosts, "host.get_all_records", sess); err != nil {
		t.Fatal(err)
	}
	for ref, h := range hosts {
		if h.Address == c.hosts[1].ip {
			member = ref
		}
	}
	if member == "" {
		t.Fatalf("no host with address %s: %v", c.hosts[1].ip, hosts)
	}
	if _, err := call(ctx, c.hosts[0].url, "pool.eject", sess, member); err != nil {
		t.Fatalf("pool.eject: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		s2, err := login(ctx, c.hosts[1].url)
		if err == nil {
			var hs []string
			if err := callInto(ctx, c.hosts[1].url, &hs, "host.get_all", s2); err != nil || len(hs) != 1 {
				t.Fatalf("ejected host: host.get_all = %v, %v; want its own host only", hs, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ejected host does not accept logins as a master: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !c.running(1) {
		t.Fatal("the ejected host's process exited")
	}
	var left []string
	if err := callInto(ctx, c.hosts[0].url, &left, "host.get_all", sess); err != nil || len(left) != 1 {
		t.Fatalf("pool after eject: host.get_all = %v, %v; want 1 host", left, err)
	}
}

// regInput is one operation on the registers: a read or a write of key.
type regInput struct {
	Key   int
	Write bool
	Value string
}

// registerModel: each key is a register (network.name_description of one
// network), initially "init".
var registerModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[int][]porcupine.Operation{}
		for _, op := range h {
			k := op.Input.(regInput).Key
			by[k] = append(by[k], op)
		}
		keys := make([]int, 0, len(by))
		for k := range by {
			keys = append(keys, k)
		}
		sort.Ints(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return "init" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(regInput)
		if in.Write {
			return true, in.Value
		}
		return output.(string) == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(regInput)
		if in.Write {
			return fmt.Sprintf("k%d := %s", in.Key, in.Value)
		}
		return fmt.Sprintf("k%d -> %v", in.Key, output)
	},
}

// recorder collects the history of the register operations and the outcome
// of the adds (pool.add_to_other_config of distinct keys).
type recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
	// adds: key → acknowledged (true) or outcome unknown (false)
	adds      map[string]bool
	anomalies []string
	acked     int
	unknown   int
	failed    int
}

func (r *recorder) now() int64 { return time.Since(r.start).Nanoseconds() }

func (r *recorder) op(client int, in regInput, call, ret int64, out string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
}

func (r *recorder) anomaly(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.anomalies = append(r.anomalies, fmt.Sprintf(format, args...))
}

// outcome classifies a failed write: applied surely not, or maybe.
type outcome int

const (
	acked outcome = iota
	notApplied
	unknown
)

func classify(err error) outcome {
	if err == nil {
		return acked
	}
	var f *fault
	if errors.As(err, &f) {
		switch f.Code {
		case "HOST_IS_SLAVE", "HOST_STILL_BOOTING", "SESSION_INVALID", "SESSION_AUTHENTICATION_FAILED":
			return notApplied
		}
		return unknown
	}
	if isDialError(err) {
		return notApplied
	}
	return unknown
}

// workload is what the clients write to.
type workload struct {
	c    *cluster
	rec  *recorder
	nets []string // network refs, one per register
	pool string
}

// poolClient is one client of the pool. A master client follows
// HOST_IS_SLAVE and reads and writes on the master; a member client writes
// through a member (which forwards to the master) and does not read (a
// member's reads may lag, so they are not part of the linearizable history).
type poolClient struct {
	id     int
	w      *workload
	member bool
	url    string
	sess   string
	next   int // host to try next
	seq    int
}

// connect finds a host to talk to; it reports whether it found one.
func (pc *poolClient) connect(ctx context.Context) bool {
	c := pc.w.c
	pc.sess, pc.url = "", ""
	for range len(c.hosts) {
		h := c.hosts[pc.next%len(c.hosts)]
		pc.next++
		s, err := login(ctx, h.url)
		var f *fault
		switch {
		case err == nil && !pc.member:
			pc.url, pc.sess = h.url, s
			return true
		case errors.As(err, &f) && f.Code == "HOST_IS_SLAVE" && len(f.Params) > 0:
			if pc.member {
				s, err := c.slaveLogin(ctx, h.url)
				if err == nil {
					pc.url, pc.sess = h.url, s
					return true
				}
				continue
			}
			url := fmt.Sprintf("http://%s:%d", f.Params[0], c.port)
			if s, err := login(ctx, url); err == nil {
				pc.url, pc.sess = url, s
				return true
			}
		}
	}
	return false
}

func (pc *poolClient) run(ctx context.Context) {
	rec := pc.w.rec
	for ctx.Err() == nil {
		if pc.sess == "" && !pc.connect(ctx) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		key := rand.IntN(len(pc.w.nets))
		r := rand.Float64()
		var err error
		switch {
		case r < 0.4 && !pc.member:
			begin := rec.now()
			var v string
			err = callInto(ctx, pc.url, &v, "network.get_name_description", pc.sess, pc.w.nets[key])
			if err == nil {
				rec.op(pc.id, regInput{Key: key}, begin, rec.now(), v)
			}
		case r < 0.8:
			pc.seq++
			v := fmt.Sprintf("c%d-%d", pc.id, pc.seq)
			begin := rec.now()
			_, err = call(ctx, pc.url, "network.set_name_description", pc.sess, pc.w.nets[key], v)
			ret := rec.now()
			switch classify(err) {
			case acked:
				rec.op(pc.id, regInput{Key: key, Write: true, Value: v}, begin, ret, "")
				rec.count(acked)
			case unknown:
				// it may take effect at any time from now on
				rec.op(pc.id, regInput{Key: key, Write: true, Value: v}, begin, math.MaxInt64, "")
				rec.count(unknown)
			default:
				rec.count(notApplied)
			}
		default:
			pc.seq++
			k := fmt.Sprintf("add-c%d-%d", pc.id, pc.seq)
			_, err = call(ctx, pc.url, "pool.add_to_other_config", pc.sess, pc.w.pool, k, "1")
			var f *fault
			if errors.As(err, &f) && f.Code == "MAP_DUPLICATE_KEY" {
				rec.anomaly("pool.add_to_other_config %s (sent once) answered MAP_DUPLICATE_KEY", k)
			}
			switch classify(err) {
			case acked:
				rec.add(k, true)
				rec.count(acked)
			case unknown:
				rec.add(k, false)
				rec.count(unknown)
			default:
				rec.count(notApplied)
			}
		}
		if err != nil && ctx.Err() == nil {
			pc.sess = ""
		}
		time.Sleep(time.Duration(5+rand.IntN(10)) * time.Millisecond)
	}
}

func (r *recorder) add(k string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.adds[k] = ok
}

func (r *recorder) count(o outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch o {
	case acked:
		r.acked++
	case unknown:
		r.unknown++
	default:
		r.failed++
	}
}

// setupWorkload creates the registers.
func setupWorkload(t *testing.T, c *cluster, keys int) *workload {
	ctx := context.Background()
	m, err := c.master(ctx)
	if err != nil {
		t.Fatal(err)
	}
	url := c.hosts[m].url
	sess, err := login(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	w := &workload{c: c, rec: &recorder{start: time.Now(), adds: map[string]bool{}}}
	var pools []string
	if err := callInto(ctx, url, &pools, "pool.get_all", sess); err != nil || len(pools) != 1 {
		t.Fatalf("pool.get_all: %v %v", pools, err)
	}
	w.pool = pools[0]
	for k := range keys {
		var ref string
		if err := callInto(ctx, url, &ref, "network.create", sess, map[string]any{
			"name_label": fmt.Sprintf("register-%d", k), "name_description": "init", "MTU": 1500, "other_config": map[string]string{},
		}); err != nil {
			t.Fatalf("network.create: %v", err)
		}
		w.nets = append(w.nets, ref)
	}
	return w
}

// TestPoolKill9 kills the pool master with SIGKILL repeatedly while clients
// write through the pool, restarting each killed host on its data dir (it
// comes back as a member). Afterwards every acknowledged write must be on
// every host and the history must be linearizable.
func TestPoolKill9(t *testing.T) {
	soak := os.Getenv("XAPI_POOL_SOAK") != ""
	n, kills := 3, 3
	if soak {
		n, kills = 5, 30
	}
	n = envInt("XAPI_POOL_HOSTS", n)
	kills = envInt("XAPI_POOL_KILLS", kills)
	if testing.Short() && !soak {
		kills = 1
	}
	c := newCluster(t, n)
	w := setupWorkload(t, c, 8)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	clients := []*poolClient{
		{id: 0, w: w}, {id: 1, w: w, next: 1}, {id: 2, w: w, next: 2},
		{id: 3, w: w, member: true, next: 1},
	}
	for _, pc := range clients {
		wg.Add(1)
		go func() { defer wg.Done(); pc.run(ctx) }()
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			wg.Wait()
		}
	}
	defer stop()

	t0 := time.Now()
	for k := range kills {
		c.waitHealthy(2 * time.Minute)
		time.Sleep(time.Second)
		m, err := c.master(context.Background())
		if err != nil {
			t.Fatalf("kill %d: %v", k+1, err)
		}
		c.kill9(m)
		killedAt := time.Now()
		// the survivors elect a new master before the killed host returns
		nm, err := c.waitNewMaster(m, 60*time.Second)
		if err != nil {
			t.Fatalf("kill %d: %v", k+1, err)
		}
		elected := time.Since(killedAt)
		time.Sleep(time.Second)
		c.start(m)
		if soak || testing.Verbose() {
			t.Logf("kill %d/%d: killed host%d (master); host%d master %.1fs later; %s elapsed",
				k+1, kills, m+1, nm+1, elected.Seconds(), time.Since(t0).Round(time.Second))
		}
	}
	c.waitHealthy(2 * time.Minute)
	time.Sleep(time.Second)
	stop()

	rec := w.rec
	t.Logf("%d kills in %s; writes: %d acknowledged, %d outcome unknown, %d not applied; %d register operations",
		kills, time.Since(t0).Round(time.Second), rec.acked, rec.unknown, rec.failed, len(rec.ops))
	for _, a := range rec.anomalies {
		t.Errorf("anomaly: %s", a)
	}
	if rec.acked == 0 {
		t.Fatal("no write was acknowledged")
	}

	// every host's state, once they agree
	final := c.readAll(t, w)
	end := rec.now()
	for i, st := range final {
		for k, v := range st.regs {
			rec.op(100+i, regInput{Key: k}, end+1, end+2, v)
		}
		missing := 0
		for key, ok := range rec.adds {
			if _, there := st.other[key]; ok && !there {
				if missing < 5 {
					t.Errorf("host%d: acknowledged pool.add_to_other_config %s is missing", i+1, key)
				}
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("host%d: %d acknowledged adds missing", i+1, missing)
		}
		for key := range st.other {
			if _, ok := rec.adds[key]; strings.HasPrefix(key, "add-") && !ok {
				t.Errorf("host%d: other_config has %s, which no client wrote", i+1, key)
			}
		}
	}

	res, info := porcupine.CheckOperationsVerbose(registerModel, rec.ops, 2*time.Minute)
	switch res {
	case porcupine.Ok:
		t.Logf("history of %d register operations is linearizable", len(rec.ops))
	case porcupine.Unknown:
		t.Logf("linearizability check timed out (%d operations); not conclusive", len(rec.ops))
	default:
		path := filepath.Join(os.TempDir(), fmt.Sprintf("xapid-pool-history-%d.html", time.Now().Unix()))
		if err := porcupine.VisualizePath(registerModel, info, path); err == nil {
			t.Errorf("history is NOT linearizable; visualization: %s", path)
		} else {
			t.Errorf("history is NOT linearizable (visualization failed: %v)", err)
		}
	}
}

// hostState is what one host holds of the workload's objects.
type hostState struct {
	regs  []string
	other map[string]string
}

// readAll reads the registers and pool.other_config on every host (with a
// pool session, so members answer too), retrying until all hosts agree.
func (c *cluster) readAll(t *testing.T, w *workload) []hostState {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		states, err := c.readOnce(ctx, w)
		if err == nil {
			agree := true
			for _, s := range states[1:] {
				if !slices.Equal(s.regs, states[0].regs) || len(s.other) != len(states[0].other) {
					agree = false
				}
			}
			if agree {
				return states
			}
			err = errors.New("hosts disagree")
			if time.Now().After(deadline) {
				for i, s := range states {
					t.Logf("host%d: registers %q, %d other_config keys", i+1, s.regs, len(s.other))
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("reading the final state: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *cluster) readOnce(ctx context.Context, w *workload) ([]hostState, error) {
	var out []hostState
	for i, h := range c.hosts {
		// the session is a write through the master: once it returns, this
		// host has applied everything acknowledged before
		sess, err := c.slaveLogin(ctx, h.url)
		if err != nil {
			return nil, fmt.Errorf("host%d: session.slave_login: %w", i+1, err)
		}
		var st hostState
		for _, ref := range w.nets {
			var v string
			if err := callInto(ctx, h.url, &v, "network.get_name_description", sess, ref); err != nil {
				return nil, fmt.Errorf("host%d: %w", i+1, err)
			}
			st.regs = append(st.regs, v)
		}
		if err := callInto(ctx, h.url, &st.other, "pool.get_other_config", sess, w.pool); err != nil {
			return nil, fmt.Errorf("host%d: %w", i+1, err)
		}
		out = append(out, st)
	}
	return out, nil
}
