package platform

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	pnl "github.com/switchd/switchd/platform/netlink"
	"github.com/switchd/switchd/sim/ns"
)

// TestParseLinkStats decodes a hand-made RTM_NEWLINK payload: the
// ifinfomsg header, name, MTU, operstate, carrier changes, the kind nested
// in IFLA_LINKINFO and the 64-bit counters.
func TestParseLinkStats(t *testing.T) {
	var b pnl.Batch
	b.Begin(unix.RTM_NEWLINK, 0)
	b.Raw(unix.AF_UNSPEC, 0)
	b.Raw(binary.NativeEndian.AppendUint16(nil, unix.ARPHRD_ETHER)...)
	b.U32(7)
	b.U32(unix.IFF_UP | unix.IFF_LOWER_UP)
	b.U32(0)
	b.AttrString(unix.IFLA_IFNAME, "swp1")
	b.AttrU32(unix.IFLA_MTU, 9000)
	b.AttrU8(unix.IFLA_OPERSTATE, OperUp)
	b.AttrU32(unix.IFLA_CARRIER_CHANGES, 3)
	off := b.Nest(unix.IFLA_LINKINFO)
	b.AttrString(unix.IFLA_INFO_KIND, "veth")
	b.EndNest(off)
	var stats []byte
	for i := range 24 { // rtnl_link_stats64 has more fields than we read
		stats = binary.NativeEndian.AppendUint64(stats, uint64(100+i))
	}
	b.Attr(unix.IFLA_STATS64, stats)
	b.End()
	got, ok := ParseLinkStats(b.Bytes()[unix.SizeofNlMsghdr:])
	if !ok {
		t.Fatal("not parsed")
	}
	want := LinkStats{Index: 7, Name: "swp1", Kind: "veth", Type: unix.ARPHRD_ETHER,
		Flags: unix.IFF_UP | unix.IFF_LOWER_UP, OperState: OperUp, MTU: 9000, CarrierChanges: 3,
		Counters: LinkCounters{RxPackets: 100, TxPackets: 101, RxBytes: 102, TxBytes: 103, RxErrors: 104,
			TxErrors: 105, RxDropped: 106, TxDropped: 107, Multicast: 108, Collisions: 109}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parsed\n%+v\nwant\n%+v", got, want)
	}
	if _, ok := ParseLinkStats(b.Bytes()[unix.SizeofNlMsghdr : unix.SizeofNlMsghdr+8]); ok {
		t.Error("a truncated header parsed")
	}
}

// TestLinkStatsPrivileged reads a veth pair's state in a namespace: our
// end's addresses, MTU, kind and oper state; its counters grow by what a
// ping sent through it; and setting the far end down makes ours oper DOWN
// (what veth reports for a lost carrier) while it stays admin up.
func TestLinkStatsPrivileged(t *testing.T) {
	ns.Privileged(t)
	a, b := ns.NewT(t, "lsa"), ns.NewT(t, "lsb")
	if err := ns.Veth(a, "toB", b, "toA"); err != nil {
		t.Fatal(err)
	}
	mine := []netip.Prefix{netip.MustParsePrefix("10.9.1.0/31"), netip.MustParsePrefix("fd09:1::/127")}
	for _, p := range mine {
		if err := a.AddAddr("toB", p); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.AddAddr("toA", netip.MustParsePrefix("10.9.1.1/31")); err != nil {
		t.Fatal(err)
	}
	r, err := NewLinkStatsReader(a.Net())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	read := func() LinkStats {
		t.Helper()
		ls, err := r.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(ls, func(l LinkStats) bool { return l.Name == "toB" })
		if i < 0 {
			t.Fatalf("toB not in %+v", ls)
		}
		if !slices.ContainsFunc(ls, func(l LinkStats) bool { return l.Name == "lo" && l.Type == unix.ARPHRD_LOOPBACK }) {
			t.Errorf("no loopback in %+v", ls)
		}
		return ls[i]
	}
	// Wait for carrier: the veth's oper state settles after it is set up.
	var before LinkStats
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if before = read(); before.OperState == OperUp || time.Now().After(deadline) {
			break
		}
	}
	if before.OperState != OperUp || before.Flags&unix.IFF_UP == 0 || before.Kind != "veth" ||
		before.MTU != 1500 || before.Type != unix.ARPHRD_ETHER {
		t.Errorf("toB %+v: want oper up, admin up, kind veth, MTU 1500, ethernet", before)
	}
	for _, p := range mine {
		if !slices.Contains(before.Addrs, p) {
			t.Errorf("toB addresses %v lack %v", before.Addrs, p)
		}
	}

	const pings = 5
	if out, err := a.Run(t.Context(), "ping", "-c", fmt.Sprint(pings), "-i", "0.2", "-W", "2", "10.9.1.1"); err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	after := read()
	if d := after.Counters.TxPackets - before.Counters.TxPackets; d < pings {
		t.Errorf("tx packets grew by %d over %d pings", d, pings)
	}
	if d := after.Counters.RxPackets - before.Counters.RxPackets; d < pings {
		t.Errorf("rx packets grew by %d over %d replies", d, pings)
	}
	if d := after.Counters.TxBytes - before.Counters.TxBytes; d < pings*84 {
		t.Errorf("tx bytes grew by %d over %d pings of 84 bytes", d, pings)
	}

	if _, err := b.Run(t.Context(), "ip", "link", "set", "toA", "down"); err != nil {
		t.Fatal(err)
	}
	var down LinkStats
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if down = read(); down.OperState != OperUp || time.Now().After(deadline) {
			break
		}
	}
	if down.OperState != OperDown || down.Flags&unix.IFF_UP == 0 || down.Flags&unix.IFF_LOWER_UP != 0 {
		t.Errorf("far end down: toB %+v, want oper DOWN, no carrier, still admin up", down)
	}
	if down.CarrierChanges <= before.CarrierChanges {
		t.Errorf("carrier changes %d, was %d: the loss was not counted", down.CarrierChanges, before.CarrierChanges)
	}
}

// BenchmarkLinkStatsRead is one Read (a link dump and an address dump)
// of a namespace with 100 links (50 veth pairs; dummy links need a module
// this kernel lacks), each with an address: the kernel side of a state
// sample.
func BenchmarkLinkStatsRead(b *testing.B) {
	ns.Privileged(b)
	a := ns.NewT(b, "lsbench")
	for i := range 50 {
		v, w := fmt.Sprintf("v%d", i), fmt.Sprintf("w%d", i)
		if err := ns.Veth(a, v, a, w); err != nil {
			b.Fatal(err)
		}
		for j, name := range []string{v, w} {
			if err := a.AddAddr(name, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 8, byte(i), byte(1 + j)}), 24)); err != nil {
				b.Fatal(err)
			}
		}
	}
	r, err := NewLinkStatsReader(a.Net())
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.ReportAllocs()
	for b.Loop() {
		ls, err := r.Read(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		if len(ls) != 101 {
			b.Fatalf("%d links, want 101", len(ls))
		}
	}
}
