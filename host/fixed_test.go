package host

import (
	"context"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/switchd/switchd/host/endpointapi"
	"github.com/switchd/switchd/sim/ns"
	"github.com/vishvananda/netlink"
)

var staticTest = netip.MustParsePrefix("198.51.100.0/28")

// TestFixedAddressOutsidePoolsRefusedPrivileged: a fixed address in no pool
// and no static prefix is refused on every entry point (container ADD and
// VM adoption over the endpoint API, AdoptVM as the daemon calls it for
// configured VMs) with code 104 naming the address and the pools, and
// nothing is created or announced; fixed addresses in a pool or a static
// prefix are still given.
func TestFixedAddressOutsidePoolsRefusedPrivileged(t *testing.T) {
	ctx := context.Background()
	host := newHost(t)
	if err := host.Do(func() error {
		return netlink.LinkAdd(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "tapfix1"}, Mode: netlink.TUNTAP_MODE_TAP})
	}); err != nil {
		t.Fatal(err)
	}
	wl := ns.NewT(t, "fixwl")
	dir := t.TempDir()
	f := newFakeFIB(t, host)
	m := newManagerOpts(t, host, f, Options{StateDir: dir, Pools: []Pool{pool4, pool6}, StaticPrefixes: []netip.Prefix{staticTest}})
	c := serveAPI(t, m)

	for _, tc := range []struct {
		name string
		call func() error
		addr string
	}{
		{"container, IPv4 outside", func() error {
			_, err := c.AddContainer(ctx, endpointapi.ContainerAdd{ContainerID: "c1", Netns: wl.Path(), IPv4: netip.MustParseAddr("192.0.2.7")})
			return err
		}, "192.0.2.7"},
		// The IPv4 address the pool would give must not stay allocated.
		{"container, IPv6 outside", func() error {
			_, err := c.AddContainer(ctx, endpointapi.ContainerAdd{ContainerID: "c1", Netns: wl.Path(), IPv6: netip.MustParseAddr("2001:db8::7")})
			return err
		}, "2001:db8::7"},
		{"container, in another host's range", func() error {
			_, err := c.AddContainer(ctx, endpointapi.ContainerAdd{ContainerID: "c1", Netns: wl.Path(), IPv4: netip.MustParseAddr("10.11.0.5")})
			return err
		}, "10.11.0.5"},
		{"VM over the API", func() error {
			_, err := c.AdoptVM(ctx, endpointapi.VMAdopt{Name: "vm1", Tap: "tapfix1", IPv4: netip.MustParseAddr("192.0.2.8")})
			return err
		}, "192.0.2.8"},
		{"VM as configured", func() error {
			_, err := m.AdoptVM(ctx, VMRequest{Name: "vm1", Tap: "tapfix1", IPv4: netip.MustParseAddr("198.51.100.16")})
			if err != nil {
				err = errorFor(err) // as the API would answer
			}
			return err
		}, "198.51.100.16"},
	} {
		err := tc.call()
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		code, status := apiCode(t, err)
		if code != endpointapi.CodeAddressNotAllowed || status != http.StatusForbidden || !strings.Contains(err.Error(), tc.addr+" is in no pool (10.10.0.0/16, fd00:10::/64)") ||
			!strings.Contains(err.Error(), staticTest.String()) {
			t.Errorf("%s: %v (code %d, status %d), want code %d, 403, naming %s, the pools and the static prefix", tc.name, err, code, status, endpointapi.CodeAddressNotAllowed, tc.addr)
		}
	}
	if eps := m.List(); len(eps) != 0 {
		t.Errorf("endpoints after refused requests: %+v", eps)
	}
	if r := records(t, dir); len(r) != 0 {
		t.Errorf("records after refused requests: %v", r)
	}
	if v := ourVeths(t, host); len(v) != 0 {
		t.Errorf("veths after refused requests: %v", v)
	}
	if links, _ := wl.Handle().LinkList(); len(links) != 1 {
		t.Errorf("workload has %d links after refused requests, want only lo", len(links))
	}
	if out, _ := host.Run(ctx, "ip", "addr", "show", "dev", "tapfix1"); contains(out, "fe80::1/64") {
		t.Errorf("refused VM's tap got the gateway: %s", out)
	}
	if out, _ := host.Run(ctx, "ip", "neigh", "show", "dev", "tapfix1", "nud", "permanent"); out != "" {
		t.Errorf("refused VM's tap got neighbours: %q", out)
	}
	if rs := m.Routes(); len(rs) != 0 {
		t.Errorf("routes after refused requests: %v", rs)
	}
	if adv := f.advertised(); len(adv) != 0 || len(m.Blocks()) != 0 {
		t.Errorf("advertised %v, blocks %v after refused requests, want nothing", adv, m.Blocks())
	}

	// Legitimate fixed addresses: one in a pool claims its block (announced
	// as the block, no /32), one in the static prefix is announced alone.
	res, err := c.AddContainer(ctx, endpointapi.ContainerAdd{ContainerID: "c1", Netns: wl.Path(), IPv4: netip.MustParseAddr("10.10.7.7")})
	if err != nil || res.Endpoint.IPv4 != netip.MustParseAddr("10.10.7.7") {
		t.Fatalf("ADD with 10.10.7.7 from the pool: %+v, %v", res, err)
	}
	if _, err := m.AdoptVM(ctx, VMRequest{Name: "vm1", Tap: "tapfix1", IPv4: netip.MustParseAddr("198.51.100.7")}); err != nil {
		t.Fatalf("adopt with 198.51.100.7 from the static prefix: %v", err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.10.7.0/26"), netip.MustParsePrefix("fd00:10::/122"), netip.MustParsePrefix("198.51.100.7/32")}
	if adv := f.advertised(); !slices.Equal(adv, want) {
		t.Errorf("advertised %v, want %v", adv, want)
	}
}

// TestRestartKeepsUnfitRecordUnannouncedPrivileged: a record whose address
// no longer fits (here its static prefix was removed; records an older
// switchd took unchecked look the same) survives a restart and keeps
// working on this host, but is not announced; new requests for it are
// refused; a config that covers it again announces it again.
func TestRestartKeepsUnfitRecordUnannouncedPrivileged(t *testing.T) {
	ctx := context.Background()
	host := newHost(t)
	wl := ns.NewT(t, "unfit")
	dir := t.TempDir()
	static := netip.MustParseAddr("198.51.100.7")
	hostPfx := netip.MustParsePrefix("198.51.100.7/32")
	withStatic := Options{StateDir: dir, Pools: []Pool{pool4, pool6}, StaticPrefixes: []netip.Prefix{staticTest}, HostNetns: host.Path()}
	m1, err := NewManager(withStatic)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := m1.AddContainer(ctx, ContainerRequest{ContainerID: "c1", Netns: wl.Path(), IPv4: static})
	m1.Close()
	if err != nil {
		t.Fatal(err)
	}

	f := newFakeFIB(t, host)
	m2, err := NewManager(Options{StateDir: dir, Pools: []Pool{pool4, pool6}, HostNetns: host.Path()})
	if err != nil {
		t.Fatal(err)
	}
	f.follow(m2)
	t.Cleanup(func() {
		if m2 != nil {
			m2.Close()
		}
	})
	if eps := m2.List(); len(eps) != 1 || eps[0].IPv4 != static {
		t.Fatalf("endpoints after restart: %+v, want c1 with %v kept", eps, static)
	}
	if v := ourVeths(t, host); !slices.Equal(v, []string{r1.Endpoint.HostIface}) {
		t.Errorf("veths after restart %v, want %s kept", v, r1.Endpoint.HostIface)
	}
	if _, ok := f.get(hostPfx.String()); !ok {
		t.Errorf("host route to %v not kept: the workload is still here", static)
	}
	if err := ping(ctx, wl, hostLo4.String()); err != nil {
		t.Errorf("kept workload cannot reach the host: %v", err)
	}
	if adv := f.advertised(); slices.Contains(adv, hostPfx) || len(adv) != 1 {
		t.Errorf("advertised %v, want only c1's IPv6 block, not %v", adv, hostPfx)
	}
	wl2 := ns.NewT(t, "unfit2")
	if _, err := m2.AddContainer(ctx, ContainerRequest{ContainerID: "c2", Netns: wl2.Path(), IPv4: netip.MustParseAddr("198.51.100.8")}); err == nil || errorFor(err).Code != endpointapi.CodeAddressNotAllowed {
		t.Errorf("new request in the removed static prefix: %v, want code %d", err, endpointapi.CodeAddressNotAllowed)
	}
	m2.Close()
	m2 = nil

	f3 := newFakeFIB(t, host)
	newManagerOpts(t, host, f3, withStatic)
	if adv := f3.advertised(); !slices.Contains(adv, hostPfx) {
		t.Errorf("advertised %v with the static prefix back, want %v", adv, hostPfx)
	}
}
