package platform

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/switchd/switchd/sim/ns"
)

// BenchmarkInterfacesDriftRepairPrivileged: an address of ours deleted
// behind the reconciler's back, until it is back in the kernel; the
// reconciler runs as the daemon runs it (Apply on each kick).
func BenchmarkInterfacesDriftRepairPrivileged(b *testing.B) {
	a, peer := ns.NewT(b, "ifbd"), ns.NewT(b, "ifbdp")
	if err := ns.Veth(a, "e1", peer, "p1"); err != nil {
		b.Fatal(err)
	}
	r, err := NewInterfaces(a.Net())
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	p := netip.MustParsePrefix("10.5.0.0/31")
	r.SetInterface(InterfaceConfig{Name: "e1", Addrs: []netip.Prefix{p}})
	if err := r.Apply(b.Context()); err != nil {
		b.Fatal(err)
	}
	watch := make(chan netlink.AddrUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	if err := netlink.AddrSubscribeAt(a.NsHandle(), watch, done); err != nil {
		b.Fatal(err)
	}
	l, err := a.Handle().LinkByName("e1")
	if err != nil {
		b.Fatal(err)
	}
	addr, err := netlink.ParseAddr(p.String())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if err := a.Handle().AddrDel(l, addr); err != nil {
			b.Fatal(err)
		}
		for back := false; !back; {
			select {
			case <-r.Kick():
				if err := r.Apply(b.Context()); err != nil {
					b.Fatal(err)
				}
			case u := <-watch:
				back = u.NewAddr && u.LinkAddress.String() == addr.IPNet.String()
			}
		}
	}
}

// BenchmarkInterfacesApplyPrivileged: 50 interfaces with an IPv4 and an
// IPv6 address each, all written by one Apply (then removed by another,
// untimed).
func BenchmarkInterfacesApplyPrivileged(b *testing.B) {
	a, peer := ns.NewT(b, "ifba"), ns.NewT(b, "ifbap")
	const n = 50
	var cfgs []InterfaceConfig
	for i := range n {
		name := fmt.Sprintf("e%d", i)
		if err := ns.Veth(a, name, peer, "p"+name); err != nil {
			b.Fatal(err)
		}
		cfgs = append(cfgs, InterfaceConfig{Name: name, Addrs: []netip.Prefix{
			netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 6, byte(i), 0}), 31),
			netip.PrefixFrom(netip.AddrFrom16([16]byte{0: 0xfd, 1: 6, 2: byte(i)}), 127),
		}})
	}
	r, err := NewInterfaces(a.Net())
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	if err := r.Apply(b.Context()); err != nil { // the first dump
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		for _, c := range cfgs {
			r.SetInterface(c)
		}
		if err := r.Apply(b.Context()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		for _, c := range cfgs {
			r.DeleteInterface(c.Name)
		}
		if err := r.Apply(b.Context()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(2*n, "addrs/op")
}
