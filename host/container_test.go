package host

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/sim/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestSysctlFollowsThreadPrivileged pins down what NS.Do relies on: a
// /proc/sys/net file shows the network namespace of the task that opens
// it, not the one of whoever mounted /proc.
func TestSysctlFollowsThreadPrivileged(t *testing.T) {
	a, b := ns.NewT(t, "sysa"), ns.NewT(t, "sysb")
	const p = "net/ipv4/conf/lo/rp_filter"
	for _, c := range []struct {
		n *ns.NS
		v string
	}{{a, "1"}, {b, "2"}} {
		if err := writeSysctls(c.n.Net(), []sysctl{{p, c.v}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		n    *ns.NS
		want string
	}{{a, "1"}, {b, "2"}} {
		got, err := readSysctl(c.n.Net(), p)
		if err != nil || got != c.want {
			t.Errorf("%s in %s = %q (%v), want %q", p, c.n.Name, got, err, c.want)
		}
		// And what a separate process in that namespace sees agrees.
		out, err := c.n.Run(context.Background(), "cat", "/proc/sys/"+p)
		if err != nil || strings.TrimSpace(out) != c.want {
			t.Errorf("cat %s in %s = %q (%v), want %q", p, c.n.Name, out, err, c.want)
		}
	}
}

func TestContainerEndpointPrivileged(t *testing.T) {
	ctx := context.Background()
	host := newHost(t)
	wl := ns.NewT(t, "wl1")
	dir := t.TempDir()
	f := newFakeFIB(t, host)
	m := newManager(t, host, dir, f)

	res, err := m.AddContainer(ctx, ContainerRequest{ContainerID: "c1", Netns: wl.Path(), Labels: map[string]string{"app": "web"}})
	if err != nil {
		t.Fatal(err)
	}
	ep := res.Endpoint
	if ep.ID != "c1/eth0" || ep.IfName != "eth0" || ep.IPv4 != netip.MustParseAddr("10.10.0.0") || ep.IPv6 != netip.MustParseAddr("fd00:10::") {
		t.Fatalf("endpoint = %+v", ep)
	}
	if res.GatewayV4 != GatewayV4 || res.GatewayV6 != GatewayV6 || res.HostMAC != "ee:ee:ee:ee:ee:ee" {
		t.Errorf("result gateways/MAC = %v %v %s", res.GatewayV4, res.GatewayV6, res.HostMAC)
	}

	// Workload side: addresses, MAC, default routes.
	wh := wl.Handle()
	eth0, err := wh.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if eth0.Attrs().HardwareAddr.String() != ep.MAC {
		t.Errorf("eth0 MAC %v, record says %s", eth0.Attrs().HardwareAddr, ep.MAC)
	}
	addrs, _ := wh.AddrList(eth0, unix.AF_UNSPEC)
	var got []string
	for _, a := range addrs {
		if !a.IP.IsLinkLocalUnicast() {
			got = append(got, a.IPNet.String())
		}
	}
	slices.Sort(got)
	if want := []string{"10.10.0.0/32", "fd00:10::/128"}; !slices.Equal(got, want) {
		t.Errorf("eth0 addresses %v, want %v", got, want)
	}
	out, _ := wl.Run(ctx, "ip", "route", "show", "default")
	if !strings.Contains(out, "default via 169.254.1.1 dev eth0") || !strings.Contains(out, "onlink") {
		t.Errorf("IPv4 default route: %q", out)
	}
	out, _ = wl.Run(ctx, "ip", "-6", "route", "show", "default")
	if !strings.Contains(out, "default via fe80::1 dev eth0") {
		t.Errorf("IPv6 default route: %q", out)
	}

	// Host side: no global address, the sysctls, the routes handed to fib.
	hl, err := host.Handle().LinkByName(ep.HostIface)
	if err != nil {
		t.Fatal(err)
	}
	haddrs, _ := host.Handle().AddrList(hl, unix.AF_UNSPEC)
	for _, a := range haddrs {
		// fe80::1 only: no generated link-local (addr_gen_mode none is
		// set before the workload side brings the carrier up).
		if !a.IP.IsLinkLocalUnicast() || a.IPNet.String() != "fe80::1/64" {
			t.Errorf("host side %s has address %v, want only fe80::1/64", ep.HostIface, a.IPNet)
		}
	}
	for _, s := range append(ifaceSysctls(ep.HostIface), sysctl{"net/ipv6/conf/" + ep.HostIface + "/addr_gen_mode", "1"}) {
		v, err := readSysctl(host.Net(), s.path)
		if strings.HasSuffix(s.path, "/accept_ra") && v == "1" {
			continue // the same as 0 with forwarding on (checked too)
		}
		if err != nil || v != s.value {
			t.Errorf("%s = %q (%v), want %s", s.path, v, err, s.value)
		}
	}
	r, ok := f.get("10.10.0.0/32")
	if !ok || r.Type != fib.Unicast || len(r.NextHops) != 1 || r.NextHops[0].Ifindex != hl.Attrs().Index || r.NextHops[0].Gateway.IsValid() {
		t.Errorf("host route to 10.10.0.0/32 = %v (%v), want device route via ifindex %d", r, ok, hl.Attrs().Index)
	}
	if _, ok := f.get("fd00:10::/128"); !ok {
		t.Errorf("no host route to fd00:10::/128")
	}
	for _, b := range []string{"10.10.0.0/26", "fd00:10::/122"} {
		if r, ok := f.get(b); !ok || r.Type != fib.Blackhole {
			t.Errorf("block %s: route %v (%v), want blackhole", b, r, ok)
		}
	}
	if want := []netip.Prefix{netip.MustParsePrefix("10.10.0.0/26"), netip.MustParsePrefix("fd00:10::/122")}; !slices.Equal(m.Blocks(), want) || !slices.Equal(f.adv, want) {
		t.Errorf("blocks %v, advertised %v, want %v", m.Blocks(), f.adv, want)
	}

	// Traffic both ways through the routes the fake fib installed.
	if err := ping(ctx, wl, hostLo4.String()); err != nil {
		t.Error(err)
	}
	if err := ping(ctx, wl, hostLo6.String()); err != nil {
		t.Error(err)
	}
	if err := ping(ctx, host, "-I", hostLo4.String(), ep.IPv4.String()); err != nil {
		t.Error(err)
	}
	if err := ping(ctx, host, "-I", hostLo6.String(), ep.IPv6.String()); err != nil {
		t.Error(err)
	}

	if err := m.Check(ctx, ep.ID); err != nil {
		t.Errorf("check: %v", err)
	}
	// Repeated ADD: the same result, nothing new.
	res2, err := m.AddContainer(ctx, ContainerRequest{ContainerID: "c1", Netns: wl.Path(), Labels: map[string]string{"app": "web"}})
	if err != nil || !reflect.DeepEqual(res, res2) {
		t.Errorf("second add = %+v, %v; want %+v", res2, err, res)
	}
	if n := len(ourVeths(t, host)); n != 1 {
		t.Errorf("%d veths after repeated add, want 1", n)
	}
	// The same container in another netns is a conflict, not a new endpoint.
	if _, err := m.AddContainer(ctx, ContainerRequest{ContainerID: "c1", Netns: host.Path()}); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("add c1 in another netns: %v, want ErrInvalidRequest", err)
	}
	// Check notices damage.
	if _, err := wl.Run(ctx, "ip", "route", "del", "default"); err != nil {
		t.Fatal(err)
	}
	if err := m.Check(ctx, ep.ID); err == nil || !strings.Contains(err.Error(), "default route") {
		t.Errorf("check after deleting the default route: %v", err)
	}

	// DEL removes veth, record, allocation and routes; twice is fine.
	if err := m.Del(ctx, ep.ID); err != nil {
		t.Fatal(err)
	}
	if v := ourVeths(t, host); len(v) != 0 {
		t.Errorf("veths after del: %v", v)
	}
	if _, err := wh.LinkByName("eth0"); err == nil {
		t.Errorf("eth0 still in the workload after del")
	}
	if r := records(t, dir); len(r) != 0 {
		t.Errorf("records after del: %v", r)
	}
	if _, ok := f.get("10.10.0.0/32"); ok {
		t.Errorf("host route still desired after del")
	}
	if len(m.List()) != 0 || len(m.ipam.owner) != 0 {
		t.Errorf("after del: endpoints %v, allocations %v", m.List(), m.ipam.owner)
	}
	if err := m.Del(ctx, ep.ID); err != nil {
		t.Errorf("second del: %v", err)
	}
	if err := m.Del(ctx, "never-seen/eth0"); err != nil {
		t.Errorf("del unknown: %v", err)
	}
	if err := m.Check(ctx, ep.ID); !errors.Is(err, ErrUnknownEndpoint) {
		t.Errorf("check after del: %v, want ErrUnknownEndpoint", err)
	}
}

// TestProxyARPPrivileged: without the static neighbour entries the
// workload still resolves its gateways: the host answers ARP for
// 169.254.1.1 by proxy ARP and NDP for fe80::1 because it owns it.
func TestProxyARPPrivileged(t *testing.T) {
	ctx := context.Background()
	host := newHost(t)
	// Proxy ARP answers only for targets the host routes elsewhere: give
	// the host a default route, as any real host has.
	if _, err := host.Run(ctx, "sh", "-c", "ip link add up0 type veth peer name up1 && ip link set up0 up && ip link set up1 up && ip route add default dev up0"); err != nil {
		t.Fatal(err)
	}
	wl := ns.NewT(t, "wl1")
	m := newManager(t, host, t.TempDir(), newFakeFIB(t, host))
	res, err := m.AddContainer(ctx, ContainerRequest{ContainerID: "c1", IfName: "net1", Netns: wl.Path()})
	if err != nil {
		t.Fatal(err)
	}
	for _, gw := range []string{"169.254.1.1", "fe80::1"} {
		if _, err := wl.Run(ctx, "ip", "neigh", "del", gw, "dev", "net1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := ping(ctx, wl, hostLo4.String()); err != nil {
		t.Error(err)
	}
	if err := ping(ctx, wl, hostLo6.String()); err != nil {
		t.Error(err)
	}
	for _, gw := range []string{"169.254.1.1", "fe80::1"} {
		out, _ := wl.Run(ctx, "ip", "neigh", "show", gw, "dev", "net1")
		if !strings.Contains(out, "lladdr "+res.HostMAC) || strings.Contains(out, "PERMANENT") {
			t.Errorf("neighbour %s learnt as %q, want lladdr %s resolved dynamically", gw, out, res.HostMAC)
		}
	}
}

// TestRPFilterPrivileged: a workload sending from an address that is not
// its own (another workload's) is dropped by strict reverse-path filtering
// on its host-side interface.
func TestRPFilterPrivileged(t *testing.T) {
	ctx := context.Background()
	host := newHost(t)
	wl1, wl2 := ns.NewT(t, "wl1"), ns.NewT(t, "wl2")
	m := newManager(t, host, t.TempDir(), newFakeFIB(t, host))
	r1, err := m.AddContainer(ctx, ContainerRequest{ContainerID: "c1", Netns: wl1.Path()})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := m.AddContainer(ctx, ContainerRequest{ContainerID: "c2", Netns: wl2.Path()})
	if err != nil {
		t.Fatal(err)
	}
	if err := ping(ctx, wl1, "-I", r1.Endpoint.IPv4.String(), hostLo4.String()); err != nil {
		t.Fatalf("own source: %v", err)
	}
	spoof := r2.Endpoint.IPv4.String()
	if _, err := wl1.Run(ctx, "ip", "addr", "add", spoof+"/32", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	before := rpFilterDrops(t, host)
	if err := ping(ctx, wl1, "-I", spoof, hostLo4.String()); err == nil {
		t.Errorf("ping from spoofed source %s got a reply", spoof)
	}
	if after := rpFilterDrops(t, host); after <= before {
		t.Errorf("IPReversePathFilter counter %d -> %d: spoofed packet not dropped by rp_filter", before, after)
	}
}

// rpFilterDrops reads TcpExt IPReversePathFilter of the namespace.
func rpFilterDrops(t *testing.T, n *ns.NS) int {
	t.Helper()
	out, err := n.Run(context.Background(), "cat", "/proc/net/netstat")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out, "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" || len(vals) != len(names) {
			continue
		}
		for j, name := range names {
			if name == "IPReversePathFilter" {
				v, _ := strconv.Atoi(vals[j])
				return v
			}
		}
	}
	t.Fatalf("no TcpExt IPReversePathFilter in /proc/net/netstat")
	return 0
}

// TestAddFailuresLeaveNothingPrivileged: bad input and failures mid-way
// leave no veth, no record and no allocation.
func TestAddFailuresLeaveNothingPrivileged(t *testing.T) {
	ctx := context.Background()
	host := newHost(t)
	dir := t.TempDir()
	m := newManager(t, host, dir, newFakeFIB(t, host), Pool{Prefix: netip.MustParsePrefix("192.0.2.0/30"), BlockBits: 30})

	assertClean := func(what string, wantEndpoints int) {
		t.Helper()
		if n := len(ourVeths(t, host)); n != wantEndpoints {
			t.Errorf("%s: %d veths, want %d", what, n, wantEndpoints)
		}
		if r := records(t, dir); len(r) != wantEndpoints {
			t.Errorf("%s: records %v, want %d", what, r, wantEndpoints)
		}
		if n := len(m.ipam.owner); n != wantEndpoints {
			t.Errorf("%s: %d addresses allocated, want %d", what, n, wantEndpoints)
		}
	}

	_, err := m.AddContainer(ctx, ContainerRequest{ContainerID: "c1", Netns: "/run/netns/" + ns.RunPrefix() + "-missing"})
	if !errors.Is(err, ErrNetnsMissing) || !strings.Contains(err.Error(), "-missing") {
		t.Errorf("missing netns: %v, want ErrNetnsMissing naming the path", err)
	}
	notNS := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notNS, nil, 0o600)
	if _, err := m.AddContainer(ctx, ContainerRequest{ContainerID: "c1", Netns: notNS}); !errors.Is(err, ErrNetnsMissing) {
		t.Errorf("netns path to a plain file: %v, want ErrNetnsMissing", err)
	}
	for _, bad := range []ContainerRequest{
		{ContainerID: "", Netns: "/x"},
		{ContainerID: "c/1", Netns: "/x"},
		{ContainerID: "c1", Netns: "relative"},
		{ContainerID: "c1", Netns: "/x", IfName: "much-too-long-name"},
		{ContainerID: "c1", Netns: "/x", IPv4: netip.MustParseAddr("fd00::1")},
	} {
		if _, err := m.AddContainer(ctx, bad); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("AddContainer(%+v): %v, want ErrInvalidRequest", bad, err)
		}
	}
	if _, err := m.AddContainer(ctx, ContainerRequest{ContainerID: "c1", Netns: host.Path()}); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("add into the host's own netns: %v, want ErrInvalidRequest", err)
	}
	assertClean("after rejected requests", 0)

	// Fails after allocation: the workload has an eth0 already.
	busy := ns.NewT(t, "busy")
	if err := busy.Handle().LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "eth0peer"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddContainer(ctx, ContainerRequest{ContainerID: "c1", Netns: busy.Path()}); err == nil {
		t.Errorf("add with eth0 taken in the workload succeeded")
	}
	assertClean("after failed veth creation", 0)

	// Exhaustion: four addresses in a /30, the fifth is an error naming the pool.
	for i := range 4 {
		wl := ns.NewT(t, "wl"+strconv.Itoa(i))
		if _, err := m.AddContainer(ctx, ContainerRequest{ContainerID: "c" + strconv.Itoa(i), Netns: wl.Path()}); err != nil {
			t.Fatal(err)
		}
	}
	wl := ns.NewT(t, "wl9")
	_, err = m.AddContainer(ctx, ContainerRequest{ContainerID: "c9", Netns: wl.Path()})
	if !errors.Is(err, ErrPoolExhausted) || !strings.Contains(err.Error(), "192.0.2.0/30") {
		t.Errorf("fifth add: %v, want ErrPoolExhausted naming 192.0.2.0/30", err)
	}
	assertClean("after exhaustion", 4)
	if _, err := wl.Handle().LinkByName("eth0"); err == nil {
		t.Errorf("eth0 created in the workload of the failed add")
	}
}

// TestHostSideIPv6DefaultsPrivileged: a host side that inherits IPv6
// forwarding off or accept_ra 2 (an admin changed the defaults after the
// Manager started) gets both written, so it still ignores RAs and routes.
func TestHostSideIPv6DefaultsPrivileged(t *testing.T) {
	ctx := context.Background()
	host := newHost(t)
	m := newManager(t, host, t.TempDir(), newFakeFIB(t, host))
	if err := writeSysctls(host.Net(), []sysctl{
		{"net/ipv6/conf/default/forwarding", "0"},
		{"net/ipv6/conf/default/accept_ra", "2"},
	}); err != nil {
		t.Fatal(err)
	}
	wl := ns.NewT(t, "wl6d")
	res, err := m.AddContainer(ctx, ContainerRequest{ContainerID: "c6d", Netns: wl.Path()})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ipv6IfaceSysctls(res.Endpoint.HostIface) {
		if v, err := readSysctl(host.Net(), s.path); err != nil || v != s.value {
			t.Errorf("%s = %q (%v), want %s", s.path, v, err, s.value)
		}
	}
}
