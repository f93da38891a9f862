package state

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchd/switchd/platform"
	"github.com/switchd/switchd/switchd/bgp"
)

// BenchmarkLinksSample is one counter sample of 100 interfaces: busy,
// every interface's counters moved (render, diff against the last
// sample, publish the changed leaves); idle, none did (a server's
// workload veths, mostly). Reported per interface.
func BenchmarkLinksSample(b *testing.B) {
	for _, busy := range []bool{true, false} {
		name := map[bool]string{true: "busy", false: "idle"}[busy]
		b.Run(name, func(b *testing.B) {
			const n = 100
			ls := make([]platform.LinkStats, n)
			for i := range ls {
				ls[i] = swp1()
				ls[i].Name, ls[i].Index = fmt.Sprintf("swp%d", i), i+2
			}
			pub := &fakePublisher{}
			tr := New(pub)
			if err := tr.Links(ls); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				for j := range ls {
					if busy {
						ls[j].Counters.RxPackets++
						ls[j].Counters.RxBytes += 1500
						ls[j].Counters.TxPackets++
						ls[j].Counters.TxBytes += 1500
					}
				}
				if err := tr.Links(ls); err != nil {
					b.Fatal(err)
				}
				pub.ns = pub.ns[:0]
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/interface")
		})
	}
}

// BenchmarkNeighborChange is one neighbor state change (a prefix count
// and the UPDATE count moved) rendered, diffed and published.
func BenchmarkNeighborChange(b *testing.B) {
	n := established()
	pub := &fakePublisher{}
	tr := New(pub)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		n.PrefixesReceived = map[bgp.Family]uint64{bgp.IPv4Unicast: uint64(i)}
		n.Messages.UpdatesReceived = uint64(i)
		if err := tr.Neighbors([]bgp.NeighborState{n}); err != nil {
			b.Fatal(err)
		}
		pub.ns = pub.ns[:0]
	}
}

// BenchmarkSystemSample is reading /proc and publishing /system.
func BenchmarkSystemSample(b *testing.B) {
	s := NewSystemSampler("/", 1)
	tr := New(&fakePublisher{})
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		smp, err := s.Sample(now)
		if err != nil {
			b.Fatal(err)
		}
		if err := tr.System(smp); err != nil {
			b.Fatal(err)
		}
	}
}
