package policy

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

func TestFailsafeCovers(t *testing.T) {
	def := FailsafeConfig{Extra: Failsafe{TCP: []uint16{8443}, UDP: []uint16{53}}}
	moved := FailsafeConfig{GNMIPort: 50051}
	for _, tc := range []struct {
		c     FailsafeConfig
		proto uint8
		port  uint16
		want  bool
	}{
		{def, ProtoTCP, 179, true},
		{def, ProtoTCP, 22, true},
		{def, ProtoTCP, DefaultGNMIPort, true},
		{def, ProtoUDP, 3784, true},
		{def, ProtoUDP, 3785, true},
		{def, ProtoUDP, 4784, true},
		{def, ProtoTCP, 8443, true},
		{def, ProtoUDP, 53, true},
		{def, ProtoICMP, 0, true},
		{def, ProtoICMPv6, 0, true},
		{def, ProtoTCP, 8080, false},
		{def, ProtoUDP, 22, false},
		{def, ProtoTCP, 53, false},
		{def, ProtoSCTP, 22, false},
		{def, ProtoTCP, 0, false},
		{moved, ProtoTCP, 50051, true},
		{moved, ProtoTCP, DefaultGNMIPort, false},
		{moved, ProtoTCP, 8443, false},
	} {
		if got := tc.c.Covers(tc.proto, tc.port); got != tc.want {
			t.Errorf("%+v: Covers(%d, %d) = %v, want %v", tc.c, tc.proto, tc.port, got, tc.want)
		}
	}
}

// TestFailsafeCut: what a drop to the host would have cut, by protocol
// (0: any) and destination port ranges (none: any).
func TestFailsafeCut(t *testing.T) {
	c := FailsafeConfig{Extra: Failsafe{TCP: []uint16{8443, 22, 0}, UDP: []uint16{53}}}
	all := []string{"tcp/179 (bgp)", "tcp/22 (ssh)", "tcp/9339 (gnmi)", "udp/3784 (bfd)", "udp/3785 (bfd-echo)",
		"udp/4784 (bfd-multihop)", "tcp/8443 (extra)", "udp/53 (extra)", "icmp", "icmpv6"}
	for _, tc := range []struct {
		proto uint8
		ports []PortRange
		want  []string
	}{
		{0, nil, all},
		{ProtoTCP, nil, []string{"tcp/179 (bgp)", "tcp/22 (ssh)", "tcp/9339 (gnmi)", "tcp/8443 (extra)"}},
		{ProtoTCP, []PortRange{{20, 25}, {9000, 9999}}, []string{"tcp/22 (ssh)", "tcp/9339 (gnmi)"}},
		{ProtoTCP, []PortRange{{1000, 2000}}, nil},
		{ProtoUDP, []PortRange{{3784, 3785}}, []string{"udp/3784 (bfd)", "udp/3785 (bfd-echo)"}},
		{0, []PortRange{{53, 53}}, []string{"udp/53 (extra)", "icmp", "icmpv6"}},
		{ProtoICMPv6, nil, []string{"icmpv6"}},
		{ProtoSCTP, nil, nil},
	} {
		var got []string
		for _, s := range c.Cut(tc.proto, tc.ports) {
			got = append(got, s.String())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Cut(%d, %v) = %q, want %q", tc.proto, tc.ports, got, tc.want)
		}
	}
}

// TestFailsafeElements: neighbors by family (unmapped, without zones, once
// each), the service ports in their protocol's set once each, tcp/179 not
// among them unless an extra port adds it; and the Table takes them.
func TestFailsafeElements(t *testing.T) {
	c := FailsafeConfig{
		Neighbors: []netip.Addr{
			netip.MustParseAddr("192.0.2.1"),
			netip.MustParseAddr("::ffff:192.0.2.1"),
			netip.MustParseAddr("2001:db8::1"),
			netip.MustParseAddr("fe80::1%swp1"),
			{},
		},
		GNMIPort: 50051,
		Extra:    Failsafe{TCP: []uint16{22, 8443}, UDP: []uint16{123}},
	}
	_, sets, got := failsafeSlots(c)
	want := map[string][]string{
		SetBGPPeers4:     {"c0000201"},
		SetBGPPeers6:     {"20010db8000000000000000000000001", "fe800000000000000000000000000001"},
		SetFailsafeTCP:   {portHex(22), portHex(50051), portHex(8443)},
		SetFailsafeUDP:   {portHex(3784), portHex(3785), portHex(4784), portHex(123)},
		SetFailsafeICMP:  {"00", "03", "08", "0b", "0c"},
		SetFailsafeICMP6: {"01", "02", "03", "04", "80", "81", "85", "86", "87", "88", "89"},
	}
	for set, keys := range want {
		var h []string
		for _, e := range got[set] {
			h = append(h, fmt.Sprintf("%x", e.Key))
		}
		if !slices.Equal(h, keys) {
			t.Errorf("%s: %v, want %v", set, h, keys)
		}
	}
	if len(got) != len(want) {
		t.Errorf("elements of %d sets, want %d", len(got), len(want))
	}
	tb := NewTable(nil)
	for _, s := range sets {
		must(t, tb.SetSet(s))
		must(t, tb.AddElements(s.Name, got[s.Name]...))
	}

	open := failsafeElements(FailsafeConfig{Extra: Failsafe{TCP: []uint16{179}}})
	if !slices.ContainsFunc(open[SetFailsafeTCP], func(e Element) bool { return fmt.Sprintf("%x", e.Key) == portHex(179) }) {
		t.Errorf("extra tcp/179: failsafe-tcp %v lacks it", open[SetFailsafeTCP])
	}
	if empty := failsafeElements(FailsafeConfig{}); empty[SetBGPPeers4] == nil || len(empty[SetBGPPeers4]) != 0 {
		t.Errorf("no neighbors: bgp-peers4 %v, want an empty list (so the engine empties the set)", empty[SetBGPPeers4])
	}
}

func portHex(p uint16) string { return fmt.Sprintf("%x", binary.BigEndian.AppendUint16(nil, p)) }

// TestFailsafeChainsAreConfigFree: neighbors and ports are elements only,
// so a config change leaves every rule's identity (and kernel handle) as
// it was; the chains install into a Table.
func TestFailsafeChainsAreConfigFree(t *testing.T) {
	a, _, _ := failsafeSlots(FailsafeConfig{})
	b, _, _ := failsafeSlots(FailsafeConfig{Neighbors: []netip.Addr{netip.MustParseAddr("192.0.2.1")}, GNMIPort: 1,
		Extra: Failsafe{TCP: []uint16{2}}})
	if len(a) != 2 || a[0].Name != SlotFailsafeIn || a[1].Name != SlotFailsafeOut {
		t.Fatalf("%d chains, want %s and %s", len(a), SlotFailsafeIn, SlotFailsafeOut)
	}
	tb := NewTable(nil)
	for i := range a {
		if len(a[i].Rules) != len(b[i].Rules) {
			t.Fatalf("%s: %d rules vs %d", a[i].Name, len(a[i].Rules), len(b[i].Rules))
		}
		for j := range a[i].Rules {
			ia, err := a[i].Rules[j].identity()
			must(t, err)
			ib, _ := b[i].Rules[j].identity()
			if ia != ib {
				t.Errorf("%s rule %s differs between configs", a[i].Name, a[i].Rules[j].ID)
			}
		}
		must(t, tb.SetChain(a[i]))
	}
}
