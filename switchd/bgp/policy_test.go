package bgp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
)

func TestPrivilegedImportPolicyFiltersPerNeighbor(t *testing.T) {
	ns.Privileged(t)
	mp := Multipath{Enabled: true}
	in, out, other := pfx("10.100.1.0/26"), pfx("10.100.2.0/26"), pfx("10.100.2.64/26")
	in6 := pfx("fd00:100:1::/122")
	addLoopback(t, "fd00::1", "fd00::2")
	leaf := Config{
		ASN: 65001, RouterID: ip("10.0.0.1"), Multipath: mp,
		ListenAddresses: []netip.Addr{ip("127.0.0.1"), ip("fd00::1")},
		Neighbors: []Neighbor{
			peer("127.0.0.2", "127.0.0.1", 65002), peer("fd00::2", "fd00::1", 65002), peer("127.0.0.3", "127.0.0.1", 65003),
		},
		PrefixSets: []PrefixSet{{Name: "host2", Prefixes: []PrefixRange{
			{Prefix: pfx("10.100.1.0/24"), MinLen: 24, MaxLen: 32},
			{Prefix: pfx("fd00:100:1::/64"), MinLen: 64, MaxLen: 128},
		}}},
		Policies: []Policy{{Name: "from-host2", Statements: []Statement{{Name: "own", PrefixSet: "host2", Result: Accept}}}},
	}
	for i := range 2 {
		leaf.Neighbors[i].Import = PolicyChain{Policies: []string{"from-host2"}, Default: Reject}
	}
	host := func(n int, as uint32, orig ...netip.Prefix) Config {
		addr := netip.AddrFrom4([4]byte{127, 0, 0, byte(n)})
		c := Config{ASN: as, RouterID: netip.AddrFrom4([4]byte{10, 0, 0, byte(n)}), Multipath: mp,
			ListenAddresses: []netip.Addr{addr}, Neighbors: []Neighbor{peer("127.0.0.1", addr.String(), 65001)}, Originate: orig}
		if n == 2 {
			c.ListenAddresses = append(c.ListenAddresses, ip("fd00::2"))
			c.Neighbors = append(c.Neighbors, peer("fd00::1", "fd00::2", 65001))
			c.Originate = append(c.Originate, in6, pfx("fd00:200::/64"))
		}
		return c
	}
	// Host 2 announces its own block and hijacks one; host 3 has no
	// policy and is accepted whatever it sends.
	sp := speakers(t, leaf, host(2, 65002, in, out), host(3, 65003, other))
	l := sp[0]
	r := newRIB(l)
	r.waitRoute(t, in, ip("127.0.0.2"))
	r.waitRoute(t, in6, ip("fd00::2"))
	r.waitRoute(t, other, ip("127.0.0.3"))
	waitEstablished(t, l, "127.0.0.2", "fd00::2")
	if n := neighborState(t, l, ip("127.0.0.2")); n.PrefixesReceived[IPv4Unicast] != 2 {
		t.Fatalf("leaf received %d IPv4 prefixes from host 2, want 2 (one rejected by policy)", n.PrefixesReceived[IPv4Unicast])
	}
	r.drainOnce(500 * time.Millisecond)
	for _, rt := range r.seen {
		if rt.Prefix == out || rt.Prefix == pfx("fd00:200::/64") {
			t.Fatalf("Drain reported %v, outside host 2's ranges", rt)
		}
	}

	// Widen the policy: applied without a session reset (soft reset in).
	opens, _ := received(t, sp[1], "127.0.0.1")
	leaf.PrefixSets[0].Prefixes = append(leaf.PrefixSets[0].Prefixes, PrefixRange{Prefix: pfx("10.100.2.0/24"), MinLen: 24, MaxLen: 32})
	if err := l.Apply(t.Context(), leaf); err != nil {
		t.Fatal(err)
	}
	r.waitRoute(t, out, ip("127.0.0.2"))
	if o, _ := received(t, sp[1], "127.0.0.1"); o != opens {
		t.Errorf("policy change reset host 2's session: OPENs %d → %d", opens, o)
	}
	// And narrow it again: the route goes.
	leaf.PrefixSets[0].Prefixes = leaf.PrefixSets[0].Prefixes[:2]
	if err := l.Apply(t.Context(), leaf); err != nil {
		t.Fatal(err)
	}
	r.waitRoute(t, out)
	r.waitRoute(t, in, ip("127.0.0.2"))
}
