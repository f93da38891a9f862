package fib

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// benchMany is the route count of the large benchmarks; smaller values
// make quick runs (go test -bench Install1M -fib.routes 100000).
var benchMany = flag.Int("fib.routes", 1000000, "routes in BenchmarkInstall1M and BenchmarkFailover1M")

// BenchmarkInstall1M installs and then deletes 1,000,000 IPv4 /24s over
// one two-way ECMP group in a fresh namespace, with switchd's writers and
// with `ip -batch` (routes over a nexthop group made beforehand, the same
// kernel objects). Run the sub-benchmarks in one invocation to compare.
func BenchmarkInstall1M(b *testing.B) {
	n := *benchMany
	for _, mode := range []string{ModeNexthopGroups, ModeMultipath} {
		b.Run("switchd-"+mode, func(b *testing.B) {
			var install, del time.Duration
			for b.Loop() {
				b.StopTimer()
				tp := newTopo(b, "bi")
				tb := newModeTable(b, tp, mode)
				mustApply(b, tb) // the start-up dump, untimed
				rs := manySet(n, gw4a, gw4b)
				b.StartTimer()
				t0 := time.Now()
				mustSet(b, tb, rs...)
				mustApply(b, tb)
				install += time.Since(t0)
				t0 = time.Now()
				for _, r := range rs {
					tb.DeleteRoute(r.Key)
				}
				mustApply(b, tb)
				del += time.Since(t0)
				b.StopTimer()
				if c := countRoutes(b, tp, MainTable); c != 0 {
					b.Fatalf("%d routes left", c)
				}
				tb.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(n*b.N)/install.Seconds(), "install-routes/s")
			b.ReportMetric(float64(n*b.N)/del.Seconds(), "delete-routes/s")
		})
	}
	b.Run("ip-batch", func(b *testing.B) {
		dir := b.TempDir()
		add, del := filepath.Join(dir, "add"), filepath.Join(dir, "del")
		var sa, sd strings.Builder
		for _, r := range manySet(n) {
			fmt.Fprintf(&sa, "route add %v nhid 3 proto %d\n", r.Key.Dst, Protocol)
			fmt.Fprintf(&sd, "route del %v proto %d\n", r.Key.Dst, Protocol)
		}
		if err := os.WriteFile(add, []byte(sa.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(del, []byte(sd.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		var install, remove time.Duration
		ctx := context.Background()
		for b.Loop() {
			b.StopTimer()
			tp := newTopo(b, "bb")
			for _, argv := range [][]string{
				{"ip", "nexthop", "add", "id", "1", "via", "192.0.2.1", "dev", "a0"},
				{"ip", "nexthop", "add", "id", "2", "via", "192.0.2.3", "dev", "a1"},
				{"ip", "nexthop", "add", "id", "3", "group", "1/2"},
			} {
				if _, err := tp.r.Run(ctx, argv...); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			t0 := time.Now()
			if out, err := tp.r.Run(ctx, "ip", "-batch", add); err != nil {
				b.Fatalf("ip -batch: %v %s", err, out)
			}
			install += time.Since(t0)
			t0 = time.Now()
			if out, err := tp.r.Run(ctx, "ip", "-batch", del); err != nil {
				b.Fatalf("ip -batch: %v %s", err, out)
			}
			remove += time.Since(t0)
		}
		b.ReportMetric(float64(n*b.N)/install.Seconds(), "install-routes/s")
		b.ReportMetric(float64(n*b.N)/remove.Seconds(), "delete-routes/s")
	})
}

// BenchmarkFailover1M: 1,000,000 routes over two next hops; every route
// loses one (a withdrawn path). Timed: the Apply that makes the kernel stop
// using it. With nexthop groups that is one group rewrite; inline next
// hops rewrite every route.
func BenchmarkFailover1M(b *testing.B) {
	n := *benchMany
	for _, mode := range []string{ModeNexthopGroups, ModeMultipath} {
		b.Run("switchd-"+mode, func(b *testing.B) {
			tp := newTopo(b, "bf")
			tb := newModeTable(b, tp, mode)
			both, one := manySet(n, gw4a, gw4b), manySet(n, gw4b)
			mustSet(b, tb, both...)
			mustApply(b, tb)
			var writes uint64
			for b.Loop() {
				b.StopTimer()
				mustSet(b, tb, one...)
				w := tb.Stats().Writes()
				b.StartTimer()
				mustApply(b, tb)
				b.StopTimer()
				writes += tb.Stats().Writes() - w
				mustSet(b, tb, both...)
				mustApply(b, tb)
				b.StartTimer()
			}
			b.ReportMetric(float64(writes)/float64(b.N), "writes/op")
		})
	}
}
