package host

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
)

// BenchmarkAddContainer measures endpoint setup as a CNI runtime sees it:
// a fresh named netns per workload, then AddContainer (allocation, durable
// record, veth, addresses, routes, sysctls), all in-process.
func BenchmarkAddContainer(b *testing.B) {
	ns.Privileged(b)
	ctx := context.Background()
	host := newHost(b)
	m := newManager(b, host, b.TempDir(), newFakeFIB(b, nil))
	var made []*ns.NS
	b.Cleanup(func() {
		for _, n := range made {
			n.Delete()
		}
	})
	var inAdd time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		wl, err := ns.New(fmt.Sprintf("%s-b%d", ns.RunPrefix(), i))
		if err != nil {
			b.Fatal(err)
		}
		made = append(made, wl)
		start := time.Now()
		if _, err := m.AddContainer(ctx, ContainerRequest{ContainerID: fmt.Sprintf("bench%d", i), Netns: wl.Path()}); err != nil {
			b.Fatal(err)
		}
		inAdd += time.Since(start)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "endpoints/s")
	// The part that is switchd's: without the runtime's netns creation.
	b.ReportMetric(float64(b.N)/inAdd.Seconds(), "adds/s")
}

// BenchmarkAddContainerParallel is the same with concurrent callers, as a
// runtime starting many pods at once drives the daemon.
func BenchmarkAddContainerParallel(b *testing.B) {
	ns.Privileged(b)
	ctx := context.Background()
	host := newHost(b)
	m := newManager(b, host, b.TempDir(), newFakeFIB(b, nil))
	var mu sync.Mutex
	var made []*ns.NS
	b.Cleanup(func() {
		for _, n := range made {
			n.Delete()
		}
	})
	var seq atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			wl, err := ns.New(fmt.Sprintf("%s-p%d", ns.RunPrefix(), i))
			if err != nil {
				b.Error(err)
				return
			}
			mu.Lock()
			made = append(made, wl)
			mu.Unlock()
			if _, err := m.AddContainer(ctx, ContainerRequest{ContainerID: fmt.Sprintf("bench%d", i), Netns: wl.Path()}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "endpoints/s")
}
