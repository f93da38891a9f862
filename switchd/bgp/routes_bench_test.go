package bgp

import (
	"net/netip"
	"runtime"
	"slices"
	"testing"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"
)

// BenchmarkRouteTable1M feeds 1M IPv4 /24s (16.0.0.0/24 upward), one path
// per watch event as GoBGP 3.37 sends them, through the watch callback and
// drains them in batches of 16,384 as the daemon does. Every 1000 prefixes
// (one UPDATE's worth) share an AS_PATH. It reports the time per route and
// the live heap the table keeps per route after everything is drained.
// Every path carries one standard community (apiPath adds it).
func BenchmarkRouteTable1M(b *testing.B) {
	routeTable1M(b, apiPath(b, pfx("16.0.0.0/24"), "192.0.2.1", false, asPath(65001), &api.NextHopAttribute{NextHop: "192.0.2.1"}))
}

// BenchmarkRouteTable1MNoCommunities is BenchmarkRouteTable1M with paths
// that carry no community attribute: what the communities cost when there
// are none.
func BenchmarkRouteTable1MNoCommunities(b *testing.B) {
	path := apiPath(b, pfx("16.0.0.0/24"), "192.0.2.1", false, asPath(65001), &api.NextHopAttribute{NextHop: "192.0.2.1"})
	path.Pattrs = slices.DeleteFunc(path.Pattrs, func(a *anypb.Any) bool { return a.TypeUrl == urlCommunities })
	routeTable1M(b, path)
}

func routeTable1M(b *testing.B, path *api.Path) {
	const n = 1_000_000
	const batch = 16384
	asIdx := -1
	for i, a := range path.Pattrs {
		if a.TypeUrl == urlAsPath {
			asIdx = i
		}
	}
	asAnys := make([][]byte, n/1000+1)
	for i := range asAnys {
		asAnys[i] = mustAny(b, asPath(65001, uint32(i))).Value
	}
	ev := &api.WatchEventResponse{Event: &api.WatchEventResponse_Table{Table: &api.WatchEventResponse_TableEvent{Paths: []*api.Path{path}}}}
	var nlri []byte
	var live uint64
	var buf []Route
	b.ReportAllocs()
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		t := newRouteTable()
		t.configure(Multipath{Enabled: true}, nil)
		cb := t.watchCallback(t.newGeneration(), func(err error) { b.Fatal(err) })
		drained := 0
		for i := range n {
			a := netip.AddrFrom4([4]byte{byte(16 + i>>16), byte(i >> 8), byte(i), 0})
			nlri = protowire.AppendTag(nlri[:0], fieldPrefixLen, protowire.VarintType)
			nlri = protowire.AppendVarint(nlri, 24)
			nlri = protowire.AppendTag(nlri, fieldPrefix, protowire.BytesType)
			nlri = protowire.AppendString(nlri, a.String())
			path.Nlri.Value = nlri
			path.Pattrs[asIdx].Value = asAnys[i/1000]
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
