package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
)

// BenchmarkPrivilegedSilentFailureBFD: the silent failure of
// TestSilentFailureBFDPrivileged at BFD 300 ms and 50 ms × 3, each
// iteration a fault and its repair in one fabric. Reported per family
// (the worst of IPv4 and IPv6): lost-pings (sent every 10 ms),
// outage-ms (lost pings times the interval ping achieved: under load it
// sends less often than asked) and lost×10ms-ms. Run with
// -benchtime=Nx; every iteration takes ~10 s.
func BenchmarkPrivilegedSilentFailureBFD(b *testing.B) {
	ns.Privileged(b)
	const interval = 10 * time.Millisecond
	for _, ms := range []int{300, 50} {
		b.Run(fmt.Sprintf("%dms", ms), func(b *testing.B) {
			f, spine, addrs := silentFabric(b, ms)
			var lostSum, outageSum float64
			for i := 0; i < b.N; i++ {
				_, lost, outage := failSilently(b, f, spine, addrs, interval)
				fault(b, f, spine, false)
				worst := max(lost[0], lost[1])
				lostSum += float64(worst)
				outageSum += float64(max(outage[0], outage[1])) / float64(time.Millisecond)
				b.Logf("BFD %d ms x 3: lost %v pings (IPv4, IPv6), outage ~%v, %v", ms, lost, outage[0].Round(time.Millisecond), outage[1].Round(time.Millisecond))
				waitSessionsUp(b, f, "leaf1", spine)
			}
			n := float64(b.N)
			b.ReportMetric(lostSum/n, "lost-pings")
			b.ReportMetric(outageSum/n, "outage-ms")
			b.ReportMetric(lostSum/n*float64(interval/time.Millisecond), "lostx10ms-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}
