package pool_test

// Write benchmarks of a 3-host pool of xapid processes, at the XenAPI level:
// JSON-RPC network.set_name_description calls with a 64-byte value, over
// keep-alive HTTP, to the master (host 1), each client on its own network.
// They report the metrics of store.BenchmarkClusterWrite1Client/64Clients and
// bench.BenchmarkEtcd3Write1Client/64Clients (p50-ms, p99-ms, writes/s), so
// the three levels (raft store in-process, XenAPI through the pool, etcd's
// JSON gateway) compare side by side. Run them on an otherwise idle machine:
//
//	go test -run '^$' -bench 'PoolWrite|PoolEventLatency' -benchtime=20000x ./tests/pool/
//	go test -run '^$' -bench 'Etcd3Write' -benchtime=20000x ./bench/
//	go test -run '^$' -bench 'ClusterWrite|FollowerApplyLag' ./store/
//
// (or `make pool-write-bench`). BenchmarkPoolEventLatency does one write at
// a time and waits for its event, so give it a smaller -benchtime (e.g.
// 2000x) if run on its own.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/internal/benchload"
	"github.com/xapi-go/xapi-go/rpc"
)

const poolValueSize = 64

// benchClient keeps one idle connection per benchmark client.
func benchClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
			MaxIdleConnsPerHost: 256,
			DisableCompression:  true,
		},
	}
}

// rpcCall is call() over the given HTTP client; it returns the result.
func rpcCall(hc *http.Client, url, method string, params ...any) (json.RawMessage, error) {
	return rpc.Invoke(context.Background(), hc, url, method, params...)
}

// poolValue is value i of client k, poolValueSize bytes.
func poolValue(k, i int) string { return fmt.Sprintf("c%02d-%0*d", k, poolValueSize-4, i) }

// writeBenchPool starts a 3-host pool and creates n networks on it; it
// returns the master's URL, a session there, and the networks.
func writeBenchPool(b *testing.B, n int) (*cluster, int, string, []string) {
	b.Helper()
	c := newCluster(b, 3)
	ctx := context.Background()
	m, err := c.master(ctx)
	if err != nil {
		b.Fatal(err)
	}
	url := c.hosts[m].url
	sess, err := login(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	nets := make([]string, n)
	for k := range nets {
		if err := callInto(ctx, url, &nets[k], "network.create", sess, map[string]any{
			"name_label": fmt.Sprintf("bench-%02d", k), "name_description": "init", "MTU": 1500, "other_config": map[string]string{},
		}); err != nil {
			b.Fatalf("network.create: %v", err)
		}
	}
	return c, m, sess, nets
}

// BenchmarkPoolWrite1Client: one client, sequential writes through the master.
func BenchmarkPoolWrite1Client(b *testing.B) {
	c, m, sess, nets := writeBenchPool(b, 1)
	url := c.hosts[m].url
	hc := benchClient()
	defer hc.CloseIdleConnections()
	if _, err := rpcCall(hc, url, "network.set_name_description", sess, nets[0], poolValue(0, 0)); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, 1024)
	for i := 0; b.Loop(); i++ {
		v := poolValue(0, i)
		start := time.Now()
		if _, err := rpcCall(hc, url, "network.set_name_description", sess, nets[0], v); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	benchload.ReportPercentiles(b, lat)
	b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "writes/s")
	b.ReportMetric(poolValueSize, "value-bytes")
}

// BenchmarkPoolWrite64Clients: 64 concurrent clients through the master,
// each on its own network and connection, b.N writes in all; writes/s from
// the first write to the last one's completion.
func BenchmarkPoolWrite64Clients(b *testing.B) {
	const clients = 64
	c, m, sess, nets := writeBenchPool(b, clients)
	url := c.hosts[m].url
	hc := benchClient()
	defer hc.CloseIdleConnections()
	var warm sync.WaitGroup
	for k := range clients {
		warm.Go(func() {
			if _, err := rpcCall(hc, url, "network.set_name_description", sess, nets[k], poolValue(k, 0)); err != nil {
				b.Error(err)
			}
		})
	}
	warm.Wait()
	if b.Failed() {
		return
	}
	benchload.Writes(b, clients, func(k, i int) error {
		_, err := rpcCall(hc, url, "network.set_name_description", sess, nets[k], poolValue(k, i))
		return err
	})
	b.ReportMetric(poolValueSize, "value-bytes")
}

// BenchmarkPoolEventLatency: a client long-polls event.from on a member
// (pool session from session.slave_login) while another writes through the
// master, one write at a time; measured is the time from the write's
// acknowledgement by the master to its event arriving at the member's client
// (negative times, the event arriving first, count as 0). Reports p50-ms,
// p99-ms and the share of events that arrived before the acknowledgement.
func BenchmarkPoolEventLatency(b *testing.B) {
	c, m, sess, nets := writeBenchPool(b, 1)
	url := c.hosts[m].url
	member := c.hosts[(m+1)%len(c.hosts)].url
	ctx := context.Background()
	msess, err := c.slaveLogin(ctx, member)
	if err != nil {
		b.Fatal(err)
	}
	hc := benchClient()
	defer hc.CloseIdleConnections()

	type evBatch struct {
		Events []struct {
			Class     string         `json:"class"`
			Operation string         `json:"operation"`
			Ref       string         `json:"ref"`
			Snapshot  map[string]any `json:"snapshot"`
		} `json:"events"`
		Token string `json:"token"`
	}
	var first evBatch
	raw, err := rpcCall(hc, member, "event.from", msess, []string{"network"}, "", 0.0)
	if err != nil {
		b.Fatalf("event.from on the member: %v", err)
	}
	if err := json.Unmarshal(raw, &first); err != nil {
		b.Fatal(err)
	}
	type arrival struct {
		value string
		at    time.Time
	}
	arrived := make(chan arrival, 1024)
	pctx, stop := context.WithCancel(ctx)
	var pollErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(arrived)
		token := first.Token
		for pctx.Err() == nil {
			raw, err := rpcCall(hc, member, "event.from", msess, []string{"network"}, token, 5.0)
			at := time.Now()
			if err != nil {
				if pctx.Err() == nil {
					pollErr = err
				}
				return
			}
			var eb evBatch
			if err := json.Unmarshal(raw, &eb); err != nil {
				pollErr = err
				return
			}
			token = eb.Token
			for _, ev := range eb.Events {
				if ev.Ref == nets[0] && ev.Operation == "mod" {
					if d, ok := ev.Snapshot["name_description"].(string); ok {
						arrived <- arrival{d, at}
					}
				}
			}
		}
	})

	var lat []time.Duration
	early := 0
	for i := 0; b.Loop(); i++ {
		v := poolValue(0, i)
		if _, err := rpcCall(hc, url, "network.set_name_description", sess, nets[0], v); err != nil {
			b.Fatal(err)
		}
		acked := time.Now()
		for {
			var a arrival
			var ok bool
			select {
			case a, ok = <-arrived:
			case <-time.After(30 * time.Second):
				b.Fatalf("no event for write %d within 30 s", i)
			}
			if !ok {
				b.Fatalf("event.from on the member stopped: %v", pollErr)
			}
			if a.value != v {
				continue // an older value (events can coalesce)
			}
			dt := a.at.Sub(acked)
			if dt < 0 {
				early++
				dt = 0
			}
			lat = append(lat, dt)
			break
		}
	}
	stop()
	benchload.ReportPercentiles(b, lat)
	b.ReportMetric(float64(early)/float64(max(1, len(lat))), "early-frac")
	wg.Wait()
}
