package state

import (
	"context"
	"flag"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/gnmi"
	"github.com/switchd/switchd/sim/ns"
)

var aftRoutes = flag.Int("aft.routes", 100_000, "routes in BenchmarkPrivilegedAFTScale")

// aftRig is a fib Table in a namespace of its own (a veth to a peer
// namespace, routes via the peer's 192.0.2.1) and, once serve is
// called, a gNMI server serving its AFT over a local socket.
type aftRig struct {
	tb     *fib.Table
	gw     netip.Addr
	aft    *AFT
	client gpb.GNMIClient
}

func newAFTRig(b *testing.B) *aftRig {
	b.Helper()
	ns.Privileged(b)
	r, p := ns.NewT(b, "aftb-r"), ns.NewT(b, "aftb-p")
	if err := ns.Veth(r, "a0", p, "p0"); err != nil {
		b.Fatal(err)
	}
	if err := r.AddAddr("a0", netip.MustParsePrefix("192.0.2.0/31")); err != nil {
		b.Fatal(err)
	}
	if err := p.AddAddr("p0", netip.MustParsePrefix("192.0.2.1/31")); err != nil {
		b.Fatal(err)
	}
	k, err := fib.Open(r.Net())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(k.Close)
	tb := k.NewTable(fib.MainTable, fib.WithUpdates())
	b.Cleanup(tb.Close)
	rig := &aftRig{tb: tb, gw: netip.MustParseAddr("192.0.2.1")}
	rig.apply(b) // the start-up dump
	return rig
}

func (r *aftRig) apply(b *testing.B) {
	b.Helper()
	if err := r.tb.Apply(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// serve starts the gNMI server with the AFT as a source, as the daemon
// does (startAFT).
func (r *aftRig) serve(b *testing.B) {
	b.Helper()
	srv, err := gnmi.New(gnmi.Options{})
	if err != nil {
		b.Fatal(err)
	}
	v := r.tb.View()
	r.aft = NewAFT(v, v, srv, AFTOptions{Origin: func(fib.AFTRoute) string { return "BGP" }})
	if err := srv.AddSource(AFTPrefix(), r.aft); err != nil {
		b.Fatal(err)
	}
	sock := filepath.Join(b.TempDir(), "gnmi.sock")
	l, err := srv.Listen(gnmi.ListenOptions{LocalSocket: sock})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	cc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cc.Close() })
	r.client = gpb.NewGNMIClient(cc)
}

// publish hands the feeds to the AFT, as the daemon does after an Apply.
func (r *aftRig) publish(b *testing.B) {
	b.Helper()
	if us := r.tb.DrainUpdates(); len(us) > 0 {
		if err := r.aft.Groups(); err != nil {
			b.Fatal(err)
		}
		if err := r.aft.Routes(us); err != nil {
			b.Fatal(err)
		}
	}
}

func benchPrefix(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(16 + i>>16), byte(i >> 8), byte(i), 0}), 24)
}

func benchPath(b *testing.B, s string) *gpb.Path {
	p, err := ygot.StringToStructuredPath(s)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkPrivilegedAFTOnChange: a route installed, then withdrawn, by
// fib (SetRoute or DeleteRoute, Apply: the kernel write), the route feed
// drained into the AFT and published, until an ON_CHANGE subscriber to
// the IPv4 entries over the local socket receives the entry's update or
// delete; p50 and p99 over b.N events (half installs, half withdrawals).
//
//	go test -run '^$' -bench PrivilegedAFTOnChange -benchtime 1000x ./switchd/daemon/state/
func BenchmarkPrivilegedAFTOnChange(b *testing.B) {
	r := newAFTRig(b)
	r.serve(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := r.client.Subscribe(ctx)
	if err != nil {
		b.Fatal(err)
	}
	err = st.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Mode: gpb.SubscriptionList_STREAM,
		Subscription: []*gpb.Subscription{{Mode: gpb.SubscriptionMode_ON_CHANGE,
			Path: benchPath(b, "/network-instances/network-instance[name=DEFAULT]/afts/ipv4-unicast/ipv4-entry")}},
	}}})
	if err != nil {
		b.Fatal(err)
	}
	for {
		m, err := st.Recv()
		if err != nil {
			b.Fatal(err)
		}
		if m.GetSyncResponse() {
			break
		}
	}
	lat := map[bool][]time.Duration{}
	b.ResetTimer()
	for i := range b.N {
		p, install := benchPrefix(i/2), i%2 == 0
		key := "[prefix=" + p.String() + "]"
		t0 := time.Now()
		if install {
			if err := r.tb.SetRoute(fib.Route{Key: fib.RouteKey{Dst: p}, NextHops: []fib.NextHop{{Gateway: r.gw}}}); err != nil {
				b.Fatal(err)
			}
		} else {
			r.tb.DeleteRoute(fib.RouteKey{Dst: p})
		}
		r.apply(b)
		r.publish(b)
		for {
			m, err := st.Recv()
			if err != nil {
				b.Fatal(err)
			}
			n := m.GetUpdate()
			if install && len(n.GetUpdate()) > 0 && strings.Contains(PathString(n.GetPrefix(), nil), key) ||
				!install && slices.ContainsFunc(n.GetDelete(), func(d *gpb.Path) bool { return strings.Contains(PathString(n.GetPrefix(), d), key) }) {
				break
			}
		}
		lat[install] = append(lat[install], time.Since(t0))
	}
	b.StopTimer()
	all := append(slices.Clone(lat[true]), lat[false]...)
	for name, l := range map[string][]time.Duration{"": all, "install-": lat[true], "withdraw-": lat[false]} {
		if len(l) == 0 {
			continue
		}
		slices.Sort(l)
		b.ReportMetric(float64(l[len(l)/2].Microseconds()), name+"p50-µs")
		b.ReportMetric(float64(l[len(l)*99/100].Microseconds()), name+"p99-µs")
	}
}

// cpuTime is the process's CPU time (server and client together).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memSample is the heap in use after a GC and the process's RSS.
func memSample(b *testing.B) (heap, rss uint64) {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	raw, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw))
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return m.HeapInuse, pages * uint64(os.Getpagesize())
}

// BenchmarkPrivilegedAFTScale: -aft.routes routes (100,000 by default)
// installed by fib. The memory the gNMI server and the AFT source add
// to the process (heap and RSS, as a ratio of the figures with the
// routes and no server, same run), and a ONCE subscription to the whole
// AFT over the local socket until its sync, with the memory after it.
//
// One run per process (-benchtime 1x, -count for more): a second run's
// baseline would hold the first's rig.
//
//	go test -run '^$' -bench PrivilegedAFTScale -benchtime 1x -count 3 ./switchd/daemon/state/
//	go test -run '^$' -bench PrivilegedAFTScale -benchtime 1x -aft.routes 1000000 -timeout 30m ./switchd/daemon/state/
func BenchmarkPrivilegedAFTScale(b *testing.B) {
	n := *aftRoutes
	r := newAFTRig(b)
	for i := range n {
		if err := r.tb.SetRoute(fib.Route{Key: fib.RouteKey{Dst: benchPrefix(i)}, NextHops: []fib.NextHop{{Gateway: r.gw}}}); err != nil {
			b.Fatal(err)
		}
	}
	r.apply(b)
	for r.tb.More() {
		r.apply(b)
	}
	r.tb.DrainUpdates() // installed before the server: its first walk has them
	memSample(b)        // what Apply and the drain left is freed
	h0, rss0 := memSample(b)
	r.serve(b)
	h1, rss1 := memSample(b)
	b.ResetTimer()
	var sync, cpu time.Duration
	for range b.N {
		t0, c0 := time.Now(), cpuTime()
		if got := onceAFT(b, r.client); got != n {
			b.Fatalf("ONCE sent %d IPv4 entries, want %d", got, n)
		}
		sync, cpu = sync+time.Since(t0), cpu+cpuTime()-c0
	}
	b.StopTimer()
	h2, rss2 := memSample(b)
	b.ReportMetric(sync.Seconds()/float64(b.N), "sync-s")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "sync-cpu-s")
	b.ReportMetric(float64(h0)/(1<<20), "heap-MiB-without")
	b.ReportMetric(float64(rss0)/(1<<20), "rss-MiB-without")
	b.ReportMetric(100*(float64(h1)-float64(h0))/float64(h0), "heap-added-%")
	b.ReportMetric(100*(float64(rss1)-float64(rss0))/float64(rss0), "rss-added-%")
	b.ReportMetric(100*(float64(h2)-float64(h0))/float64(h0), "heap-added-after-sync-%")
	b.ReportMetric(100*(float64(rss2)-float64(rss0))/float64(rss0), "rss-added-after-sync-%")
}

// onceAFT runs a ONCE subscription to the AFT and returns the IPv4
// entries received (their state/prefix leaves).
func onceAFT(b *testing.B, c gpb.GNMIClient) int {
	st, err := c.Subscribe(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	err = st.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Mode:         gpb.SubscriptionList_ONCE,
		Subscription: []*gpb.Subscription{{Path: benchPath(b, "/network-instances/network-instance[name=DEFAULT]/afts")}},
	}}})
	if err != nil {
		b.Fatal(err)
	}
	n, synced := 0, false
	for {
		m, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		synced = synced || m.GetSyncResponse()
		pre := m.GetUpdate().GetPrefix().GetElem()
		for _, u := range m.GetUpdate().GetUpdate() {
			es := append(slices.Clone(pre), u.GetPath().GetElem()...)
			if len(es) >= 2 && es[len(es)-1].GetName() == "prefix" && es[len(es)-2].GetName() == "state" &&
				slices.ContainsFunc(es, func(e *gpb.PathElem) bool { return e.GetName() == "ipv4-entry" }) {
				n++
			}
		}
	}
	if !synced {
		b.Fatal("ONCE ended without sync_response")
	}
	return n
}
