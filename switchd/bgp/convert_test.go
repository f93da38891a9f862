package bgp

import (
	"net/netip"
	"testing"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

func asPath(nums ...uint32) *bgp.PathAttributeAsPath {
	return bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, nums)})
}

// nextHop is a NEXT_HOP attribute as GoBGP decodes one off the wire.
func nextHop(a string) *bgp.PathAttributeNextHop {
	return &bgp.PathAttributeNextHop{Value: netip.MustParseAddr(a)}
}

// apiPath builds a path the way GoBGP's watch hands one over, with
// attributes the decoder must skip around the ones it reads; neighbor ""
// is a locally originated path.
func apiPath(t testing.TB, prefix netip.Prefix, neighbor string, withdraw bool, attrs ...bgp.PathAttributeInterface) *apiutil.Path {
	t.Helper()
	fam := bgp.RF_IPv4_UC
	if prefix.Addr().Is6() {
		fam = bgp.RF_IPv6_UC
	}
	nlri, err := bgp.NewIPAddrPrefix(prefix)
	if err != nil {
		t.Fatal(err)
	}
	p := &apiutil.Path{Family: fam, Nlri: nlri, Withdrawal: withdraw}
	if neighbor != "" {
		p.PeerAddress = netip.MustParseAddr(neighbor)
	}
	p.Attrs = append([]bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(0)}, attrs...)
	p.Attrs = append(p.Attrs, bgp.NewPathAttributeMultiExitDisc(7), bgp.NewPathAttributeCommunities([]uint32{65000<<16 | 1}))
	return p
}

func TestPathDecoder(t *testing.T) {
	for _, tc := range []struct {
		name     string
		path     *apiutil.Path
		prefix   netip.Prefix
		nextHop  netip.Addr
		local    bool
		withdraw bool
	}{
		{"ipv4", apiPath(t, pfx("10.1.2.0/24"), "192.0.2.1", false, asPath(65001, 65002), nextHop("192.0.2.1")),
			pfx("10.1.2.0/24"), ip("192.0.2.1"), false, false},
		{"ipv4 withdrawn", apiPath(t, pfx("10.1.2.0/24"), "192.0.2.1", true, asPath(65001), nextHop("192.0.2.1")),
			pfx("10.1.2.0/24"), ip("192.0.2.1"), false, true},
		{"ipv6 global and link-local next hops", apiPath(t, pfx("2001:db8:1::/48"), "fd00::2", false, asPath(65002),
			&bgp.PathAttributeMpReachNLRI{Nexthop: ip("fd00::2"), LinkLocalNexthop: ip("fe80::1")}),
			pfx("2001:db8:1::/48"), ip("fd00::2"), false, false},
		{"ipv4 via mapped ipv6 next hop", apiPath(t, pfx("10.3.0.0/16"), "192.0.2.1", false, asPath(65002),
			nextHop("::ffff:192.0.2.9")),
			pfx("10.3.0.0/16"), ip("192.0.2.9"), false, false},
		{"locally originated", apiPath(t, pfx("10.9.0.0/24"), "", false, nextHop("0.0.0.0")),
			pfx("10.9.0.0/24"), ip("0.0.0.0"), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d pathDecoder
			prefix, c, ok := d.decode(tc.path)
			withdraw := tc.path.Withdrawal
			if !ok {
				t.Fatalf("decode: ok %v", ok)
			}
			if prefix != tc.prefix || c.nextHop != tc.nextHop || c.local != tc.local || withdraw != tc.withdraw {
				t.Fatalf("decode = %v via %v local %v withdraw %v, want %v via %v local %v withdraw %v",
					prefix, c.nextHop, c.local, withdraw, tc.prefix, tc.nextHop, tc.local, tc.withdraw)
			}
		})
	}
}

func TestPathDecoderASPathIdentity(t *testing.T) {
	var d pathDecoder
	nh := nextHop("192.0.2.1")
	dec := func(a *bgp.PathAttributeAsPath) candidate {
		attrs := []bgp.PathAttributeInterface{nh}
		if a != nil {
			attrs = append(attrs, a)
		}
		_, c, ok := d.decode(apiPath(t, pfx("10.0.0.0/24"), "192.0.2.1", false, attrs...))
		if !ok {
			t.Fatal("not decoded")
		}
		return c
	}
	a, b, c := dec(asPath(65001, 65002)), dec(asPath(65001, 65002)), dec(asPath(65001, 65003))
	set := dec(bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SET, []uint32{65001, 65002})}))
	if a.asPath != b.asPath {
		t.Error("equal AS_PATHs decode to different keys")
	}
	if a.asPath == c.asPath || a.asPath == set.asPath {
		t.Error("different AS_PATHs decode to the same key")
	}
	if none := dec(nil); none.asPath == a.asPath {
		t.Error("a path without AS_PATH has the key of one with")
	}
}

// TestPathDecoderSkipsOtherFamilies: only IPv4 and IPv6 unicast prefixes
// are routes.
func TestPathDecoderSkipsOtherFamilies(t *testing.T) {
	var d pathDecoder
	p := apiPath(t, pfx("10.1.2.0/24"), "192.0.2.1", false, nextHop("192.0.2.1"))
	p.Family = bgp.RF_IPv4_MPLS
	if _, _, ok := d.decode(p); ok {
		t.Fatal("decode took a labelled-unicast path")
	}
}

func BenchmarkPathDecoder(b *testing.B) {
	p := apiPath(b, pfx("10.1.2.0/24"), "192.0.2.1", false, asPath(65001, 65002), nextHop("192.0.2.1"))
	var d pathDecoder
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := d.decode(p); !ok {
			b.Fatal("not decoded")
		}
	}
}

func TestSessionStateFromAPI(t *testing.T) {
	for _, tc := range []struct {
		api  api.PeerState_SessionState
		want SessionState
	}{
		{api.PeerState_SESSION_STATE_UNSPECIFIED, StateIdle},
		{api.PeerState_SESSION_STATE_IDLE, StateIdle},
		{api.PeerState_SESSION_STATE_CONNECT, StateConnect},
		{api.PeerState_SESSION_STATE_ACTIVE, StateActive},
		{api.PeerState_SESSION_STATE_OPENSENT, StateOpenSent},
		{api.PeerState_SESSION_STATE_OPENCONFIRM, StateOpenConfirm},
		{api.PeerState_SESSION_STATE_ESTABLISHED, StateEstablished},
	} {
		if got := sessionStateFromAPI(tc.api); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.api, got, tc.want)
		}
	}
}
