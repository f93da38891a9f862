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
