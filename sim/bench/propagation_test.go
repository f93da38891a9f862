package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/switchd/switchd/host/endpointapi"
	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
)

// propTimeout is how long a workload may take to answer before the
// benchmark fails: it asserts reachability, not speed.
const propTimeout = 30 * time.Second

// BenchmarkWorkloadPropagation measures, in the default fabric (fast BGP
// timers), the time from just before a workload's ADD on a host behind
// leaf1 (host1 and host2 in turn) until it answers an ICMP echo sent every
// millisecond from host3's loopback, behind leaf2. Each iteration is one
// workload; run with -benchtime 100x. Sub-benchmarks:
//
//   - same-block: f.AddWorkload, IPv4 echo. The host's block is already
//     advertised (a first workload per host opened it, unmeasured), so
//     only the host's /32 route has to be in place; BGP carries nothing.
//   - new-block: the ADD asks for a fixed IPv6 address in a /122 of the
//     host's range that no workload has used, so the host claims a new
//     block and must advertise it through leaf1, the spines and leaf2
//     before host3 can reach it; IPv6 echo.
//
// A workload that never answers fails the benchmark. SWITCHD_BENCH_SWITCHD
// runs a prebuilt switchd.
func BenchmarkWorkloadPropagation(b *testing.B) {
	ns.Privileged(b)
	topo := sim.Default()
	// As switchd/fabric_test.go's fastTimers.
	topo.Timers = &sim.Timers{Hold: 3, Keepalive: 1, ConnectRetry: 1}
	var opts []simtest.Option
	if p := os.Getenv(envSwitchd); p != "" {
		opts = append(opts, simtest.WithSwitchd(p))
	}
	f := simtest.Start(b, topo, opts...)
	simtest.WaitConverged(b, f)
	ctx := context.Background()
	const from = "host3"
	targets := []string{"host1", "host2"}
	p4, err := newPinger(f, from, 4)
	if err != nil {
		b.Fatal(err)
	}
	defer p4.close()
	p6, err := newPinger(f, from, 6)
	if err != nil {
		b.Fatal(err)
	}
	defer p6.close()

	// The first workload of each host opens its first IPv4 and IPv6
	// blocks (a new-block case with the ordinary allocation).
	for _, h := range targets {
		start := time.Now()
		w, err := f.AddWorkload(ctx, h, "first")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p4.await(w.IPv4, start); err != nil {
			b.Fatalf("first workload on %s: %v", h, err)
		}
		b.Logf("first workload on %s (%v, new block): answers %s after %v", h, w.IPv4, from, time.Since(start).Round(time.Millisecond))
	}

	seq := 0
	b.Run("same-block", func(b *testing.B) {
		blocks := map[netip.Prefix]bool{}
		for _, h := range targets {
			blocks[netip.PrefixFrom(f.Node(h).Workload4.Addr(), sim.WorkloadBlock4)] = true
		}
		var ds []time.Duration
		for i := 0; b.Loop(); i++ {
			seq++
			h := targets[i%len(targets)]
			start := time.Now()
			w, err := f.AddWorkload(ctx, h, fmt.Sprintf("s%d", seq))
			if err != nil {
				b.Fatal(err)
			}
			d, err := p4.await(w.IPv4, start)
			if err != nil {
				b.Fatalf("workload %s on %s: %v", w.Name, h, err)
			}
			if blk := netip.PrefixFrom(w.IPv4, sim.WorkloadBlock4).Masked(); !blocks[blk] {
				// It opened a block after all: not this case's sample.
				blocks[blk] = true
				b.Logf("workload %s on %s opened block %v: %v, left out", w.Name, h, blk, d)
				continue
			}
			ds = append(ds, d)
		}
		reportLatencies(b, ds)
	})

	b.Run("new-block", func(b *testing.B) {
		var ds []time.Duration
		for i := 0; b.Loop(); i++ {
			seq++
			h := targets[i%len(targets)]
			// Blocks from 1<<20 up are far from those the pool hands out.
			a := nthBlock(f.Node(h).Workload6, sim.WorkloadBlock6, 1<<20+uint64(seq))
			name := fmt.Sprintf("n%d", seq)
			if i == 0 {
				// The case's premise: nothing routes the new block yet.
				if err := unrouted(f, from, a); err != nil {
					b.Fatal(err)
				}
			}
			start := time.Now()
			if err := addWorkloadAt(ctx, f, h, name, a); err != nil {
				b.Fatal(err)
			}
			d, err := p6.await(a, start)
			if err != nil {
				b.Fatalf("workload %s on %s (%v): %v", name, h, a, err)
			}
			ds = append(ds, d)
		}
		reportLatencies(b, ds)
	})
}

// addWorkloadAt is f.AddWorkload with a fixed IPv6 address: a named
// workload netns (under the fabric's prefix, so Down removes it) attached
// through the host's endpoint API.
func addWorkloadAt(ctx context.Context, f *sim.Fabric, hostName, name string, v6 netip.Addr) error {
	wns, err := ns.New(fmt.Sprintf("%s-%s-%s", f.Prefix, hostName, name))
	if err != nil {
		return fmt.Errorf("workload %s on %s: %w", name, hostName, err)
	}
	c := &endpointapi.Client{Socket: f.SocketPath(hostName), Timeout: 30 * time.Second}
	_, err = c.AddContainer(ctx, endpointapi.ContainerAdd{ContainerID: name, Netns: wns.Path(), IPv6: v6,
		Labels: map[string]string{"sim-host": hostName}})
	wns.Close()
	if err != nil {
		wns.Delete()
		return fmt.Errorf("workload %s on %s: %w", name, hostName, err)
	}
	return nil
}

// unrouted checks that node has no route to a.
func unrouted(f *sim.Fabric, node string, a netip.Addr) error {
	o, err := ns.Open(f.Node(node).Namespace)
	if err != nil {
		return err
	}
	defer o.Close()
	rs, err := o.Handle().RouteGet(a.AsSlice())
	if err == nil {
		return fmt.Errorf("%s already routes %v (%v) before its block is advertised", node, a, rs)
	}
	return nil
}

// nthBlock is the first address of the n-th /bits block of r.
func nthBlock(r netip.Prefix, bits int, n uint64) netip.Addr {
	a := r.Masked().Addr().As16()
	lo := binary.BigEndian.Uint64(a[8:]) + n<<(128-bits)
	binary.BigEndian.PutUint64(a[8:], lo)
	return netip.AddrFrom16(a)
}

func reportLatencies(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		b.Fatal("no samples")
	}
	slices.Sort(ds)
	pct := func(p int) time.Duration { return ds[(len(ds)*p+99)/100-1] }
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(pct(50)), "p50-ms")
	b.ReportMetric(ms(pct(99)), "p99-ms")
	b.ReportMetric(ms(ds[len(ds)-1]), "max-ms")
	b.ReportMetric(float64(len(ds)), "samples")
}

// pinger sends ICMP echo requests from a node's loopback through a raw
// socket opened in the node's netns.
type pinger struct {
	conn   net.PacketConn
	family int
	id     uint16
	seq    uint16
}

func newPinger(f *sim.Fabric, node string, family int) (*pinger, error) {
	n := f.Node(node)
	if n == nil {
		return nil, fmt.Errorf("pinger: no node %s", node)
	}
	o, err := ns.Open(n.Namespace)
	if err != nil {
		return nil, err
	}
	defer o.Close()
	p := &pinger{family: family, id: uint16(rand.Uint32())}
	err = o.Do(func() error {
		var err error
		if family == 4 {
			p.conn, err = net.ListenPacket("ip4:icmp", n.Loopback4.String())
		} else {
			p.conn, err = net.ListenPacket("ip6:ipv6-icmp", n.Loopback6.String())
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pinger in %s: %w", node, err)
	}
	return p, nil
}

func (p *pinger) close() { p.conn.Close() }

// await sends an echo request to dst every millisecond until one is
// answered and returns the time from start to that answer. Send errors
// (no route yet) are part of waiting.
func (p *pinger) await(dst netip.Addr, start time.Time) (time.Duration, error) {
	const every = time.Millisecond
	to := &net.IPAddr{IP: dst.AsSlice()}
	buf := make([]byte, 1500)
	deadline := start.Add(propTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		p.seq++
		if _, err := p.conn.WriteTo(p.echo(p.seq), to); err != nil {
			lastErr = err
		}
		next := time.Now().Add(every)
		for {
			p.conn.SetReadDeadline(next)
			n, from, err := p.conn.ReadFrom(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return 0, fmt.Errorf("ping %v: read: %w", dst, err)
			}
			if p.isReply(buf[:n], from, dst) {
				return time.Since(start), nil
			}
		}
	}
	return 0, fmt.Errorf("ping %v: no echo reply within %v (last send error: %v)", dst, propTimeout, lastErr)
}

// echo is an ICMP echo request; the kernel fills in ICMPv6 checksums.
func (p *pinger) echo(seq uint16) []byte {
	m := make([]byte, 16)
	m[0] = 8 // echo request
	if p.family == 6 {
		m[0] = 128
	}
	binary.BigEndian.PutUint16(m[4:], p.id)
	binary.BigEndian.PutUint16(m[6:], seq)
	if p.family == 4 {
		binary.BigEndian.PutUint16(m[2:], icmpChecksum(m))
	}
	return m
}

// isReply says whether b (an ICMP message; Go strips the IPv4 header) is
// an echo reply to this pinger from dst.
func (p *pinger) isReply(b []byte, from net.Addr, dst netip.Addr) bool {
	want := byte(0)
	if p.family == 6 {
		want = 129
	}
	ia, ok := from.(*net.IPAddr)
	if !ok || len(b) < 8 || b[0] != want || binary.BigEndian.Uint16(b[4:]) != p.id {
		return false
	}
	src, _ := netip.AddrFromSlice(ia.IP)
	return src.Unmap() == dst
}

func icmpChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
