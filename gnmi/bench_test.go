package gnmi

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// routeLeaves are n AFT-like leaves (/afts/.../ipv4-entry[prefix]/state/origin-protocol).
func routeLeaves(n int) []*gpb.Notification {
	out := make([]*gpb.Notification, n)
	ts := time.Now().UnixNano()
	for i := range out {
		p := &gpb.Path{Elem: []*gpb.PathElem{
			{Name: "network-instances"}, {Name: "network-instance", Key: map[string]string{"name": "DEFAULT"}},
			{Name: "afts"}, {Name: "ipv4-unicast"},
			{Name: "ipv4-entry", Key: map[string]string{"prefix": fmt.Sprintf("10.%d.%d.0/24", i>>8&255, i&255) + fmt.Sprint(i>>16)}},
			{Name: "state"}, {Name: "origin-protocol"},
		}}
		out[i] = &gpb.Notification{Timestamp: ts, Update: []*gpb.Update{{Path: p, Val: str("BGP")}}}
	}
	return out
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// onceSync runs a ONCE subscription to / and returns the leaves received.
func onceSync(b *testing.B, c gpb.GNMIClient) int {
	st, err := c.Subscribe(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	err = st.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Mode: gpb.SubscriptionList_ONCE, Subscription: []*gpb.Subscription{{Path: &gpb.Path{}}}}}})
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for {
		r, err := st.Recv()
		if err == io.EOF {
			return n
		}
		if err != nil {
			b.Fatal(err)
		}
		n += len(r.GetUpdate().GetUpdate())
	}
}

// BenchmarkSync100k: 100,000 route leaves, cached or served by a Source:
// heap held by the server's copy (bytes per leaf) and the time of a
// ONCE subscription to / over the local socket until its end (leaves
// sent in batches of one timestamp under their shared prefix).
//
//	go test -run '^$' -bench Sync100k -benchtime 3x ./gnmi/
func BenchmarkSync100k(b *testing.B) {
	const n = 100_000
	for _, mode := range []string{"cache", "source"} {
		b.Run(mode, func(b *testing.B) {
			// The owner's copy (fib's table) exists either way; what the
			// server adds is measured from after it.
			var owner []*gpb.Notification
			if mode == "source" {
				owner = routeLeaves(n)
			}
			before := heap()
			s, c, stop := startTestServer(b, Options{})
			defer stop()
			if mode == "cache" {
				for _, l := range routeLeaves(n) { // rendered for the cache, which keeps them
					if err := s.Update(l); err != nil {
						b.Fatal(err)
					}
				}
			} else if err := s.AddSource(mustPath(b, "/network-instances/network-instance[name=DEFAULT]/afts"), &sliceSource{leaves: owner}); err != nil {
				b.Fatal(err)
			}
			held := int64(heap()) - int64(before)
			b.ResetTimer()
			for range b.N {
				if got := onceSync(b, c); got != n {
					b.Fatalf("ONCE sent %d leaves, want %d", got, n)
				}
			}
			b.ReportMetric(float64(held)/n, "server-B/leaf")
			runtime.KeepAlive(owner)
		})
	}
}

// sliceSource serves leaves its owner keeps anyway (here a slice, in
// switchd fib's table).
type sliceSource struct{ leaves []*gpb.Notification }

func (s *sliceSource) Walk(q []string, fn func(*gpb.Notification) error) error {
	for _, n := range s.leaves {
		if matchPattern(q, fullPath(n, n.Update[0].Path)) {
			if err := fn(&gpb.Notification{Timestamp: n.Timestamp, Update: n.Update}); err != nil {
				return err
			}
		}
	}
	return nil
}

// BenchmarkOnChangeLatency: publish → ON_CHANGE subscriber, one change
// at a time, over the local socket; p50 and p99 of the b.N changes.
//
//	go test -run '^$' -bench OnChangeLatency -benchtime 1000x ./gnmi/
func BenchmarkOnChangeLatency(b *testing.B) {
	s, c := newTestServer(b, Options{})
	publish(b, s, time.Now().UnixNano(), eth0InPkt, uint(0))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := c.Subscribe(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Send(streamRequest(&gpb.Subscription{Path: mustPath(b, eth0InPkt), Mode: gpb.SubscriptionMode_ON_CHANGE})); err != nil {
		b.Fatal(err)
	}
	for {
		r, err := st.Recv()
		if err != nil {
			b.Fatal(err)
		}
		if r.GetSyncResponse() {
			break
		}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		publish(b, s, t0.UnixNano(), eth0InPkt, uint(uint64(i+1)))
		for {
			r, err := st.Recv()
			if err != nil {
				b.Fatal(err)
			}
			if u := r.GetUpdate().GetUpdate(); len(u) > 0 && u[0].GetVal().GetUintVal() == uint64(i+1) {
				break
			}
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSample100Subscribers: 100 subscribers to 16 interfaces' 12
// counters at a 1 s SAMPLE, counters republished every second, over the
// local socket; CPU of the whole process (server and the 100 clients'
// decoding) per second of wall time, beside the same 5 s without
// subscribers.
//
//	go test -run '^$' -bench Sample100Subscribers -benchtime 1x ./gnmi/
func BenchmarkSample100Subscribers(b *testing.B) {
	s, c := newTestServer(b, Options{})
	counters := []string{"in-pkts", "out-pkts", "in-octets", "out-octets", "in-errors", "out-errors",
		"in-discards", "out-discards", "in-unicast-pkts", "out-unicast-pkts", "in-multicast-pkts", "out-multicast-pkts"}
	tick := func(v uint64) {
		ts := time.Now().UnixNano()
		for i := range 16 {
			for _, cn := range counters {
				publish(b, s, ts, fmt.Sprintf("/interfaces/interface[name=eth%d]/state/counters/%s", i, cn), uint(v+uint64(i)))
			}
		}
	}
	run := func(d time.Duration) float64 {
		t0, c0 := time.Now(), cpuTime()
		for v := uint64(1); time.Since(t0) < d; v++ {
			tick(v)
			time.Sleep(time.Second)
		}
		return float64(cpuTime()-c0) / float64(time.Since(t0))
	}
	tick(0)
	for range b.N {
		idle := run(5 * time.Second)
		ctx, cancel := context.WithCancel(context.Background())
		for range 100 {
			st, err := c.Subscribe(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := st.Send(streamRequest(&gpb.Subscription{Path: mustPath(b, "/interfaces/interface/state/counters"),
				Mode: gpb.SubscriptionMode_SAMPLE, SampleInterval: uint64(time.Second)})); err != nil {
				b.Fatal(err)
			}
			go func() {
				for {
					if _, err := st.Recv(); err != nil {
						return
					}
				}
			}()
		}
		busy := run(5 * time.Second)
		cancel()
		b.ReportMetric(idle*1000, "idle-cpu-ms/s")
		b.ReportMetric(busy*1000, "100subs-cpu-ms/s")
	}
}
