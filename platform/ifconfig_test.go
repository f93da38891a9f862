package platform

import (
	"net/netip"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestInterfacesPlan: the diff removes only addresses of ours that are not
// wanted (before anything is added, so an address can move), leaves
// foreign ones alone even where the config does not name them, counts a
// configured address that is there untagged as present, changes only the
// link properties the config sets, and lists configured interfaces the
// kernel lacks.
func TestInterfacesPlan(t *testing.T) {
	pf := netip.MustParsePrefix
	links := map[int]kernelLink{
		1: {Index: 1, Name: "lo", Flags: unix.IFF_UP, MTU: 65536},
		2: {Index: 2, Name: "e1", Flags: unix.IFF_UP, MTU: 1500, Alias: "old"},
		3: {Index: 3, Name: "e2", MTU: 1500},
		4: {Index: 4, Name: "e4", MTU: 1500},
	}
	addrs := map[addrKey]uint8{
		{1, pf("127.0.0.1/8")}:  1,
		{2, pf("10.0.0.0/31")}:  AddrProtocol, // wanted on e2 now: moves
		{2, pf("192.0.2.1/24")}: 0,            // by hand
		{2, pf("fd00::1/64")}:   0,            // configured, there untagged
		{4, pf("10.9.0.0/31")}:  AddrProtocol, // e4 left the config
	}
	desired := map[string]InterfaceConfig{
		"e1": {Name: "e1", Description: ptr("new"), Addrs: []netip.Prefix{pf("fd00::1/64")}},
		"e2": {Name: "e2", Enabled: ptr(true), MTU: 9000, Addrs: []netip.Prefix{pf("10.0.0.0/31")}},
		"e9": {Name: "e9", Addrs: []netip.Prefix{pf("10.9.9.0/31")}},
		"lo": {Name: "lo", Addrs: []netip.Prefix{pf("10.255.0.1/32")}},
	}
	ops, missing := plan(desired, links, addrs)
	var got []string
	for _, o := range ops {
		got = append(got, o.String())
	}
	want := []string{
		"interface e1: remove address 10.0.0.0/31",
		"interface e4: remove address 10.9.0.0/31",
		`interface e1: set description "new"`,
		"interface e2: set up, mtu 9000",
		"interface e2: add address 10.0.0.0/31",
		"interface lo: add address 10.255.0.1/32",
	}
	if !slices.Equal(got, want) {
		t.Errorf("plan:\n got %q\nwant %q", got, want)
	}
	if !slices.Equal(missing, []string{"e9"}) {
		t.Errorf("missing = %v, want [e9]", missing)
	}
}
