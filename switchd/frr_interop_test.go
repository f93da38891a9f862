package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
)

// Interop with real peers in the simulator (sim kinds frr and bird): FRR
// 8.4 (zebra + bgpd) and BIRD 2 as the spines of a small fabric of
// switchd leaves and hosts, so that every packet between the hosts
// crosses a foreign router and every route a switchd node learns about
// the other side comes from one.

// peerSpines is a fabric whose spines (one or two, AS 65000) run kind:
// leaf1 and leaf2 (switchd) each peer with every spine, host1 sits under
// leaf1 and host2 under leaf2.
func peerSpines(kind sim.Kind, spines int) *sim.Topology {
	topo := &sim.Topology{Name: "peer-spines", Timers: fastTimers}
	for i := 1; i <= spines; i++ {
		topo.Nodes = append(topo.Nodes, sim.Node{Name: fmt.Sprintf("spine%d", i), Role: sim.Spine, ASN: 65000, Kind: kind})
	}
	topo.Nodes = append(topo.Nodes,
		sim.Node{Name: "leaf1", Role: sim.Leaf, ASN: 65001},
		sim.Node{Name: "leaf2", Role: sim.Leaf, ASN: 65002},
		sim.Node{Name: "host1", Role: sim.Host, ASN: 65101},
		sim.Node{Name: "host2", Role: sim.Host, ASN: 65102})
	for i := 1; i <= spines; i++ {
		s := fmt.Sprintf("spine%d", i)
		topo.Links = append(topo.Links, sim.Link{A: "leaf1", B: s}, sim.Link{A: "leaf2", B: s})
	}
	topo.Links = append(topo.Links, sim.Link{A: "leaf1", B: "host1"}, sim.Link{A: "leaf2", B: "host2"})
	return topo
}

// TestFRRInteropPrivileged runs switchd leaves and hosts under two FRR
// spines, on one fabric, in order:
//   - routes both ways, IPv4 and IPv6: switchd's kernels hold FRR's
//     loopbacks as switchd routes (protocol 77), FRR's kernels (through
//     zebra) every switchd node's loopbacks as bgp routes, and host1
//     pings host2 through FRR over both families;
//   - ECMP: leaf1's route to host2 is one kernel route whose nexthop group
//     holds two members, one through each FRR spine;
//   - FRR as graceful-restart helper: leaf1's switchd is killed and
//     started again while host1 pings host2 every 10 ms, and not one ping
//     is lost (the spines keep leaf1's routes, leaf1's kernel keeps its
//     own).
func TestFRRInteropPrivileged(t *testing.T) {
	ns.Privileged(t)
	f := simtest.Start(t, peerSpines(sim.Frr, 2))
	simtest.WaitConverged(t, f)
	ctx := context.Background()

	t.Run("routes", func(t *testing.T) {
		for _, spine := range []string{"spine1", "spine2"} {
			v4, v6 := f.Loopbacks(spine)
			for _, lo := range []netip.Addr{v4, v6} {
				if r := switchdRouteTo(t, f, "leaf1", lo); r == nil {
					t.Errorf("leaf1: FRR %s's loopback %v not in the kernel as a switchd route (protocol %d)", spine, lo, fib.Protocol)
				}
			}
			for _, n := range []string{"leaf1", "leaf2", "host1", "host2"} {
				v4, v6 := f.Loopbacks(n)
				for _, lo := range []netip.Addr{v4, v6} {
					r := routeTo(t, f, spine, lo)
					if r == nil || r.Protocol != netlink.RouteProtocol(sim.FRRProtocol) {
						t.Errorf("%s: no route of FRR's (protocol %d) to %s's loopback %v: %+v", spine, sim.FRRProtocol, n, lo, r)
					}
				}
			}
		}
		for _, fam := range []int{4, 6} {
			if err := f.Ping(ctx, "host1", "host2", fam); err != nil {
				t.Errorf("host1 -> host2 through FRR, IPv%d: %v", fam, err)
			}
		}
	})

	t.Run("ecmp", func(t *testing.T) {
		v4, v6 := f.Loopbacks("host2")
		for _, lo := range []netip.Addr{v4, v6} {
			if peers := peersOf(f, "leaf1", nextHops(t, f, "leaf1", lo)); !slices.Equal(peers, []string{"spine1", "spine2"}) {
				t.Errorf("leaf1: route to host2's %v goes through %v, want both FRR spines", lo, peers)
			}
			id, members := kernelGroup(t, f, "leaf1", netip.PrefixFrom(lo, lo.BitLen()))
			t.Logf("leaf1: %v via nexthop group %#x of %d", lo, id, len(members))
			if id>>24 != 0x4D || len(members) != 2 {
				t.Errorf("leaf1: route to %v uses nexthop %#x with members %v, want a group of switchd's (0x4Dxxxxxx) with two", lo, id, members)
			}
		}
	})

	t.Run("switchd-restart", func(t *testing.T) {
		// Soon after the spines' start: for 120 s after it starts (its
		// default restart-time, taken before the config is read), bgpd
		// sets the Restart State bit in every OPEN, GoBGP then marks the
		// spine's End-of-RIB received at the OPEN, and a switchd that
		// trusted the mark swept the routes it adopted before FRR sent
		// them again (16-56 of these pings lost; bgp/sync.go).
		restartUnderPings(t, f, "leaf1", func() { killAndStart(t, f, "leaf1", syscall.SIGKILL) })
	})
}

// TestPeerRestartsGracefullyPrivileged has the only spine of a fabric
// restart gracefully (sim.RestartGracefully) while host1 pings host2
// every 10 ms, IPv4 and IPv6, through it: FRR (bgpd killed and started
// again, zebra keeping its routes) and BIRD (birdc graceful restart, then
// bird -R). Every path between the hosts crosses the spine, so a lost
// ping means switchd's leaves dropped the spine's routes (not a helper)
// or the spine's kernel lost its own (not a restarter that keeps its
// forwarding state). Not one ping may be lost.
func TestPeerRestartsGracefullyPrivileged(t *testing.T) {
	ns.Privileged(t)
	for _, kind := range []sim.Kind{sim.Frr, sim.Bird} {
		t.Run(string(kind), func(t *testing.T) {
			f := simtest.Start(t, peerSpines(kind, 1))
			simtest.WaitConverged(t, f)
			ctx := context.Background()
			restartUnderPings(t, f, "spine1", func() {
				old := f.PID("spine1")
				if err := f.RestartGracefully(ctx, "spine1"); err != nil {
					t.Fatal(err)
				}
				if f.PID("spine1") == old {
					t.Fatalf("spine1 (%s) not restarted: pid %d", kind, old)
				}
			})
		})
	}
}

// pingCount is how many pings restartUnderPings sends each way: at 10 ms,
// 20-32 s, more than any restart here takes (it fails if they end first).
const pingCount = 2000

// restartUnderPings pings host2 from host1 every 10 ms over IPv4 and IPv6
// while restart runs, waits for the fabric to converge and 2 s more (past
// switchd's sweep, zebra's and BIRD's recovery), and fails if a single
// ping was lost.
func restartUnderPings(t *testing.T, f *sim.Fabric, node string, restart func()) {
	t.Helper()
	flows := []*countedPings{
		startCountedPings(t, f, "host1", "host2", 4, pingCount),
		startCountedPings(t, f, "host1", "host2", 6, pingCount),
	}
	time.Sleep(time.Second)
	restart()
	simWaitConverged(t, f)
	time.Sleep(2 * time.Second)
	for i, p := range flows {
		if !p.running() {
			t.Fatalf("IPv%d: the %d pings ended before %s's restart was over; the test did not cover it", 4+2*i, pingCount, node)
		}
	}
	for i, p := range flows {
		sent, recv := p.wait(t)
		t.Logf("%s restart, IPv%d: %d sent, %d received, %d lost", node, 4+2*i, sent, recv, sent-recv)
		if sent != pingCount || recv != sent {
			t.Errorf("IPv%d: %d of %d pings lost across %s's restart:\n%s", 4+2*i, sent-recv, sent, node, p.lost())
		}
	}
}

// countedPings is ping -c: it ends by itself once the last reply is in
// (or its wait is over), so its count of lost pings is exact. With -D -O
// it reports each unanswered ping with a timestamp (lost).
type countedPings struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

// startCountedPings sends count pings, 10 ms apart, from src's loopback
// of family fam to dst's.
func startCountedPings(t *testing.T, f *sim.Fabric, src, dst string, fam, count int) *countedPings {
	t.Helper()
	s, d := f.Node(src), f.Node(dst)
	from, to := s.Loopback4, d.Loopback4
	if fam == 6 {
		from, to = s.Loopback6, d.Loopback6
	}
	cmd, err := f.Command(context.Background(), src, "ping", "-n", "-D", "-O", "-i", "0.01", "-c", strconv.Itoa(count),
		"-W", "1", "-I", from.String(), to.String())
	if err != nil {
		t.Fatal(err)
	}
	p := &countedPings{cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); <-p.done })
	return p
}

func (p *countedPings) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// wait waits for ping to finish and returns how many were sent and
// answered.
func (p *countedPings) wait(t *testing.T) (sent, received int) {
	t.Helper()
	<-p.done
	return pingSummary(t, p.out.String())
}

// lost returns ping's lines about unanswered pings, with their times.
func (p *countedPings) lost() string {
	var b strings.Builder
	for _, l := range strings.Split(p.out.String(), "\n") {
		if strings.Contains(l, "no answer") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// kernelGroup returns the nexthop object of node's kernel route to p and
// the ids of its members (none if it is not a group), from ip -j.
func kernelGroup(t *testing.T, f *sim.Fabric, node string, p netip.Prefix) (id uint32, members []uint32) {
	t.Helper()
	fam := "-4"
	if p.Addr().Is6() {
		fam = "-6"
	}
	out, err := f.Exec(context.Background(), node, "ip", fam, "-j", "route", "show", p.String(), "proto", strconv.Itoa(fib.Protocol))
	if err != nil {
		t.Fatal(err)
	}
	var routes []struct {
		NHID uint32 `json:"nhid"`
	}
	if err := json.Unmarshal([]byte(out), &routes); err != nil || len(routes) != 1 {
		t.Fatalf("%s: ip route show %v: %v: %s", node, p, err, out)
	}
	id = routes[0].NHID
	out, err = f.Exec(context.Background(), node, "ip", "-j", "nexthop", "show", "id", strconv.FormatUint(uint64(id), 10))
	if err != nil {
		t.Fatal(err)
	}
	var nhs []struct {
		Group []struct {
			ID uint32 `json:"id"`
		} `json:"group"`
	}
	if err := json.Unmarshal([]byte(out), &nhs); err != nil || len(nhs) != 1 {
		t.Fatalf("%s: ip nexthop show id %d: %v: %s", node, id, err, out)
	}
	for _, m := range nhs[0].Group {
		members = append(members, m.ID)
	}
	return id, members
}
