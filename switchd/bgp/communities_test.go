package bgp

import (
	"slices"
	"testing"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// communityAttrs are a path's standard, large and extended communities as
// GoBGP's watch hands them over.
func communityAttrs(t testing.TB, std uint32, large uint32) []bgp.PathAttributeInterface {
	return []bgp.PathAttributeInterface{
		nextHop("192.0.2.1"),
		asPath(65001),
		bgp.NewPathAttributeCommunities([]uint32{std}),
		bgp.NewPathAttributeLargeCommunities([]*bgp.LargeCommunity{bgp.NewLargeCommunity(65001, 1, large)}),
		bgp.NewPathAttributeExtendedCommunities([]bgp.ExtendedCommunityInterface{bgp.NewTwoOctetAsSpecificExtended(bgp.EC_SUBTYPE_ROUTE_TARGET, 65000, 100, true)}),
	}
}

func TestRouteTableCommunitiesInternedAndPublished(t *testing.T) {
	rt := ecmp(Multipath{Enabled: true})
	cb := rt.bestPaths(rt.newGeneration(false))
	event := func(paths ...*apiutil.Path) { cb(paths) }
	p, q := pfx("10.1.0.0/24"), pfx("10.2.0.0/24")
	event(apiPath(t, p, "192.0.2.1", false, communityAttrs(t, 65001<<16|10, 7)...),
		apiPath(t, q, "192.0.2.1", false, communityAttrs(t, 65001<<16|10, 7)...))
	got := rt.drain()
	if len(got) != 2 || len(got[0].Paths) != 1 || len(got[1].Paths) != 1 {
		t.Fatalf("drain = %+v, want %v and %v with one path each", got, p, q)
	}
	c := got[0].Paths[0].Communities
	want := Communities{
		Standard: []uint32{65001<<16 | 10, 65000<<16 | 1}, // apiPath adds 65000:1
		Large:    []LargeCommunity{{65001, 1, 7}},
		Extended: []uint64{0x0002_FDE8_0000_0064},
	}
	if c == nil || !slices.Equal(c.Standard, want.Standard) || !slices.Equal(c.Large, want.Large) || !slices.Equal(c.Extended, want.Extended) {
		t.Fatalf("communities of %v = %+v, want %+v", p, c, want)
	}
	if got[1].Paths[0].Communities != c || &got[1].Paths[0].Communities.Standard[0] != &c.Standard[0] {
		t.Errorf("%v and %v have equal communities in two copies, want one interned list", p, q)
	}

	// Only q's large community changes: q is published, with the new list.
	event(apiPath(t, q, "192.0.2.1", false, communityAttrs(t, 65001<<16|10, 8)...))
	got = rt.drain()
	if len(got) != 1 || got[0].Prefix != q || len(got[0].Paths) != 1 {
		t.Fatalf("drain after a community change = %+v, want %v alone", got, q)
	}
	if l := got[0].Paths[0].Communities.Large; !slices.Equal(l, []LargeCommunity{{65001, 1, 8}}) {
		t.Errorf("large communities of %v after the change = %v, want 65001:1:8", q, l)
	}
	// Repeating the same communities publishes nothing.
	event(apiPath(t, q, "192.0.2.1", false, communityAttrs(t, 65001<<16|10, 8)...))
	if got := rt.drain(); len(got) != 0 {
		t.Errorf("drain after an unchanged path = %+v, want nothing", got)
	}

	// Withdrawn, nothing stays interned.
	event(apiPath(t, p, "192.0.2.1", true, communityAttrs(t, 65001<<16|10, 7)...),
		apiPath(t, q, "192.0.2.1", true, communityAttrs(t, 65001<<16|10, 8)...))
	if got := rt.drain(); len(got) != 2 || len(got[0].Paths) != 0 || len(got[1].Paths) != 0 {
		t.Fatalf("drain after the withdrawals = %+v, want both gone", got)
	}
	if n := len(rt.nhs.comms.index); n != 0 {
		t.Errorf("%d community lists still interned with no route left", n)
	}
}

func TestDecodeCommunitiesWithoutAny(t *testing.T) {
	var d pathDecoder
	path := apiPath(t, pfx("10.1.0.0/24"), "192.0.2.1", false, nextHop("192.0.2.1"))
	path.Attrs = slices.DeleteFunc(path.Attrs, func(a bgp.PathAttributeInterface) bool { return a.GetType() == bgp.BGP_ATTR_TYPE_COMMUNITIES })
	_, c, ok := d.decode(path)
	if !ok || c.comm != "" {
		t.Fatalf("decode of a path without communities: comm %q, ok %v; want none", c.comm, ok)
	}
	if decodeCommunities("") != nil {
		t.Errorf("no communities decode to a list, want nil")
	}
}
