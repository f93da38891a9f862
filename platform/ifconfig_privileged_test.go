package platform

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	pnl "github.com/switchd/switchd/platform/netlink"
	"github.com/switchd/switchd/sim/ns"
)

// addrEvents counts a namespace's address notifications per address, and
// knows when it has seen everything up to now (sync: a marker address
// added by hand comes back as the last event).
type addrEvents struct {
	t      *testing.T
	n      *ns.NS
	mon    *pnl.Monitor
	marker int

	mu     sync.Mutex
	counts map[string]int // "new 10.0.0.1/31", "del ...", since the last sync
	total  map[string]int // the same, since the start
	seen   map[netip.Prefix]bool
	cond   *sync.Cond
}

func newAddrEvents(t *testing.T, n *ns.NS) *addrEvents {
	mon, err := pnl.NewMonitor(n.Net())
	if err != nil {
		t.Fatal(err)
	}
	e := &addrEvents{t: t, n: n, mon: mon, counts: map[string]int{}, total: map[string]int{}, seen: map[netip.Prefix]bool{}}
	e.cond = sync.NewCond(&e.mu)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			err := mon.Receive(func(ev pnl.Event) {
				// The kernel's own link-local addresses come and go
				// with DAD on their own time.
				if ev.Kind != pnl.AddrNew && ev.Kind != pnl.AddrDel || ev.Prefix.Addr().IsLinkLocalUnicast() {
					return
				}
				e.mu.Lock()
				k := "new "
				if ev.Kind == pnl.AddrDel {
					k = "del "
				}
				e.counts[k+ev.Prefix.String()]++
				e.total[k+ev.Prefix.String()]++
				e.seen[ev.Prefix] = true
				e.cond.Broadcast()
				e.mu.Unlock()
			})
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { mon.Close(); <-done })
	return e
}

// sync waits until every notification sent before it has been counted,
// then returns the counts and starts counting afresh.
func (e *addrEvents) sync() map[string]int {
	e.t.Helper()
	e.marker++
	m := netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(e.marker)}), 32)
	if err := e.n.AddAddr("lo", m); err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for !e.seen[m] {
		e.cond.Wait()
	}
	out := e.counts
	delete(out, "new "+m.String())
	e.counts = map[string]int{}
	return out
}

// waitNew waits until the addition of each of ps has been notified. An
// IPv6 address is notified by the kernel's address work queue after the
// add returns, late enough on a busy machine to pass a later sync's
// marker: a test waits for it before it counts what a step changed.
func (e *addrEvents) waitNew(ps ...netip.Prefix) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range ps {
		for e.total["new "+p.String()] == 0 {
			e.cond.Wait()
		}
	}
}

// kernelAddrs dumps n's addresses with their protocols, by interface name.
func kernelAddrs(t *testing.T, n *ns.NS) map[string]map[netip.Prefix]uint8 {
	t.Helper()
	c, err := pnl.Dial(n.Net(), unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	names := map[int]string{}
	if err := c.Links(t.Context(), nil, func(ev pnl.Event) { names[ev.Index] = ev.Name }); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[netip.Prefix]uint8{}
	if err := c.Addrs(t.Context(), nil, func(ev pnl.Event) {
		name := names[ev.Index]
		if out[name] == nil {
			out[name] = map[netip.Prefix]uint8{}
		}
		out[name][ev.Prefix] = ev.Proto
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func kernelLinkNamed(t *testing.T, n *ns.NS, name string) kernelLink {
	t.Helper()
	c, err := pnl.Dial(n.Net(), unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var l kernelLink
	if err := c.Links(t.Context(), nil, func(e pnl.Event) {
		if ev, ok := ifEventOf(e); ok && ev.link.Name == name {
			l = ev.link
		}
	}); err != nil {
		t.Fatal(err)
	}
	return l
}

// converge runs Apply, and again on each kick, until ok holds; it fails
// the test if that takes longer than 10 s (a bound on a hang, not a
// measure of speed).
func converge(t *testing.T, n *ns.NS, r *Interfaces, what string, ok func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := r.Apply(t.Context()); err != nil {
			t.Fatalf("%s: Apply: %v", what, err)
		}
		if ok() {
			return
		}
		select {
		case <-r.Kick():
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s: not converged within 10s; kernel: %v", what, kernelAddrs(t, n))
		}
	}
}

func ptr[T any](v T) *T { return &v }

var (
	pE1a   = netip.MustParsePrefix("10.1.0.0/31")
	pE1b   = netip.MustParsePrefix("10.1.0.2/31")
	pE1v6  = netip.MustParsePrefix("fd01::/127")
	pLo4   = netip.MustParsePrefix("10.255.0.1/32")
	pLo6   = netip.MustParsePrefix("fd00:255::1/128")
	pHand1 = netip.MustParsePrefix("192.0.2.1/24")
	pHand2 = netip.MustParsePrefix("2001:db8:9::1/64")
)

// TestInterfacesPrivileged walks one namespace through the reconciler's
// life: first apply (addresses tagged with AddrProtocol, MTU, alias,
// admin up; addresses added by hand untouched), a second Apply that
// writes nothing, a config change that moves one address and leaves the
// others without a single notification, a restart that adopts without
// any address notification, an address deleted by hand coming back, an
// IPv6 address flushed by a link bounce with keep_addr_on_down=0 coming
// back, an interface that appears after the config named it, and an
// interface dropped from the config losing only our addresses.
func TestInterfacesPrivileged(t *testing.T) {
	a, b := ns.NewT(t, "ifa"), ns.NewT(t, "ifb")
	for _, l := range []string{"e1", "e2"} {
		if err := ns.Veth(a, l, b, "p"+l); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Run(t.Context(), "ip", "link", "set", "e2", "down"); err != nil {
		t.Fatal(err)
	}
	ev := newAddrEvents(t, a)
	for _, hp := range []netip.Prefix{pHand1, pHand2} {
		if err := a.AddAddr("e1", hp); err != nil {
			t.Fatal(err)
		}
	}

	r := newTestInterfaces(t, a)
	cfg := []InterfaceConfig{
		{Name: "e1", Enabled: ptr(true), MTU: 9000, Description: ptr("to b"), Addrs: []netip.Prefix{pE1a, pE1v6}},
		{Name: "e2", Enabled: ptr(true), Addrs: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/31")}},
		{Name: "lo", Addrs: []netip.Prefix{pLo4, pLo6}},
	}
	for _, c := range cfg {
		r.SetInterface(c)
	}
	has := func(name string, p netip.Prefix, proto uint8) func() bool {
		return func() bool {
			got, ok := kernelAddrs(t, a)[name][p]
			return ok && got == proto
		}
	}
	converge(t, a, r, "first apply", func() bool {
		for _, c := range cfg {
			for _, p := range c.Addrs {
				if !has(c.Name, p, AddrProtocol)() {
					return false
				}
			}
		}
		return true
	})
	l := kernelLinkNamed(t, a, "e1")
	if l.MTU != 9000 || l.Alias != "to b" || l.Flags&unix.IFF_UP == 0 {
		t.Errorf("e1 = %+v, want mtu 9000, alias \"to b\", up", l)
	}
	if l := kernelLinkNamed(t, a, "e2"); l.Flags&unix.IFF_UP == 0 {
		t.Errorf("e2 = %+v, want up", l)
	}
	if l := kernelLinkNamed(t, a, "lo"); l.MTU != 65536 {
		t.Errorf("lo's MTU %d changed, though the config sets none", l.MTU)
	}
	hand := []netip.Prefix{pHand1, pHand2}
	checkHand := func(what string) {
		t.Helper()
		k := kernelAddrs(t, a)["e1"]
		for _, hp := range hand {
			if proto, ok := k[hp]; !ok || proto != 0 {
				t.Errorf("%s: address added by hand %v: present %v, protocol %d; want present, 0", what, hp, ok, proto)
			}
		}
	}
	checkHand("first apply")
	ev.waitNew(pHand2, pE1v6, pLo6)
	ev.sync()

	// A second Apply has nothing to write.
	r.QueueResync()
	if err := r.Apply(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := ev.sync(); len(got) != 0 {
		t.Errorf("second Apply: address notifications %v, want none", got)
	}

	// Move 10.1.0.0/31 from e1 to e2 and give e1 another: only those
	// addresses change.
	cfg[0].Addrs = []netip.Prefix{pE1b, pE1v6}
	cfg[1].Addrs = []netip.Prefix{netip.MustParsePrefix("10.2.0.0/31"), pE1a}
	r.SetInterface(cfg[0])
	r.SetInterface(cfg[1])
	converge(t, a, r, "move", func() bool {
		k := kernelAddrs(t, a)
		_, old := k["e1"][pE1a]
		return !old && has("e1", pE1b, AddrProtocol)() && has("e2", pE1a, AddrProtocol)()
	})
	got := ev.sync()
	want := map[string]int{"del " + pE1a.String(): 1, "new " + pE1a.String(): 1, "new " + pE1b.String(): 1}
	if !mapsEqual(got, want) {
		t.Errorf("move: address notifications %v, want %v (nothing for the addresses that stay)", got, want)
	}
	checkHand("move")

	// Restart: a new reconciler on the same namespace adopts everything.
	r.Close()
	r = newTestInterfaces(t, a)
	for _, c := range cfg {
		r.SetInterface(c)
	}
	if err := r.Apply(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := ev.sync(); len(got) != 0 {
		t.Errorf("restart: address notifications %v, want none (adopted, not removed and added)", got)
	}

	// Drift: an address of ours deleted by hand comes back.
	if _, err := a.Run(t.Context(), "ip", "address", "del", pE1v6.String(), "dev", "e1"); err != nil {
		t.Fatal(err)
	}
	converge(t, a, r, "deleted by hand", has("e1", pE1v6, AddrProtocol))

	// A bounce with keep_addr_on_down=0 flushes e1's IPv6 addresses; ours
	// comes back (and the link up: the config says enabled).
	if err := a.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/e1/keep_addr_on_down", []byte("0"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	ev.sync()
	if _, err := a.Run(t.Context(), "ip", "link", "set", "e1", "down"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Run(t.Context(), "ip", "link", "set", "e1", "up"); err != nil {
		t.Fatal(err)
	}
	converge(t, a, r, "bounce", func() bool {
		return has("e1", pE1v6, AddrProtocol)() && kernelLinkNamed(t, a, "e1").Flags&unix.IFF_UP != 0
	})
	if got := ev.sync(); got["del "+pE1v6.String()] == 0 {
		t.Errorf("bounce: no deletion of %v seen (%v): the kernel did not flush, the test proves nothing", pE1v6, got)
	}
	// The flush took the IPv6 address added by hand too: not ours to
	// put back.
	if _, ok := kernelAddrs(t, a)["e1"][pHand2]; ok {
		t.Errorf("bounce: %v, added by hand and flushed, is back: switchd restored an address it does not own", pHand2)
	}
	hand = hand[:1]

	// An interface the config names before it exists: reported, no error,
	// configured when it appears.
	p3 := netip.MustParsePrefix("10.3.0.0/31")
	r.SetInterface(InterfaceConfig{Name: "e3", MTU: 1400, Addrs: []netip.Prefix{p3}})
	if err := r.Apply(t.Context()); err != nil {
		t.Fatal(err)
	}
	if m := r.Missing(); !slices.Equal(m, []string{"e3"}) {
		t.Errorf("Missing = %v, want [e3]", m)
	}
	if err := ns.Veth(a, "e3", b, "pe3"); err != nil {
		t.Fatal(err)
	}
	converge(t, a, r, "late link", func() bool { return has("e3", p3, AddrProtocol)() && kernelLinkNamed(t, a, "e3").MTU == 1400 })
	if m := r.Missing(); len(m) != 0 {
		t.Errorf("Missing = %v after e3 appeared", m)
	}

	// e2 dropped from the config: our addresses go, the link stays up
	// with what it has otherwise.
	r.DeleteInterface("e2")
	converge(t, a, r, "dropped", func() bool { return len(kernelAddrs(t, a)["e2"]) == 0 || onlyForeign(kernelAddrs(t, a)["e2"]) })
	if l := kernelLinkNamed(t, a, "e2"); l.Index == 0 || l.Flags&unix.IFF_UP == 0 {
		t.Errorf("e2 = %+v after it left the config, want it there and up", l)
	}
	checkHand("end")
}

func onlyForeign(m map[netip.Prefix]uint8) bool {
	for _, p := range m {
		if p == AddrProtocol {
			return false
		}
	}
	return true
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func newTestInterfaces(t *testing.T, n *ns.NS) *Interfaces {
	t.Helper()
	r, err := NewInterfaces(n.Net())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// TestInterfacesWriteErrorPrivileged: a write the kernel refuses (an MTU
// above the veth's maximum) is reported with the interface and what was
// asked, the rest of the batch is applied, and it is tried again only
// after its back-off.
func TestInterfacesWriteErrorPrivileged(t *testing.T) {
	a, b := ns.NewT(t, "ifea"), ns.NewT(t, "ifeb")
	if err := ns.Veth(a, "e1", b, "pe1"); err != nil {
		t.Fatal(err)
	}
	// Carrier comes after the veth is made; a change of it is no news for
	// the reconciler, but wait for it so that nothing else is either.
	for deadline := time.Now().Add(10 * time.Second); kernelLinkNamed(t, a, "e1").Flags&unix.IFF_LOWER_UP == 0; {
		if time.Now().After(deadline) {
			t.Fatal("e1 has no carrier after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r := newTestInterfaces(t, a)
	p := netip.MustParsePrefix("10.4.0.0/31")
	r.SetInterface(InterfaceConfig{Name: "e1", MTU: 70000, Addrs: []netip.Prefix{p}})
	err := r.Apply(t.Context())
	if err == nil || !strings.Contains(err.Error(), "interface e1: set mtu 70000") || !errors.Is(err, unix.EINVAL) {
		t.Fatalf("Apply = %v, want the refused MTU named (EINVAL)", err)
	}
	if _, ok := kernelAddrs(t, a)["e1"][p]; !ok {
		t.Errorf("the address was not added beside the refused MTU")
	}
	if r.NextRetry().IsZero() {
		t.Errorf("no retry scheduled after a failed write")
	}
	if err := r.Apply(t.Context()); err != nil {
		t.Errorf("Apply before the retry is due wrote again: %v", err)
	}
}

// TestInterfacesResubscribePrivileged: when the notification reader fails,
// the next Apply says so once, subscribes again and resyncs, and drift is
// repaired from notifications as before.
func TestInterfacesResubscribePrivileged(t *testing.T) {
	a, b := ns.NewT(t, "ifra"), ns.NewT(t, "ifrb")
	if err := ns.Veth(a, "e1", b, "pe1"); err != nil {
		t.Fatal(err)
	}
	r := newTestInterfaces(t, a)
	p := netip.MustParsePrefix("10.8.0.0/31")
	r.SetInterface(InterfaceConfig{Name: "e1", Addrs: []netip.Prefix{p}})
	if err := r.Apply(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.mon.Close() // the reader's Receive fails as on a broken socket
	<-r.Kick()
	if err := r.Apply(t.Context()); err == nil || !strings.Contains(err.Error(), "subscribed again") {
		t.Fatalf("Apply after the reader failed: %v, want it reported and a new subscription", err)
	}
	if _, err := a.Run(t.Context(), "ip", "address", "del", p.String(), "dev", "e1"); err != nil {
		t.Fatal(err)
	}
	converge(t, a, r, "drift after resubscribing", func() bool {
		proto, ok := kernelAddrs(t, a)["e1"][p]
		return ok && proto == AddrProtocol
	})
}
