package policy

import (
	"context"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
)

// ping sends count echo requests from src (an address, or an interface for
// a link-local destination) to dst inside n and reports whether a reply
// came back in time.
func ping(t *testing.T, n *ns.NS, src, dst string, count int) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := n.Run(ctx, "ping", "-n", "-q", "-c", strconv.Itoa(count), "-W", "1", "-I", src, dst)
	return err
}

func mustRun(t *testing.T, n *ns.NS, argv ...string) {
	t.Helper()
	if _, err := n.Run(context.Background(), argv...); err != nil {
		t.Fatal(err)
	}
}

// counter is what Counters says of rule id of chain.
func counter(t *testing.T, tb *Table, chain, id string) uint64 {
	t.Helper()
	rcs, err := tb.Counters()
	must(t, err)
	for _, rc := range rcs {
		if rc.Chain == chain && rc.ID == id {
			return rc.Packets
		}
	}
	t.Fatalf("no counter for rule %s of chain %s in %v", id, chain, rcs)
	return 0
}

// TestPrivilegedAntiSpoof: a workload namespace behind a forwarding host
// namespace, a third namespace behind that. The workload's real IPv4 and
// IPv6 sources pass (IPv6 through NDP with the host, its link-local source
// too); a second address it adds to its interface passes before the table
// exists and is dropped at the host, counted, once it does; moving the
// endpoint's address is element changes only.
func TestPrivilegedAntiSpoof(t *testing.T) {
	wl, host, far := ns.NewT(t, "as-wl"), ns.NewT(t, "as-host"), ns.NewT(t, "as-far")
	// The host's and far side's addresses are usable at once (the
	// workload keeps DAD: it is tested below).
	for _, n := range []*ns.NS{host, far} {
		mustRun(t, n, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0")
	}
	must(t, ns.Veth(wl, "eth0", host, "wl0"))
	must(t, ns.Veth(host, "far0", far, "eth0"))
	for _, a := range []struct {
		n    *ns.NS
		link string
		p    string
	}{
		{host, "wl0", "10.9.0.1/24"}, {host, "wl0", "fd00:9::1/64"}, {host, "wl0", "fe80::1/64"},
		{host, "far0", "10.8.0.1/24"}, {host, "far0", "fd00:8::1/64"},
		{wl, "eth0", "10.9.0.2/24"}, {wl, "eth0", "fd00:9::2/64"}, {wl, "eth0", "fe80::2/64"},
		{far, "eth0", "10.8.0.2/24"}, {far, "eth0", "fd00:8::2/64"},
	} {
		must(t, a.n.AddAddr(a.link, netip.MustParsePrefix(a.p)))
	}
	mustRun(t, host, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	mustRun(t, wl, "ip", "route", "add", "default", "via", "10.9.0.1")
	// Via the host's link-local address, as a workload's gateway usually is.
	mustRun(t, wl, "ip", "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0")
	mustRun(t, far, "ip", "route", "add", "default", "via", "10.8.0.1")
	mustRun(t, far, "ip", "-6", "route", "add", "default", "via", "fd00:8::1")

	// The forged sources: other addresses on the workload's interface.
	// Without the table they reach the far side (nothing else in the
	// path stops them), so the drops below are the table's.
	must(t, wl.AddAddr("eth0", netip.MustParsePrefix("10.9.0.3/24")))
	must(t, wl.AddAddr("eth0", netip.MustParsePrefix("fd00:9::3/64")))
	for _, p := range [][2]string{{"10.9.0.3", "10.8.0.2"}, {"fd00:9::3", "fd00:8::2"}} {
		if err := ping(t, wl, p[0], p[1], 1); err != nil {
			t.Fatalf("without the table, from %s: %v", p[0], err)
		}
	}

	tb := NewTable(host.Net())
	t.Cleanup(func() { tb.Close() })
	chain, sets := antiSpoofSlot()
	for _, s := range sets {
		must(t, tb.SetSet(s))
	}
	must(t, tb.SetChain(chain))
	for _, c := range BaseChains(func(s string) bool { return s == SlotAntiSpoof }) {
		must(t, tb.SetChain(c))
	}
	ep := Endpoint{ID: "wl", Interface: "wl0", Addrs: []netip.Addr{
		netip.MustParseAddr("10.9.0.2"), netip.MustParseAddr("fd00:9::2")}}
	addEndpoint := func(ep Endpoint) {
		for set, es := range antiSpoofElements(ep) {
			must(t, tb.AddElements(set, es...))
		}
	}
	addEndpoint(ep)
	ctx := context.Background()
	must(t, tb.Apply(ctx))
	// Flush the neighbor entries the runs above left, so the real
	// source's pings below need NDP and ARP through the table.
	mustRun(t, wl, "ip", "neigh", "flush", "dev", "eth0")
	mustRun(t, host, "ip", "neigh", "flush", "dev", "wl0")

	for _, p := range [][2]string{{"10.9.0.2", "10.8.0.2"}, {"fd00:9::2", "fd00:8::2"}, {"10.9.0.2", "10.9.0.1"}} {
		if err := ping(t, wl, p[0], p[1], 1); err != nil {
			t.Errorf("real source %s to %s: %v", p[0], p[1], err)
		}
	}
	// A link-local source is no endpoint address: the exception lets it by.
	ll := counter(t, tb, SlotAntiSpoof, RuleLinkLocal6)
	if err := ping(t, wl, "eth0", "fe80::1", 1); err != nil {
		t.Errorf("link-local source to the host's link-local address: %v", err)
	}
	if got := counter(t, tb, SlotAntiSpoof, RuleLinkLocal6); got <= ll {
		t.Errorf("link-local exception counter %d -> %d, want it to rise", ll, got)
	}

	s4, s6 := counter(t, tb, SlotAntiSpoof, RuleSpoof4), counter(t, tb, SlotAntiSpoof, RuleSpoof6)
	for _, p := range [][2]string{{"10.9.0.3", "10.8.0.2"}, {"fd00:9::3", "fd00:8::2"}, {"10.9.0.3", "10.9.0.1"}} {
		if err := ping(t, wl, p[0], p[1], 1); err == nil {
			t.Errorf("forged source %s reached %s", p[0], p[1])
		}
	}
	// Two IPv4 echo requests exactly; IPv6 at least its one (an NS the
	// forged packet triggers carries the same source and is dropped too).
	if got := counter(t, tb, SlotAntiSpoof, RuleSpoof4); got != s4+2 {
		t.Errorf("spoof4 counter %d -> %d, want +2", s4, got)
	}
	if got := counter(t, tb, SlotAntiSpoof, RuleSpoof6); got < s6+1 {
		t.Errorf("spoof6 counter %d -> %d, want at least +1", s6, got)
	}

	// Duplicate address detection sends from ::, and is let by.
	dad := counter(t, tb, SlotAntiSpoof, RuleUnspecified6)
	mustRun(t, wl, "ip", "addr", "add", "fd00:9::99/64", "dev", "eth0")
	deadline := time.Now().Add(5 * time.Second)
	for counter(t, tb, SlotAntiSpoof, RuleUnspecified6) == dad && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := counter(t, tb, SlotAntiSpoof, RuleUnspecified6); got == dad {
		t.Errorf("no DAD solicitation from :: reached the exception (counter %d)", got)
	}

	// The endpoint moves to the other addresses: elements only.
	k := newKernel(t, host, DefaultName)
	before := k.handles()
	for set, es := range antiSpoofElements(ep) {
		must(t, tb.DeleteElements(set, es...))
	}
	ep.Addrs = []netip.Addr{netip.MustParseAddr("10.9.0.3"), netip.MustParseAddr("fd00:9::3")}
	addEndpoint(ep)
	must(t, tb.Apply(ctx))
	if h := k.handles(); !equalHandles(before, h) {
		t.Errorf("moving the endpoint changed rules: %v -> %v", before, h)
	}
	for _, p := range [][2]string{{"10.9.0.3", "10.8.0.2"}, {"fd00:9::3", "fd00:8::2"}} {
		if err := ping(t, wl, p[0], p[1], 1); err != nil {
			t.Errorf("after the move, %s: %v", p[0], err)
		}
	}
	if err := ping(t, wl, "10.9.0.2", "10.8.0.2", 1); err == nil {
		t.Error("after the move, the old address 10.9.0.2 still passes")
	}
}
