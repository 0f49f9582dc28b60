package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xapi-go/xapi-go/backends/sim"
	"github.com/xapi-go/xapi-go/xapi"
)

// envRootPassword is read when --root-password is not given.
const envRootPassword = "XAPI_ROOT_PASSWORD"

// serveOptions is the configuration of `xapid serve`.
type serveOptions struct {
	DataDir         string
	Listen          string
	TLSListen       string
	RootPassword    string
	RaftAddr        string
	NodeID          string
	Hostname        string
	Address         string
	LogLevel        slog.Level
	ShutdownTimeout time.Duration
}

// parseServeFlags parses the flags of `xapid serve` and fills in defaults.
// getenv supplies the environment (os.Getenv outside tests).
func parseServeFlags(args []string, getenv func(string) string, output io.Writer) (*serveOptions, error) {
	o := &serveOptions{}
	fs := flag.NewFlagSet("xapid serve", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() {
		fmt.Fprintf(output, "Usage: xapid [serve] --data-dir DIR --listen ADDR:PORT [flags]\n\nRuns one XenAPI host.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.DataDir, "data-dir", "", "directory for the database, raft log, root password hash and TLS certificate (required)")
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:8080", "plain-HTTP API address (XML-RPC on /, /RPC2, /xmlrpc; JSON-RPC on /jsonrpc)")
	fs.StringVar(&o.TLSListen, "tls-listen", "", "HTTPS API address (self-signed RSA certificate kept in the data dir); empty: no HTTPS")
	fs.StringVar(&o.RootPassword, "root-password", "", "set the root password (default: $"+envRootPassword+"; if both are empty, keep the stored one or generate one on first start)")
	fs.StringVar(&o.RaftAddr, "raft-addr", "", "raft TCP address (default: listen host, listen port+1, or port+2 when --tls-listen uses port+1; port 0 if the listen port is 0)")
	fs.StringVar(&o.NodeID, "node-id", "", "raft node id; overrides the one stored in DATA/node-id (default: the stored one; for a data dir from before node ids were stored, the hostname; else a new uuid, which becomes the host's uuid)")
	fs.StringVar(&o.Hostname, "hostname", "", "host name shown as host.hostname/name_label on first start (default: os.Hostname)")
	fs.StringVar(&o.Address, "address", "", "management IP shown as host.address (default: the listen IP, or the first non-loopback IP when listening on all addresses)")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long to wait for in-flight calls on SIGTERM/SIGINT")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := o.LogLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	if o.DataDir == "" {
		return nil, errors.New("--data-dir is required")
	}
	if _, _, err := splitHostPort(o.Listen); err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	if o.TLSListen != "" {
		if _, _, err := splitHostPort(o.TLSListen); err != nil {
			return nil, fmt.Errorf("--tls-listen: %w", err)
		}
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if !explicit["root-password"] {
		o.RootPassword = getenv(envRootPassword)
	}
	if o.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		o.Hostname = h
	}
	if o.Address == "" {
		o.Address = managementAddress(o.Listen)
	}
	if o.RaftAddr == "" {
		ra, err := defaultRaftAddr(o.Listen, o.Address, o.TLSListen)
		if err != nil {
			return nil, err
		}
		o.RaftAddr = ra
	} else {
		if _, _, err := splitHostPort(o.RaftAddr); err != nil {
			return nil, fmt.Errorf("--raft-addr: %w", err)
		}
		if addrsClash(o.RaftAddr, o.Listen) {
			return nil, fmt.Errorf("--raft-addr %s and --listen %s use the same port", o.RaftAddr, o.Listen)
		}
		if o.TLSListen != "" && addrsClash(o.RaftAddr, o.TLSListen) {
			return nil, fmt.Errorf("--raft-addr %s and --tls-listen %s use the same port", o.RaftAddr, o.TLSListen)
		}
	}
	if o.TLSListen != "" && addrsClash(o.Listen, o.TLSListen) {
		return nil, fmt.Errorf("--listen %s and --tls-listen %s use the same port", o.Listen, o.TLSListen)
	}
	return o, nil
}

// addrsClash reports whether two ADDR:PORT would bind the same socket: the
// same non-zero port on the same host, or on any host when either binds to
// all addresses.
func addrsClash(a, b string) bool {
	ha, pa, err1 := splitHostPort(a)
	hb, pb, err2 := splitHostPort(b)
	if err1 != nil || err2 != nil || pa == 0 || pa != pb {
		return false
	}
	if isUnspecifiedHost(ha) || isUnspecifiedHost(hb) {
		return true
	}
	ipa, ipb := net.ParseIP(ha), net.ParseIP(hb)
	if ipa != nil && ipb != nil {
		return ipa.Equal(ipb)
	}
	return strings.EqualFold(ha, hb)
}

// splitHostPort splits ADDR:PORT and checks the port.
func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return host, port, nil
}

// defaultRaftAddr derives the raft address from the API listen address: the
// same host with port+1 (port+2 when the HTTPS listen address tlsListen, if
// any, is on port+1), or port 0 (any free port) when the API port is 0. Raft
// must advertise a concrete address, so an unspecified listen host (0.0.0.0,
// ::, empty) is replaced by the management address.
func defaultRaftAddr(listen, mgmtAddr, tlsListen string) (string, error) {
	host, port, err := splitHostPort(listen)
	if err != nil {
		return "", err
	}
	if isUnspecifiedHost(host) {
		host = mgmtAddr
	}
	if port == 0 {
		return net.JoinHostPort(host, "0"), nil
	}
	for rport := port + 1; rport <= port+2 && rport <= 65535; rport++ {
		addr := net.JoinHostPort(host, strconv.Itoa(rport))
		if tlsListen == "" || !addrsClash(addr, tlsListen) {
			return addr, nil
		}
	}
	return "", fmt.Errorf("cannot derive a raft port from %q: give --raft-addr", listen)
}

// raftAdvertiseAddr is the address raft advertises when it binds to all
// addresses (mgmtAddr with the bind port), or "" when the bind address is
// concrete.
func raftAdvertiseAddr(bind, mgmtAddr string) string {
	host, port, err := net.SplitHostPort(bind)
	if err != nil || !isUnspecifiedHost(host) || port == "0" {
		return ""
	}
	return net.JoinHostPort(mgmtAddr, port)
}

func isUnspecifiedHost(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// managementAddress is the address shown as host.address: the listen IP, or
// (listening on all addresses or on a name) the first non-loopback IPv4
// address of the machine, or 127.0.0.1.
func managementAddress(listen string) string {
	host, _, err := net.SplitHostPort(listen)
	if err == nil && !isUnspecifiedHost(host) {
		if ip := net.ParseIP(host); ip != nil {
			return ip.String()
		}
		if host == "localhost" {
			return "127.0.0.1"
		}
		if ips, err := net.LookupIP(host); err == nil && len(ips) > 0 {
			return ips[0].String()
		}
	}
	for _, ip := range interfaceIPs() {
		if ip.To4() != nil && !ip.IsLoopback() {
			return ip.String()
		}
	}
	return "127.0.0.1"
}

// listenIPs returns the IPs of the given listen addresses, for the certificate.
func listenIPs(addrs ...string) []net.IP {
	var ips []net.IP
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		if host == "" {
			ips = append(ips, net.IPv4zero)
			continue
		}
		if ip := net.ParseIP(host); ip != nil {
			ips = append(ips, ip)
		}
	}
	return ips
}

// newLogger returns a text logger to w at the given level.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// serve runs one host until ctx is cancelled, then shuts down cleanly: HTTP
// servers first (in-flight calls get ShutdownTimeout), then the API server,
// then the store.
//
// The listeners stay open for the life of the process; the store and the API
// server behind them run in generations: pool.join and pool.eject end one
// (xapi.Config.Restart) and the next starts on fresh replicated state. Between
// generations, and while a generation starts, calls are answered with
// HOST_STILL_BOOTING.
func serve(ctx context.Context, o *serveOptions, log *slog.Logger, stderr io.Writer) (err error) {
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return err
	}
	var cert *serverCert
	if o.TLSListen != "" {
		names := defaultCertNames(o.Hostname, listenIPs(o.Listen, o.TLSListen))
		if ip := net.ParseIP(o.Address); ip != nil {
			names.IPs = append(names.IPs, ip)
		}
		cert, err = loadOrCreateCert(o.DataDir, names, time.Now())
		if err != nil {
			return fmt.Errorf("TLS certificate: %w", err)
		}
		verb := "loaded"
		if cert.Created {
			verb = "generated"
		}
		log.Info("TLS certificate "+verb, "path", cert.Path,
			"sha256", cert.SHA256(), "sha1", cert.SHA1(),
			"not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
		if missing := cert.missingSANs(names); len(missing) > 0 {
			log.Warn("TLS certificate does not cover these names; kept as is so its thumbprint stays the same (delete it to regenerate)",
				"path", cert.Path, "missing", strings.Join(missing, ","))
		}
	}

	// Bind the API listeners before opening the store so that a busy port
	// fails fast without touching the database.
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	var tlsLn net.Listener
	if cert != nil {
		if tlsLn, err = net.Listen("tcp", o.TLSListen); err != nil {
			return err
		}
		defer tlsLn.Close()
	}
	_, apiPort, _ := splitHostPort(ln.Addr().String())

	nodeID, src, err := resolveNodeID(o.DataDir, o.NodeID, o.Hostname)
	if err != nil {
		return err
	}
	if stored, _ := readNodeID(o.DataDir); src == nodeIDFromFlag && stored != "" && stored != nodeID {
		log.Warn("--node-id differs from the stored node id (the host's uuid after a pool.join); using the flag", "flag", nodeID, "stored", stored)
	}
	log.Info("node id", "id", nodeID, "source", string(src))

	auth, pwFile, err := xapi.LoadAuth(o.DataDir, o.RootPassword)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if pwFile != "" {
		log.Warn("generated a root password", "file", pwFile)
		fmt.Fprintf(stderr, "xapid: generated a root password; it is stored in %s\n", pwFile)
	}

	// a restart that a crash interrupted is resumed
	var next restartPlan
	if m, err := readJoinMarker(o.DataDir); err != nil {
		return err
	} else if m != nil {
		log.Warn("resuming an interrupted pool.join", "master", m.MasterURL, "node_id", m.NodeID)
		next.join = m
	} else if hasMarker(o.DataDir, ejectMarkerFile) {
		log.Warn("resuming an interrupted restart after pool.eject")
		next.eject = true
	}

	// The HTTP servers run for the whole process; their handler is swapped
	// at each generation.
	handler := newSwapHandler(bootingHandler(log))
	errc := make(chan error, 2)
	var servers []*http.Server
	var urls []string
	startHTTP := func(l net.Listener, scheme string, hs *http.Server) {
		servers = append(servers, hs)
		urls = append(urls, scheme+"://"+l.Addr().String()+"/")
		go func() {
			var err error
			if hs.TLSConfig != nil {
				err = hs.ServeTLS(l, "", "")
			} else {
				err = hs.Serve(l)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s %s: %w", scheme, l.Addr(), err)
			}
		}()
	}
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	startHTTP(ln, "http", &http.Server{Handler: handler, ReadHeaderTimeout: 30 * time.Second, ErrorLog: errLog})
	if tlsLn != nil {
		startHTTP(tlsLn, "https", &http.Server{Handler: handler, ReadHeaderTimeout: 30 * time.Second, ErrorLog: errLog, TLSConfig: cert.TLSConfig()})
	}
	defer shutdownHTTP(servers, o.ShutdownTimeout, log)

	env := &genEnv{opts: o, log: log, auth: auth, apiPort: apiPort}
	for {
		g, err := startGeneration(ctx, env, &nodeID, next)
		if err != nil {
			if ctx.Err() != nil {
				log.Info("shutting down while starting", "err", err)
				return nil
			}
			return err
		}
		handler.swap(g.srv.Handler())
		if urls != nil {
			// announced once the listeners, the store and the API server
			// of the first generation are up (a busy raft port fails
			// before this)
			for _, u := range urls {
				log.Info("serving XenAPI", "url", u, "raft", o.RaftAddr, "data_dir", o.DataDir)
			}
			urls = nil
		}
		var serveErr error
		var restart *xapi.Restart
		select {
		case <-ctx.Done():
			log.Info("shutting down")
		case serveErr = <-errc:
			log.Error("listener failed; shutting down", "err", serveErr)
		case r := <-g.restart:
			restart = &r
		}
		if restart == nil {
			// SIGTERM: the HTTP servers stop before the generation closes
			// (the deferred shutdownHTTP then has nothing left to do)
			shutdownHTTP(servers, o.ShutdownTimeout, log)
			if cerr := g.close(); cerr != nil && serveErr == nil {
				serveErr = cerr
			}
			return serveErr
		}
		// the call that asked for the restart (pool.join, or the master's
		// notice of pool.eject) gets its reply before the server closes
		log.Info("restarting", "join", restart.Join != nil, "recover", restart.Recover)
		cur := handler.swap(bootingHandler(log))
		if !cur.wait(o.ShutdownTimeout) {
			log.Warn("calls still in flight after the shutdown timeout; restarting anyway")
		}
		if err := g.close(); err != nil {
			return err
		}
		next = planFor(*restart)
	}
}

// shutdownHTTP stops the servers, waiting up to timeout for in-flight calls
// (a long-polling event.from may hold a connection), then closes what is left.
func shutdownHTTP(servers []*http.Server, timeout time.Duration, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, hs := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hs.Shutdown(ctx); err != nil {
				log.Warn("HTTP shutdown timed out; closing remaining connections", "err", err)
				hs.Close()
			}
		}()
	}
	wg.Wait()
}

// newSimBackend creates the simulated hypervisor the host runs its VMs on,
// sized like this machine: its CPUs and memory, with the control domain's and
// Xen's share reserved so that the backend's free memory matches the
// host_metrics created at bootstrap. Operations take about as long as on a
// small Xen host.
func newSimBackend(hostname string, log *slog.Logger) *sim.Sim {
	cfg := sim.DefaultConfig()
	cpus, total, reserved := xapi.MachineResources()
	if cpus > 0 {
		cfg.CPUs = cpus
	}
	if total > 0 {
		cfg.MemoryTotal = total
		cfg.HostReserved = reserved
	}
	cfg.Hostname = hostname
	cfg.Logger = log
	return sim.New(cfg)
}
