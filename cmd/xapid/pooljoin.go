package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/xapi-go/xapi-go/rpc"
)

func init() {
	commands["pool-join"] = command{"make a running host join a pool (pool.join)", runPoolJoin}
	commands["pool-wait"] = command{"wait until a pool's master lists N live hosts", runPoolWait}
}

// runPoolJoin is `xapid pool-join`: it logs in to the joining host and calls
// pool.join there, then (with --wait) waits until the host is back as a
// member of the pool.
func runPoolJoin(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("xapid pool-join", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hostURL := fs.String("url", "", "API URL of the host that joins, e.g. http://127.0.0.2:8080 (required)")
	master := fs.String("master", "", "the pool master's address (host.address, e.g. 127.0.0.1) or API URL (required)")
	user := fs.String("user", "root", "user name, on the joining host and on the master")
	password := fs.String("password", "", "password of that user (default: $"+envRootPassword+")")
	force := fs.Bool("force", false, "pool.join_force: skip the version checks")
	wait := fs.Duration("wait", 2*time.Minute, "how long to wait for the host to come back as a member (0: do not wait)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: xapid pool-join --url HOST_URL --master MASTER_ADDRESS [--password PW]\n\nCalls pool.join on the host at HOST_URL.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *password == "" {
		*password = os.Getenv(envRootPassword)
	}
	if *hostURL == "" || *master == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	base := strings.TrimRight(*hostURL, "/")
	sess, err := loginRetrying(ctx, base, *user, *password, 30*time.Second)
	var fe *rpcFault
	if errors.As(err, &fe) && fe.Code == "HOST_IS_SLAVE" && len(fe.Params) > 0 {
		if m := strings.TrimRight(*master, "/"); fe.Params[0] == m || strings.Contains(m, "://"+fe.Params[0]) {
			fmt.Fprintf(stdout, "%s: already a member of the pool (master %s)\n", base, fe.Params[0])
			return 0
		}
		fmt.Fprintf(stderr, "xapid pool-join: %s is a member of another pool (master %s)\n", base, fe.Params[0])
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "xapid pool-join: login on %s: %v\n", base, err)
		return 1
	}
	method := "pool.join"
	if *force {
		method = "pool.join_force"
	}
	if _, err := rpcCall(ctx, base, method, sess, *master, *user, *password); err != nil {
		fmt.Fprintf(stderr, "xapid pool-join: %s: %v\n", method, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: pool.join %s accepted; the host restarts as a member\n", base, *master)
	if *wait <= 0 {
		return 0
	}
	// the member's login answers HOST_IS_SLAVE once it serves again
	deadline := time.Now().Add(*wait)
	for {
		_, err := rpcCall(ctx, base, "session.login_with_password", *user, *password, "1.0", "xapid pool-join")
		var fe *rpcFault
		if errors.As(err, &fe) && fe.Code == "HOST_IS_SLAVE" {
			fmt.Fprintf(stdout, "%s: member of the pool (master %s)\n", base, strings.Join(fe.Params, " "))
			return 0
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			fmt.Fprintf(stderr, "xapid pool-join: %s did not come back as a member within %s (last: %v)\n", base, *wait, err)
			return 1
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// runPoolWait is `xapid pool-wait`: it waits until host.get_all_records on
// the master lists --hosts hosts whose host_metrics.live is true.
func runPoolWait(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("xapid pool-wait", flag.ContinueOnError)
	fs.SetOutput(stderr)
	masterURL := fs.String("url", "", "API URL of the pool master (required; HOST_IS_SLAVE is followed)")
	user := fs.String("user", "root", "user name")
	password := fs.String("password", "", "password (default: $"+envRootPassword+")")
	hosts := fs.Int("hosts", 1, "how many live hosts to wait for")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *password == "" {
		*password = os.Getenv(envRootPassword)
	}
	if *masterURL == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	base := strings.TrimRight(*masterURL, "/")
	deadline := time.Now().Add(*timeout)
	var last string
	for {
		live, all, err := liveHosts(ctx, &base, *user, *password)
		switch {
		case err != nil:
			last = err.Error()
		case len(all) >= *hosts && len(live) >= *hosts:
			fmt.Fprintf(stdout, "pool master %s: %d live hosts: %s\n", base, len(live), strings.Join(live, ", "))
			return 0
		default:
			last = fmt.Sprintf("%d hosts, %d live", len(all), len(live))
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			fmt.Fprintf(stderr, "xapid pool-wait: fewer than %d live hosts on %s after %s (last: %s)\n", *hosts, base, *timeout, last)
			return 1
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// liveHosts logs in to the master (following HOST_IS_SLAVE, which updates
// *base) and returns the addresses of the live hosts and of all hosts.
func liveHosts(ctx context.Context, base *string, user, password string) (live, all []string, err error) {
	sess, err := loginFollowing(ctx, base, user, password)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _, _ = rpcCall(context.WithoutCancel(ctx), *base, "session.logout", sess) }()
	raw, err := rpcCall(ctx, *base, "host.get_all_records", sess)
	if err != nil {
		return nil, nil, err
	}
	var hosts map[string]struct {
		Address string `json:"address"`
		Metrics string `json:"metrics"`
	}
	if err := json.Unmarshal(raw, &hosts); err != nil {
		return nil, nil, err
	}
	for _, h := range hosts {
		all = append(all, h.Address)
		raw, err := rpcCall(ctx, *base, "host_metrics.get_live", sess, h.Metrics)
		if err != nil {
			return nil, nil, err
		}
		var ok bool
		if err := json.Unmarshal(raw, &ok); err == nil && ok {
			live = append(live, h.Address)
		}
	}
	sort.Strings(live)
	sort.Strings(all)
	return live, all, nil
}

// loginFollowing logs in, following one HOST_IS_SLAVE redirect (the URL's
// host is replaced by the master address, as XenAPI clients do).
func loginFollowing(ctx context.Context, base *string, user, password string) (string, error) {
	for range 2 {
		raw, err := rpcCall(ctx, *base, "session.login_with_password", user, password, "1.0", "xapid")
		var fe *rpcFault
		if errors.As(err, &fe) && fe.Code == "HOST_IS_SLAVE" && len(fe.Params) > 0 {
			u, perr := url.Parse(*base)
			if perr != nil {
				return "", perr
			}
			if port := u.Port(); port != "" {
				u.Host = net.JoinHostPort(fe.Params[0], port)
			} else {
				u.Host = fe.Params[0]
			}
			*base = u.String()
			continue
		}
		if err != nil {
			return "", err
		}
		var sess string
		return sess, json.Unmarshal(raw, &sess)
	}
	return "", errors.New("too many HOST_IS_SLAVE redirects")
}

// loginRetrying logs in to the host at base, retrying while it cannot be
// reached or is still starting.
func loginRetrying(ctx context.Context, base, user, password string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		raw, err := rpcCall(ctx, base, "session.login_with_password", user, password, "1.0", "xapid pool-join")
		if err == nil {
			var sess string
			return sess, json.Unmarshal(raw, &sess)
		}
		var fe *rpcFault
		if errors.As(err, &fe) && fe.Code != "HOST_STILL_BOOTING" {
			return "", err
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return "", err
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// rpcFault is a XenAPI failure.
type rpcFault = rpc.Fault

var rpcClient = &http.Client{Timeout: 2 * time.Minute}

// rpcCall makes one JSON-RPC call and returns its result.
func rpcCall(ctx context.Context, base, method string, params ...any) (json.RawMessage, error) {
	return rpc.Invoke(ctx, rpcClient, base, method, params...)
}
