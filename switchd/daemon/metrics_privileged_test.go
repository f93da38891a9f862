package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vishvananda/netlink"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/switchd/daemon/apiclient"
)

// TestMetricsPrivileged runs the daemon with examples/host.json and a
// metrics address another socket holds: the daemon runs, the status says
// why nothing listens; once the port is free a reload (SIGHUP) starts the
// listener, and a scrape over HTTP has one bgp_peer_state series per
// configured neighbor in the state the status gives, and
// switchd_fib_routes equal to the kernel's routes of switchd's protocol.
func TestMetricsPrivileged(t *testing.T) {
	ns.Privileged(t)
	if os.Getenv("SWITCHD_TEST_NETNS") == "" {
		t.Skip("needs ns.TestMain's private namespace")
	}
	if lo, err := netlink.LinkByName("lo"); err != nil || netlink.LinkSetUp(lo) != nil {
		t.Fatalf("lo: %v", err)
	}
	blocker, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	addr := blocker.Addr().String()

	dir := t.TempDir()
	var doc map[string]any
	if err := json.Unmarshal(hostConfig(t, dir, false), &doc); err != nil {
		t.Fatal(err)
	}
	doc["switchd:switchd"].(map[string]any)["metrics"] = map[string]any{"config": map[string]any{"enabled": true, "address": addr}}
	// A discarding aggregate: a route of switchd's in the kernel without
	// a peer, so the route count compared is not 0.
	ni := doc["openconfig-network-instance:network-instances"].(map[string]any)["network-instance"].([]any)[0].(map[string]any)
	for _, p := range ni["protocols"].(map[string]any)["protocol"].([]any) {
		if p := p.(map[string]any); p["identifier"] == "openconfig-policy-types:LOCAL_AGGREGATE" {
			l := p["local-aggregates"].(map[string]any)
			l["aggregate"] = append(l["aggregate"].([]any), map[string]any{"prefix": "10.99.0.0/16",
				"config": map[string]any{"prefix": "10.99.0.0/16", "discard": true}})
		}
	}
	config, _ := json.Marshal(doc)
	_, sock := runDaemon(t, dir, config)
	ctx := context.Background()

	status := func() (*apiclient.Status, error) { return apiclient.GetStatus(ctx, sock) }
	waitFor(t, "the status reports the address in use", func() error {
		st, err := status()
		if err != nil {
			return err
		}
		if m := st.Metrics; m == nil || m.Listening || !strings.Contains(m.LastError, "address already in use") || m.Address != addr {
			return fmt.Errorf("metrics status %+v", m)
		}
		return nil
	})

	blocker.Close()
	syscall.Kill(os.Getpid(), syscall.SIGHUP) // the same config: tried again
	waitFor(t, "the listener up after the reload", func() error {
		st, err := status()
		if err != nil {
			return err
		}
		if m := st.Metrics; m == nil || !m.Listening || m.LastError != "" {
			return fmt.Errorf("metrics status %+v", m)
		}
		return nil
	})

	url := "http://" + addr + MetricsPath
	waitFor(t, "/metrics agrees with the status and the kernel", func() error {
		st, err := status()
		if err != nil {
			return err
		}
		if len(st.BGP.Neighbors) != 2 {
			return fmt.Errorf("status lists neighbors %v, want host.json's two", st.BGP.Neighbors)
		}
		rs, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: fib.Protocol}, netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			return err
		}
		var want strings.Builder
		want.WriteString("# HELP bgp_peer_state State of the BGP session with peer and its administrative state\n# TYPE bgp_peer_state gauge\n")
		for _, n := range st.BGP.Neighbors {
			fmt.Fprintf(&want, "bgp_peer_state{admin_state=\"ADMIN_STATE_UP\",peer=%q,session_state=\"SESSION_STATE_%s\"} 1\n", n.Address, n.State)
		}
		fmt.Fprintf(&want, "# HELP switchd_fib_routes Routes switchd wants in the kernel FIB (BGP, static, workload)\n# TYPE switchd_fib_routes gauge\nswitchd_fib_routes %d\n", len(rs))
		want.WriteString("# HELP switchd_fib_in_sync 1 if the kernel FIB holds exactly what switchd wants, else 0\n# TYPE switchd_fib_in_sync gauge\nswitchd_fib_in_sync 1\n")
		if err := testutil.ScrapeAndCompare(url, strings.NewReader(want.String()), "bgp_peer_state", "switchd_fib_routes", "switchd_fib_in_sync"); err != nil {
			return err
		}
		t.Logf("scraped: %d bgp_peer_state series, switchd_fib_routes %d = kernel's", len(st.BGP.Neighbors), len(rs))
		return nil
	})
}
