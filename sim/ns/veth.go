package ns

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Veth creates a veth pair with end aName in a and bName in b, both up.
// Interface names are limited to 15 bytes by the kernel.
func Veth(a *NS, aName string, b *NS, bName string) error {
	if len(aName) > 15 || len(bName) > 15 {
		return fmt.Errorf("veth %s/%s: interface names longer than 15 bytes", aName, bName)
	}
	la := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: aName, Namespace: netlink.NsFd(a.Fd())},
		PeerName:      bName,
		PeerNamespace: netlink.NsFd(b.Fd()),
	}
	// Created from a's handle so that the kernel allocates it there.
	if err := a.nl.LinkAdd(la); err != nil {
		return fmt.Errorf("add veth %s(%s)-%s(%s): %w", aName, a.Name, bName, b.Name, err)
	}
	for _, end := range []struct {
		n    *NS
		name string
	}{{a, aName}, {b, bName}} {
		l, err := end.n.nl.LinkByName(end.name)
		if err == nil {
			err = end.n.nl.LinkSetUp(l)
		}
		if err != nil {
			return fmt.Errorf("set %s up in %s: %w", end.name, end.n.Name, err)
		}
	}
	return nil
}

// AddAddr assigns prefix (an interface address with its prefix length) to
// the named link. IPv6 addresses skip duplicate address detection so they
// are usable at once.
func (n *NS) AddAddr(link string, prefix netip.Prefix) error {
	l, err := n.nl.LinkByName(link)
	if err != nil {
		return fmt.Errorf("address %v on %s in %s: %w", prefix, link, n.Name, err)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{
		IP:   prefix.Addr().AsSlice(),
		Mask: net.CIDRMask(prefix.Bits(), prefix.Addr().BitLen()),
	}}
	if prefix.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := n.nl.AddrReplace(l, a); err != nil {
		return fmt.Errorf("address %v on %s in %s: %w", prefix, link, n.Name, err)
	}
	return nil
}
