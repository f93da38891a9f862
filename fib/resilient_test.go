package fib

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// ipNexthop is one nexthop of `ip -j nexthop show`.
type ipNexthop struct {
	ID    int `json:"id"`
	Group []struct {
		ID int `json:"id"`
	} `json:"group"`
	Type          string `json:"type"`
	ResilientArgs *struct {
		Buckets   int `json:"buckets"`
		IdleTimer int `json:"idle_timer"`
	} `json:"resilient_args"`
}

// routeNexthop returns the nexthop object the route at dst uses, as
// iproute2 shows it.
func routeNexthop(t *testing.T, tp *topo, dst string) ipNexthop {
	t.Helper()
	ctx := context.Background()
	out, err := tp.r.Run(ctx, "ip", "-j", "route", "show", dst, "proto", protoStr)
	if err != nil {
		t.Fatal(err)
	}
	var rs []struct {
		NHID int `json:"nhid"`
	}
	if err := json.Unmarshal([]byte(out), &rs); err != nil || len(rs) != 1 || rs[0].NHID == 0 {
		t.Fatalf("ip -j route show %s = %q (%v), want one route with a nexthop id", dst, out, err)
	}
	out, err = tp.r.Run(ctx, "ip", "-j", "nexthop", "show", "id", fmt.Sprint(rs[0].NHID))
	if err != nil {
		t.Fatal(err)
	}
	var nhs []ipNexthop
	if err := json.Unmarshal([]byte(out), &nhs); err != nil || len(nhs) != 1 {
		t.Fatalf("ip -j nexthop show id %d = %q (%v)", rs[0].NHID, out, err)
	}
	return nhs[0]
}

// buckets returns the member (nexthop id) of each bucket of group id.
func buckets(t *testing.T, tp *topo, id int) map[int]int {
	t.Helper()
	out, err := tp.r.Run(context.Background(), "ip", "-j", "nexthop", "bucket", "show", "id", fmt.Sprint(id))
	if err != nil {
		t.Fatal(err)
	}
	var bs []struct {
		Bucket struct {
			Index int `json:"index"`
			NHID  int `json:"nhid"`
		} `json:"bucket"`
	}
	if err := json.Unmarshal([]byte(out), &bs); err != nil {
		t.Fatalf("ip -j nexthop bucket show id %d = %q: %v", id, out, err)
	}
	m := make(map[int]int)
	for _, b := range bs {
		m[b.Bucket.Index] = b.Bucket.NHID
	}
	return m
}

func wantResilient(t *testing.T, nh ipNexthop, buckets, idle int, when string) {
	t.Helper()
	if nh.Type != "resilient" || nh.ResilientArgs == nil || nh.ResilientArgs.Buckets != buckets || nh.ResilientArgs.IdleTimer != idle {
		t.Errorf("%s: group %+v (args %+v), want resilient with %d buckets, idle timer %ds", when, nh, nh.ResilientArgs, buckets, idle)
	}
}

// resolvesVia checks that several flows to each destination resolve via
// the gateway gw (a non-empty string), or resolve at all (gw "").
func resolvesVia(t *testing.T, tp *topo, gw, when string, dsts ...string) {
	t.Helper()
	for _, dst := range dsts {
		for _, sport := range []string{"1", "2", "3", "4", "5", "6", "7", "8"} {
			out, err := tp.r.Run(context.Background(), "ip", "route", "get", dst, "ipproto", "udp", "sport", sport, "dport", "53")
			if err != nil {
				t.Fatalf("%s: ip route get %s: %v", when, dst, err)
			}
			if !strings.Contains(out, "via "+gw) {
				t.Fatalf("%s: ip route get %s sport %s = %q, want via %s", when, dst, sport, out, gw)
			}
		}
	}
}

func TestPrivilegedResilientGroups(t *testing.T) {
	const n = 200
	tp := newTopo(t, "resil")
	ctx := context.Background()
	opt := WithResilientGroups(32, 10*time.Second)
	tb := newModeTable(t, tp, ModeNexthopGroups, opt)
	rs := manySet(n, gw4a, gw4b)
	single := route("198.51.100.0/24", 0, gw4a)
	mustSet(t, tb, rs...)
	mustSet(t, tb, single)
	mustApply(t, tb)

	grp := routeNexthop(t, tp, "16.0.0.0/24")
	wantResilient(t, grp, 32, 10, "2-member group")
	if len(grp.Group) != 2 {
		t.Errorf("group %+v, want 2 members", grp)
	}
	if nh := routeNexthop(t, tp, "198.51.100.0/24"); nh.Type == "resilient" {
		t.Errorf("single-path route uses %+v, want an ordinary group", nh)
	}
	resolvesVia(t, tp, "192.0.2.", "installed", "16.0.0.1", "16.0.199.1")
	resolvesVia(t, tp, "192.0.2.1", "installed", "198.51.100.1")

	// A second Apply, even after a dump, finds nothing to write.
	w := tb.Stats().Writes()
	mustApply(t, tb)
	tb.QueueResync()
	mustApply(t, tb)
	if d := tb.Stats().Writes() - w; d != 0 {
		t.Errorf("second Apply wrote %d times, want 0", d)
	}

	// A restarted switchd with the same option adopts everything.
	tb.Close()
	second := openKernel(t, tp.r).NewTable(MainTable, opt)
	t.Cleanup(second.Close)
	mustSet(t, second, rs...)
	mustSet(t, second, single)
	mustApply(t, second)
	if w := second.Stats().Writes(); w != 0 {
		t.Errorf("restarted table wrote %d times, want 0 (stats %+v)", w, second.Stats())
	}
	if nh := routeNexthop(t, tp, "16.0.0.0/24"); nh.ID != grp.ID {
		t.Errorf("restarted table moved routes from group %d to %d", grp.ID, nh.ID)
	}

	// A member's link goes down: the kernel drops it from the group, which
	// stays resilient, and every flow resolves via the survivor.
	if _, err := tp.r.Run(ctx, "ip", "link", "set", "a0", "down"); err != nil {
		t.Fatal(err)
	}
	resolvesVia(t, tp, "192.0.2.3 dev a1", "a0 down", "16.0.0.1", "16.0.77.1", "16.0.199.1")
	nh := routeNexthop(t, tp, "16.0.0.0/24")
	wantResilient(t, nh, 32, 10, "after a0 down")
	if len(nh.Group) != 1 {
		t.Errorf("group after a0 down: %+v, want the survivor only", nh)
	}
}

// A withdrawn path shrinks a resilient group in place (no route write),
// and the buckets of the surviving members keep their next hop: only the
// flows of the withdrawn member move. The path coming back is an in-place
// rewrite too.
func TestPrivilegedResilientGroupKeepsSurvivorsBuckets(t *testing.T) {
	const n = 100
	tp := newTopo(t, "resilkeep")
	// A third gateway, on a0's link.
	if err := tp.r.AddAddr("a0", netip.MustParsePrefix("198.18.0.0/24")); err != nil {
		t.Fatal(err)
	}
	if err := tp.peer.AddAddr("p0", netip.MustParsePrefix("198.18.0.2/24")); err != nil {
		t.Fatal(err)
	}
	gwC := netip.MustParseAddr("198.18.0.2")
	tb := newModeTable(t, tp, ModeNexthopGroups, WithResilientGroups(64, 0))
	mustSet(t, tb, manySet(n, gw4a, gw4b, gwC)...)
	mustApply(t, tb)
	grp := routeNexthop(t, tp, "16.0.0.0/24")
	wantResilient(t, grp, 64, 0, "3-member group")
	before := buckets(t, tp, grp.ID)
	if len(before) != 64 {
		t.Fatalf("group %d has %d buckets, want 64", grp.ID, len(before))
	}
	members := map[int]int{}
	for _, nh := range before {
		members[nh]++
	}
	if len(members) != 3 {
		t.Fatalf("buckets spread over %v, want 3 members", members)
	}

	// Withdraw gateway A from every route.
	s0 := tb.Stats()
	mustSet(t, tb, manySet(n, gw4b, gwC)...)
	mustApply(t, tb)
	s := tb.Stats()
	if s.RouteWrites() != s0.RouteWrites() || s.InPlace-s0.InPlace != n {
		t.Errorf("withdraw: stats %+v -> %+v, want no route write, %d routes moved in place", s0, s, n)
	}
	after := buckets(t, tp, grp.ID)
	if nh := routeNexthop(t, tp, "16.0.0.0/24"); nh.ID != grp.ID || len(nh.Group) != 2 {
		t.Fatalf("after withdraw: %+v, want group %d with 2 members", nh, grp.ID)
	}
	var gone int // A's nexthop id: the member in no bucket any more
	for _, nh := range before {
		found := false
		for _, a := range after {
			found = found || a == nh
		}
		if !found {
			gone = nh
		}
	}
	if gone == 0 {
		t.Fatalf("buckets after withdraw %v still use all of %v", after, members)
	}
	for i, nh := range before {
		if nh != gone && after[i] != nh {
			t.Errorf("bucket %d moved from surviving member %d to %d", i, nh, after[i])
		}
		if after[i] == gone {
			t.Errorf("bucket %d still on the withdrawn member", i)
		}
	}

	// Down to one path and back to two: still rewrites in place.
	s0 = tb.Stats()
	mustSet(t, tb, manySet(n, gw4b)...)
	mustApply(t, tb)
	mustSet(t, tb, manySet(n, gw4b, gwC)...)
	mustApply(t, tb)
	s = tb.Stats()
	if s.RouteWrites() != s0.RouteWrites() || s.InPlace-s0.InPlace != 2*n {
		t.Errorf("one path and back: stats %+v -> %+v, want no route write, %d in place", s0, s, 2*n)
	}
	if nh := routeNexthop(t, tp, "16.0.0.0/24"); nh.ID != grp.ID {
		t.Errorf("routes moved from group %d to %+v", grp.ID, nh)
	}
	resolvesVia(t, tp, "", "after the changes", "16.0.0.1", "16.0.99.1")

	// NextHopDown (a session ends) shrinks the group in place as well,
	// and C's buckets stay C's.
	before = buckets(t, tp, grp.ID)
	s0 = tb.Stats()
	tb.NextHopDown(gw4b)
	mustApply(t, tb)
	s = tb.Stats()
	if s.RouteWrites() != s0.RouteWrites() || s.Nexthops-s0.Nexthops != 1 {
		t.Errorf("NextHopDown: stats %+v -> %+v, want one group write, no route write", s0, s)
	}
	nh := routeNexthop(t, tp, "16.0.0.0/24")
	wantResilient(t, nh, 64, 0, "after NextHopDown")
	if nh.ID != grp.ID || len(nh.Group) != 1 {
		t.Fatalf("after NextHopDown: %+v, want group %d with one member", nh, grp.ID)
	}
	after = buckets(t, tp, grp.ID)
	for i, m := range before {
		if m == nh.Group[0].ID && after[i] != m {
			t.Errorf("bucket %d of the survivor moved to %d", i, after[i])
		}
	}
	resolvesVia(t, tp, "198.18.0.2", "after NextHopDown", "16.0.0.1", "16.0.99.1")
}

// Switching the option (on, off, other bucket count) after a restart
// moves the routes to new groups of the right kind; each switch settles
// with a second Apply writing nothing.
func TestPrivilegedResilientGroupsOptionSwitch(t *testing.T) {
	const n = 50
	tp := newTopo(t, "resilsw")
	rs := manySet(n, gw4a, gw4b)
	for _, c := range []struct {
		name    string
		opts    []Opt
		buckets int // 0: an ordinary group
	}{
		{"off", nil, 0},
		{"on", []Opt{WithResilientGroups(16, time.Second)}, 16},
		{"more buckets", []Opt{WithResilientGroups(32, time.Second)}, 32},
		{"other idle timer", []Opt{WithResilientGroups(32, 2*time.Second)}, 32},
		{"off again", nil, 0},
	} {
		k := openKernel(t, tp.r) // a restarted switchd
		tb := k.NewTable(MainTable, c.opts...)
		mustSet(t, tb, rs...)
		mustApply(t, tb)
		nh := routeNexthop(t, tp, "16.0.0.0/24")
		if c.buckets == 0 && nh.Type == "resilient" {
			t.Errorf("%s: group %+v, want ordinary", c.name, nh)
		}
		if c.buckets != 0 && (nh.ResilientArgs == nil || nh.ResilientArgs.Buckets != c.buckets) {
			t.Errorf("%s: group %+v (%+v), want resilient with %d buckets", c.name, nh, nh.ResilientArgs, c.buckets)
		}
		if last := routeNexthop(t, tp, fmt.Sprintf("16.0.%d.0/24", n-1)); last.ID != nh.ID {
			t.Errorf("%s: routes on groups %d and %d, want one", c.name, nh.ID, last.ID)
		}
		groups, _ := nexthopIDs(t, tp)
		if len(groups) != 1 {
			t.Errorf("%s: groups %v, want the old one deleted", c.name, groups)
		}
		resolvesVia(t, tp, "192.0.2.", c.name, "16.0.0.1", "16.0.49.1")
		w := tb.Stats().Writes()
		tb.QueueResync()
		mustApply(t, tb)
		if d := tb.Stats().Writes() - w; d != 0 {
			t.Errorf("%s: second Apply wrote %d times, want 0", c.name, d)
		}
		tb.Close()
		k.Close()
	}
}

// Arguments the kernel cannot take leave the Table on ordinary groups.
func TestPrivilegedResilientGroupsBadArgs(t *testing.T) {
	tp := newTopo(t, "resilbad")
	for _, opt := range []Opt{WithResilientGroups(0, time.Second), WithResilientGroups(8, -time.Second)} {
		tb := newModeTable(t, tp, ModeNexthopGroups, opt)
		mustSet(t, tb, manySet(3, gw4a, gw4b)...)
		mustApply(t, tb)
		if nh := routeNexthop(t, tp, "16.0.0.0/24"); nh.Type == "resilient" {
			t.Errorf("group %+v, want ordinary", nh)
		}
		tb.Close()
	}
}
