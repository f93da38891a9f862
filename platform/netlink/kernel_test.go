package netlink_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	mdl "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/switchd/switchd/platform/netlink"
	"github.com/switchd/switchd/sim/ns"
)

func TestMain(m *testing.M) { ns.TestMain(m) }

// Message encoders for the tests (callers keep their own).

// addVeth appends the creation of veth name with its peer in the
// namespace peerNS (-1: the same).
func addVeth(b *netlink.Batch, name, peer string, peerNS int, flags mdl.HeaderFlags) int {
	b.Begin(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|flags)
	b.Raw(make([]byte, unix.SizeofIfInfomsg)...)
	b.AttrString(unix.IFLA_IFNAME, name)
	info := b.Nest(unix.IFLA_LINKINFO)
	b.Attr(unix.IFLA_INFO_KIND, []byte("veth"))
	data := b.Nest(unix.IFLA_INFO_DATA)
	p := b.Nest(1) // VETH_INFO_PEER
	b.Raw(make([]byte, unix.SizeofIfInfomsg)...)
	b.AttrString(unix.IFLA_IFNAME, peer)
	if peerNS >= 0 {
		b.AttrU32(unix.IFLA_NET_NS_FD, uint32(peerNS))
	}
	b.EndNest(p)
	b.EndNest(data)
	b.EndNest(info)
	return b.End()
}

func addAddr(b *netlink.Batch, ifindex int, p netip.Prefix) int {
	fam := uint8(unix.AF_INET)
	if p.Addr().Is6() {
		fam = unix.AF_INET6
	}
	b.Begin(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_REPLACE)
	b.Raw(fam, uint8(p.Bits()), 0, 0)
	b.U32(uint32(ifindex))
	b.Attr(unix.IFA_LOCAL, p.Addr().AsSlice())
	b.Attr(unix.IFA_ADDRESS, p.Addr().AsSlice())
	return b.End()
}

func setLink(b *netlink.Batch, ifindex int, up bool) int {
	var flags uint32
	if up {
		flags = unix.IFF_UP
	}
	b.Begin(unix.RTM_NEWLINK, 0)
	b.Raw(unix.AF_UNSPEC, 0, 0, 0)
	b.U32(uint32(ifindex))
	b.U32(flags)
	b.U32(unix.IFF_UP)
	return b.End()
}

// testNS makes a namespace for t and returns it as a netlink.NS.
func testNS(t *testing.T, name string) (*ns.NS, *netlink.NS) {
	t.Helper()
	n := ns.NewT(t, name)
	h, err := netlink.OpenNS(n.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return n, h
}

func dial(t *testing.T, h *netlink.NS, opts ...netlink.Option) *netlink.Conn {
	t.Helper()
	c, err := netlink.Dial(h, unix.NETLINK_ROUTE, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func links(t *testing.T, c *netlink.Conn) map[string]netlink.Event {
	t.Helper()
	var got map[string]netlink.Event
	err := c.Links(t.Context(), func() { got = map[string]netlink.Event{} }, func(ev netlink.Event) { got[ev.Name] = ev })
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestExecErrorOnItsMessagePrivileged: in a batch of three whose second
// message fails, the error comes back for exactly that message, with the
// kernel's extended-ack text, and the other two take effect.
func TestExecErrorOnItsMessagePrivileged(t *testing.T) {
	_, h := testNS(t, "exec")
	c := dial(t, h)
	var b netlink.Batch
	addVeth(&b, "va", "vb", -1, 0)
	addAddr(&b, 9999, netip.MustParsePrefix("192.0.2.1/24")) // no such link
	setLink(&b, 1, true)                                     // lo up
	type answer struct {
		i   int
		err error
	}
	var got []answer
	if err := c.Exec(&b, func(i int, _ mdl.Message, err error) { got = append(got, answer{i, err}) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].i != 1 || !errors.Is(got[0].err, unix.ENODEV) {
		t.Fatalf("answers %+v, want one ENODEV for message 1", got)
	}
	var ke *netlink.Error
	if !errors.As(got[0].err, &ke) || ke.Message == "" {
		t.Errorf("error %v carries no extended-ack message", got[0].err)
	}
	ls := links(t, c)
	if _, ok := ls["va"]; !ok {
		t.Errorf("links %v lack va (message 0)", slices.Collect(mapsKeys(ls)))
	}
	if lo := ls["lo"]; lo.Flags&unix.IFF_UP == 0 {
		t.Errorf("lo %+v is down (message 2)", lo)
	}
	// The Conn stays usable: the same batch again fails on 0 (exists) and 1.
	got = nil
	if err := c.Exec(&b, func(i int, _ mdl.Message, err error) { got = append(got, answer{i, err}) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].i != 0 || !errors.Is(got[0].err, unix.EEXIST) || got[1].i != 1 {
		t.Fatalf("second run: answers %+v, want EEXIST for 0 and an error for 1", got)
	}
}

func mapsKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestExecEchoPrivileged: NLM_F_ECHO returns the new link to its message,
// with the peer created in another namespace.
func TestExecEchoPrivileged(t *testing.T) {
	_, ha := testNS(t, "echoa")
	_, hb := testNS(t, "echob")
	c := dial(t, ha)
	var b netlink.Batch
	setLink(&b, 1, true)
	addVeth(&b, "ea", "eb", hb.Fd(), unix.NLM_F_ECHO)
	var echoed []netlink.Event
	err := c.Exec(&b, func(i int, m mdl.Message, err error) {
		if err != nil {
			t.Errorf("message %d: %v", i, err)
			return
		}
		if ev, ok := netlink.ParseEvent(m); ok && i == 1 {
			echoed = append(echoed, ev)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(echoed) != 1 || echoed[0].Name != "ea" || echoed[0].Index == 0 {
		t.Fatalf("echoed %+v, want the new link ea", echoed)
	}
	if _, ok := links(t, dial(t, hb))["eb"]; !ok {
		t.Error("peer eb is not in the other namespace")
	}
	if ev, err := c.Link(echoed[0].Index); err != nil || ev.Name != "ea" {
		t.Errorf("Link(%d) = %+v, %v; want ea", echoed[0].Index, ev, err)
	}
	if _, err := c.Link(9999); !errors.Is(err, unix.ENODEV) {
		t.Errorf("Link(9999): %v, want ENODEV", err)
	}
	if ev, err := c.LinkByName("ea"); err != nil || ev.Index != echoed[0].Index {
		t.Errorf("LinkByName(ea) = %+v, %v; want index %d", ev, err, echoed[0].Index)
	}
	if _, err := c.LinkByName("nosuch"); !errors.Is(err, unix.ENODEV) {
		t.Errorf("LinkByName(nosuch): %v, want ENODEV", err)
	}
}

// TestDumpRoutesPrivileged: a route dump filtered by table (strict
// checking) returns the local routes of an address and nothing of main.
func TestDumpRoutesPrivileged(t *testing.T) {
	_, h := testNS(t, "dump")
	c := dial(t, h)
	var b netlink.Batch
	setLink(&b, 1, true)
	addAddr(&b, 1, netip.MustParsePrefix("198.51.100.7/32"))
	if err := c.Exec(&b, func(i int, _ mdl.Message, err error) { t.Errorf("message %d: %v", i, err) }); err != nil {
		t.Fatal(err)
	}
	var req netlink.Batch
	req.Begin(unix.RTM_GETROUTE, 0)
	req.Raw(unix.AF_INET, 0, 0, 0, unix.RT_TABLE_LOCAL, 0, 0, 0)
	req.U32(0)
	req.AttrU32(unix.RTA_TABLE, unix.RT_TABLE_LOCAL)
	req.End()
	var dsts []netip.Addr
	tables := map[uint8]bool{}
	err := c.Dump(t.Context(), &req, func() { dsts = nil }, func(m mdl.Message) error {
		if m.Header.Type != unix.RTM_NEWROUTE {
			return fmt.Errorf("answer of type %d", m.Header.Type)
		}
		tables[m.Data[4]] = true
		d := m.Data[unix.SizeofRtMsg:]
		for len(d) >= 4 {
			l := int(d[0]) | int(d[1])<<8
			if int(d[2]) == unix.RTA_DST && l == 8 {
				a, _ := netip.AddrFromSlice(d[4:8])
				dsts = append(dsts, a)
			}
			d = d[min(len(d), (l+3)&^3):]
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(dsts, netip.MustParseAddr("198.51.100.7")) || len(tables) != 1 || !tables[unix.RT_TABLE_LOCAL] {
		t.Errorf("dump: destinations %v in tables %v, want 198.51.100.7 in local only", dsts, tables)
	}
}

// TestDumpRestartsWhenInterruptedPrivileged: a link dump spanning several
// datagrams, during which a link is added, is marked interrupted by the
// kernel and done again; the result holds the new link. A dump that is
// interrupted every time gives up with ErrDumpInterrupted.
func TestDumpRestartsWhenInterruptedPrivileged(t *testing.T) {
	_, h := testNS(t, "intr")
	c := dial(t, h)
	var b netlink.Batch
	for i := range 60 { // 120 links, ~15 datagrams of a dump
		addVeth(&b, fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i), -1, 0)
	}
	if err := c.Exec(&b, func(i int, _ mdl.Message, err error) { t.Errorf("veth %d: %v", i, err) }); err != nil {
		t.Fatal(err)
	}
	other := dial(t, h)
	added := 0
	addOne := func() {
		var b netlink.Batch
		addVeth(&b, fmt.Sprintf("x%d", added), fmt.Sprintf("y%d", added), -1, 0)
		added++
		if err := other.Exec(&b, func(_ int, _ mdl.Message, err error) { t.Error(err) }); err != nil {
			t.Error(err)
		}
	}
	attempts, seen := 0, 0
	var names []string
	err := c.Links(t.Context(), func() { attempts, seen, names = attempts+1, 0, nil }, func(ev netlink.Event) {
		seen++
		names = append(names, ev.Name)
		if attempts == 1 && seen == 1 {
			// The kernel has filled the next datagram already; the one
			// after it sees the change.
			addOne()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if attempts != 2 || !slices.Contains(names, "x0") || len(names) != 1+120+2 {
		t.Fatalf("%d attempts, %d links (x0 among them: %v); want 2 attempts, 123 links with x0",
			attempts, len(names), slices.Contains(names, "x0"))
	}

	c3 := dial(t, h, netlink.WithDumpAttempts(3))
	attempts = 0
	err = c3.Links(t.Context(), func() { attempts, seen = attempts+1, 0 }, func(netlink.Event) {
		if seen++; seen == 1 {
			addOne()
		}
	})
	if !errors.Is(err, netlink.ErrDumpInterrupted) || attempts != 3 {
		t.Fatalf("always interrupted: %v after %d attempts; want ErrDumpInterrupted after 3", err, attempts)
	}
}

// TestSysctlInNamespacePrivileged: a sysctl written in a namespace reads
// back there, the test's own namespace keeps its value, and the calling
// thread never leaves its namespace.
func TestSysctlInNamespacePrivileged(t *testing.T) {
	_, h := testNS(t, "sysctl")
	const p = "net/ipv4/ip_forward"
	before, err := (*netlink.NS)(nil).ReadSysctl(p)
	if err != nil {
		t.Fatal(err)
	}
	want := "1"
	if before == "1" {
		want = "0"
	}
	self, _ := (*netlink.NS)(nil).ID()
	if err := h.WriteSysctls(netlink.Sysctl{Path: p, Value: want}); err != nil {
		t.Fatal(err)
	}
	if v, err := h.ReadSysctl(p); err != nil || v != want {
		t.Errorf("in the namespace: %s = %q, %v; want %q", p, v, err, want)
	}
	if v, _ := (*netlink.NS)(nil).ReadSysctl(p); v != before {
		t.Errorf("test's namespace: %s = %q, want %q (unchanged)", p, v, before)
	}
	if now, _ := (*netlink.NS)(nil).ID(); now != self {
		t.Error("the calling thread changed namespace")
	}
	err = h.WriteSysctls(netlink.Sysctl{Path: p, Value: before}, netlink.Sysctl{Path: "net/ipv4/nosuch", Value: "1"})
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("writing a missing sysctl: %v, want an error naming it", err)
	}
	if v, _ := h.ReadSysctl(p); v != before {
		t.Errorf("the value before the failing one was not written (%q)", v)
	}
	if err := h.EnsureSysctls(netlink.Sysctl{Path: p, Value: want}); err != nil {
		t.Fatal(err)
	}
	if v, _ := h.ReadSysctl(p); v != want {
		t.Errorf("EnsureSysctls: %s = %q, want %q", p, v, want)
	}
}

// TestNSClosePrivileged: Close releases the fd; namespaces compare by ID.
func TestNSClosePrivileged(t *testing.T) {
	n, _ := testNS(t, "close")
	h, err := netlink.OpenNS(n.Path())
	if err != nil {
		t.Fatal(err)
	}
	fd := h.Fd()
	d, err := netlink.NSFromFd(fd)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !d.Equal(h) || d.Fd() == fd {
		t.Errorf("NSFromFd: fd %d of %d, equal %v; want a new fd of the same namespace", d.Fd(), fd, d.Equal(h))
	}
	if cur, err := netlink.CurrentNS(); err != nil || cur.Equal(h) {
		t.Errorf("current namespace equals the test one (%v)", err)
	} else {
		cur.Close()
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); !errors.Is(err, unix.EBADF) {
		t.Errorf("fd %d still open after Close (%v)", fd, err)
	}
	if err := h.Do(func() error { return nil }); err == nil {
		t.Error("Do on a closed NS succeeded")
	}
	if _, err := netlink.OpenNS(t.TempDir()); !errors.Is(err, netlink.ErrNotNamespace) {
		t.Errorf("OpenNS(directory): %v, want ErrNotNamespace", err)
	}
	if _, err := netlink.OpenNS(n.Path() + "-missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenNS(missing): %v, want os.ErrNotExist", err)
	}
}

// TestMonitorCarrierPrivileged: the monitor in one namespace sees its veth
// end lose carrier when the peer in another namespace goes down.
func TestMonitorCarrierPrivileged(t *testing.T) {
	_, ha := testNS(t, "mona")
	_, hb := testNS(t, "monb")
	ca, cb := dial(t, ha), dial(t, hb)
	var b netlink.Batch
	addVeth(&b, "ma", "mb", hb.Fd(), 0)
	if err := ca.Exec(&b, func(_ int, _ mdl.Message, err error) { t.Fatal(err) }); err != nil {
		t.Fatal(err)
	}
	ma, mb := links(t, ca)["ma"], links(t, cb)["mb"]
	b.Reset()
	setLink(&b, ma.Index, true)
	addAddr(&b, ma.Index, netip.MustParsePrefix("10.1.0.0/31"))
	if err := ca.Exec(&b, func(_ int, _ mdl.Message, err error) { t.Fatal(err) }); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	setLink(&b, mb.Index, true)
	if err := cb.Exec(&b, func(_ int, _ mdl.Message, err error) { t.Fatal(err) }); err != nil {
		t.Fatal(err)
	}
	m, err := netlink.NewMonitor(ha)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan netlink.Event, 64)
	done := make(chan error, 1)
	go func() {
		for {
			if err := m.Receive(func(ev netlink.Event) { events <- ev }); err != nil {
				done <- err
				return
			}
		}
	}()
	b.Reset()
	setLink(&b, mb.Index, false)
	if err := cb.Exec(&b, func(_ int, _ mdl.Message, err error) { t.Fatal(err) }); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for found := false; !found; {
		select {
		case ev := <-events:
			found = ev.Kind == netlink.LinkNew && ev.Name == "ma" && ev.Index == ma.Index && !ev.Carrier() && ev.Flags&unix.IFF_UP != 0
		case <-deadline:
			t.Fatal("no carrier loss of ma within 5s")
		}
	}
	m.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Receive after Close returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Receive")
	}
	var addrs []netip.Prefix
	if err := ca.Addrs(context.Background(), func() { addrs = nil }, func(ev netlink.Event) {
		if ev.Index == ma.Index && ev.Prefix.Addr().Is4() {
			addrs = append(addrs, ev.Prefix)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 1 || addrs[0] != netip.MustParsePrefix("10.1.0.0/31") {
		t.Errorf("addresses of ma %v, want 10.1.0.0/31", addrs)
	}
}

// TestReceiveTimeoutPrivileged: a wait with nothing to read ends after
// the receive timeout.
func TestReceiveTimeoutPrivileged(t *testing.T) {
	_, h := testNS(t, "timeout")
	c := dial(t, h, netlink.WithReceiveTimeout(50*time.Millisecond))
	start := time.Now()
	err := c.Receive(func(mdl.Message) bool { return true })
	if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("Receive: %v after %v, want a timeout after 50ms", err, time.Since(start))
	}
}

// TestDropPortsFilterPrivileged: a monitor filtering a writer's port does
// not receive the notifications of that writer's changes (address
// notifications carry the writer's port; link creations do not), and does
// receive another writer's.
func TestDropPortsFilterPrivileged(t *testing.T) {
	_, h := testNS(t, "filter")
	own, foreign := dial(t, h), dial(t, h)
	mon := dial(t, h, netlink.WithGroups(unix.RTNLGRP_IPV4_IFADDR), netlink.WithReceiveTimeout(2*time.Second))
	if err := mon.SetFilter(netlink.DropPortsFilter([]uint32{own.PortID() + 1000, own.PortID()})); err != nil {
		t.Fatal(err)
	}
	own0, foreign1 := netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("10.0.0.2/32")
	for i, c := range []*netlink.Conn{own, foreign} {
		var b netlink.Batch
		addAddr(&b, 1, []netip.Prefix{own0, foreign1}[i])
		if err := c.Exec(&b, func(_ int, _ mdl.Message, err error) { t.Fatal(err) }); err != nil {
			t.Fatal(err)
		}
	}
	var seen []netip.Prefix
	for !slices.Contains(seen, foreign1) {
		err := mon.Receive(func(m mdl.Message) bool {
			if ev, ok := netlink.ParseEvent(m); ok {
				seen = append(seen, ev.Prefix)
			}
			return true
		})
		if err != nil {
			t.Fatalf("no notification of the foreign writer (seen %v): %v", seen, err)
		}
	}
	if slices.Contains(seen, own0) {
		t.Errorf("notifications %v include the filtered writer's %v", seen, own0)
	}
}

// TestNewNSPrivileged: a new namespace is another namespace, with only a
// loopback, and the caller stays where it was.
func TestNewNSPrivileged(t *testing.T) {
	self, err := netlink.CurrentNS()
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	n, err := netlink.NewNS()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.Equal(self) {
		t.Fatal("NewNS returned the caller's namespace")
	}
	if now, _ := (*netlink.NS)(nil).ID(); now != func() netlink.NSID { id, _ := self.ID(); return id }() {
		t.Error("the calling thread changed namespace")
	}
	ls := links(t, dial(t, n))
	if _, ok := ls["lo"]; !ok || len(ls) != 1 {
		t.Errorf("links in a new namespace: %v, want only lo", ls)
	}
}
