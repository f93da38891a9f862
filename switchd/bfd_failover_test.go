package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
	"github.com/switchd/switchd/switchd/daemon/apiclient"
)

// TestSimBFDConfigsValid: with BFD on, every switchd node's generated
// config is accepted and asks for a single-hop session per neighbor,
// bound to the link the neighbor is on, at 100 ms × 3.
func TestSimBFDConfigsValid(t *testing.T) {
	f, err := sim.New(sim.Default(), sim.Options{BFD: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range f.Nodes() {
		in := simConfig(t, f, n)
		if len(in.BFD) != len(in.BGP.Neighbors) || len(in.BFD) == 0 {
			t.Errorf("%s: %d BFD sessions for %d neighbors", n.Name, len(in.BFD), len(in.BGP.Neighbors))
		}
		for _, s := range in.BFD {
			if s.Multihop || s.Interface == "" || s.DesiredMinTx != 100*time.Millisecond || s.RequiredMinRx != 100*time.Millisecond || s.DetectMult != 3 {
				t.Errorf("%s: session %+v", n.Name, s)
			}
		}
	}
}

// silentTable is the test's nftables table in a spine's namespace: a
// netdev table on the spine's link to leaf1, counting ICMP both ways, and
// dropping everything while the fault is on. The link stays up: only
// BFD or the hold timer can notice.
const silentTable = "switchd_test_silent"

func silentLink(t testing.TB, f *sim.Fabric, spine string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "add table netdev %s;", silentTable)
	for _, c := range []struct{ name, hook string }{{"in", "ingress"}, {"out", "egress"}} {
		fmt.Fprintf(&b, "add chain netdev %s %s { type filter hook %s device leaf1 priority -500; policy accept; };", silentTable, c.name, c.hook)
		fmt.Fprintf(&b, "add rule netdev %s %s meta l4proto { icmp, ipv6-icmp } counter;", silentTable, c.name)
	}
	if out, err := f.Exec(context.Background(), spine, "nft", b.String()); err != nil {
		t.Fatalf("%s: nft: %v: %s", spine, err, out)
	}
}

// fault turns the drop on (or off) on spine's link to leaf1.
func fault(t testing.TB, f *sim.Fabric, spine string, on bool) {
	t.Helper()
	cmd := fmt.Sprintf("add rule netdev %[1]s in drop; add rule netdev %[1]s out drop", silentTable)
	if !on {
		// The drops go; the counters are of no further use.
		cmd = fmt.Sprintf("flush chain netdev %[1]s in; flush chain netdev %[1]s out", silentTable)
	}
	if out, err := f.Exec(context.Background(), spine, "nft", cmd); err != nil {
		t.Fatalf("%s: nft: %v: %s", spine, err, out)
	}
}

var nftCounter = regexp.MustCompile(`counter packets (\d+)`)

// icmpCount is the ICMP packets counted on spine's link to leaf1.
func icmpCount(t testing.TB, f *sim.Fabric, spine string) int {
	t.Helper()
	out, err := f.Exec(context.Background(), spine, "nft", "list", "table", "netdev", silentTable)
	if err != nil {
		t.Fatalf("%s: nft: %v: %s", spine, err, out)
	}
	n := 0
	for _, m := range nftCounter.FindAllStringSubmatch(out, -1) {
		c, _ := strconv.Atoi(m[1])
		n += c
	}
	return n
}

// timedPings are host1's pings to host3 over IPv4 and IPv6 and when they
// started: under load ping sends less often than asked, so an outage is
// lost pings times the interval measured.
type timedPings struct {
	flows []*pings
	start time.Time
}

func startTimedPings(t testing.TB, f *sim.Fabric, every time.Duration) timedPings {
	return timedPings{start: time.Now(), flows: []*pings{
		startPings(t, f, "host1", "host3", 4, every), startPings(t, f, "host1", "host3", 6, every)}}
}

// stop returns, per family, the pings sent, lost and the outage they
// stand for.
func (p timedPings) stop(t testing.TB) (sent, lost [2]int, outage [2]time.Duration) {
	t.Helper()
	for i, fl := range p.flows {
		s, r := fl.stop(t)
		sent[i], lost[i] = s, s-r
		if s > 0 {
			outage[i] = time.Since(p.start) * time.Duration(lost[i]) / time.Duration(s)
		}
	}
	return sent, lost, outage
}

// bfdStatus is node's BFD sessions by peer address.
func bfdStatus(ctx context.Context, f *sim.Fabric, node string) (map[string]apiclient.BFDSessionStatus, *apiclient.Status, error) {
	st, err := apiclient.GetStatus(ctx, f.SocketPath(node))
	if err != nil {
		return nil, nil, err
	}
	out := map[string]apiclient.BFDSessionStatus{}
	if st.BFD != nil {
		for _, s := range st.BFD.Sessions {
			out[s.Peer] = s
		}
	}
	return out, st, nil
}

// neighborStates is node's BGP neighbors by address.
func neighborStates(st *apiclient.Status) map[string]apiclient.NeighborStatus {
	out := map[string]apiclient.NeighborStatus{}
	for _, n := range st.BGP.Neighbors {
		out[n.Address] = n
	}
	return out
}

// silentFabric starts the default fabric (with opts) with BFD at
// intervalMs × 3, waits for leaf1's BFD sessions (two spines and two
// hosts, IPv4 and IPv6: eight, or six with unnumbered spine links) to be
// Up, and finds the spine whose link to leaf1 carries host1–host3 pings
// (either way: ECMP hashing decides), with a silentLink table on both
// spines. It returns that spine and its addresses on the link as leaf1's
// BFD sessions name them (its link-local address if unnumbered).
func silentFabric(t testing.TB, intervalMs int, opts ...simtest.Option) (f *sim.Fabric, spine string, spineAddrs []string) {
	topo := sim.Default()
	topo.BFD = &sim.BFD{IntervalMs: intervalMs}
	f = simtest.Start(t, topo, opts...)
	simtest.WaitConverged(t, f)
	ctx := context.Background()
	const interval = 10 * time.Millisecond
	waitFor(t, 30*time.Second, "leaf1's BFD sessions up", func() error {
		ss, _, err := bfdStatus(ctx, f, "leaf1")
		if err != nil {
			return err
		}
		up := 0
		for _, s := range ss {
			if s.State == "Up" {
				up++
			}
		}
		if n := f.Node("leaf1").Sessions(); up != n || len(ss) != n {
			return fmt.Errorf("%d of %d up: %+v", up, len(ss), ss)
		}
		return nil
	})

	// The spine whose link to leaf1 carries the pings (either way): ECMP
	// hashing decides.
	for _, s := range []string{"spine1", "spine2"} {
		silentLink(t, f, s)
	}
	probe := []*pings{startPings(t, f, "host1", "host3", 4, interval), startPings(t, f, "host1", "host3", 6, interval)}
	time.Sleep(time.Second)
	for _, p := range probe {
		p.stop(t)
	}
	spine = "spine1"
	if c1, c2 := icmpCount(t, f, "spine1"), icmpCount(t, f, "spine2"); c2 > c1 {
		spine = "spine2"
	}
	if c := icmpCount(t, f, spine); c < 100 {
		t.Fatalf("host1-host3 pings: only %d ICMP packets on %s's link to leaf1", c, spine)
	}
	for _, i := range f.Node("leaf1").Interfaces {
		switch {
		case i.Peer == spine && i.Unnumbered:
			spineAddrs = []string{linkLocal(t, f, spine, "leaf1").String()}
		case i.Peer == spine:
			spineAddrs = []string{i.Peer4.String(), i.Peer6.String()}
		}
	}
	return f, spine, spineAddrs
}

// failSilently makes spine's end of its link to leaf1 drop everything
// while host1 pings host3 every interval, waits for leaf1 to find the
// failure (BFD) and 2 s more (traffic through the other spine), and
// returns the pings per family.
func failSilently(t testing.TB, f *sim.Fabric, spine string, spineAddrs []string, interval time.Duration) (sent, lost [2]int, outage [2]time.Duration) {
	flows := startTimedPings(t, f, interval)
	time.Sleep(time.Second)
	fault(t, f, spine, true)
	waitFor(t, 5*time.Second, "leaf1's BFD sessions to "+spine+" failed", func() error {
		ss, _, err := bfdStatus(context.Background(), f, "leaf1")
		if err != nil {
			return err
		}
		for _, a := range spineAddrs {
			if !ss[a].Failed {
				return fmt.Errorf("%s: %+v", a, ss[a])
			}
		}
		return nil
	})
	time.Sleep(2 * time.Second)
	return flows.stop(t)
}

// waitSessionsUp waits for every BFD session of the nodes, and the BGP
// session of each neighbor it protects, to be up.
func waitSessionsUp(t testing.TB, f *sim.Fabric, nodes ...string) {
	waitFor(t, 20*time.Second, fmt.Sprint(nodes, "'s BFD and BGP sessions up"), func() error {
		for _, node := range nodes {
			ss, st, err := bfdStatus(context.Background(), f, node)
			if err != nil {
				return err
			}
			nbs := neighborStates(st)
			for a, s := range ss {
				if s.State != "Up" || nbs[a].State != "ESTABLISHED" {
					return fmt.Errorf("%s: %s: BFD %s, BGP %s", node, a, s.State, nbs[a].State)
				}
			}
		}
		return nil
	})
}

// TestSilentFailureBFDPrivileged is the silent failure of issue 12: the
// spine end of a leaf1 link that carries host1–host3 traffic starts
// dropping every packet, the link staying up, while host1 pings host3
// every 10 ms over IPv4 and IPv6. With BFD at 100 ms × 3 both ends find
// the failure, the leaf drops the spine as next hop and its sessions, and
// traffic recovers through the other spine in under a second (lost
// pings × 10 ms). Once the fault is gone the sessions come back once and
// stay up for 30 s: no flap loop. Then, with BFD taken out of both
// configs, the same fault leaves the BGP sessions established and the
// traffic lost for twice as long as BFD needed: the hold timer (9 s) has
// not expired, so BFD is what made the difference.
func TestSilentFailureBFDPrivileged(t *testing.T) {
	ns.Privileged(t)
	const interval = 10 * time.Millisecond
	f, spine, spineAddrs := silentFabric(t, 100)
	ctx := context.Background()

	// With BFD.
	sent, lost, outage := failSilently(t, f, spine, spineAddrs, interval)
	var bfdOutage time.Duration
	for i := range sent {
		bfdOutage = max(bfdOutage, outage[i])
		t.Logf("BFD 100ms x 3, %s's side of leaf1-%s silent, IPv%d: %d sent, %d lost (~%v outage at the rate measured; %v at 10 ms)",
			spine, spine, 4+2*i, sent[i], lost[i], outage[i].Round(time.Millisecond), time.Duration(lost[i])*interval)
		if sent[i] < 100 {
			t.Fatalf("only %d pings sent; the test did not cover the failure", sent[i])
		}
		if lost[i] >= 100 || outage[i] >= time.Second {
			t.Errorf("IPv%d: %d pings lost (~%v) with BFD 100ms x 3, want under 1 s (100 at 10 ms)", 4+2*i, lost[i], outage[i])
		}
	}
	_, st, err := bfdStatus(ctx, f, "leaf1")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range spineAddrs {
		if n := neighborStates(st)[a]; n.State == "ESTABLISHED" {
			t.Errorf("leaf1's BGP session to %s (%s) is still established with its BFD session failed", spine, a)
		}
	}

	// The fault removed: the sessions come back once and stay up.
	fault(t, f, spine, false)
	type counts struct{ up, failures, established uint64 }
	snapshot := func() map[string]counts {
		out := map[string]counts{}
		for _, node := range []string{"leaf1", spine} {
			ss, st, err := bfdStatus(ctx, f, node)
			if err != nil {
				t.Fatal(err)
			}
			nbs := neighborStates(st)
			for a, s := range ss {
				out[node+" "+a] = counts{s.UpTransitions, s.FailureTransitions, nbs[a].EstablishedTransitions}
			}
		}
		return out
	}
	waitSessionsUp(t, f, "leaf1", spine)
	before := snapshot()
	for _, a := range spineAddrs {
		if c := before["leaf1 "+a]; c.up != 2 || c.failures != 1 {
			t.Errorf("leaf1's BFD session to %s: %d up transitions, %d failures; want 2 and 1", a, c.up, c.failures)
		}
	}
	time.Sleep(30 * time.Second)
	if after := snapshot(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("sessions flapped within 30 s after the fault was removed:\nbefore %v\nafter  %v", before, after)
	}

	// Without BFD, the same fault.
	for _, node := range []string{"leaf1", spine} {
		editConfig(t, f, node, func(doc map[string]any) {
			if !dropKey(doc, "enable-bfd") {
				t.Fatalf("%s: no enable-bfd in its config", node)
			}
		})
	}
	waitFor(t, 10*time.Second, "BFD sessions gone", func() error {
		for _, node := range []string{"leaf1", spine} {
			if ss, _, err := bfdStatus(ctx, f, node); err != nil || len(ss) != 0 {
				return fmt.Errorf("%s: %v %v", node, ss, err)
			}
		}
		return nil
	})
	flows := startTimedPings(t, f, interval)
	time.Sleep(time.Second)
	fault(t, f, spine, true)
	// Twice what BFD needed, far from the hold time.
	time.Sleep(2 * time.Second)
	if _, st, err = bfdStatus(ctx, f, "leaf1"); err != nil {
		t.Fatal(err)
	}
	fault(t, f, spine, false)
	_, lost, outage = flows.stop(t)
	t.Logf("without BFD: pings lost in the 2 s the fault lasted: %v (~%v, %v); with BFD ~%v", lost,
		outage[0].Round(time.Millisecond), outage[1].Round(time.Millisecond), bfdOutage.Round(time.Millisecond))
	for _, a := range spineAddrs {
		if n := neighborStates(st)[a]; n.State != "ESTABLISHED" {
			t.Errorf("without BFD, leaf1's BGP session to %s (%s) ended within 2 s: %s", spine, a, n.State)
		}
	}
	// Most of the 2 s, and more than with BFD, on the flow hit hardest.
	if worst := max(outage[0], outage[1]); worst < 1500*time.Millisecond || worst <= bfdOutage {
		t.Errorf("without BFD ~%v of traffic lost in 2 s of fault (with BFD ~%v): the fault did not hit the traffic", worst, bfdOutage)
	}
}
