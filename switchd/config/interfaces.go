package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/platform"
)

// /interfaces: switchd configures interfaces that exist (front-panel
// ports, veths, lo); it creates and deletes none. Per interface it applies
// enabled, mtu and description, and the IPv4 and IPv6 addresses of
// subinterface 0, the interface itself (platform.Interfaces does the
// kernel side). A leaf left out leaves that property as the kernel has it:
// OpenConfig's default enabled=true is not forced onto a link the config
// does not say to bring up. config/type is accepted, as OpenConfig makes
// it mandatory, and not compared with the link: the kernel's name is what
// identifies it.

var ifPath = path{{name: "interfaces"}}

// Kernel limits the checks follow: an interface name fits IFNAMSIZ with
// its NUL; 68 is the smallest MTU IPv4 works with (RFC 791), 1280 IPv6's
// (RFC 8200; the kernel drops a link's IPv6 addresses below it).
const (
	maxIfName = 15
	minMTU    = 68
	minMTU6   = 1280
)

// interfaces translates /interfaces into in.Interfaces, one entry per
// interface in name order.
func (t *translator) interfaces(dev *oc.Device, in *Intent) {
	owner := map[netip.Addr]string{} // each address's interface, for duplicates
	for _, name := range sortedKeys(dev.Interface) {
		i := dev.Interface[name]
		p := ifPath.entry("interface", []kv{{"name", name}})
		if !t.ifName(name, p.child("config").child("name")) {
			continue
		}
		c := platform.InterfaceConfig{Name: name, Enabled: i.Enabled, Description: i.Description}
		for _, idx := range sortedKeys(i.Subinterface) {
			sp := p.child("subinterfaces").entry("subinterface", []kv{{"index", strconv.FormatUint(uint64(idx), 10)}})
			if idx != 0 {
				t.add(sp, "switchd configures subinterface 0 only (the interface's own addresses); VLAN subinterfaces are not supported")
				continue
			}
			s := i.Subinterface[idx]
			var v4 map[string]*oc.Interface_Subinterface_Ipv4_Address
			var v6 map[string]*oc.Interface_Subinterface_Ipv6_Address
			if s.Ipv4 != nil {
				v4 = s.Ipv4.Address
			}
			if s.Ipv6 != nil {
				v6 = s.Ipv6.Address
			}
			for _, ip := range sortedKeys(v4) {
				a := v4[ip]
				c.Addrs = t.ifAddr(c.Addrs, sp.child("ipv4").child("addresses").entry("address", []kv{{"ip", ip}}), ip, a.PrefixLength, false, name, owner)
			}
			for _, ip := range sortedKeys(v6) {
				a := v6[ip]
				c.Addrs = t.ifAddr(c.Addrs, sp.child("ipv6").child("addresses").entry("address", []kv{{"ip", ip}}), ip, a.PrefixLength, true, name, owner)
			}
		}
		if i.Mtu != nil {
			mp := p.child("config").child("mtu")
			switch mtu := uint32(*i.Mtu); {
			case mtu < minMTU:
				t.add(mp, fmt.Sprintf("MTU %d is below %d, the least IPv4 works with", mtu, minMTU))
			case mtu < minMTU6 && hasIPv6(c.Addrs):
				t.add(mp, fmt.Sprintf("MTU %d is below %d, the least IPv6 works with, and the interface has IPv6 addresses", mtu, minMTU6))
			default:
				c.MTU = mtu
			}
		}
		in.Interfaces = append(in.Interfaces, c)
	}
}

// ifName checks that name can be a kernel interface name.
func (t *translator) ifName(name string, p path) bool {
	switch {
	case name == "" || len(name) > maxIfName:
		t.add(p, fmt.Sprintf("%q is not a kernel interface name (1 to %d bytes)", name, maxIfName))
	case name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n"):
		t.add(p, fmt.Sprintf("%q is not a kernel interface name (no '/', ':' or spaces, not . or ..)", name))
	default:
		return true
	}
	return false
}

// ifAddr checks one configured address and appends it. The kernel takes
// any unicast address with any prefix length, the subnet's own network
// address included (a /31 has nothing else); what it would refuse, or
// what cannot be an interface's address, is refused here with its path.
// An IPv6 link-local address is accepted (a fixed one for a fabric link
// whose sessions run over link-local addresses).
func (t *translator) ifAddr(out []netip.Prefix, p path, ip string, plen *uint8, v6 bool, ifname string, owner map[netip.Addr]string) []netip.Prefix {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" || a.Is6() != v6 || a.Is4In6() {
		fam := "IPv4"
		if v6 {
			fam = "IPv6"
		}
		t.add(p.child("config").child("ip"), fmt.Sprintf("%q is not an %s address", ip, fam))
		return out
	}
	switch {
	case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		t.add(p.child("config").child("ip"), fmt.Sprintf("%v cannot be an interface's address", a))
		return out
	case plen == nil:
		t.add(p.child("config").child("prefix-length"), "an address needs its prefix-length")
		return out
	case int(*plen) > a.BitLen() || *plen == 0:
		t.add(p.child("config").child("prefix-length"), fmt.Sprintf("prefix length %d: an address's is 1 to %d", *plen, a.BitLen()))
		return out
	}
	if other, dup := owner[a]; dup {
		t.add(p.child("config").child("ip"), fmt.Sprintf("%v is configured on interface %s too; an address belongs to one interface", a, other))
		return out
	}
	owner[a] = ifname
	return append(out, netip.PrefixFrom(a, int(*plen)))
}

func hasIPv6(ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Addr().Is6() {
			return true
		}
	}
	return false
}
