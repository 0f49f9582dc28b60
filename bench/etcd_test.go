package bench

// A reference point for the replicated store: the same write workload as
// store.BenchmarkClusterWrite1Client and store.BenchmarkClusterWrite64Clients
// (a 64-byte value, one key per client) against a 3-member etcd cluster on
// 127.0.0.1, started from the Debian etcd-server package's /usr/bin/etcd
// (apt-get install etcd-server), data dirs in b.TempDir(). Writes go through
// etcd's v3 JSON gateway (POST /v3/kv/put) on the leader's client URL, over
// keep-alive connections.
//
// To compare, run both in one go on an otherwise idle machine and read the
// metrics side by side (same names: p50-ms, p99-ms, writes/s):
//
//	go test -run '^$' -bench 'ClusterWrite' -benchtime=20000x ./store/
//	go test -run '^$' -bench 'Etcd3Write' -benchtime=20000x ./bench/
//
// What differs: both replicate over loopback TCP to two followers and fsync
// (etcd its WAL, the store badger with SyncWrites), but a store write is an
// in-process Store.Apply on the leader, while an etcd write also pays an HTTP
// request, JSON and base64 encoding and the gateway's hop to gRPC. The 64-client
// figures are the fairer comparison of replication throughput; the 1-client
// latencies include etcd's client-side overhead.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/internal/benchload"
)

const (
	etcdBinary    = "/usr/bin/etcd"
	etcdValueSize = 64
)

type etcdMember struct {
	name      string
	clientURL string
	peerURL   string
	cmd       *exec.Cmd
}

// etcdFreeAddrs returns n distinct 127.0.0.1 addresses that were free a
// moment ago.
func etcdFreeAddrs(b *testing.B, n int) []string {
	b.Helper()
	addrs := make([]string, n)
	ls := make([]net.Listener, n)
	for i := range ls {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		ls[i], addrs[i] = l, l.Addr().String()
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return addrs
}

// startEtcd3 starts a 3-member etcd cluster and returns the client URL of
// its leader. The members are killed at the end of the benchmark.
func startEtcd3(b *testing.B) string {
	b.Helper()
	if _, err := os.Stat(etcdBinary); err != nil {
		b.Skipf("%s not found (apt-get install etcd-server): %v", etcdBinary, err)
	}
	const n = 3
	addrs := etcdFreeAddrs(b, 2*n)
	members := make([]*etcdMember, n)
	var initial []string
	for i := range members {
		m := &etcdMember{
			name:      fmt.Sprintf("m%d", i),
			clientURL: "http://" + addrs[2*i],
			peerURL:   "http://" + addrs[2*i+1],
		}
		members[i] = m
		initial = append(initial, m.name+"="+m.peerURL)
	}
	token := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	for _, m := range members {
		var logs bytes.Buffer
		m.cmd = exec.Command(etcdBinary,
			"--name", m.name,
			"--data-dir", b.TempDir(),
			"--listen-client-urls", m.clientURL,
			"--advertise-client-urls", m.clientURL,
			"--listen-peer-urls", m.peerURL,
			"--initial-advertise-peer-urls", m.peerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", token,
			"--logger", "zap",
			"--log-level", "error",
		)
		m.cmd.Stdout, m.cmd.Stderr = &logs, &logs
		if err := m.cmd.Start(); err != nil {
			b.Fatalf("start etcd %s: %v", m.name, err)
		}
		b.Cleanup(func() {
			_ = m.cmd.Process.Kill()
			_ = m.cmd.Wait()
			if b.Failed() && logs.Len() > 0 {
				b.Logf("etcd %s output:\n%s", m.name, logs.String())
			}
		})
	}
	// Wait until every member reports the same leader.
	deadline := time.Now().Add(30 * time.Second)
	for {
		leader, err := etcdLeader(members)
		if err == nil {
			return leader
		}
		if time.Now().After(deadline) {
			b.Fatalf("etcd cluster not ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// etcdLeader asks every member for its status and returns the client URL of
// the member that is the leader, once all agree on one.
func etcdLeader(members []*etcdMember) (string, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	var leaderID, leaderURL string
	for _, m := range members {
		var st struct {
			Header struct {
				MemberID string `json:"member_id"`
			} `json:"header"`
			Leader string `json:"leader"`
		}
		resp, err := c.Post(m.clientURL+"/v3/maintenance/status", "application/json", strings.NewReader("{}"))
		if err != nil {
			return "", err
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			return "", fmt.Errorf("status of %s: %w", m.name, err)
		}
		if st.Leader == "" || st.Leader == "0" {
			return "", fmt.Errorf("%s knows no leader", m.name)
		}
		if leaderID != "" && st.Leader != leaderID {
			return "", errors.New("members disagree on the leader")
		}
		leaderID = st.Leader
		if st.Header.MemberID == st.Leader {
			leaderURL = m.clientURL
		}
	}
	if leaderURL == "" {
		return "", errors.New("leader not among the members")
	}
	return leaderURL, nil
}

// etcdPutBody is the JSON of a v3 put of value i (etcdValueSize bytes) to key.
func etcdPutBody(key string, i int) []byte {
	val := fmt.Sprintf("%0*d", etcdValueSize, i)
	return fmt.Appendf(nil, `{"key":%q,"value":%q}`,
		base64.StdEncoding.EncodeToString([]byte(key)), base64.StdEncoding.EncodeToString([]byte(val)))
}

func etcdPut(c *http.Client, url string, body []byte) error {
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	out, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(out, []byte(`"revision"`)) {
		return fmt.Errorf("etcd put: status %d: %s", resp.StatusCode, out)
	}
	return nil
}

func etcdClient() *http.Client {
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 128, DisableCompression: true},
	}
}

// BenchmarkEtcd3Write1Client is store.BenchmarkClusterWrite1Client against a
// 3-member etcd: one client putting a 64-byte value to one key, sequentially.
func BenchmarkEtcd3Write1Client(b *testing.B) {
	leader := startEtcd3(b)
	url := leader + "/v3/kv/put"
	c := etcdClient()
	defer c.CloseIdleConnections()
	if err := etcdPut(c, url, etcdPutBody("bench/client-00", 0)); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, max(b.N, 1024))
	for i := 0; b.Loop(); i++ {
		body := etcdPutBody("bench/client-00", i)
		start := time.Now()
		if err := etcdPut(c, url, body); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	benchload.ReportPercentiles(b, lat)
	b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "writes/s")
	b.ReportMetric(etcdValueSize, "value-bytes")
}

// BenchmarkEtcd3Write64Clients is store.BenchmarkClusterWrite64Clients against
// a 3-member etcd: 64 concurrent clients, each putting to its own key, b.N
// puts in all; writes/s from the first put to the last one's completion.
func BenchmarkEtcd3Write64Clients(b *testing.B) {
	const clients = 64
	leader := startEtcd3(b)
	url := leader + "/v3/kv/put"
	c := etcdClient()
	defer c.CloseIdleConnections()
	// Warm up: one connection and one key per client.
	var warm sync.WaitGroup
	for k := range clients {
		warm.Go(func() {
			if err := etcdPut(c, url, etcdPutBody(fmt.Sprintf("bench/client-%02d", k), 0)); err != nil {
				b.Error(err)
			}
		})
	}
	warm.Wait()
	if b.Failed() {
		return
	}

	benchload.Writes(b, clients, func(k, i int) error {
		return etcdPut(c, url, etcdPutBody(fmt.Sprintf("bench/client-%02d", k), i))
	})
	b.ReportMetric(etcdValueSize, "value-bytes")
}
