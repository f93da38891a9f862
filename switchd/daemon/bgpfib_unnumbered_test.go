package daemon

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/switchd/switchd/fib"
)

// TestUnnumberedNextHop: a BGP next hop with a zone (an unnumbered
// session's link-local peer) becomes fib's gateway without zone on that
// interface, looked up once per take; one without stays as it is; an
// interface that cannot be found leaves a next hop fib refuses.
func TestUnnumberedNextHop(t *testing.T) {
	lookups := 0
	x := ifindexes{m: map[string]int{}, lookup: func(name string) (int, error) {
		lookups++
		if name == "swp1" {
			return 7, nil
		}
		return 0, errors.New("no such interface")
	}}
	for _, tc := range []struct {
		nh   string
		want fib.NextHop
	}{
		{"fe80::2%swp1", fib.NextHop{Gateway: netip.MustParseAddr("fe80::2"), Ifindex: 7, Weight: 1}},
		{"fe80::3%swp1", fib.NextHop{Gateway: netip.MustParseAddr("fe80::3"), Ifindex: 7, Weight: 1}},
		{"10.0.0.1", fib.NextHop{Gateway: netip.MustParseAddr("10.0.0.1"), Weight: 1}},
		{"fe80::2%gone", fib.NextHop{Gateway: netip.MustParseAddr("fe80::2"), Weight: 1}},
	} {
		if got := x.nextHop(netip.MustParseAddr(tc.nh)); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.nh, got, tc.want)
		}
	}
	if lookups != 2 {
		t.Errorf("%d lookups, want one per interface", lookups)
	}
	r := fib.Route{Key: fib.RouteKey{Dst: netip.MustParsePrefix("10.9.0.0/24")},
		NextHops: []fib.NextHop{x.nextHop(netip.MustParseAddr("fe80::2%swp1"))}}
	if err := r.Validate(); err != nil {
		t.Errorf("IPv4 route via an unnumbered peer: %v", err)
	}
	r.NextHops = []fib.NextHop{x.nextHop(netip.MustParseAddr("fe80::2%gone"))}
	if err := r.Validate(); err == nil {
		t.Error("a link-local gateway without interface was accepted")
	}
	x.reset()
	x.nextHop(netip.MustParseAddr("fe80::2%swp1"))
	if lookups != 3 {
		t.Errorf("after reset: %d lookups, want 3", lookups)
	}
}
