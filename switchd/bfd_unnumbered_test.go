package main

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"testing"
	"time"

	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
)

// TestSimUnnumberedBFDConfigsValid: in the unnumbered fabric with BFD,
// every switchd node's config is accepted and has a BFD session per
// neighbor, a template (to the peer to be discovered, on the link) for
// each neighbor given by interface, all at 100 ms × 3.
func TestSimUnnumberedBFDConfigsValid(t *testing.T) {
	f, err := sim.New(sim.Default(), sim.Options{Unnumbered: true, BFD: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range f.Nodes() {
		in := simConfig(t, f, n)
		templates := 0
		for _, s := range in.BFD {
			if s.Discover {
				templates++
			}
			if s.Multihop || s.Interface == "" || s.DesiredMinTx != 100*time.Millisecond || s.DetectMult != 3 {
				t.Errorf("%s: session %+v", n.Name, s)
			}
		}
		unnumbered := 0
		for _, nb := range in.BGP.Neighbors {
			if nb.Interface != "" {
				unnumbered++
			}
		}
		if len(in.BFD) != len(in.BGP.Neighbors) || templates != unnumbered || (n.Role != sim.Role("host") && templates == 0) {
			t.Errorf("%s: %d BFD sessions (%d templates) for %d neighbors (%d unnumbered)", n.Name, len(in.BFD), templates, len(in.BGP.Neighbors), unnumbered)
		}
	}
}

// TestUnnumberedSilentFailureBFDPrivileged is issue 12's silent failure
// on the unnumbered fabric: the spine end of the leaf1 link carrying
// host1–host3 pings (10 ms, IPv4 and IPv6) drops every packet, carrier
// up. BFD (100 ms × 3) runs to the spine's discovered link-local address:
// traffic recovers through the other spine in far fewer lost pings than
// the hold time (9 s: 900) would cost, and leaf1's BGP session to that
// spine is down. Healed, BFD and BGP come back once.
func TestUnnumberedSilentFailureBFDPrivileged(t *testing.T) {
	ns.Privileged(t)
	const interval = 10 * time.Millisecond
	f, spine, spineAddrs := silentFabric(t, 100, func(o *sim.Options) { o.Unnumbered = true })
	ctx := context.Background()
	// leaf1 names the neighbor by the spine's address with its link to
	// the spine (named after it) as zone.
	neighbor := spineAddrs[0] + "%" + spine
	hold := time.Duration(sim.DefaultTimers.Hold) * time.Second

	sent, lost, outage := failSilently(t, f, spine, spineAddrs, interval)
	for i := range sent {
		t.Logf("unnumbered, BFD 100ms x 3, %s's side of leaf1-%s silent, IPv%d: %d sent, %d lost (~%v at the rate measured; the hold time would cost %d)",
			spine, spine, 4+2*i, sent[i], lost[i], outage[i].Round(time.Millisecond), hold/interval)
		if sent[i] < 100 {
			t.Fatalf("only %d pings sent; the test did not cover the failure", sent[i])
		}
		if lost[i] >= 100 || outage[i] >= time.Second {
			t.Errorf("IPv%d: %d pings lost (~%v) with BFD 100ms x 3, want under 1 s (100 at 10 ms; the hold time: %d)", 4+2*i, lost[i], outage[i], hold/interval)
		}
	}
	ss, st, err := bfdStatus(ctx, f, "leaf1")
	if err != nil {
		t.Fatal(err)
	}
	if s := ss[spineAddrs[0]]; len(s.Neighbors) != 1 || s.Neighbors[0] != neighbor || s.Interface != spine {
		t.Errorf("leaf1's BFD session to %s: %+v, want it on %s protecting %s", spine, s, spine, neighbor)
	}
	if n := neighborStates(st)[neighbor]; n.State == "ESTABLISHED" {
		t.Errorf("leaf1's BGP session to %s (%s) is still established with its BFD session failed", spine, neighbor)
	}

	fault(t, f, spine, false)
	waitFor(t, 30*time.Second, "leaf1's BFD and BGP sessions to "+spine+" up again", func() error {
		ss, st, err := bfdStatus(ctx, f, "leaf1")
		if err != nil {
			return err
		}
		if s, n := ss[spineAddrs[0]], neighborStates(st)[neighbor]; s.State != "Up" || n.State != "ESTABLISHED" {
			return fmt.Errorf("BFD %s, BGP %s", s.State, n.State)
		}
		return nil
	})
	ss, _, err = bfdStatus(ctx, f, "leaf1")
	if err != nil {
		t.Fatal(err)
	}
	if s := ss[spineAddrs[0]]; s.UpTransitions != 2 || s.FailureTransitions != 1 {
		t.Errorf("leaf1's BFD session to %s: %d up transitions, %d failures; want 2 and 1", spine, s.UpTransitions, s.FailureTransitions)
	}
	simtest.WaitConverged(t, f)
}

var linkLocalRE = regexp.MustCompile(`inet6 (fe80::[0-9a-f:]+)/64 scope link`)

// linkLocal is node's IPv6 link-local address on link.
func linkLocal(t testing.TB, f *sim.Fabric, node, link string) netip.Addr {
	t.Helper()
	out, err := f.Exec(context.Background(), node, "ip", "-6", "addr", "show", "dev", link, "scope", "link")
	if err != nil {
		t.Fatalf("%s: %v: %s", node, err, out)
	}
	m := linkLocalRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("%s: no link-local address on %s: %s", node, link, out)
	}
	return netip.MustParseAddr(m[1])
}
