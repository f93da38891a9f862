package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/switchd/bgp"
)

// fakeSpeaker hands out queued changes as the speaker's DrainSome does.
type fakeSpeaker struct {
	kick    chan struct{}
	queue   []bgp.Route
	learned int
}

func (s *fakeSpeaker) Updates() <-chan struct{} { return s.kick }
func (s *fakeSpeaker) Learned() int             { return s.learned }
func (s *fakeSpeaker) DrainSome(buf []bgp.Route, max int) ([]bgp.Route, bool) {
	n := min(max, len(s.queue))
	buf = append(buf, s.queue[:n]...)
	s.queue = s.queue[n:]
	return buf, len(s.queue) > 0
}

// fakeFIB records the desired set; SetRoute refuses the prefixes in refuse.
type fakeFIB struct {
	routes  map[fib.RouteKey]fib.Route
	deleted []fib.RouteKey
	refuse  map[netip.Prefix]bool
}

func (f *fakeFIB) SetRoute(r fib.Route) error {
	if f.refuse[r.Key.Dst] {
		return errors.New("unusable next hop")
	}
	r.NextHops = slices.Clone(r.NextHops)
	f.routes[r.Key] = r
	return nil
}

func (f *fakeFIB) DeleteRoute(k fib.RouteKey) {
	f.deleted = append(f.deleted, k)
	delete(f.routes, k)
}

func newFakeBridge() (*bgpFIB, *fakeSpeaker, *fakeFIB) {
	s := &fakeSpeaker{kick: make(chan struct{}, 1)}
	f := &fakeFIB{routes: map[fib.RouteKey]fib.Route{}, refuse: map[netip.Prefix]bool{}}
	return newBGPFIB(s, f, slog.New(slog.DiscardHandler)), s, f
}

func bgpKey(p string) fib.RouteKey {
	return fib.RouteKey{Table: fib.MainTable, Dst: netip.MustParsePrefix(p), Priority: BGPRouteMetric}
}

func TestBGPFIBMapsRoutes(t *testing.T) {
	b, s, f := newFakeBridge()
	gw1, gw2 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	bad := netip.MustParsePrefix("10.9.0.0/24")
	f.refuse[bad] = true
	s.queue = []bgp.Route{
		{Prefix: netip.MustParsePrefix("10.1.0.0/24"), NextHops: []netip.Addr{gw1, gw2}},
		{Prefix: netip.MustParsePrefix("10.2.0.7/24"), NextHops: []netip.Addr{gw1}}, // host bits: the key is masked
		{Prefix: bad, NextHops: []netip.Addr{gw2}},
	}
	s.learned = 3
	b.onUpdates()

	want := fib.Route{Key: bgpKey("10.1.0.0/24"), Type: fib.Unicast,
		NextHops: []fib.NextHop{{Gateway: gw1, Weight: 1}, {Gateway: gw2, Weight: 1}}}
	if got := f.routes[want.Key]; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ECMP route = %v, want %v (metric %d, one next hop per path)", got, want, BGPRouteMetric)
	}
	if _, ok := f.routes[bgpKey("10.2.0.0/24")]; !ok {
		t.Errorf("route for 10.2.0.7/24 not keyed by its masked prefix: %v", f.routes)
	}
	if n := b.routes(); n != 2 {
		t.Errorf("routes() with one of 3 refused = %d, want 2", n)
	}

	// The refused prefix is withdrawn: deleted, and no longer counted as
	// rejected; so is one that was programmed.
	s.queue = []bgp.Route{{Prefix: bad}, {Prefix: netip.MustParsePrefix("10.1.0.0/24")}}
	s.learned = 1
	b.onUpdates()
	if wantDel := []fib.RouteKey{bgpKey("10.9.0.0/24"), bgpKey("10.1.0.0/24")}; !slices.Equal(f.deleted, wantDel) {
		t.Errorf("deleted %v, want %v", f.deleted, wantDel)
	}
	if _, ok := f.routes[bgpKey("10.1.0.0/24")]; ok || b.routes() != 1 {
		t.Errorf("after the withdrawals: routes %v, routes() = %d, want only 10.2.0.0/24 and 1", f.routes, b.routes())
	}
}

func TestBGPFIBBatchingWindow(t *testing.T) {
	b, s, _ := newFakeBridge()
	now := time.Unix(1000, 0)
	b.now = func() time.Time { return now }
	changes := func(n int) {
		for i := range n {
			s.queue = append(s.queue, bgp.Route{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)})
		}
	}

	changes(1)
	if !b.onUpdates() {
		t.Fatal("first change after a quiet window held back, want it applied at once")
	}
	b.applying()

	// Within the window: held, and the speaker's signal is not listened to.
	now = now.Add(bgpWindow / 2)
	changes(10)
	if b.onUpdates() {
		t.Fatal("change within the window applied at once, want it held")
	}
	if b.updates() != nil {
		t.Error("updates() while holding is the speaker's signal, want nil")
	}
	b.onWindowEnd()
	if b.updates() == nil {
		t.Error("updates() after the window ended is nil, want the speaker's signal")
	}
	b.applying()

	// Enough waiting changes, or more than a batch: applied at once.
	changes(bgpMinApply)
	if !b.onUpdates() {
		t.Errorf("%d changes within the window held back, want them applied at once", bgpMinApply)
	}
	b.applying()
	changes(bgpBatch + 1)
	if !b.onUpdates() {
		t.Error("a full batch with more left held back, want it applied at once")
	}
	b.applying()

	// Another writer's Apply takes the held changes and closes the window.
	changes(1)
	if b.onUpdates() {
		t.Fatal("change within the window applied at once, want it held")
	}
	b.applying()
	if b.updates() == nil {
		t.Error("updates() after an Apply is nil, want the speaker's signal")
	}
	now = now.Add(bgpWindow)
	changes(1)
	if !b.onUpdates() {
		t.Error("change a window after the last Apply held back, want it applied at once")
	}
}
