package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
)

func TestMain(m *testing.M) { ns.TestMain(m) }

// fastTimers make a dead peer visible within seconds, so failover tests
// wait for the hold timer without dragging the suite out.
var fastTimers = &sim.Timers{Hold: 3, Keepalive: 1, ConnectRetry: 1}

func defaultFabric(t *testing.T) *sim.Fabric {
	topo := sim.Default()
	topo.Timers = fastTimers
	f := simtest.Start(t, topo)
	simtest.WaitConverged(t, f)
	return f
}

// TestFabricPrivileged runs the acceptance checks of the default fabric on
// one fabric, in order: each step leaves it converged for the next.
func TestFabricPrivileged(t *testing.T) {
	ns.Privileged(t)
	f := defaultFabric(t)
	ctx := context.Background()

	t.Run("AddressesFromConfig", func(t *testing.T) { checkConfiguredAddresses(t, f) })
	t.Run("HostsReachEveryHostOverBGPRoutes", func(t *testing.T) {
		hostsReachEveryHost(t, f)
		hosts := nodesWithRole(f, sim.Role("host"))
		if len(hosts) != 4 {
			t.Fatalf("default fabric has %d hosts, want 4", len(hosts))
		}
		for _, h := range hosts {
			// Only connected routes and switchd's: any other source
			// (a static route, say) would make reachability meaningless.
			for _, r := range kernelRoutes(t, f, h.Name) {
				if r.Protocol != netlink.RouteProtocol(fib.Protocol) && r.Protocol != 2 /* kernel */ {
					t.Errorf("%s: route %v has protocol %d, want only kernel (connected) and switchd (%d)", h.Name, r.Dst, r.Protocol, fib.Protocol)
				}
			}
			for _, o := range hosts {
				if o == h {
					continue
				}
				for _, lo := range []netip.Addr{o.Loopback4, o.Loopback6} {
					if r := routeTo(t, f, h.Name, lo); r == nil || r.Protocol != netlink.RouteProtocol(fib.Protocol) {
						t.Errorf("%s: no switchd route to %s's loopback %v", h.Name, o.Name, lo)
					}
				}
			}
		}
	})

	t.Run("LeafHasOneNextHopPerSpine", func(t *testing.T) {
		for _, dst := range []string{"host3", "host4"} {
			n := f.Node(dst)
			for _, lo := range []netip.Addr{n.Loopback4, n.Loopback6} {
				gws := nextHops(t, f, "leaf1", lo)
				if len(gws) != 2 {
					t.Fatalf("leaf1: route to %s (%v) has next hops %v, want one via each spine", dst, lo, gws)
				}
				if peers := peersOf(f, "leaf1", gws); !slices.Equal(peers, []string{"spine1", "spine2"}) {
					t.Fatalf("leaf1: route to %s (%v) goes via %v, want spine1 and spine2", dst, lo, peers)
				}
			}
		}
	})

	// Foreign routes, added by hand with another protocol: one to a prefix
	// switchd never has, one to the very prefix of a BGP route.
	host3v4 := f.Node("host3").Loopback4
	spine1Addr := peerAddr(t, f, "leaf1", "spine1", 4)
	foreign := [][]string{
		{"ip", "route", "add", "198.51.100.0/24", "via", spine1Addr.String(), "proto", "static"},
		{"ip", "route", "add", host3v4.String() + "/32", "via", spine1Addr.String(), "proto", "static", "metric", "500"},
	}
	for _, argv := range foreign {
		if out, err := f.Exec(ctx, "leaf1", argv...); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
	}

	t.Run("WithdrawnOriginRemovedEverywhere", func(t *testing.T) {
		h4 := f.Node("host4")
		orig, err := os.ReadFile(f.ConfigPath("host4"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.WriteFile(f.ConfigPath("host4"), orig, 0o644) })
		writeConfig(t, f.ConfigPath("host4"), withoutAggregates(t, orig))
		if err := f.Reload(ctx, "host4"); err != nil {
			t.Fatal(err)
		}
		others := allBut(f, "host4")
		waitFor(t, 30*time.Second, "host4's loopbacks withdrawn from every node", func() error {
			for _, n := range others {
				for _, lo := range []netip.Addr{h4.Loopback4, h4.Loopback6} {
					if r := switchdRouteTo(t, f, n, lo); r != nil {
						return fmt.Errorf("%s still has %v", n, r.Dst)
					}
				}
			}
			return nil
		})
		if err := f.Ping(ctx, "host1", "host4", 4); err == nil {
			t.Error("host1 still reaches host4's withdrawn loopback")
		}

		// Announcing it again brings it back, with ECMP on the far leaf.
		writeConfig(t, f.ConfigPath("host4"), orig)
		if err := f.Reload(ctx, "host4"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "host4's loopbacks back on every node", func() error {
			for _, n := range others {
				for _, lo := range []netip.Addr{h4.Loopback4, h4.Loopback6} {
					if switchdRouteTo(t, f, n, lo) == nil {
						return fmt.Errorf("%s has no route to %v", n, lo)
					}
				}
			}
			if gws := nextHops(t, f, "leaf1", h4.Loopback4); len(gws) != 2 {
				return fmt.Errorf("leaf1 reaches host4 via %v, want both spines", gws)
			}
			return nil
		})
	})

	t.Run("ForeignRoutesUntouched", func(t *testing.T) {
		want := map[string]bool{"198.51.100.0/24": false, host3v4.String() + "/32": false}
		for _, r := range kernelRoutes(t, f, "leaf1") {
			if r.Protocol == 4 /* static */ && r.Dst != nil {
				if _, ok := want[r.Dst.String()]; ok {
					want[r.Dst.String()] = true
				}
			}
		}
		for dst, ok := range want {
			if !ok {
				t.Errorf("leaf1: foreign route %s proto static is gone", dst)
			}
		}
	})

	t.Run("SpineKilledTrafficFlowsViaOther", func(t *testing.T) {
		if err := f.Kill("spine1", syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		spine2 := []string{"spine2"}
		waitFor(t, 20*time.Second, "leaf routes via spine2 only after the hold timer", func() error {
			for _, c := range []struct{ leaf, dst string }{{"leaf1", "host3"}, {"leaf2", "host1"}} {
				n := f.Node(c.dst)
				for _, lo := range []netip.Addr{n.Loopback4, n.Loopback6} {
					if peers := peersOf(f, c.leaf, nextHops(t, f, c.leaf, lo)); !slices.Equal(peers, spine2) {
						return fmt.Errorf("%s reaches %s (%v) via %v", c.leaf, c.dst, lo, peers)
					}
				}
			}
			return nil
		})
		for _, fam := range []int{4, 6} {
			if err := f.Ping(ctx, "host1", "host3", fam); err != nil {
				t.Errorf("host1 -> host3 IPv%d with spine1 dead: %v", fam, err)
			}
			if err := f.Ping(ctx, "host4", "host2", fam); err != nil {
				t.Errorf("host4 -> host2 IPv%d with spine1 dead: %v", fam, err)
			}
		}
	})
}

// TestBirdInteropPrivileged peers a real BIRD 2 with a switchd leaf: routes
// flow both ways and BIRD's land in the leaf's FIB as switchd's.
func TestBirdInteropPrivileged(t *testing.T) {
	ns.Privileged(t)
	topo := &sim.Topology{
		Name:   "interop",
		Timers: fastTimers,
		Nodes: []sim.Node{
			{Name: "leaf1", Role: "leaf", ASN: 65001},
			{Name: "host1", Role: "host", ASN: 65101},
			{Name: "bird1", Role: "leaf", ASN: 65201, Kind: "bird"},
		},
		Links: []sim.Link{{A: "leaf1", B: "host1"}, {A: "leaf1", B: "bird1"}},
	}
	f := simtest.Start(t, topo)
	simtest.WaitConverged(t, f)
	ctx := context.Background()

	bird := f.Node("bird1")
	for _, lo := range []netip.Addr{bird.Loopback4, bird.Loopback6} {
		r := routeTo(t, f, "leaf1", lo)
		if r == nil || r.Protocol != netlink.RouteProtocol(fib.Protocol) {
			t.Errorf("leaf1: BIRD's loopback %v not in the FIB with protocol %d: %+v", lo, fib.Protocol, r)
		}
	}
	for _, n := range []string{"leaf1", "host1"} {
		v4, v6 := f.Loopbacks(n)
		for _, lo := range []netip.Addr{v4, v6} {
			r := routeTo(t, f, "bird1", lo)
			if r == nil || r.Protocol != netlink.RouteProtocol(f.Node("bird1").RouteProtocol()) {
				t.Errorf("bird1: no BIRD route to %s's loopback %v: %+v", n, lo, r)
			}
		}
	}
	for _, fam := range []int{4, 6} {
		if err := f.Ping(ctx, "host1", "bird1", fam); err != nil {
			t.Errorf("host1 -> bird1 IPv%d: %v", fam, err)
		}
	}
}

func nodesWithRole(f *sim.Fabric, role sim.Role) []*sim.NodeInfo {
	var out []*sim.NodeInfo
	for _, n := range f.Nodes() {
		if n.Role == role {
			out = append(out, n)
		}
	}
	return out
}

func allBut(f *sim.Fabric, name string) []string {
	var out []string
	for _, n := range f.Nodes() {
		if n.Name != name {
			out = append(out, n.Name)
		}
	}
	return out
}

// kernelRoutes lists every route of the node's main table, IPv4 and IPv6,
// whatever its protocol.
func kernelRoutes(t *testing.T, f *sim.Fabric, node string) []netlink.Route {
	t.Helper()
	h := f.Namespace(node).Handle()
	rs, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: fib.MainTable}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatalf("%s: list routes: %v", node, err)
	}
	var out []netlink.Route
	for _, r := range rs {
		// IPv6 multicast and local routes live in other tables; link-local
		// fe80::/64 is connected.
		if r.Type == 1 /* unicast */ || r.Type == 6 /* blackhole */ {
			out = append(out, r)
		}
	}
	return out
}

// routeTo finds the kernel route whose destination is exactly addr's host
// prefix, whatever its protocol (nil if none); switchd's wins if several.
func routeTo(t *testing.T, f *sim.Fabric, node string, addr netip.Addr) *netlink.Route {
	t.Helper()
	return routeFor(t, f, node, netip.PrefixFrom(addr, addr.BitLen()))
}

// routeFor finds the kernel route to exactly p (nil if none); switchd's
// wins if several.
func routeFor(t *testing.T, f *sim.Fabric, node string, p netip.Prefix) *netlink.Route {
	t.Helper()
	var found *netlink.Route
	for _, r := range kernelRoutes(t, f, node) {
		if r.Dst == nil {
			continue
		}
		a, _ := netip.AddrFromSlice(r.Dst.IP)
		ones, _ := r.Dst.Mask.Size()
		if a.Unmap() == p.Addr() && ones == p.Bits() {
			if found == nil || r.Protocol == netlink.RouteProtocol(fib.Protocol) {
				found = &r
			}
		}
	}
	return found
}

func switchdRouteTo(t *testing.T, f *sim.Fabric, node string, addr netip.Addr) *netlink.Route {
	r := routeTo(t, f, node, addr)
	if r == nil || r.Protocol != netlink.RouteProtocol(fib.Protocol) {
		return nil
	}
	return r
}

// nextHops lists the gateways of switchd's route to addr on node.
func nextHops(t *testing.T, f *sim.Fabric, node string, addr netip.Addr) []netip.Addr {
	t.Helper()
	return gateways(switchdRouteTo(t, f, node, addr))
}

func gateways(r *netlink.Route) []netip.Addr {
	if r == nil {
		return nil
	}
	if len(r.MultiPath) == 0 {
		a, _ := netip.AddrFromSlice(r.Gw)
		return []netip.Addr{a.Unmap()}
	}
	var gws []netip.Addr
	for _, nh := range r.MultiPath {
		a, _ := netip.AddrFromSlice(nh.Gw)
		gws = append(gws, a.Unmap())
	}
	return gws
}

// peersOf names the neighbors of node that own the gateway addresses.
func peersOf(f *sim.Fabric, node string, gws []netip.Addr) []string {
	var peers []string
	for _, gw := range gws {
		name := gw.String()
		for _, i := range f.Node(node).Interfaces {
			if i.Peer4 == gw || i.Peer6 == gw {
				name = i.Peer
			}
		}
		peers = append(peers, name)
	}
	slices.Sort(peers)
	return peers
}

func peerAddr(t *testing.T, f *sim.Fabric, node, peer string, family int) netip.Addr {
	t.Helper()
	for _, i := range f.Node(node).Interfaces {
		if i.Peer == peer {
			if family == 4 {
				return i.Peer4
			}
			return i.Peer6
		}
	}
	t.Fatalf("%s has no link to %s", node, peer)
	return netip.Addr{}
}

// withoutAggregates drops the local aggregates (the node's originated
// loopbacks) from a node's OpenConfig config.
func withoutAggregates(t *testing.T, cfg []byte) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(cfg, &doc); err != nil {
		t.Fatal(err)
	}
	if !dropKey(doc, "local-aggregates") {
		t.Fatal("config has no local-aggregates to withdraw")
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writeConfig(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it returns nil or the deadline passes; the last
// error says what was still wrong.
func waitFor(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// dropKey deletes every member named key anywhere in a JSON document.
func dropKey(v any, key string) bool {
	found := false
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v[key]; ok {
			delete(v, key)
			found = true
		}
		for _, c := range v {
			found = dropKey(c, key) || found
		}
	case []any:
		for _, c := range v {
			found = dropKey(c, key) || found
		}
	}
	return found
}

// lockedBuffer collects a child's output written from another goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
