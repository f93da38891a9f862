package bgp

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// TestValidateUnnumbered: an unnumbered neighbor (by interface, with or
// without its peer's link-local address) carries both families, IPv4 over
// the IPv6 session included; each rule it can break is reported at the
// leaf that gave the value, under the neighbor's zoned address.
func TestValidateUnnumbered(t *testing.T) {
	c := goodConfig()
	c.Neighbors = append(c.Neighbors,
		Neighbor{Interface: "swp1", PeerAS: 65003, Enabled: true},
		Neighbor{Address: ip("fe80::2"), Interface: "swp2", PeerAS: 65004, Enabled: true},
		Neighbor{Address: ip("fe80::3%swp3"), PeerAS: 65005, Enabled: true, Families: []Family{IPv4Unicast}})
	d, err := validate(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key  string
		fams []Family
	}{
		{"fe80::%swp1", []Family{IPv4Unicast, IPv6Unicast}},
		{"fe80::2%swp2", []Family{IPv4Unicast, IPv6Unicast}},
		{"fe80::3%swp3", []Family{IPv4Unicast}},
	} {
		n, ok := d.neighbors[ip(tc.key)]
		if !ok {
			t.Errorf("no neighbor %s in %v", tc.key, sortedKeys(d.neighbors))
			continue
		}
		if !slices.Equal(n.Families, tc.fams) || !unnumbered(n) {
			t.Errorf("%s: families %v, interface %q; want %v and an interface", tc.key, n.Families, n.Interface, tc.fams)
		}
	}
	if !isDiscover(ip("fe80::%swp1")) || isDiscover(ip("fe80::2%swp2")) || isDiscover(ip("fe80::")) {
		t.Error("isDiscover: only fe80:: with a zone is the placeholder")
	}

	for _, tc := range []struct {
		n              Neighbor
		neighbor       string
		field, inError string
	}{
		{Neighbor{Address: ip("fe80::9")}, "fe80::9", FieldLocalAddress, "needs the interface"},
		{Neighbor{Address: ip("10.9.0.1"), Interface: "swp9"}, "10.9.0.1", "neighbor-address", "IPv6 link-local"},
		{Neighbor{Address: ip("fe80::9%swp8"), Interface: "swp9"}, "fe80::9%swp8", "neighbor-address", "zone differs"},
		{Neighbor{Interface: "swp9", LocalAddress: ip("fe80::1")}, "fe80::%swp9", FieldLocalAddress, "give no local address"},
		{Neighbor{Interface: "a/b"}, "", FieldLocalAddress, "interface \"a/b\""},
		{Neighbor{Interface: "swp9", Families: []Family{IPv6Unicast, IPv6Unicast}}, "fe80::%swp9", "afi-safis", "listed twice"},
	} {
		c := goodConfig()
		tc.n.PeerAS, tc.n.Enabled = 65009, true
		c.Neighbors = append(c.Neighbors, tc.n)
		_, err := validate(c)
		fields, _ := SplitErrors(err)
		found := false
		for _, fe := range fields {
			if fe.Field == tc.field && strings.Contains(fe.Reason, tc.inError) &&
				(tc.neighbor == "" || fe.Neighbor == ip(tc.neighbor)) {
				found = true
			}
		}
		if !found {
			t.Errorf("%+v: %v, want %q at %s of %s", tc.n, err, tc.inError, tc.field, tc.neighbor)
		}
	}
}

// TestResolveUnnumbered: neighbors wait for discovery (their peer's
// address, if not configured, and their interface's own link-local
// address) and are then keyed by the peer's zoned address, with the own
// address as local address; numbered neighbors are untouched.
func TestResolveUnnumbered(t *testing.T) {
	c := goodConfig()
	c.Neighbors = append(c.Neighbors,
		Neighbor{Interface: "swp1", PeerAS: 65003, Enabled: true, Export: PolicyChain{Default: Accept}},
		Neighbor{Interface: "swp2", PeerAS: 65004, Enabled: true},
		Neighbor{Address: ip("fe80::3"), Interface: "swp3", PeerAS: 65005, Enabled: true})
	d, err := validate(c)
	if err != nil {
		t.Fatal(err)
	}
	peers := map[string]netip.Addr{"swp1": ip("fe80::1:2"), "swp3": ip("fe80::9")}
	locals := map[string]netip.Addr{"swp1": ip("fe80::1:1"), "swp2": ip("fe80::2:1")}
	lookup := func(m map[string]netip.Addr) func(string) (netip.Addr, bool) {
		return func(name string) (netip.Addr, bool) { a, ok := m[name]; return a, ok }
	}
	r := resolveUnnumbered(d, lookup(peers), lookup(locals))
	want := []netip.Addr{ip("10.0.0.2"), ip("fd00::2"), ip("fe80::1:2%swp1")}
	if got := sortedKeys(r.neighbors); !slices.Equal(got, want) {
		t.Fatalf("resolved neighbors %v, want %v (swp2: no peer yet; swp3: no own address yet)", got, want)
	}
	if n := r.neighbors[ip("fe80::1:2%swp1")]; n.LocalAddress != ip("fe80::1:1") || n.Address != ip("fe80::1:2%swp1") {
		t.Errorf("swp1's neighbor: address %v, local %v", n.Address, n.LocalAddress)
	}
	if got := sortedKeys(r.pending); !slices.Equal(got, []netip.Addr{ip("fe80::%swp2"), ip("fe80::3%swp3")}) {
		t.Errorf("pending %v, want swp2's and swp3's", got)
	}
	if len(d.neighbors) != 5 {
		t.Errorf("resolve changed its input: %v", sortedKeys(d.neighbors))
	}
	// The policy names the resolved neighbor, not the placeholder.
	var sets []string
	for _, s := range r.policy.sets {
		sets = append(sets, s.Name)
	}
	if !slices.Contains(sets, neighborSetName(ip("fe80::1:2%swp1"))) || slices.Contains(sets, neighborSetName(ip("fe80::%swp1"))) {
		t.Errorf("policy's neighbor sets %v", sets)
	}
	if p := neighborAPI(r.neighbors[ip("fe80::1:2%swp1")], false, 0); p.Conf.NeighborAddress != "fe80::1:2%swp1" ||
		p.Transport.LocalAddress != "fe80::1:1" || p.Transport.BindInterface != "swp1" {
		t.Errorf("GoBGP peer: %v, transport %v", p.Conf.NeighborAddress, p.Transport)
	}
}

// TestLinkPeerUpdate: the first address heard is the peer; a second one
// is kept as a candidate while the first still answers, and takes over
// once the first has been silent for replaceAfter.
func TestLinkPeerUpdate(t *testing.T) {
	l := newLinkPeers()
	p := &linkPeer{}
	t0 := time.Unix(1000, 0)
	a, b := ip("fe80::a"), ip("fe80::b")
	steps := []struct {
		addr    netip.Addr
		at      time.Duration
		changed bool
		peer    netip.Addr
	}{
		{a, 0, true, a},
		{a, time.Second, false, a},
		{b, 2 * time.Second, false, a}, // a answered 1 s ago
		{a, 3 * time.Second, false, a},
		{b, 3*time.Second + replaceAfter, true, b}, // a silent since 3 s
		{a, 4*time.Second + replaceAfter, false, b},
	}
	for i, s := range steps {
		if got := l.update("swp1", p, s.addr, t0.Add(s.at)); got != s.changed || p.peer != s.peer {
			t.Errorf("step %d (%v at %v): changed %v, peer %v; want %v, %v", i, s.addr, s.at, got, p.peer, s.changed, s.peer)
		}
	}
}

// TestLinkZones: a link-local next hop learned from an unnumbered
// neighbor gets its interface; others stay as they are.
func TestLinkZones(t *testing.T) {
	var z linkZones
	z.set(map[netip.Addr]Neighbor{
		ip("fe80::2%swp1"): {Address: ip("fe80::2%swp1"), Interface: "swp1"},
		ip("fe80::%swp2"):  {Address: ip("fe80::%swp2"), Interface: "swp2"}, // not discovered: no entry
		ip("fd00::2"):      {Address: ip("fd00::2")},
	})
	for _, tc := range []struct{ nh, from, want string }{
		{"fe80::2", "fe80::2", "fe80::2%swp1"},
		{"fe80::7", "fe80::2", "fe80::7%swp1"}, // a third party's, on the same link
		{"fe80::2", "fd00::2", "fe80::2"},
		{"fd00::9", "fe80::2", "fd00::9"},
		{"10.0.0.9", "fe80::2", "10.0.0.9"},
		{"fe80::2", "<nil>", "fe80::2"},
	} {
		from, _ := netip.ParseAddr(tc.from)
		if got := z.zone(ip(tc.nh), from); got != ip(tc.want) {
			t.Errorf("next hop %s from %s: %v, want %s", tc.nh, tc.from, got, tc.want)
		}
	}
	// GoBGP's peer events name the peer without zone.
	p := &apiutil.WatchEventMessage_PeerEvent{Peer: apiutil.Peer{Conf: apiutil.PeerConf{NeighborAddress: ip("fe80::2")}, State: apiutil.PeerState{NeighborAddress: ip("fe80::2")}}}
	z.zonePeer(p)
	if p.Peer.Conf.NeighborAddress != ip("fe80::2%swp1") || p.Peer.State.NeighborAddress != ip("fe80::2%swp1") {
		t.Errorf("peer event names %s / %s, want fe80::2%%swp1", p.Peer.Conf.NeighborAddress, p.Peer.State.NeighborAddress)
	}
}

// TestMPNextHop: the global next hop of MP_REACH, unless it is :: (FRR on
// an unnumbered session), then the link-local one after it.
func TestMPNextHop(t *testing.T) {
	for _, tc := range []struct {
		nhs  []string
		want string
	}{
		{[]string{"fd00::1", "fe80::1"}, "fd00::1"},
		{[]string{"::", "fe80::1"}, "fe80::1"},
		{[]string{"fe80::2"}, "fe80::2"},
		{[]string{"::"}, "::"},
	} {
		a := &bgp.PathAttributeMpReachNLRI{Nexthop: ip(tc.nhs[0])}
		if len(tc.nhs) > 1 {
			a.LinkLocalNexthop = ip(tc.nhs[1])
		}
		if got := mpNextHop(a); got != ip(tc.want) {
			t.Errorf("%v: %v, want %s", tc.nhs, got, tc.want)
		}
	}
	if got := mpNextHop(&bgp.PathAttributeMpReachNLRI{}); got.IsValid() {
		t.Errorf("no next hop: %v", got)
	}
}

// TestSyncWaitsForUndiscovered: an unnumbered neighbor whose peer is not
// discovered yet is waited for by Synced (under its fe80::%if name), so
// that a restarted switchd whose neighbors are all unnumbered does not
// sweep the routes it adopted before it has even found its peers.
func TestSyncWaitsForUndiscovered(t *testing.T) {
	s := speaker(t, Config{ASN: 65001, RouterID: ip("10.0.0.1"), ListenPort: -1,
		GracefulRestart: GracefulRestart{Enabled: true},
		Neighbors:       []Neighbor{{Interface: "nosuch0", PeerAS: 65002, Enabled: true}}})
	s.mu.Lock()
	gr, ok := s.syncPeers[ip("fe80::%nosuch0")]
	s.mu.Unlock()
	if !ok || !gr {
		t.Errorf("sync waits for %v, want the undiscovered neighbor fe80::%%nosuch0 with graceful restart", s.syncPeers)
	}
	select {
	case <-s.Synced():
		t.Error("synced before the unnumbered neighbor was discovered")
	default:
	}
}
