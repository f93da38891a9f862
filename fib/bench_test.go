package fib

import (
	"net/netip"
	"testing"
)

const benchRoutes = 10000

// benchSet is n IPv4 /24s, every other one ECMP over both links.
func benchSet(n int) []Route {
	rs := make([]Route, n)
	for i := range rs {
		dst := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
		r := Route{Key: RouteKey{Dst: dst}, NextHops: []NextHop{{Gateway: gw4a}}}
		if i%2 == 1 {
			r.NextHops = append(r.NextHops, NextHop{Gateway: gw4b})
		}
		rs[i] = r
	}
	return rs
}

// BenchmarkApply measures converging a namespace's main table: installing
// and removing 10k routes, and a resync that finds nothing to do.
func BenchmarkApply(b *testing.B) {
	tp := newTopo(b, "bench")
	rs := benchSet(benchRoutes)

	b.Run("install-10k", func(b *testing.B) {
		tb := openKernel(b, tp.r).NewTable(MainTable)
		for b.Loop() {
			b.StopTimer()
			mustApply(b, tb) // also the first resync, untimed
			mustSet(b, tb, rs...)
			b.StartTimer()
			mustApply(b, tb)
			b.StopTimer()
			for _, r := range rs {
				tb.DeleteRoute(r.Key)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(benchRoutes*b.N)/b.Elapsed().Seconds(), "routes/s")
	})
	b.Run("delete-10k", func(b *testing.B) {
		tb := openKernel(b, tp.r).NewTable(MainTable)
		for b.Loop() {
			b.StopTimer()
			mustSet(b, tb, rs...)
			mustApply(b, tb)
			for _, r := range rs {
				tb.DeleteRoute(r.Key)
			}
			b.StartTimer()
			mustApply(b, tb)
		}
		b.ReportMetric(float64(benchRoutes*b.N)/b.Elapsed().Seconds(), "routes/s")
	})
	b.Run("resync-10k-in-sync", func(b *testing.B) {
		tb := openKernel(b, tp.r).NewTable(MainTable)
		mustSet(b, tb, rs...)
		mustApply(b, tb)
		writes := tb.Stats().Writes()
		for b.Loop() {
			tb.QueueResync()
			mustApply(b, tb)
		}
		if tb.Stats().Writes() != writes {
			b.Fatalf("resync of an in-sync table wrote %d times", tb.Stats().Writes()-writes)
		}
	})
}
