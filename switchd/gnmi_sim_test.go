package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
)

// TestGNMISimPrivileged checks, in the default fabric, what a user reaches
// through `switchd sim exec NODE -- ...` against what the kernel and the
// daemon's own status say: switchd show over each node's gNMI socket
// (found through SWITCHD_GNMI_SOCKET, which sim exec sets) and the
// Prometheus metrics each node serves.
func TestGNMISimPrivileged(t *testing.T) {
	ns.Privileged(t)
	f := defaultFabric(t)
	bin := simtest.SwitchdBinary(t)
	ctx := context.Background()
	var nodes []*sim.NodeInfo
	for _, n := range f.Nodes() {
		if n.GNMISocket != "" {
			nodes = append(nodes, n)
		}
	}
	if len(nodes) == 0 {
		t.Fatal("no switchd node with a gNMI socket")
	}

	// The converged fabric still settles (a last update, a resync): each
	// comparison is retried until it holds, and fails with the last
	// difference.
	const settle = 30 * time.Second

	t.Run("Metrics", func(t *testing.T) {
		for _, n := range nodes {
			waitFor(t, settle, n.Name+": /metrics agrees with the kernel and the daemon", func() error {
				return metricsAgree(ctx, f, n, t.Logf)
			})
		}
	})
	t.Run("ShowBGPSummary", func(t *testing.T) {
		for _, n := range nodes {
			waitFor(t, settle, n.Name+": show bgp summary agrees with the daemon", func() error {
				return bgpSummaryAgrees(ctx, f, n, bin, t.Logf)
			})
		}
	})
	t.Run("ShowRoute", func(t *testing.T) {
		for _, n := range nodes {
			waitFor(t, settle, n.Name+": show route agrees with the kernel", func() error {
				return routesAgree(ctx, f, n, bin, t.Logf)
			})
		}
	})
	t.Run("ShowInterfaces", func(t *testing.T) {
		for _, n := range nodes {
			waitFor(t, settle, n.Name+": show interfaces agrees with the kernel", func() error {
				return interfacesAgree(ctx, f, n, bin, t.Logf)
			})
		}
	})
}

// metricsAgree scrapes the node's /metrics from inside its namespace (sim
// exec, as a user would): one bgp_peer_state series per configured
// session, each in the state the daemon's status gives, and
// switchd_fib_routes equal to the kernel's routes of protocol 77.
func metricsAgree(ctx context.Context, f *sim.Fabric, n *sim.NodeInfo, logf logFunc) error {
	out, err := f.Exec(ctx, n.Name, "curl", "-sSf", "--max-time", "10", "http://"+n.Metrics+"/metrics")
	if err != nil {
		return err
	}
	m := parseMetrics(out)
	ds, err := sim.SwitchdStatus(ctx, n.Socket)
	if err != nil {
		return err
	}
	want := map[string]string{}
	for _, nb := range ds.BGP.Neighbors {
		want[nb.Address] = "SESSION_STATE_" + nb.State
	}
	if len(want) != n.Sessions() {
		return fmt.Errorf("daemon status lists %d neighbors, the topology %d sessions", len(want), n.Sessions())
	}
	got := map[string]string{}
	for _, s := range m["bgp_peer_state"] {
		if _, dup := got[s.labels["peer"]]; dup {
			return fmt.Errorf("two bgp_peer_state series for peer %s", s.labels["peer"])
		}
		got[s.labels["peer"]] = s.labels["session_state"]
	}
	if !maps.Equal(got, want) {
		return fmt.Errorf("bgp_peer_state peer -> session_state %v, daemon status %v", got, want)
	}
	rs, err := f.Routes(n.Name)
	if err != nil {
		return err
	}
	fr := m["switchd_fib_routes"]
	if len(fr) != 1 || fr[0].value != float64(len(rs)) {
		return fmt.Errorf("switchd_fib_routes %v, kernel routes of protocol %d: %d", fr, sim.SwitchdProtocol, len(rs))
	}
	if s := m["switchd_fib_in_sync"]; len(s) != 1 || s[0].value != 1 {
		return fmt.Errorf("switchd_fib_in_sync %v", s)
	}
	groups, err := kernelGroups(ctx, f, n.Name)
	if err != nil {
		return err
	}
	if g := m["switchd_fib_nexthop_groups"]; len(g) != 1 || g[0].value != float64(groups) {
		return fmt.Errorf("switchd_fib_nexthop_groups %v, kernel: %d groups of switchd's", g, groups)
	}
	logf("%s: /metrics: %d bgp_peer_state series, switchd_fib_routes %d and nexthop groups %d = kernel's", n.Name, len(got), len(rs), groups)
	return nil
}

// kernelGroups counts switchd's nexthop groups in the node's namespace:
// `ip nexthop show` lines of groups whose id is in switchd's range
// (0x4D000000-0x4DFFFFFF, the product's documented mark).
func kernelGroups(ctx context.Context, f *sim.Fabric, node string) (int, error) {
	out, err := f.Exec(ctx, node, "ip", "nexthop", "show")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range strings.Split(out, "\n") {
		fs := strings.Fields(line)
		if len(fs) < 3 || fs[0] != "id" || fs[2] != "group" {
			continue
		}
		if id, err := strconv.ParseUint(fs[1], 10, 32); err == nil && id>>24 == 0x4D {
			n++
		}
	}
	return n, nil
}

// logFunc records what a check compared once it holds.
type logFunc func(format string, args ...any)

// sample is one series of an exposition.
type sample struct {
	labels map[string]string
	value  float64
}

// parseMetrics reads the Prometheus text format: enough of it for the
// gauges checked here (no escaped quotes or commas in label values).
func parseMetrics(text string) map[string][]sample {
	out := map[string][]sample{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		name, rest, _ := strings.Cut(line[:sp], "{")
		s := sample{labels: map[string]string{}, value: v}
		for _, kv := range strings.Split(strings.TrimSuffix(rest, "}"), ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				s.labels[k] = strings.Trim(v, `"`)
			}
		}
		out[name] = append(out[name], s)
	}
	return out
}

// showJSON runs `switchd show --json ARGS...` in the node's namespace
// with sim exec's environment and decodes its output into v. A table's
// rows are objects keyed by column name in lower case, blanks as dashes.
func showJSON(ctx context.Context, f *sim.Fabric, n *sim.NodeInfo, bin string, v any, args ...string) error {
	out, err := f.Exec(ctx, n.Name, append([]string{bin, "show", "--json"}, args...)...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("show %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func cell(row map[string]any, col string) string {
	switch v := row[col].(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

// bgpSummaryAgrees: show bgp summary lists the daemon's neighbors, and an
// established session shows its received prefix count where another
// shows its state (as FRR prints it).
func bgpSummaryAgrees(ctx context.Context, f *sim.Fabric, n *sim.NodeInfo, bin string, logf logFunc) error {
	var rows []map[string]any
	if err := showJSON(ctx, f, n, bin, &rows, "bgp", "summary"); err != nil {
		return err
	}
	ds, err := sim.SwitchdStatus(ctx, n.Socket)
	if err != nil {
		return err
	}
	got := map[string]string{}
	for _, r := range rows {
		got[cell(r, "neighbor")] = cell(r, "state/pfxrcd")
	}
	if len(got) != len(ds.BGP.Neighbors) {
		return fmt.Errorf("show bgp summary lists %d neighbors %v, the daemon %d", len(got), slices.Sorted(maps.Keys(got)), len(ds.BGP.Neighbors))
	}
	for _, nb := range ds.BGP.Neighbors {
		st, ok := got[nb.Address]
		if !ok {
			return fmt.Errorf("show bgp summary lacks neighbor %s", nb.Address)
		}
		_, numErr := strconv.ParseUint(st, 10, 64)
		if established := nb.State == "ESTABLISHED"; established != (numErr == nil) {
			return fmt.Errorf("neighbor %s: show says %q, the daemon %s", nb.Address, st, nb.State)
		}
		if nb.State != "ESTABLISHED" && !strings.EqualFold(st, nb.State) {
			return fmt.Errorf("neighbor %s: show says %q, the daemon %s", nb.Address, st, nb.State)
		}
	}
	// The table make demo prints: a row per neighbor.
	text, err := f.Exec(ctx, n.Name, bin, "show", "bgp", "summary")
	if err != nil {
		return err
	}
	for a := range got {
		if !strings.Contains(text, a+" ") {
			return fmt.Errorf("show bgp summary has no row for %s:\n%s", a, text)
		}
	}
	logf("%s: show bgp summary: %d neighbors as the daemon has them:\n%s", n.Name, len(got), text)
	return nil
}

// routesAgree: show route lists exactly the kernel's switchd routes, each
// with the kernel route's gateways as its next hops.
func routesAgree(ctx context.Context, f *sim.Fabric, n *sim.NodeInfo, bin string, logf logFunc) error {
	var routes []struct {
		Prefix   string `json:"prefix"`
		NextHops []struct {
			IPAddress string `json:"ip-address"`
		} `json:"next-hops"`
	}
	if err := showJSON(ctx, f, n, bin, &routes, "route"); err != nil {
		return err
	}
	shown := map[netip.Prefix]map[netip.Addr]bool{}
	for _, r := range routes {
		p, err := netip.ParsePrefix(r.Prefix)
		if err != nil {
			return fmt.Errorf("show route: prefix %q: %v", r.Prefix, err)
		}
		shown[p] = map[netip.Addr]bool{}
		for _, h := range r.NextHops {
			if a, err := netip.ParseAddr(h.IPAddress); err == nil {
				shown[p][a] = true
			}
		}
	}
	rs, err := f.Routes(n.Name)
	if err != nil {
		return err
	}
	kernel := map[netip.Prefix]map[netip.Addr]bool{}
	for _, r := range rs {
		if r.Dst == nil {
			continue
		}
		a, _ := netip.AddrFromSlice(r.Dst.IP)
		ones, _ := r.Dst.Mask.Size()
		gws := map[netip.Addr]bool{}
		addGW := func(ip []byte) {
			if g, ok := netip.AddrFromSlice(ip); ok {
				gws[g.Unmap()] = true
			}
		}
		addGW(r.Gw)
		for _, p := range r.MultiPath {
			addGW(p.Gw)
		}
		kernel[netip.PrefixFrom(a.Unmap(), ones)] = gws
	}
	for p, gws := range kernel {
		s, ok := shown[p]
		if !ok {
			return fmt.Errorf("show route lacks %v (in the kernel with protocol %d); it shows %v", p, sim.SwitchdProtocol, slices.SortedFunc(maps.Keys(shown), netip.Prefix.Compare))
		}
		if !maps.Equal(s, gws) {
			return fmt.Errorf("%v: show route's next hops %v, the kernel's %v", p, slices.Collect(maps.Keys(s)), slices.Collect(maps.Keys(gws)))
		}
	}
	for p := range shown {
		if _, ok := kernel[p]; !ok {
			return fmt.Errorf("show route lists %v, which the kernel does not hold as switchd's", p)
		}
	}
	logf("%s: show route: %d routes, next hops as in the kernel", n.Name, len(shown))
	return nil
}

// interfacesAgree: show interfaces lists each fabric link of the node with
// the kernel's oper status and its IPv4 address.
func interfacesAgree(ctx context.Context, f *sim.Fabric, n *sim.NodeInfo, bin string, logf logFunc) error {
	var rows []map[string]any
	if err := showJSON(ctx, f, n, bin, &rows, "interfaces"); err != nil {
		return err
	}
	byName := map[string]map[string]any{}
	for _, r := range rows {
		byName[cell(r, "interface")] = r
	}
	h := f.Namespace(n.Name).Handle()
	for _, i := range n.Interfaces {
		r, ok := byName[i.Name]
		if !ok {
			return fmt.Errorf("show interfaces lacks %s (has %v)", i.Name, slices.Sorted(maps.Keys(byName)))
		}
		l, err := h.LinkByName(i.Name)
		if err != nil {
			return err
		}
		up := l.Attrs().OperState == netlink.OperUp
		if got := strings.EqualFold(cell(r, "oper"), "UP"); got != up {
			return fmt.Errorf("%s: show says oper %q, the kernel %v", i.Name, cell(r, "oper"), l.Attrs().OperState)
		}
		if !strings.Contains(cell(r, "addresses"), i.Addr4.Addr().String()) {
			return fmt.Errorf("%s: show's addresses %q lack %v", i.Name, cell(r, "addresses"), i.Addr4.Addr())
		}
	}
	logf("%s: show interfaces: %d fabric links as in the kernel", n.Name, len(n.Interfaces))
	return nil
}
