package fib

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	pnl "github.com/switchd/switchd/platform/netlink"
	"golang.org/x/sys/unix"
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
			var heap uint64
			for b.Loop() {
				b.StopTimer()
				tp := newTopo(b, "bi")
				tb := newModeTable(b, tp, mode)
				mustApply(b, tb) // the start-up dump, untimed
				rs := manySet(n, gw4a, gw4b)
				h0 := heapInUse()
				b.StartTimer()
				t0 := time.Now()
				mustSet(b, tb, rs...)
				mustApply(b, tb)
				install += time.Since(t0)
				b.StopTimer()
				heap += heapInUse() - h0
				b.StartTimer()
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
			b.ReportMetric(float64(heap)/float64(n*b.N), "heap-B/route")
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
// loses one (a withdrawn path), handed over route by route with SetRoute
// as the daemon does. Timed (ns/op): the Apply. Reported as well:
// sets-ms, the SetRoute calls; kernel-ms, from the start of Apply until the
// kernel no longer uses the withdrawn next hop for any probed route (a
// goroutine asks the kernel, as `ip route get` does, for destinations
// spread over all routes, the last one included); apply-ms, the whole
// Apply. With nexthop groups the kernel is done after one group rewrite;
// inline next hops rewrite every route.
func BenchmarkFailover1M(b *testing.B) {
	n := *benchMany
	for _, mode := range []string{ModeNexthopGroups, ModeMultipath} {
		b.Run("switchd-"+mode, func(b *testing.B) {
			tp := newTopo(b, "bf")
			tb := newModeTable(b, tp, mode)
			both, one := manySet(n, gw4a, gw4b), manySet(n, gw4b)
			mustSet(b, tb, both...)
			mustApply(b, tb)
			var probes []netip.Addr
			for i := range 32 {
				j := i * (n - 1) / 31
				probes = append(probes, netip.AddrFrom4([4]byte{byte(16 + j>>16), byte(j >> 8), byte(j), 1}))
			}
			var writes uint64
			var sets, kernel, apply time.Duration
			for b.Loop() {
				b.StopTimer()
				done := make(chan time.Time, 1)
				start := make(chan struct{})
				go probeUntilGone(b, tp, probes, gw4a, start, done)
				<-start // the probe saw the path in use
				w := tb.Stats().Writes()
				t0 := time.Now()
				mustSet(b, tb, one...)
				t1 := time.Now()
				b.StartTimer()
				mustApply(b, tb)
				b.StopTimer()
				t2 := time.Now()
				tk := <-done
				sets += t1.Sub(t0)
				kernel += tk.Sub(t1)
				apply += t2.Sub(t1)
				writes += tb.Stats().Writes() - w
				mustSet(b, tb, both...)
				mustApply(b, tb)
				b.StartTimer()
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
			b.ReportMetric(float64(writes)/float64(b.N), "writes/op")
			b.ReportMetric(ms(sets), "sets-ms")
			b.ReportMetric(ms(kernel), "kernel-ms")
			b.ReportMetric(ms(apply), "apply-ms")
		})
	}
}

// probeUntilGone asks the kernel which gateway each of dsts resolves to
// until none resolves via gone, and sends the time it saw that on done. It
// closes start once it has seen gone in use (the probe can tell).
func probeUntilGone(b *testing.B, tp *topo, dsts []netip.Addr, gone netip.Addr, start chan<- struct{}, done chan<- time.Time) {
	c, err := dialConn(tp.r.Net())
	if err != nil {
		b.Error(err)
		close(start)
		done <- time.Now()
		return
	}
	defer c.Close()
	started := false
	for {
		inUse := false
		for _, dst := range dsts {
			gw, err := routeGetGateway(c, dst)
			if err != nil {
				b.Error(err)
				if !started {
					close(start)
				}
				done <- time.Now()
				return
			}
			if gw == gone {
				inUse = true
				break
			}
		}
		now := time.Now()
		switch {
		case inUse && !started:
			started = true
			close(start)
		case !inUse && started:
			done <- now
			return
		case !inUse:
			b.Error("probe: the path to withdraw is not in use before the change")
			close(start)
			done <- now
			return
		}
	}
}

// routeGetGateway is `ip route get dst`: the gateway the kernel picks.
func routeGetGateway(c *pnl.Conn, dst netip.Addr) (netip.Addr, error) {
	var m pnl.Batch
	appendRouteGet(&m, dst)
	var gw netip.Addr
	var rerr error
	err := c.Exec(&m, func(_ int, reply netlink.Message, err error) {
		if err != nil {
			rerr = err
			return
		}
		forAttrs(reply.Data[rtmsgLen:], func(t uint16, v []byte) {
			if t == unix.RTA_GATEWAY {
				gw, _ = netip.AddrFromSlice(v)
			}
		})
	})
	return gw, errors.Join(err, rerr)
}

// heapInUse is the live heap after a collection: what the table holds
// once installed, without the garbage of getting there.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkNextHopDown1M: 1,000,000 routes over two next hops; the BGP
// session of one dies and the daemon calls NextHopDown before any
// withdrawal is handed over. kernel-ms runs from NextHopDown until the
// kernel no longer uses the gateway for any probed route (as in
// BenchmarkFailover1M); apply-ms is the whole Apply (the group rewrite and
// then the O(routes) bookkeeping); writes/op its kernel writes. Then the
// million withdrawals arrive through SetRoute: withdraw-ms is their
// SetRoutes and Apply, withdraw-writes what that Apply sent (zero: the
// kernel is right already).
func BenchmarkNextHopDown1M(b *testing.B) {
	n := *benchMany
	tp := newTopo(b, "bd")
	tb := newModeTable(b, tp, ModeNexthopGroups)
	both, one := manySet(n, gw4a, gw4b), manySet(n, gw4b)
	mustSet(b, tb, both...)
	mustApply(b, tb)
	var probes []netip.Addr
	for i := range 32 {
		j := i * (n - 1) / 31
		probes = append(probes, netip.AddrFrom4([4]byte{byte(16 + j>>16), byte(j >> 8), byte(j), 1}))
	}
	var writes, wdWrites uint64
	var kernel, apply, withdraw time.Duration
	for b.Loop() {
		b.StopTimer()
		done := make(chan time.Time, 1)
		start := make(chan struct{})
		go probeUntilGone(b, tp, probes, gw4a, start, done)
		<-start
		w := tb.Stats().Writes()
		b.StartTimer()
		t0 := time.Now()
		tb.NextHopDown(gw4a)
		mustApply(b, tb)
		t1 := time.Now()
		b.StopTimer()
		tk := <-done
		kernel += tk.Sub(t0)
		apply += t1.Sub(t0)
		writes += tb.Stats().Writes() - w
		w = tb.Stats().Writes()
		t0 = time.Now()
		mustSet(b, tb, one...)
		mustApply(b, tb)
		withdraw += time.Since(t0)
		wdWrites += tb.Stats().Writes() - w
		mustSet(b, tb, both...)
		mustApply(b, tb)
		b.StartTimer()
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(float64(writes)/float64(b.N), "writes/op")
	b.ReportMetric(ms(kernel), "kernel-ms")
	b.ReportMetric(ms(apply), "apply-ms")
	b.ReportMetric(ms(withdraw), "withdraw-ms")
	b.ReportMetric(float64(wdWrites)/float64(b.N), "withdraw-writes")
}
