package fib

import (
	"fmt"
	"testing"
)

// BenchmarkResolutionCommonCase compares a Table without and with
// WithNextHopResolution when every gateway is on a link (the common
// case), in one run: the bookkeeping of setting and deleting 10k routes
// (no kernel writes) and installing them (kernel writes included).
func BenchmarkResolutionCommonCase(b *testing.B) {
	tp := newTopo(b, "resbench")
	rs := benchSet(benchRoutes)
	for _, on := range []bool{false, true} {
		var opts []Opt
		if on {
			opts = append(opts, WithNextHopResolution())
		}
		name := fmt.Sprintf("resolution=%v", on)
		b.Run(name+"/set-delete-10k", func(b *testing.B) {
			tb := openKernel(b, tp.r).NewTable(MainTable, opts...)
			defer tb.Close()
			mustApply(b, tb) // the first resync: resolution ready
			for b.Loop() {
				mustSet(b, tb, rs...)
				for _, r := range rs {
					tb.DeleteRoute(r.Key)
				}
			}
			if on && len(tb.RecursiveNextHops()) != 0 {
				b.Fatalf("recursive next hops %v, want none", tb.RecursiveNextHops())
			}
		})
		b.Run(name+"/install-10k", func(b *testing.B) {
			tb := openKernel(b, tp.r).NewTable(MainTable, opts...)
			defer tb.Close()
			for b.Loop() {
				b.StopTimer()
				mustApply(b, tb)
				mustSet(b, tb, rs...)
				b.StartTimer()
				mustApply(b, tb)
				b.StopTimer()
				for _, r := range rs {
					tb.DeleteRoute(r.Key)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkApplyOneRoute is the steady state of a BGP feed: each Apply
// carries one new route over known gateways and one withdrawal. The
// gateways' interfaces come from the cache after the first Apply
// (nhresolve.go), so an Apply is two route writes and no lookup.
func BenchmarkApplyOneRoute(b *testing.B) {
	tp := newTopo(b, "res1")
	tb := newModeTable(b, tp, ModeNexthopGroups)
	mustApply(b, tb)
	rs := benchSet(2)
	mustSet(b, tb, rs...)
	mustApply(b, tb)
	i := 0
	for b.Loop() {
		r := route(fmt.Sprintf("10.200.%d.%d/32", i>>8&255, i&255), 0, gw4a, gw4b)
		i++
		mustSet(b, tb, r)
		mustApply(b, tb)
		tb.DeleteRoute(r.Key)
		mustApply(b, tb)
	}
	b.ReportMetric(float64(tb.dp.(*nhManager).gws.lookups)/float64(b.N), "lookups/op")
}
