package bgp

import (
	"net/netip"
	"runtime"
	"slices"
	"testing"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// BenchmarkRouteTable1M feeds 1M IPv4 /24s (16.0.0.0/24 upward), one path
// per watch event as GoBGP 4.8 sends them without multipath, through the watch callback and
// drains them in batches of 16,384 as the daemon does. Every 1000 prefixes
// (one UPDATE's worth) share an AS_PATH. It reports the time per route and
// the live heap the table keeps per route after everything is drained.
// Every path carries one standard community (apiPath adds it).
func BenchmarkRouteTable1M(b *testing.B) {
	routeTable1M(b, apiPath(b, pfx("16.0.0.0/24"), "192.0.2.1", false, asPath(65001), nextHop("192.0.2.1")))
}

// BenchmarkRouteTable1MNoCommunities is BenchmarkRouteTable1M with paths
// that carry no community attribute: what the communities cost when there
// are none.
func BenchmarkRouteTable1MNoCommunities(b *testing.B) {
	path := apiPath(b, pfx("16.0.0.0/24"), "192.0.2.1", false, asPath(65001), nextHop("192.0.2.1"))
	path.Attrs = slices.DeleteFunc(path.Attrs, func(a bgp.PathAttributeInterface) bool { return a.GetType() == bgp.BGP_ATTR_TYPE_COMMUNITIES })
	routeTable1M(b, path)
}

func routeTable1M(b *testing.B, path *apiutil.Path) {
	const n = 1_000_000
	const batch = 16384
	asIdx := slices.IndexFunc(path.Attrs, func(a bgp.PathAttributeInterface) bool { return a.GetType() == bgp.BGP_ATTR_TYPE_AS_PATH })
	asAttrs := make([]*bgp.PathAttributeAsPath, n/1000+1)
	for i := range asAttrs {
		asAttrs[i] = asPath(65001, uint32(i))
	}
	// GoBGP hands each path over with its own NLRI.
	nlris := make([]*bgp.IPAddrPrefix, n)
	for i := range nlris {
		a := netip.AddrFrom4([4]byte{byte(16 + i>>16), byte(i >> 8), byte(i), 0})
		nlris[i], _ = bgp.NewIPAddrPrefix(netip.PrefixFrom(a, 24))
	}
	ev := []*apiutil.Path{path}
	var live uint64
	var buf []Route
	b.ReportAllocs()
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		t := newRouteTable()
		t.configure(Multipath{Enabled: true}, nil)
		cb := t.bestPaths(t.newGeneration(false))
		drained := 0
		for i := range n {
			path.Nlri = nlris[i]
			path.Attrs[asIdx] = asAttrs[i/1000]
			cb(ev)
			if i%batch == batch-1 {
				buf, _ = t.drainSomeForBench(buf[:0], batch)
				drained += len(buf)
			}
		}
		for more := true; more; {
			buf, more = t.drainSomeForBench(buf[:0], batch)
			drained += len(buf)
		}
		if drained != n || t.learnedCount() != n {
			b.Fatalf("drained %d, learned %d; want %d", drained, t.learnedCount(), n)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		live = after.HeapAlloc - before.HeapAlloc
		runtime.KeepAlive(t)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/route")
	b.ReportMetric(float64(live)/n, "live-B/route")
}

func (t *routeTable) drainSomeForBench(buf []Route, max int) ([]Route, bool) {
	more := t.drainEach(max, func(r Route) { buf = append(buf, r) })
	return buf, more
}
