// Go 1.24+ listeners are MPTCP by default, and MPTCP refuses TCP-MD5; the
// daemon's main package needs the same directive.
//go:debug multipathtcp=0

package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"

	"github.com/switchd/switchd/sim/ns"
)

func TestMain(m *testing.M) { ns.TestMain(m) }

// Short timers: sessions come up within seconds and a dead peer is noticed
// in three.
var fast = Timers{ConnectRetry: time.Second, HoldTime: 3 * time.Second, Keepalive: time.Second}

// patience bounds every wait; it is a liveness bound, not a speed claim.
const patience = 60 * time.Second

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("SWITCHD_TEST_BGP_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

// speaker starts a Speaker with c and stops it when the test ends.
func speaker(t *testing.T, c Config) *Speaker {
	t.Helper()
	s := New(WithLogger(testLogger(t)))
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	if err := s.Apply(t.Context(), c); err != nil {
		t.Fatalf("apply %v: %v", c.RouterID, err)
	}
	return s
}

// speakers starts one speaker per config. All are started (StartBgp)
// before any gets its neighbors: GoBGP's StartBgp writes package
// variables every server reads, and this order makes those writes happen
// before any session traffic (no data race between test speakers).
func speakers(t *testing.T, cfgs ...Config) []*Speaker {
	t.Helper()
	out := make([]*Speaker, len(cfgs))
	for i, c := range cfgs {
		c.Neighbors, c.Originate = nil, nil
		out[i] = speaker(t, c)
	}
	for i, c := range cfgs {
		if err := out[i].Apply(t.Context(), c); err != nil {
			t.Fatalf("apply %v: %v", c.RouterID, err)
		}
	}
	return out
}

func peer(addr, local string, as uint32) Neighbor {
	return Neighbor{Address: ip(addr), LocalAddress: ip(local), PeerAS: as, Enabled: true, Timers: fast}
}

// rib follows a speaker's Drain output like fib would.
type rib struct {
	s      *Speaker
	routes map[netip.Prefix][]netip.Addr
	seen   []Route // every Route Drain returned, in order
}

func newRIB(s *Speaker) *rib { return &rib{s: s, routes: make(map[netip.Prefix][]netip.Addr)} }

func (r *rib) drainOnce(wait time.Duration) {
	select {
	case <-r.s.Updates():
	case <-time.After(wait):
	}
	for _, rt := range r.s.Drain() {
		r.seen = append(r.seen, rt)
		if len(rt.NextHops) == 0 {
			delete(r.routes, rt.Prefix)
		} else {
			r.routes[rt.Prefix] = rt.NextHops
		}
	}
}

// waitRoute waits until the prefix has exactly the next hops want (none:
// withdrawn).
func (r *rib) waitRoute(t *testing.T, p netip.Prefix, want ...netip.Addr) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		got := r.routes[p]
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			nbs, _ := r.s.Neighbors(t.Context())
			t.Fatalf("speaker %v: route %v has next hops %v, want %v (all: %v; neighbors: %+v)", r.s.routerID(), p, got, want, r.routes, nbs)
		}
		r.drainOnce(time.Second)
	}
}

func (s *Speaker) routerID() netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running == nil {
		return netip.Addr{}
	}
	return s.running.RouterID
}

func neighborState(t *testing.T, s *Speaker, addr netip.Addr) NeighborState {
	t.Helper()
	nbs, err := s.Neighbors(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nbs {
		if n.Address == addr {
			return n
		}
	}
	t.Fatalf("speaker %v has no neighbor %v (has %v)", s.routerID(), addr, nbs)
	return NeighborState{}
}

func waitEstablished(t *testing.T, s *Speaker, addrs ...string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for _, a := range addrs {
		for neighborState(t, s, ip(a)).State != StateEstablished {
			if time.Now().After(deadline) {
				t.Fatalf("speaker %v: session to %s not established: %+v", s.routerID(), a, neighborState(t, s, ip(a)))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// received counts the OPEN and NOTIFICATION messages s got from addr: a
// session reset shows as a new OPEN. It reads GoBGP directly because the
// peer object on the side that did not change keeps its counters.
func received(t *testing.T, s *Speaker, addr string) (opens, notifications uint64) {
	t.Helper()
	err := s.srv.ListPeer(t.Context(), &api.ListPeerRequest{Address: addr}, func(p *api.Peer) {
		m := p.GetState().GetMessages().GetReceived()
		opens, notifications = m.GetOpen(), m.GetNotification()
	})
	if err != nil {
		t.Fatal(err)
	}
	return opens, notifications
}

func addLoopback(t *testing.T, addrs ...string) {
	t.Helper()
	cur, err := ns.Current()
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	for _, a := range addrs {
		if err := cur.AddAddr("lo", netip.PrefixFrom(ip(a), ip(a).BitLen())); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPrivilegedExchangeIPv4AndIPv6(t *testing.T) {
	ns.Privileged(t)
	addLoopback(t, "fd00::1", "fd00::2")
	mp := Multipath{Enabled: true}
	aCfg := Config{
		ASN: 65001, RouterID: ip("10.0.0.1"), Multipath: mp,
		ListenAddresses: []netip.Addr{ip("127.0.0.1"), ip("fd00::1")},
		Neighbors:       []Neighbor{peer("127.0.0.2", "127.0.0.1", 65002), peer("fd00::2", "fd00::1", 65002)},
		Originate:       []netip.Prefix{pfx("10.1.0.0/24"), pfx("2001:db8:1::/48")},
	}
	bCfg := Config{
		ASN: 65002, RouterID: ip("10.0.0.2"), Multipath: mp,
		ListenAddresses: []netip.Addr{ip("127.0.0.2"), ip("fd00::2")},
		Neighbors:       []Neighbor{peer("127.0.0.1", "127.0.0.2", 65001), peer("fd00::1", "fd00::2", 65001)},
		Originate:       []netip.Prefix{pfx("10.2.0.0/24"), pfx("2001:db8:2::/48")},
	}
	sp := speakers(t, aCfg, bCfg)
	a, b := sp[0], sp[1]
	ra, rb := newRIB(a), newRIB(b)

	ra.waitRoute(t, pfx("10.2.0.0/24"), ip("127.0.0.2"))
	ra.waitRoute(t, pfx("2001:db8:2::/48"), ip("fd00::2"))
	rb.waitRoute(t, pfx("10.1.0.0/24"), ip("127.0.0.1"))
	rb.waitRoute(t, pfx("2001:db8:1::/48"), ip("fd00::1"))

	waitEstablished(t, a, "127.0.0.2", "fd00::2")
	n4 := neighborState(t, a, ip("127.0.0.2"))
	if n4.PrefixesReceived[IPv4Unicast] != 1 || n4.PrefixesSent[IPv4Unicast] != 1 || !slices.Equal(n4.NegotiatedFamilies, []Family{IPv4Unicast}) {
		t.Errorf("IPv4 neighbor state = %+v, want 1 prefix each way and ipv4-unicast negotiated", n4)
	}
	if n4.EstablishedSince.IsZero() || n4.PeerAS != 65002 {
		t.Errorf("IPv4 neighbor state = %+v, want established-since and peer-as 65002", n4)
	}
	n6 := neighborState(t, a, ip("fd00::2"))
	if n6.PrefixesReceived[IPv6Unicast] != 1 || !slices.Equal(n6.NegotiatedFamilies, []Family{IPv6Unicast}) {
		t.Errorf("IPv6 neighbor state = %+v, want 1 prefix received and ipv6-unicast negotiated", n6)
	}

	// Withdraw: B stops originating its IPv4 prefix.
	bCfg.Originate = []netip.Prefix{pfx("2001:db8:2::/48")}
	if err := b.Apply(t.Context(), bCfg); err != nil {
		t.Fatal(err)
	}
	ra.waitRoute(t, pfx("10.2.0.0/24"))
	if last := ra.seen[len(ra.seen)-1]; last.Prefix != pfx("10.2.0.0/24") || len(last.NextHops) != 0 {
		t.Errorf("last Drain output = %v, want 10.2.0.0/24 with no next hops", last)
	}
	ra.waitRoute(t, pfx("2001:db8:2::/48"), ip("fd00::2"))

	// A's own prefixes never come out of its Drain.
	for _, r := range ra.seen {
		if r.Prefix == pfx("10.1.0.0/24") || r.Prefix == pfx("2001:db8:1::/48") {
			t.Errorf("speaker A drained its own originated prefix: %v", r)
		}
	}
}

func TestPrivilegedECMP(t *testing.T) {
	ns.Privileged(t)
	mp := Multipath{Enabled: true}
	rCfg := Config{
		ASN: 65000, RouterID: ip("10.0.0.1"), Multipath: mp,
		ListenAddresses: []netip.Addr{ip("127.0.0.1")},
		Neighbors: []Neighbor{
			peer("127.0.0.2", "127.0.0.1", 65100),
			peer("127.0.0.3", "127.0.0.1", 65100),
			peer("127.0.0.4", "127.0.0.1", 65200),
		},
	}
	spine := func(n int, as uint32, originate ...netip.Prefix) Config {
		addr := fmt.Sprintf("127.0.0.%d", n)
		return Config{
			ASN: as, RouterID: ip(fmt.Sprintf("10.0.0.%d", n)), Multipath: mp,
			ListenAddresses: []netip.Addr{ip(addr)},
			Neighbors:       []Neighbor{peer("127.0.0.1", addr, 65000)},
			Originate:       originate,
		}
	}
	same, other := pfx("10.9.0.0/24"), pfx("10.8.0.0/24")
	sp := speakers(t, rCfg, spine(2, 65100, same, other), spine(3, 65100, same), spine(4, 65200, other))
	r, s2 := sp[0], sp[2]
	rr := newRIB(r)

	// Two spines of one AS: equal AS_PATHs, ECMP without any relax.
	rr.waitRoute(t, same, ip("127.0.0.2"), ip("127.0.0.3"))

	// Different neighbor AS, equal length: one path unless MultipleAS.
	waitEstablished(t, r, "127.0.0.4")
	deadline := time.Now().Add(patience)
	for neighborState(t, r, ip("127.0.0.4")).PrefixesReceived[IPv4Unicast] != 1 || len(rr.routes[other]) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("route %v from both 127.0.0.2 and 127.0.0.4 never arrived: %v", other, rr.routes)
		}
		rr.drainOnce(time.Second)
	}
	rr.drainOnce(0)
	if got := rr.routes[other]; len(got) != 1 {
		t.Fatalf("route %v with different AS_PATHs and MultipleAS off: next hops %v, want one", other, got)
	}
	rCfg.Multipath.MultipleAS = true
	if err := r.Apply(t.Context(), rCfg); err != nil {
		t.Fatal(err)
	}
	rr.waitRoute(t, other, ip("127.0.0.2"), ip("127.0.0.4"))
	rCfg.Multipath.MaxPaths = 1
	if err := r.Apply(t.Context(), rCfg); err != nil {
		t.Fatal(err)
	}
	rr.drainOnce(time.Second)
	if got := rr.routes[other]; len(got) != 1 {
		t.Fatalf("route %v with MaxPaths 1: next hops %v, want one", other, got)
	}

	// One spine dies: the set shrinks to the other.
	s2.Stop()
	rr.waitRoute(t, same, ip("127.0.0.2"))
}

func TestPrivilegedApplyChangesOnlyTheDifference(t *testing.T) {
	ns.Privileged(t)
	mp := Multipath{Enabled: true}
	aCfg := Config{
		ASN: 65001, RouterID: ip("10.0.0.1"), Multipath: mp,
		ListenAddresses: []netip.Addr{ip("127.0.0.1")},
		Neighbors:       []Neighbor{peer("127.0.0.2", "127.0.0.1", 65002), peer("127.0.0.3", "127.0.0.1", 65003)},
		Originate:       []netip.Prefix{pfx("10.1.0.0/24")},
	}
	other := func(n int, as uint32) Config {
		addr := fmt.Sprintf("127.0.0.%d", n)
		return Config{
			ASN: as, RouterID: ip(fmt.Sprintf("10.0.0.%d", n)), Multipath: mp,
			ListenAddresses: []netip.Addr{ip(addr)},
			Neighbors:       []Neighbor{peer("127.0.0.1", addr, 65001)},
			Originate:       []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(n), 0, 0}), 24)},
		}
	}
	// D starts without its session; it is added later.
	dCfg := other(4, 65004)
	dNeighbors := dCfg.Neighbors
	dCfg.Neighbors = nil
	sp := speakers(t, aCfg, other(2, 65002), other(3, 65003), dCfg)
	a, b, c, d := sp[0], sp[1], sp[2], sp[3]
	rb, rc, rd := newRIB(b), newRIB(c), newRIB(d)
	ra := newRIB(a)
	ra.waitRoute(t, pfx("10.2.0.0/24"), ip("127.0.0.2"))
	ra.waitRoute(t, pfx("10.3.0.0/24"), ip("127.0.0.3"))
	rb.waitRoute(t, pfx("10.1.0.0/24"), ip("127.0.0.1"))
	rc.waitRoute(t, pfx("10.1.0.0/24"), ip("127.0.0.1"))
	waitEstablished(t, a, "127.0.0.2", "127.0.0.3")

	type snapshot struct {
		since       map[netip.Addr]time.Time
		opens, ntfs map[string]uint64
	}
	snap := func() snapshot {
		s := snapshot{since: map[netip.Addr]time.Time{}, opens: map[string]uint64{}, ntfs: map[string]uint64{}}
		for _, n := range []string{"127.0.0.2", "127.0.0.3"} {
			s.since[ip(n)] = neighborState(t, a, ip(n)).EstablishedSince
		}
		s.opens["b"], s.ntfs["b"] = received(t, b, "127.0.0.1")
		s.opens["c"], s.ntfs["c"] = received(t, c, "127.0.0.1")
		return s
	}
	// A session reset would show before a new route arrives over it: the
	// reset happens inside Apply, the route after it.
	checkNoReset := func(before snapshot, what string, marker netip.Prefix) {
		t.Helper()
		rb.waitRoute(t, marker, ip("127.0.0.1"))
		rc.waitRoute(t, marker, ip("127.0.0.1"))
		after := snap()
		for _, k := range []string{"b", "c"} {
			if after.opens[k] != before.opens[k] || after.ntfs[k] != before.ntfs[k] {
				t.Errorf("%s reset the session to %s: OPENs %d→%d, NOTIFICATIONs %d→%d", what, k,
					before.opens[k], after.opens[k], before.ntfs[k], after.ntfs[k])
			}
		}
		for n, since := range before.since {
			if !after.since[n].Equal(since) {
				t.Errorf("%s: neighbor %v established-since changed %v→%v", what, n, since, after.since[n])
			}
		}
	}

	// Changing one neighbor's connect-retry resets no session (it
	// applies to the next connection attempts; a hold-time change does
	// reset the session, TestPrivilegedHoldTimeChangeOnReload).
	before := snap()
	aCfg.Neighbors[0].Timers.ConnectRetry = 2 * time.Second
	aCfg.Originate = append(aCfg.Originate, pfx("10.11.0.0/24"))
	if err := a.Apply(t.Context(), aCfg); err != nil {
		t.Fatal(err)
	}
	checkNoReset(before, "changing 127.0.0.2's connect-retry", pfx("10.11.0.0/24"))

	// Adding a neighbor resets no existing session.
	before = snap()
	aCfg.Neighbors = append(aCfg.Neighbors, peer("127.0.0.4", "127.0.0.1", 65004))
	aCfg.Originate = append(aCfg.Originate, pfx("10.12.0.0/24"))
	if err := a.Apply(t.Context(), aCfg); err != nil {
		t.Fatal(err)
	}
	dCfg.Neighbors = dNeighbors
	if err := d.Apply(t.Context(), dCfg); err != nil {
		t.Fatal(err)
	}
	rd.waitRoute(t, pfx("10.12.0.0/24"), ip("127.0.0.1"))
	checkNoReset(before, "adding neighbor 127.0.0.4", pfx("10.12.0.0/24"))

	// A bad config is refused as a whole and changes nothing.
	before = snap()
	nbsBefore, err := a.Neighbors(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	bad := aCfg
	bad.Neighbors = []Neighbor{aCfg.Neighbors[0], aCfg.Neighbors[0]}
	bad.Originate = nil
	err = a.Apply(t.Context(), bad)
	if err == nil || !strings.Contains(err.Error(), "neighbor 127.0.0.2: configured twice") {
		t.Fatalf("Apply of a config with a duplicate neighbor: err = %v, want one naming 127.0.0.2", err)
	}
	nbsAfter, err := a.Neighbors(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(nbsAfter) != len(nbsBefore) {
		t.Errorf("refused Apply changed the neighbors: %d → %d", len(nbsBefore), len(nbsAfter))
	}
	// Still announcing everything: a marker added by a good Apply arrives
	// after any withdrawal the bad one could have sent.
	aCfg.Originate = append(aCfg.Originate, pfx("10.13.0.0/24"))
	if err := a.Apply(t.Context(), aCfg); err != nil {
		t.Fatal(err)
	}
	checkNoReset(before, "the refused Apply", pfx("10.13.0.0/24"))
	for _, p := range []string{"10.1.0.0/24", "10.11.0.0/24", "10.12.0.0/24"} {
		if got := rb.routes[pfx(p)]; !slices.Equal(got, []netip.Addr{ip("127.0.0.1")}) {
			t.Errorf("after the refused Apply, B has %v via %v, want via 127.0.0.1", p, got)
		}
	}
}

func TestPrivilegedTCPMD5(t *testing.T) {
	ns.Privileged(t)
	mp := Multipath{Enabled: true}
	na, nb := peer("127.0.0.2", "127.0.0.1", 65002), peer("127.0.0.1", "127.0.0.2", 65001)
	na.AuthPassword, nb.AuthPassword = "s3cret", "s3cret"
	if tcpMD5Error() != nil {
		s := speaker(t, Config{ASN: 65001, RouterID: ip("10.0.0.1"), ListenPort: -1, Multipath: mp})
		err := s.Apply(t.Context(), Config{ASN: 65001, RouterID: ip("10.0.0.1"), ListenPort: -1, Multipath: mp, Neighbors: []Neighbor{na}})
		if err == nil || !strings.Contains(err.Error(), "neighbor 127.0.0.2: auth-password") {
			t.Fatalf("Apply of a password without kernel TCP-MD5: err = %v, want one naming the neighbor", err)
		}
		t.Skipf("TCP-MD5 unavailable (%v); checked that Apply refuses the password", tcpMD5Error())
	}
	sp := speakers(t,
		Config{ASN: 65001, RouterID: ip("10.0.0.1"), Multipath: mp, ListenAddresses: []netip.Addr{ip("127.0.0.1")}, Neighbors: []Neighbor{na}},
		Config{ASN: 65002, RouterID: ip("10.0.0.2"), Multipath: mp, ListenAddresses: []netip.Addr{ip("127.0.0.2")}, Neighbors: []Neighbor{nb},
			Originate: []netip.Prefix{pfx("10.2.0.0/24")}},
	)
	newRIB(sp[0]).waitRoute(t, pfx("10.2.0.0/24"), ip("127.0.0.2"))
}

func TestPrivilegedMultipathConflictRefused(t *testing.T) {
	ns.Privileged(t)
	speaker(t, Config{ASN: 65001, RouterID: ip("10.0.0.1"), ListenPort: -1, Multipath: Multipath{Enabled: true}})
	s := New()
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	err := s.Apply(t.Context(), Config{ASN: 65002, RouterID: ip("10.0.0.2"), ListenPort: -1})
	if err == nil || !strings.Contains(err.Error(), "multipath") {
		t.Fatalf("second speaker with multipath off: err = %v, want a multipath conflict", err)
	}
}

func TestApplyBeforeStart(t *testing.T) {
	s := New()
	err := s.Apply(context.Background(), goodConfig())
	if err == nil || !strings.Contains(err.Error(), "not started") {
		t.Fatalf("Apply before Start: err = %v, want 'not started'", err)
	}
}
