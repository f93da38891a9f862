package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
	"golang.org/x/sys/unix"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/gnmi"
	"github.com/switchd/switchd/host"
	"github.com/switchd/switchd/host/endpointapi"
	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/platform"
	"github.com/switchd/switchd/policy"
	"github.com/switchd/switchd/switchd/bgp"
	"github.com/switchd/switchd/switchd/daemon/state"
)

// startStateServer runs a gnmi.Server (with o) on a local socket in a
// temporary directory, as the daemon does, fed by the daemon's state
// renderers: two interfaces, two BGP neighbors (one up, one not), an
// endpoint, an ACL entry and a system sample. It returns the socket.
func startStateServer(t *testing.T, o gnmi.Options) (string, *gnmi.Server) {
	t.Helper()
	sock, s := startServer(t, o)
	tr := state.New(s)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tr.Links([]platform.LinkStats{
		{Index: 1, Name: "lo", Flags: unix.IFF_UP, OperState: 0 /* IF_OPER_UNKNOWN */, MTU: 65536,
			Addrs: []netip.Prefix{netip.MustParsePrefix("10.255.0.1/32")}},
		{Index: 7, Name: "swp1", Kind: "veth", Type: unix.ARPHRD_ETHER, Flags: unix.IFF_UP, OperState: 6 /* IF_OPER_UP */, MTU: 9000,
			Counters: platform.LinkCounters{RxPackets: 1234567, TxPackets: 1<<53 + 1, RxErrors: 3}, // not a float64
			Addrs:    []netip.Prefix{netip.MustParsePrefix("10.1.1.1/31"), netip.MustParsePrefix("fd00::1/127"), netip.MustParsePrefix("fe80::1/64")}},
	}))
	must(tr.BGPGlobal(65001, netip.MustParseAddr("10.255.0.1")))
	up := time.Now().Add(-90 * time.Minute)
	must(tr.Neighbors([]bgp.NeighborState{
		{Address: netip.MustParseAddr("10.1.1.0"), PeerAS: 65100, State: bgp.StateEstablished,
			EstablishedTransitions: 2, LastEstablished: up,
			PrefixesReceived: map[bgp.Family]uint64{bgp.IPv4Unicast: 12}, PrefixesAccepted: map[bgp.Family]uint64{bgp.IPv4Unicast: 11},
			PrefixesSent: map[bgp.Family]uint64{bgp.IPv4Unicast: 5}, NegotiatedFamilies: []bgp.Family{bgp.IPv4Unicast},
			Messages: bgp.MessageCounts{UpdatesReceived: 20, UpdatesSent: 7}},
		{Address: netip.MustParseAddr("fd00::"), PeerAS: 65101, State: bgp.StateActive,
			PrefixesReceived: map[bgp.Family]uint64{bgp.IPv6Unicast: 0}},
	}))
	must(tr.Endpoints([]host.EndpointEvent{{Type: host.EndpointAdded, Endpoint: endpointapi.Endpoint{
		ID: "web-1", Kind: endpointapi.KindVM, Name: "web-1", HostIface: "tap-web1",
		IPv4: netip.MustParseAddr("10.20.0.5"), Labels: map[string]string{"role": "web"}}}}))
	must(tr.ACL([]policy.ACLEntryCounter{{Set: policy.ACLSetKey{Name: "in", Type: policy.ACLIPv4}, Seq: 10, Packets: 99, Octets: 9900}}))
	now := time.Now()
	must(tr.System(state.SystemSample{Time: now, Hostname: "leaf7", BootTime: now.Add(-50 * time.Hour),
		MemTotal: 8 << 30, MemFree: 1 << 30, MemAvailable: 4 << 30, CPUs: []state.CPUUsage{{Index: -1, Total: 12, User: 8, Kernel: 4, Idle: 88}, {Index: 0, Total: 20}},
		Process: state.ProcessSample{PID: 4321, Name: "switchd", Args: []string{"switchd", "run"}, StartTime: now.Add(-time.Hour), CPUPercent: 3, RSS: 50 << 20}}))
	// switchd's own status, as leaves (its renderer is another change).
	sw := &oc.Switchd{Fib: &oc.Switchd_Fib{InSync: ygot.Bool(true), Routes: ygot.Uint64(1200)}}
	ns, err := ygot.TogNMINotifications(sw, now.UnixNano(), ygot.GNMINotificationsConfig{UsePathElem: true,
		PathElemPrefix: []*gpb.PathElem{{Name: "switchd"}}})
	must(err)
	for _, n := range ns {
		must(s.Update(n))
	}
	return sock, s
}

// aftNotifications are an AFT as the standard OpenConfig paths have it:
// 10.9.0.0/24 over two next hops (group 1), 10.9.0.0/16 over one
// (group 2).
func aftNotifications(t *testing.T) []*gpb.Notification {
	leaf := func(p string, v *gpb.TypedValue) *gpb.Update {
		gp, err := ygot.StringToStructuredPath(aftPath + p)
		if err != nil {
			t.Fatal(err)
		}
		return &gpb.Update{Path: gp, Val: v}
	}
	u := func(x uint64) *gpb.TypedValue { return &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: x}} }
	s := func(x string) *gpb.TypedValue { return &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: x}} }
	return []*gpb.Notification{{Timestamp: time.Now().UnixNano(), Update: []*gpb.Update{
		leaf("/ipv4-unicast/ipv4-entry[prefix=10.9.0.0/24]/state/prefix", s("10.9.0.0/24")),
		leaf("/ipv4-unicast/ipv4-entry[prefix=10.9.0.0/24]/state/next-hop-group", u(1)),
		leaf("/ipv4-unicast/ipv4-entry[prefix=10.9.0.0/24]/state/origin-protocol", s("BGP")),
		leaf("/ipv4-unicast/ipv4-entry[prefix=10.9.0.0/16]/state/next-hop-group", u(2)),
		leaf("/next-hop-groups/next-hop-group[id=1]/next-hops/next-hop[index=11]/state/weight", u(1)),
		leaf("/next-hop-groups/next-hop-group[id=1]/next-hops/next-hop[index=12]/state/weight", u(1)),
		leaf("/next-hop-groups/next-hop-group[id=2]/next-hops/next-hop[index=12]/state/index", u(12)),
		leaf("/next-hops/next-hop[index=11]/state/ip-address", s("10.1.1.0")),
		leaf("/next-hops/next-hop[index=11]/interface-ref/state/interface", s("swp1")),
		leaf("/next-hops/next-hop[index=12]/state/ip-address", s("10.1.2.0")),
		leaf("/next-hops/next-hop[index=12]/interface-ref/state/interface", s("swp2")),
	}}}
}

// startServer runs an empty gnmi.Server on a local socket in a
// temporary directory and returns the socket.
func startServer(t testing.TB, o gnmi.Options) (string, *gnmi.Server) {
	t.Helper()
	s, err := gnmi.New(o)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "gnmi.sock")
	l, err := s.Listen(gnmi.ListenOptions{LocalSocket: sock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return sock, s
}

// switchd runs the command line and returns stdout, failing the test
// on another exit code than want.
func switchd(t *testing.T, want int, args ...string) (stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(args, &out, &errb); code != want {
		t.Fatalf("switchd %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

// lineWith is the line of out whose first field is first, split into
// fields ("" and nil if none).
func lineWith(out, first string) []string {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == first {
			return f
		}
	}
	return nil
}

// TestShowAgainstServer runs the show commands against a real gNMI
// server fed by the daemon's renderers and checks each names what was
// published, in the right column.
//
// The server runs with the schema and without, as the daemon runs it
// (then 64-bit values come as JSON numbers, not strings).
func TestShowAgainstServer(t *testing.T) {
	t.Run("schema", func(t *testing.T) { testShowAgainstServer(t, gnmi.Options{Schema: oc.LazySchemaTree()["Device"]}) })
	t.Run("no schema", func(t *testing.T) { testShowAgainstServer(t, gnmi.Options{}) })
}

func testShowAgainstServer(t *testing.T, o gnmi.Options) {
	sock, s := startStateServer(t, o)
	for _, n := range aftNotifications(t) { // published, as a test may, not walked
		if err := s.Update(n); err != nil {
			t.Fatal(err)
		}
	}
	sw := func(args ...string) string {
		out, _ := switchd(t, 0, append([]string{"show", "--gnmi-socket", sock}, args...)...)
		return out
	}

	out := sw("interfaces")
	if got := strings.Join(lineWith(out, "swp1"), " "); got != "swp1 up up 9000 1234567 9007199254740993 3 0 0 0 10.1.1.1/31,fd00::1/127" {
		t.Errorf("show interfaces: swp1 line %q\n%s", got, out)
	}
	if f := lineWith(out, "lo"); len(f) == 0 || f[len(f)-1] != "10.255.0.1/32" {
		t.Errorf("show interfaces: no lo with 10.255.0.1/32\n%s", out)
	}
	if strings.Index(out, "\nlo ") > strings.Index(out, "\nswp1 ") {
		t.Errorf("show interfaces: not in ifindex order\n%s", out)
	}

	out = sw("bgp", "summary")
	if !strings.Contains(out, "BGP router identifier 10.255.0.1, local AS number 65001") {
		t.Errorf("show bgp summary: no router ID and AS\n%s", out)
	}
	f := lineWith(out, "10.1.1.0")
	if len(f) != 7 || f[1] != "65100" || f[2] != "20" || f[3] != "7" || !strings.HasPrefix(f[4], "01:30:") || f[5] != "11" || f[6] != "5" {
		t.Errorf("show bgp summary: 10.1.1.0 line %q\n%s", f, out)
	}
	if got := strings.Join(lineWith(out, "fd00::"), " "); got != "fd00:: 65101 0 0 never Active -" {
		t.Errorf("show bgp summary: fd00:: line %q\n%s", got, out)
	}
	if sw("bgp") != out[:0]+sw("bgp") || !strings.Contains(sw("bgp"), "Total number of neighbors 2") {
		t.Errorf("show bgp is not the summary")
	}

	out = sw("bgp", "neighbors", "10.1.1.0")
	for _, want := range []string{"Neighbor 10.1.1.0\n", "  State:", "Established", "IPv4 pfx rcvd:", "12\n", "Established transitions:"} {
		if !strings.Contains(out, want) {
			t.Errorf("show bgp neighbors 10.1.1.0: no %q\n%s", want, out)
		}
	}
	if strings.Contains(out, "fd00::") {
		t.Errorf("show bgp neighbors 10.1.1.0 shows another neighbor\n%s", out)
	}
	if _, errs := switchd(t, 1, "show", "--gnmi-socket", sock, "bgp", "neighbors", "192.0.2.1"); !strings.Contains(errs, "no BGP neighbor 192.0.2.1") {
		t.Errorf("show bgp neighbors of an unknown address: %s", errs)
	}

	out = sw("route")
	want := "Prefix       Origin  Next hop  Interface  Weight\n" +
		"10.9.0.0/16  -       10.1.2.0  swp2            -\n" +
		"10.9.0.0/24  bgp     10.1.1.0  swp1            1\n" +
		"                     10.1.2.0  swp2            1\n"
	if out != want {
		t.Errorf("show route:\n%s\nwant:\n%s", out, want)
	}
	if out := sw("route", "10.9.0.77"); !strings.HasPrefix(lineWith(out, "10.9.0.0/24")[0], "10.9.0.0/24") || strings.Contains(out, "/16") {
		t.Errorf("show route 10.9.0.77 (longest match /24):\n%s", out)
	}
	if out := sw("route", "10.9.200.1"); lineWith(out, "10.9.0.0/16") == nil {
		t.Errorf("show route 10.9.200.1 (only /16 holds it):\n%s", out)
	}
	if out := sw("route", "10.9.0.0/16"); lineWith(out, "10.9.0.0/16") == nil || strings.Contains(out, "/24") {
		t.Errorf("show route 10.9.0.0/16:\n%s", out)
	}
	var routes []route
	if err := json.Unmarshal([]byte(sw("route", "--json")), &routes); err != nil || len(routes) != 2 || len(routes[1].NextHops) != 2 ||
		*routes[1].NextHops[0].Interface != "swp1" {
		t.Errorf("show route --json: %v %+v", err, routes)
	}

	out = sw("endpoints")
	if got := strings.Join(lineWith(out, "web-1"), " "); got != "web-1 vm tap-web1 10.20.0.5 - - role=web" {
		t.Errorf("show endpoints: web-1 line %q\n%s", got, out)
	}
	out = sw("acl")
	if got := strings.Join(lineWith(out, "in"), " "); got != "in IPV4 10 99 9900" {
		t.Errorf("show acl: line %q\n%s", got, out)
	}
	out = sw("system")
	for _, want := range []string{"Hostname leaf7\n", "Uptime:", "2d02h00m", "Memory physical:     8.0 GiB\n", "CPU total:           12%\n",
		"FIB in sync:         true\n", "FIB routes:          1200\n",
		"Process:             switchd\n", "PID:                 4321\n", "Process memory:      50.0 MiB\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("show system: no %q\n%s", want, out)
		}
	}

	if strings.Contains(out, "Policy in sync") {
		t.Errorf("show system prints policy state none was published:\n%s", out)
	}
	var sys []map[string]any
	if err := json.Unmarshal([]byte(sw("system", "--json")), &sys); err != nil || len(sys) != 1 ||
		sys[0]["memory-physical"] != float64(8<<30) || sys[0]["cpu-total"] != 12.0 || sys[0]["policy-in-sync"] != nil {
		t.Errorf("show system --json: %v %v", err, sys)
	}

	var rows []map[string]any
	if err := json.Unmarshal([]byte(sw("bgp", "summary", "--json")), &rows); err != nil || len(rows) != 2 ||
		rows[0]["neighbor"] != "10.1.1.0" || rows[0]["state/pfxrcd"] != 11.0 || rows[1]["state/pfxrcd"] != "Active" {
		t.Errorf("show bgp summary --json: %v %v", err, rows)
	}
}

// TestShowEnvSocket: SWITCHD_GNMI_SOCKET replaces the default socket.
func TestShowEnvSocket(t *testing.T) {
	sock, _ := startStateServer(t, gnmi.Options{})
	t.Setenv("SWITCHD_GNMI_SOCKET", sock)
	if out, _ := switchd(t, 0, "show", "acl"); lineWith(out, "in") == nil {
		t.Errorf("show acl over $SWITCHD_GNMI_SOCKET:\n%s", out)
	}
}

// TestShowEmpty: a daemon with no state yet gives empty tables and says
// there is no BGP, not an error.
func TestShowEmpty(t *testing.T) {
	sock, _ := startServer(t, gnmi.Options{})
	if out, _ := switchd(t, 0, "show", "--gnmi-socket", sock, "bgp"); !strings.HasPrefix(out, "No BGP state") {
		t.Errorf("show bgp with no BGP: %q", out)
	}
	if out, _ := switchd(t, 0, "show", "--gnmi-socket", sock, "interfaces"); strings.Count(out, "\n") != 1 {
		t.Errorf("show interfaces with none: %q", out)
	}
	if out, _ := switchd(t, 0, "show", "--gnmi-socket", sock, "route", "--json"); out != "[]\n" {
		t.Errorf("show route --json with no AFT: %q", out)
	}
}

// TestShowDaemonDown: no socket, or a socket nobody serves, is "cannot
// reach the daemon at PATH", exit 1; an unknown subcommand is usage,
// exit 2.
func TestShowDaemonDown(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.sock")
	_, errs := switchd(t, 1, "show", "--gnmi-socket", missing, "interfaces")
	if want := "switchd show: cannot reach the daemon at " + missing + ": "; !strings.HasPrefix(errs, want) {
		t.Errorf("missing socket: %q, want prefix %q", errs, want)
	}
	// A socket file left by a daemon that is gone: bound, then closed.
	stale := filepath.Join(dir, "stale.sock")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: stale}); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	for _, args := range [][]string{{"show", "bgp"}, {"get", "/system"}, {"set", "--delete", "/system/config/hostname"}} {
		_, errs = switchd(t, 1, append(args[:1:1], append([]string{"--gnmi-socket", stale}, args[1:]...)...)...)
		if want := "switchd " + args[0] + ": cannot reach the daemon at " + stale + ": "; !strings.HasPrefix(errs, want) {
			t.Errorf("%v on a stale socket: %q, want prefix %q", args, errs, want)
		}
	}
	for _, args := range [][]string{{"show"}, {"show", "nothing"}, {"show", "bgp", "peers"}, {"show", "interfaces", "extra"}, {"show", "route", "not-an-address"}} {
		if _, errs := switchd(t, 2, args...); !strings.Contains(errs, "usage: switchd show") {
			t.Errorf("%v: no usage:\n%s", args, errs)
		}
	}
}

// aftRoutes and aftGroups stand in for fib's views of the kernel (data
// only; fib's own views are tested against the kernel).
type aftRoutes []fib.AFTRoute

func (rs aftRoutes) Walk(fn func([]fib.AFTRoute) error) error { return fn(rs) }
func (rs aftRoutes) Lookup(p netip.Prefix) (fib.AFTRoute, bool) {
	for _, r := range rs {
		if r.Prefix == p {
			return r, true
		}
	}
	return fib.AFTRoute{}, false
}

type aftGroups struct {
	gs  []fib.AFTGroup
	nhs []fib.AFTNextHop
}

func (g aftGroups) AFT() ([]fib.AFTGroup, []fib.AFTNextHop) { return g.gs, g.nhs }

// TestShowRouteFromAFTSource: show route reads the AFT the daemon
// serves, state.AFT registered as the server's source (walked, not
// cached), for all routes, one prefix, and an address's longest match.
func TestShowRouteFromAFTSource(t *testing.T) {
	sock, s := startStateServer(t, gnmi.Options{})
	a := state.NewAFT(aftRoutes{
		{Prefix: netip.MustParsePrefix("10.1.0.0/24"), Metric: 20, Group: 7},
		{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Metric: 20, Group: 8},
		{Prefix: netip.MustParsePrefix("2001:db8::/64"), Metric: 20, Group: 8},
	}, aftGroups{
		gs: []fib.AFTGroup{{ID: 7, Members: []fib.AFTMember{{NextHop: 1, Weight: 1}, {NextHop: 2, Weight: 1}}},
			{ID: 8, Members: []fib.AFTMember{{NextHop: 2, Weight: 1}}}},
		nhs: []fib.AFTNextHop{{ID: 1, Gateway: netip.MustParseAddr("10.1.1.0"), Ifindex: 7},
			{ID: 2, Gateway: netip.MustParseAddr("fe80::2"), Ifindex: 8}},
	}, s, state.AFTOptions{
		Origin: func(fib.AFTRoute) string { return "BGP" },
		Ifname: func(i int) string { return map[int]string{7: "swp1", 8: "swp2"}[i] },
	})
	if err := s.AddSource(state.AFTPrefix(), a); err != nil {
		t.Fatal(err)
	}
	out, _ := switchd(t, 0, "show", "--gnmi-socket", sock, "route")
	want := "" +
		"Prefix         Origin  Next hop  Interface  Weight\n" +
		"10.0.0.0/8     bgp     fe80::2   swp2            1\n" +
		"10.1.0.0/24    bgp     10.1.1.0  swp1            1\n" +
		"                       fe80::2   swp2            1\n" +
		"2001:db8::/64  bgp     fe80::2   swp2            1\n"
	if out != want {
		t.Errorf("show route:\n%s\nwant:\n%s", out, want)
	}
	for q, want := range map[string]string{"10.1.0.0/24": "10.1.0.0/24", "10.1.0.9": "10.1.0.0/24", "10.200.0.1": "10.0.0.0/8", "2001:db8::1": "2001:db8::/64"} {
		out, _ := switchd(t, 0, "show", "--gnmi-socket", sock, "route", q, "--json")
		var rs []route
		if err := json.Unmarshal([]byte(out), &rs); err != nil || len(rs) != 1 || rs[0].Prefix != want || len(rs[0].NextHops) == 0 {
			t.Errorf("show route %s: %v\n%s", q, err, out)
		}
	}
	if _, errs := switchd(t, 1, "show", "--gnmi-socket", sock, "route", "192.0.2.1"); !strings.Contains(errs, "no route to 192.0.2.1") {
		t.Errorf("show route with no match: %q", errs)
	}
}
