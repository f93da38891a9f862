package host

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/sim/ns"
	"github.com/vishvananda/netlink"
)

// TestEndpointFeedPrivileged: an endpoint added through the Manager appears
// once in the endpoint feed, with its labels and addresses; a Del
// publishes its removal; a Manager started again on the same state
// publishes the endpoints it adopted; a drain with nothing new is empty.
func TestEndpointFeedPrivileged(t *testing.T) {
	ctx := context.Background()
	host := newHost(t)
	wl1, wl2 := ns.NewT(t, "feed1"), ns.NewT(t, "feed2")
	dir := t.TempDir()
	m := newManager(t, host, dir, newFakeFIB(t, host))
	if evs := m.DrainEndpoints(); len(evs) != 0 {
		t.Fatalf("endpoint feed of a new Manager on an empty state = %+v, want nothing", evs)
	}

	labels := map[string]string{"app": "web", "tier": "front"}
	r1, err := m.AddContainer(ctx, ContainerRequest{ContainerID: "c1", Netns: wl1.Path(), Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	// Repeating the ADD changes nothing: no second event.
	if _, err := m.AddContainer(ctx, ContainerRequest{ContainerID: "c1", Netns: wl1.Path(), Labels: labels}); err != nil {
		t.Fatal(err)
	}
	evs := m.DrainEndpoints()
	if len(evs) != 1 || evs[0].Type != EndpointAdded {
		t.Fatalf("endpoint feed after one ADD = %+v, want one added event", evs)
	}
	e := evs[0].Endpoint
	if e.ID != r1.Endpoint.ID || e.Kind != KindContainer || e.HostIface != r1.Endpoint.HostIface || e.IfName != "eth0" ||
		e.Netns != wl1.Path() || !slices.Equal(e.Addrs(), r1.Endpoint.Addrs()) || len(e.Addrs()) != 2 || !maps.Equal(e.Labels, labels) {
		t.Errorf("added endpoint = %+v, want %+v with labels %v and both addresses", e, r1.Endpoint, labels)
	}
	if evs := m.DrainEndpoints(); len(evs) != 0 {
		t.Errorf("second drain = %+v, want nothing", evs)
	}

	r2, err := m.AddContainer(ctx, ContainerRequest{ContainerID: "c2", Netns: wl2.Path()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Del(ctx, r1.Endpoint.ID); err != nil {
		t.Fatal(err)
	}
	evs = m.DrainEndpoints()
	if len(evs) != 2 || evs[0].Type != EndpointRemoved || evs[0].Endpoint.ID != r1.Endpoint.ID || !maps.Equal(evs[0].Endpoint.Labels, labels) ||
		evs[1].Type != EndpointAdded || evs[1].Endpoint.ID != r2.Endpoint.ID {
		t.Fatalf("endpoint feed after c2's ADD and c1's DEL = %+v, want c1 removed (with its labels), c2 added", evs)
	}
	m.Close()

	m2 := newManager(t, host, dir, newFakeFIB(t, host))
	evs = m2.DrainEndpoints()
	if len(evs) != 1 || evs[0].Type != EndpointAdded || evs[0].Endpoint.ID != r2.Endpoint.ID || !slices.Equal(evs[0].Endpoint.Addrs(), r2.Endpoint.Addrs()) {
		t.Fatalf("endpoint feed after a restart = %+v, want c2 adopted as added", evs)
	}
	if evs := m2.DrainEndpoints(); len(evs) != 0 {
		t.Errorf("second drain after the restart = %+v, want nothing", evs)
	}
}

// TestRouteFeedPrivileged: the route feed's first drain holds the whole
// set, later ones the changes only, the latest per key.
func TestRouteFeedPrivileged(t *testing.T) {
	ctx := context.Background()
	host := newHost(t)
	wl := ns.NewT(t, "feed3")
	m, err := NewManager(Options{StateDir: t.TempDir(), Pools: []Pool{pool4}, HostNetns: host.Path()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	if c := m.DrainRoutes(); len(c.Set)+len(c.Del) != 0 || !c.OriginateChanged || len(c.Originate) != 0 {
		t.Fatalf("first drain on an empty state = %+v, want no routes and an empty origination", c)
	}
	r, err := m.AddContainer(ctx, ContainerRequest{ContainerID: "c1", Netns: wl.Path()})
	if err != nil {
		t.Fatal(err)
	}
	block := netip.MustParsePrefix("10.10.0.0/26") // DefaultBlockBitsV4
	c := m.DrainRoutes()
	var dsts []netip.Prefix
	for _, x := range c.Set {
		dsts = append(dsts, x.Key.Dst)
	}
	host32 := netip.PrefixFrom(r.Endpoint.IPv4, 32)
	if !slices.Equal(dsts, []netip.Prefix{block, host32}) || len(c.Del) != 0 || !c.OriginateChanged || !slices.Equal(c.Originate, []netip.Prefix{block}) {
		t.Fatalf("drain after an ADD = %+v, want the block's blackhole and %v, originating %v", c, host32, block)
	}
	if c := m.DrainRoutes(); len(c.Set)+len(c.Del) != 0 || c.OriginateChanged {
		t.Errorf("second drain = %+v, want nothing", c)
	}
	if err := m.Del(ctx, r.Endpoint.ID); err != nil {
		t.Fatal(err)
	}
	c = m.DrainRoutes()
	if len(c.Set) != 0 || len(c.Del) != 1 || c.Del[0].Dst != host32 {
		t.Errorf("drain after the DEL = %+v, want %v deleted only", c, host32)
	}
}

func TestFeedsCoalesce(t *testing.T) {
	f := newFeeds()
	ep := func(id string, lbl string) Endpoint { return Endpoint{ID: id, Labels: map[string]string{"l": lbl}} }
	f.publishEndpoint(EndpointEvent{EndpointAdded, ep("a", "1")})
	f.publishEndpoint(EndpointEvent{EndpointRemoved, ep("a", "1")}) // never seen: gone
	f.publishEndpoint(EndpointEvent{EndpointAdded, ep("b", "1")})
	f.publishEndpoint(EndpointEvent{EndpointUpdated, ep("b", "2")}) // still new
	f.publishEndpoint(EndpointEvent{EndpointRemoved, ep("c", "1")})
	f.publishEndpoint(EndpointEvent{EndpointAdded, ep("c", "2")}) // the reader has the old one
	got := f.drainEndpoints()
	want := []EndpointEvent{{EndpointAdded, ep("b", "2")}, {EndpointUpdated, ep("c", "2")}}
	if !slices.EqualFunc(got, want, func(a, b EndpointEvent) bool {
		return a.Type == b.Type && a.Endpoint.ID == b.Endpoint.ID && maps.Equal(a.Endpoint.Labels, b.Endpoint.Labels)
	}) {
		t.Errorf("coalesced endpoint events = %+v, want %+v", got, want)
	}

	k := fib.RouteKey{Table: fib.MainTable, Dst: netip.MustParsePrefix("10.0.0.1/32")}
	f.publishRoutes([]fib.Route{{Key: k}}, nil)
	f.publishRoutes(nil, []fib.RouteKey{k})
	if c := f.drainRoutes(); len(c.Set) != 0 || len(c.Del) != 1 {
		t.Errorf("set then delete drains as %+v, want the delete only", c)
	}
	f.publishRoutes(nil, []fib.RouteKey{k})
	f.publishRoutes([]fib.Route{{Key: k}}, nil)
	if c := f.drainRoutes(); len(c.Set) != 1 || len(c.Del) != 0 {
		t.Errorf("delete then set drains as %+v, want the set only", c)
	}
}

// TestEndpointFeedVMPrivileged: an adopted VM is published with its kind,
// tap and labels, and its release as removed.
func TestEndpointFeedVMPrivileged(t *testing.T) {
	ctx := context.Background()
	host := newHost(t)
	if err := host.Do(func() error {
		return netlink.LinkAdd(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "tapfeed1"}, Mode: netlink.TUNTAP_MODE_TAP})
	}); err != nil {
		t.Fatal(err)
	}
	m := newManager(t, host, t.TempDir(), newFakeFIB(t, host))
	labels := map[string]string{"role": "db"}
	r, err := m.AdoptVM(ctx, VMRequest{Name: "vm1", Tap: "tapfeed1", Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	evs := m.DrainEndpoints()
	if len(evs) != 1 || evs[0].Type != EndpointAdded || evs[0].Endpoint.Kind != KindVM || evs[0].Endpoint.HostIface != "tapfeed1" ||
		!maps.Equal(evs[0].Endpoint.Labels, labels) || !slices.Equal(evs[0].Endpoint.Addrs(), r.Endpoint.Addrs()) {
		t.Fatalf("endpoint feed after AdoptVM = %+v, want vm1 added on tapfeed1 with %v and %v", evs, labels, r.Endpoint.Addrs())
	}
	if err := m.Del(ctx, r.Endpoint.ID); err != nil {
		t.Fatal(err)
	}
	if evs := m.DrainEndpoints(); len(evs) != 1 || evs[0].Type != EndpointRemoved || evs[0].Endpoint.ID != r.Endpoint.ID {
		t.Errorf("endpoint feed after the release = %+v, want vm1 removed", evs)
	}
}
