package source

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

func TestNewEncodesEveryPrefixOnce(t *testing.T) {
	const n = 2500
	s, err := New(Config{
		LocalAS:  65001,
		RouterID: netip.MustParseAddr("10.99.0.1"),
		NextHop:  netip.MustParseAddr("10.99.0.1"),
		First:    netip.MustParsePrefix("16.0.0.0/24"),
		Count:    n,
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []netip.Prefix
	eor := 0
	r := bytes.NewReader(bytes.Join(s.chunks, nil))
	for r.Len() > 0 {
		typ, body, err := readMessage(r)
		if err != nil {
			t.Fatal(err)
		}
		if typ != bgp.BGP_MSG_UPDATE || len(body)+19 > maxMessage {
			t.Fatalf("message type %d, %d bytes", typ, len(body)+19)
		}
		m, err := bgp.ParseBGPMessage(append(header(len(body)+19, typ), body...))
		if err != nil {
			t.Fatal(err)
		}
		u := m.Body.(*bgp.BGPUpdate)
		if len(u.NLRI) == 0 {
			eor++
			continue
		}
		for _, p := range u.NLRI {
			got = append(got, p.NLRI.(*bgp.IPAddrPrefix).Prefix)
		}
	}
	if eor != 1 || len(got) != n {
		t.Fatalf("got %d prefixes and %d End-of-RIBs, want %d and 1", len(got), eor, n)
	}
	for i, p := range got {
		want := netip.AddrFrom4([4]byte{16, byte(i >> 8), byte(i), 0})
		if p != netip.PrefixFrom(want, 24) {
			t.Fatalf("prefix %d is %v, want %v/24", i, p, want)
		}
	}
	if s.Messages() < n/1100 || s.Messages() > n/900+2 {
		t.Errorf("%d messages for %d prefixes: not packed to ~4096 bytes", s.Messages(), n)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	ok := Config{
		LocalAS:  65001,
		RouterID: netip.MustParseAddr("10.99.0.1"),
		NextHop:  netip.MustParseAddr("10.99.0.1"),
		First:    netip.MustParsePrefix("16.0.0.0/24"),
		Count:    10,
	}
	for name, mod := range map[string]func(*Config){
		"no AS":          func(c *Config) { c.LocalAS = 0 },
		"v6 next hop":    func(c *Config) { c.NextHop = netip.MustParseAddr("fd00::1") },
		"unmasked first": func(c *Config) { c.First = netip.MustParsePrefix("16.0.0.1/24") },
		"past the end":   func(c *Config) { c.First = netip.MustParsePrefix("255.255.255.0/24") },
		"negative count": func(c *Config) { c.Count = -1 },
	} {
		c := ok
		mod(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted %+v", name, c)
		}
	}
	if _, err := New(ok); err != nil {
		t.Errorf("valid config rejected: %v", err)
	}
}

// TestNewLargeCommunities: runs of prefixes with equal large communities
// share UPDATEs; each prefix arrives with its own list.
func TestNewLargeCommunities(t *testing.T) {
	const n, run = 1000, 300
	large := func(i int) [][3]uint32 { return [][3]uint32{{65001, 0, 1}, {65001, uint32(1 + i/run), 0}} }
	s, err := New(Config{
		LocalAS: 65001, RouterID: netip.MustParseAddr("10.99.0.1"), NextHop: netip.MustParseAddr("10.99.0.1"),
		First: netip.MustParsePrefix("10.200.0.0/32"), Count: n, Large: large,
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	r := bytes.NewReader(bytes.Join(s.chunks, nil))
	for r.Len() > 0 {
		typ, body, err := readMessage(r)
		if err != nil {
			t.Fatal(err)
		}
		m, err := bgp.ParseBGPMessage(append(header(len(body)+19, typ), body...))
		if err != nil {
			t.Fatal(err)
		}
		u := m.Body.(*bgp.BGPUpdate)
		var got []*bgp.LargeCommunity
		for _, a := range u.PathAttributes {
			if lc, ok := a.(*bgp.PathAttributeLargeCommunities); ok {
				got = lc.Values
			}
		}
		for _, p := range u.NLRI {
			want := large(seen)
			if p.NLRI.(*bgp.IPAddrPrefix).Prefix != netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 200, byte(seen >> 8), byte(seen)}), 32) ||
				len(got) != 2 || got[1].LocalData1 != want[1][1] || got[0].LocalData2 != 1 {
				t.Fatalf("prefix %d: %v with %v, want communities %v", seen, p.NLRI, got, want)
			}
			seen++
		}
	}
	if seen != n || s.Messages() > n/run+n/200+2 {
		t.Errorf("%d prefixes in %d messages, want %d in few", seen, s.Messages(), n)
	}
}
