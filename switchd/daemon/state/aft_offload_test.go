package state

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"golang.org/x/sys/unix"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/models/oc"
	pnl "github.com/switchd/switchd/platform/netlink"
	"github.com/switchd/switchd/sim/ns"
)

// hwLeaves are the hardware leaves of an entry among leaves, as
// "offloaded trap offload-failed" values ("" for a leaf not there).
func hwLeaves(leaves []string, prefix string) string {
	var got [3]string
	for _, l := range leaves {
		i := strings.LastIndexByte(l, '=') // paths hold keys: [name=DEFAULT]
		path, val := l[:max(i, 0)], l[i+1:]
		if !strings.Contains(path, "[prefix="+prefix+"]") {
			continue
		}
		for i, n := range []string{"offloaded", "trap", "offload-failed"} {
			if strings.HasSuffix(path, "/state/hardware/"+n) {
				got[i] = val
			}
		}
	}
	return strings.Join(got[:], " ")
}

// TestAFTHardwareLeaves: an entry a driver flagged carries its
// hardware leaves, which the generated schema takes (switchd.yang's
// augment) and JSON_IETF names switchd:hardware; entries without flags
// carry none until a route feed update brings a flag, after which every
// entry says whether it is in hardware (so a cleared flag reads false,
// not stale). AFTOptions.Hardware turns them on from the start.
func TestAFTHardwareLeaves(t *testing.T) {
	a, rs, _, pub := testAFT()
	v4, v6 := netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("2001:db8::/64")
	rs.rs[0].Offload = fib.Offloaded | fib.Trapped
	leaves := walkAll(t, a)
	if got := hwLeaves(leaves, v4.String()); got != "true true false" {
		t.Errorf("flagged entry: hardware %q", got)
	}
	if got := hwLeaves(leaves, v6.String()); got != "  " {
		t.Errorf("unflagged entry before any flag in the feed: hardware %q, want none", got)
	}
	dev := &oc.Device{}
	if err := a.Walk(nil, func(n *gpb.Notification) error { setLeaves(t, dev, n); return nil }); err != nil {
		t.Fatal(err)
	}
	js := rfc7951(t, dev.GetNetworkInstance("DEFAULT").GetAfts())
	if want := `"switchd:hardware":{"offload-failed":false,"offloaded":true,"trap":true}`; !strings.Contains(js, want) {
		t.Errorf("JSON_IETF has no %s:\n%s", want, js)
	}

	// The driver fails to offload the IPv6 route: the feed says so.
	rs.rs[1].Offload = fib.OffloadFailed
	if err := a.Routes([]fib.RouteUpdate{{Route: fib.Route{Key: fib.RouteKey{Dst: v6}}, Offload: fib.OffloadFailed}}); err != nil {
		t.Fatal(err)
	}
	up, _ := pub.take()
	if got := up["network-instances/network-instance[name=DEFAULT]/afts/ipv6-unicast/ipv6-entry[prefix=2001:db8::/64]/state/hardware/offload-failed"]; got != "true" {
		t.Errorf("published offload-failed %q; updates %v", got, up)
	}
	// Then it clears: published false, and every other entry has its
	// hardware leaves now.
	rs.rs[1].Offload = 0
	if err := a.Routes([]fib.RouteUpdate{{Route: fib.Route{Key: fib.RouteKey{Dst: v6}}}}); err != nil {
		t.Fatal(err)
	}
	up, _ = pub.take()
	if got := up["network-instances/network-instance[name=DEFAULT]/afts/ipv6-unicast/ipv6-entry[prefix=2001:db8::/64]/state/hardware/offload-failed"]; got != "false" {
		t.Errorf("cleared flag published %q; updates %v", got, up)
	}
	leaves = walkAll(t, a)
	if got := hwLeaves(leaves, "10.9.0.0/16"); got != "false false false" {
		t.Errorf("unflagged entry after a flag in the feed: hardware %q", got)
	}

	b := NewAFT(rs, &fakeGroups{}, pub, AFTOptions{Hardware: true})
	if got := hwLeaves(walkAll(t, b), "10.9.0.0/16"); got != "false false false" {
		t.Errorf("with Hardware: unflagged entry %q", got)
	}
}

// TestAFTOffloadFromKernelMessagePrivileged follows a driver's flags
// from a route message to the AFT: a route switchd installed in a
// namespace, the kernel's own message for it (a dump) with
// RTM_F_OFFLOAD|RTM_F_TRAP, then RTM_F_OFFLOAD_FAILED, set as a
// switchdev driver's notification carries them, decoded by fib
// (ParseRouteMessage), handed to the Table as the daemon's loop does
// (OnRouteEvent), drained from the route feed into the AFT: the
// published leaves and a walk say what the flags say, and the Table's
// counts follow.
func TestAFTOffloadFromKernelMessagePrivileged(t *testing.T) {
	ns.Privileged(t)
	r, p := ns.NewT(t, "afto-r"), ns.NewT(t, "afto-p")
	if err := ns.Veth(r, "a0", p, "p0"); err != nil {
		t.Fatal(err)
	}
	if err := r.AddAddr("a0", netip.MustParsePrefix("192.0.2.0/31")); err != nil {
		t.Fatal(err)
	}
	k, err := fib.Open(r.Net())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	tb := k.NewTable(fib.MainTable, fib.WithUpdates())
	t.Cleanup(tb.Close)
	dst := netip.MustParsePrefix("198.51.100.0/24")
	route := fib.Route{Key: fib.RouteKey{Table: fib.MainTable, Dst: dst}, Type: fib.Unicast,
		NextHops: []fib.NextHop{{Gateway: netip.MustParseAddr("192.0.2.1"), Weight: 1}}}
	if err := tb.SetRoute(route); err != nil {
		t.Fatal(err)
	}
	if err := tb.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	pub := &fakePublisher{}
	v := tb.View()
	a := NewAFT(v, v, pub, AFTOptions{})
	tb.DrainUpdates()

	// The kernel's message for the route.
	c, err := pnl.Dial(r.Net(), unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var req pnl.Batch
	req.Begin(unix.RTM_GETROUTE, 0)
	req.Raw(unix.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	req.End()
	var msg []byte
	err = c.Dump(context.Background(), &req, nil, func(m netlink.Message) error {
		if ev, ok := fib.ParseRouteMessage(m.Data); ok && ev.Route.Key.Dst == dst {
			msg = append([]byte(nil), m.Data...)
		}
		return nil
	})
	if err != nil || msg == nil {
		t.Fatalf("dump: %v; message for %v found: %v", err, dst, msg != nil)
	}
	leaf := "network-instances/network-instance[name=DEFAULT]/afts/ipv4-unicast/ipv4-entry[prefix=" + dst.String() + "]/state/hardware/"
	for _, c := range []struct {
		flags  uint32
		want   string // offloaded trap offload-failed
		counts fib.OffloadCounts
	}{
		{unix.RTM_F_OFFLOAD | unix.RTM_F_TRAP, "true true false", fib.OffloadCounts{Offloaded: 1, Trapped: 1}},
		{unix.RTM_F_OFFLOAD_FAILED, "false false true", fib.OffloadCounts{Failed: 1}},
		{0, "false false false", fib.OffloadCounts{}},
	} {
		m := append([]byte(nil), msg...)
		binary.NativeEndian.PutUint32(m[8:], c.flags)
		ev, ok := fib.ParseRouteMessage(m)
		if !ok {
			t.Fatalf("flags %#x: not decoded", c.flags)
		}
		tb.OnRouteEvent(ev)
		if err := a.Routes(tb.DrainUpdates()); err != nil {
			t.Fatal(err)
		}
		up, _ := pub.take()
		got := up[leaf+"offloaded"] + " " + up[leaf+"trap"] + " " + up[leaf+"offload-failed"]
		if got != c.want {
			t.Errorf("flags %#x: published %q, want %q (updates %v)", c.flags, got, c.want, up)
		}
		if got := hwLeaves(walkAll(t, a), dst.String()); got != c.want {
			t.Errorf("flags %#x: walk %q, want %q", c.flags, got, c.want)
		}
		if got := tb.OffloadCounts(); got != c.counts {
			t.Errorf("flags %#x: counts %+v, want %+v", c.flags, got, c.counts)
		}
	}
}

// TestAFTGroupHardware: a group a driver flagged is published with its
// hardware leaves (schema-checked), and the groups published before
// without them are published again with theirs (false), once.
func TestAFTGroupHardware(t *testing.T) {
	a, _, gs, pub := testAFT()
	if err := a.Groups(); err != nil {
		t.Fatal(err)
	}
	up, _ := pub.take()
	for k := range up {
		if strings.Contains(k, "/hardware/") {
			t.Errorf("hardware leaf %s before any flag", k)
		}
	}
	gs.gs[0].Offload = fib.Offloaded | fib.Trapped
	if err := a.Groups(); err != nil {
		t.Fatal(err)
	}
	dev := &oc.Device{}
	for _, n := range pub.ns {
		setLeaves(t, dev, n)
	}
	up, _ = pub.take()
	const g = "network-instances/network-instance[name=DEFAULT]/afts/next-hop-groups/next-hop-group[id=%d]/state/hardware/%s"
	for _, c := range []struct {
		id         int
		leaf, want string
	}{{7, "offloaded", "true"}, {7, "trap", "true"}, {8, "offloaded", "false"}, {8, "trap", "false"}} {
		if got := up[fmt.Sprintf(g, c.id, c.leaf)]; got != c.want {
			t.Errorf("group %d %s = %q, want %s", c.id, c.leaf, got, c.want)
		}
	}
	if h := dev.GetNetworkInstance("DEFAULT").GetAfts().GetNextHopGroup(7).GetHardware(); !h.GetOffloaded() || !h.GetTrap() {
		t.Errorf("group 7 hardware through the schema: %+v", h)
	}
	if err := a.Groups(); err != nil {
		t.Fatal(err)
	}
	if up, del := pub.take(); len(up)+len(del) != 0 {
		t.Errorf("unchanged groups published %v %v", up, del)
	}
}
