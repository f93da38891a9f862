package platform

import (
	"path/filepath"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/switchd/switchd/sim/ns"
)

// TestSwitchdevPortTrees reads each fake tree's interfaces: the switch
// trees' front-panel ports are switchdev ports of one ASIC with their
// port names; the server's and the VM's interfaces, and a name that is
// not there, are not.
func TestSwitchdevPortTrees(t *testing.T) {
	for _, c := range []struct {
		tree, ifname string
		want         PortOffload
	}{
		{"spectrum", "swp1", PortOffload{Switchdev: true, SwitchID: "7cfe90f26640", PortName: "p1"}},
		{"spectrum", "swp4", PortOffload{Switchdev: true, SwitchID: "7cfe90f26640", PortName: "p4"}},
		{"prestera", "sw1p3", PortOffload{Switchdev: true, SwitchID: "0102030405060708", PortName: "p3"}},
		{"spectrum", "eth0", PortOffload{}},
		{"server", "eno1", PortOffload{}},
		{"vm", "ens3", PortOffload{}},
		{"spectrum", "nosuch", PortOffload{}},
	} {
		got := SwitchdevPort(filepath.Join(treeDir, c.tree), c.ifname)
		if got.Switchdev != c.want.Switchdev || got.SwitchID != c.want.SwitchID || got.PortName != c.want.PortName {
			t.Errorf("%s %s: %+v, want %+v", c.tree, c.ifname, got, c.want)
		}
	}
}

// attr encodes attributes for a crafted reply.
func attrs(t *testing.T, f func(ae *netlink.AttributeEncoder)) []byte {
	t.Helper()
	ae := netlink.NewAttributeEncoder()
	f(ae)
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bitset encodes a verbose bitset without a mask: the bits set.
func bitset(t *testing.T, names ...string) func(*netlink.AttributeEncoder) error {
	return func(ae *netlink.AttributeEncoder) error {
		ae.Flag(unix.ETHTOOL_A_BITSET_NOMASK, true)
		ae.Nested(unix.ETHTOOL_A_BITSET_BITS, func(ae *netlink.AttributeEncoder) error {
			for i, n := range names {
				ae.Nested(unix.ETHTOOL_A_BITSET_BITS_BIT, func(ae *netlink.AttributeEncoder) error {
					ae.Uint32(unix.ETHTOOL_A_BITSET_BIT_INDEX, uint32(i))
					ae.String(unix.ETHTOOL_A_BITSET_BIT_NAME, n)
					return nil
				})
			}
			return nil
		})
		return nil
	}
}

// TestParseFeatures decodes a crafted FEATURES_GET reply as a switchdev
// port's would read: hw-tc-offload on and changeable; rx-gro-list off
// and changeable; highdma on but fixed (not in hw); a feature the reply
// does not name is off and fixed.
func TestParseFeatures(t *testing.T) {
	b := attrs(t, func(ae *netlink.AttributeEncoder) {
		ae.Nested(unix.ETHTOOL_A_FEATURES_HW, bitset(t, "hw-tc-offload", "rx-gro-list"))
		ae.Nested(unix.ETHTOOL_A_FEATURES_WANTED, bitset(t, "hw-tc-offload"))
		ae.Nested(unix.ETHTOOL_A_FEATURES_ACTIVE, bitset(t, "hw-tc-offload", "highdma"))
		ae.Nested(unix.ETHTOOL_A_FEATURES_NOCHANGE, bitset(t))
	})
	names := []string{"hw-tc-offload", "rx-gro-list", "highdma", "loopback"}
	got, err := parseFeatures(b, names)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"hw-tc-offload": "on", "rx-gro-list": "off", "highdma": "on [fixed]", "loopback": "off [fixed]"}
	if len(got) != len(want) {
		t.Errorf("%d features, want %d: %v", len(got), len(want), got)
	}
	for n, w := range want {
		if got[n].String() != w {
			t.Errorf("%s: %v, want %s", n, got[n], w)
		}
	}
	// A reply without the active set (compact bitsets) is refused.
	if _, err := parseFeatures(attrs(t, func(ae *netlink.AttributeEncoder) {
		ae.Nested(unix.ETHTOOL_A_FEATURES_HW, bitset(t, "hw-tc-offload"))
	}), names); err == nil {
		t.Error("a reply without active features parsed")
	}
}

// TestFeaturesVethPrivileged reads a veth's features in a namespace
// over ethtool netlink: hw-tc-offload is off and fixed (veth has no
// hardware), and a feature veth lets the user change
// (tx-checksum-ip-generic, on by default) is on and not fixed, so
// "fixed" is read, not assumed.
func TestFeaturesVethPrivileged(t *testing.T) {
	ns.Privileged(t)
	a, b := ns.NewT(t, "fta"), ns.NewT(t, "ftb")
	if err := ns.Veth(a, "toB", b, "toA"); err != nil {
		t.Fatal(err)
	}
	r, err := NewFeatureReader(a.Net())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f, err := r.Feature("toB", HWTCOffload)
	if err != nil {
		t.Fatal(err)
	}
	if f.String() != "off [fixed]" {
		t.Errorf("veth hw-tc-offload: %v, want off [fixed]", f)
	}
	fs, err := r.Features("toB")
	if err != nil {
		t.Fatal(err)
	}
	if g := fs["tx-checksum-ip-generic"]; g.String() != "on" {
		t.Errorf("veth tx-checksum-ip-generic: %v, want on", g)
	}
	if len(fs) < 40 {
		t.Errorf("only %d features named: %v", len(fs), fs)
	}
	if _, err := r.Feature("toB", "no-such-feature"); err == nil {
		t.Error("an unknown feature read without error")
	}
	// The interface is in a's namespace only.
	if _, err := r.Features("toA"); err == nil {
		t.Error("the far end, in another namespace, read from a's")
	}
}
