package bgp

import (
	"net/netip"
	"testing"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func asPath(nums ...uint32) *api.AsPathAttribute {
	return &api.AsPathAttribute{Segments: []*api.AsSegment{{Type: api.AsSegment_AS_SEQUENCE, Numbers: nums}}}
}

// apiPath builds a path the way GoBGP's watch renders one, with attributes
// the decoder must skip around the ones it reads.
func apiPath(t testing.TB, prefix netip.Prefix, neighbor string, withdraw bool, attrs ...proto.Message) *api.Path {
	fam := apiFamilyV4
	if prefix.Addr().Is6() {
		fam = apiFamilyV6
	}
	p := &api.Path{
		Nlri:       mustAny(t, &api.IPAddressPrefix{Prefix: prefix.Addr().String(), PrefixLen: uint32(prefix.Bits())}),
		Family:     fam,
		NeighborIp: neighbor,
		IsWithdraw: withdraw,
	}
	for _, a := range append([]proto.Message{&api.OriginAttribute{Origin: 0}}, append(attrs, &api.MultiExitDiscAttribute{Med: 7},
		&api.CommunitiesAttribute{Communities: []uint32{65000<<16 | 1}})...) {
		p.Pattrs = append(p.Pattrs, mustAny(t, a))
	}
	return p
}

func TestPathDecoder(t *testing.T) {
	v6nlri := mustAny(t, &api.IPAddressPrefix{Prefix: "2001:db8:1::", PrefixLen: 48})
	for _, tc := range []struct {
		name     string
		path     *api.Path
		prefix   netip.Prefix
		nextHop  netip.Addr
		local    bool
		withdraw bool
	}{
		{"ipv4", apiPath(t, pfx("10.1.2.0/24"), "192.0.2.1", false, asPath(65001, 65002), &api.NextHopAttribute{NextHop: "192.0.2.1"}),
			pfx("10.1.2.0/24"), ip("192.0.2.1"), false, false},
		{"ipv4 withdrawn", apiPath(t, pfx("10.1.2.0/24"), "192.0.2.1", true, asPath(65001), &api.NextHopAttribute{NextHop: "192.0.2.1"}),
			pfx("10.1.2.0/24"), ip("192.0.2.1"), false, true},
		{"ipv6 global and link-local next hops", apiPath(t, pfx("2001:db8:1::/48"), "fd00::2", false, asPath(65002),
			&api.MpReachNLRIAttribute{Family: apiFamilyV6, NextHops: []string{"fd00::2", "fe80::1"}, Nlris: []*anypb.Any{v6nlri}}),
			pfx("2001:db8:1::/48"), ip("fd00::2"), false, false},
		{"ipv4 via mapped ipv6 next hop", apiPath(t, pfx("10.3.0.0/16"), "192.0.2.1", false, asPath(65002),
			&api.NextHopAttribute{NextHop: "::ffff:192.0.2.9"}),
			pfx("10.3.0.0/16"), ip("192.0.2.9"), false, false},
		{"locally originated", apiPath(t, pfx("10.9.0.0/24"), "<nil>", false, &api.NextHopAttribute{NextHop: "0.0.0.0"}),
			pfx("10.9.0.0/24"), ip("0.0.0.0"), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d pathDecoder
			prefix, c, withdraw, ok, err := d.decode(tc.path)
			if err != nil || !ok {
				t.Fatalf("decode: ok %v, err %v", ok, err)
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
	nh := &api.NextHopAttribute{NextHop: "192.0.2.1"}
	dec := func(a *api.AsPathAttribute) candidate {
		_, c, _, _, err := d.decode(apiPath(t, pfx("10.0.0.0/24"), "192.0.2.1", false, a, nh))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b, c := dec(asPath(65001, 65002)), dec(asPath(65001, 65002)), dec(asPath(65001, 65003))
	set := dec(&api.AsPathAttribute{Segments: []*api.AsSegment{{Type: api.AsSegment_AS_SET, Numbers: []uint32{65001, 65002}}}})
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

// TestTypeURLs checks the decoder's type URL constants against the URLs
// GoBGP's messages marshal with.
func TestTypeURLs(t *testing.T) {
	for _, tc := range []struct {
		url string
		msg proto.Message
	}{
		{urlIPAddressPrefix, &api.IPAddressPrefix{}},
		{urlNextHop, &api.NextHopAttribute{}},
		{urlMpReach, &api.MpReachNLRIAttribute{}},
		{urlAsPath, &api.AsPathAttribute{}},
		{urlCommunities, &api.CommunitiesAttribute{}},
		{urlLargeComm, &api.LargeCommunitiesAttribute{}},
		{urlExtComm, &api.ExtendedCommunitiesAttribute{}},
	} {
		if got := mustAny(t, tc.msg).TypeUrl; got != tc.url {
			t.Errorf("%T marshals with type URL %q, the decoder expects %q", tc.msg, got, tc.url)
		}
	}
}

func TestPathDecoderRejectsBadNLRI(t *testing.T) {
	var d pathDecoder
	for _, tc := range []struct {
		name string
		nlri *anypb.Any
	}{
		{"not an address", mustAny(t, &api.IPAddressPrefix{Prefix: "10.1.2", PrefixLen: 24})},
		{"length beyond the address", mustAny(t, &api.IPAddressPrefix{Prefix: "10.1.2.0", PrefixLen: 33})},
		{"other NLRI type", mustAny(t, &api.NextHopAttribute{NextHop: "10.0.0.1"})},
		{"truncated", &anypb.Any{TypeUrl: urlIPAddressPrefix, Value: []byte{0x12, 0x08, '1', '0'}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &api.Path{Nlri: tc.nlri, Family: apiFamilyV4, NeighborIp: "192.0.2.1"}
			if _, _, _, _, err := d.decode(p); err == nil {
				t.Fatal("decode accepted it")
			}
		})
	}
}

func TestParseAddrBytesMatchesNetip(t *testing.T) {
	for _, s := range []string{"1.2.3.4", "0.0.0.0", "255.255.255.255", "10.0.0.1", "01.2.3.4", "1.02.3.4",
		"256.1.1.1", "1.2.3", "1.2.3.4.5", "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4a", "1234.1.1.1", "",
		"::1", "fd00::2", "::ffff:1.2.3.4", "fe80::1%eth0", "<nil>"} {
		want, werr := netip.ParseAddr(s)
		got, err := parseAddrBytes([]byte(s))
		if got != want || (err == nil) != (werr == nil) {
			t.Errorf("parseAddrBytes(%q) = %v, %v; netip.ParseAddr: %v, %v", s, got, err, want, werr)
		}
	}
}

func BenchmarkPathDecoder(b *testing.B) {
	p := apiPath(b, pfx("10.1.2.0/24"), "192.0.2.1", false, asPath(65001, 65002), &api.NextHopAttribute{NextHop: "192.0.2.1"})
	var d pathDecoder
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, _, err := d.decode(p); err != nil {
			b.Fatal(err)
		}
	}
}
