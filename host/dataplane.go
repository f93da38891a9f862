package host

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Kernel side of endpoints. Every step is idempotent (replace, set) so the
// same functions finish a half-done setup after a restart.

// addrGenModeNone is IN6_ADDR_GEN_MODE_NONE (linux/if_link.h).
const addrGenModeNone = 1

func ipNet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, a.BitLen())}
}

func isNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) ||
		errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EADDRNOTAVAIL)
}

// hostSide configures the host end of any endpoint (veth or tap): routed
// point-to-point port sysctls, fe80::1 as the workload's IPv6 gateway,
// static neighbours for the workload when its MAC is known, link up.
func (m *Manager) hostSide(link netlink.Link, ep *Endpoint) error {
	name := link.Attrs().Name
	if err := writeSysctls(m.hostNS, ifaceSysctls(name)); err != nil {
		return fmt.Errorf("configure %s: %w", name, err)
	}
	gw := &netlink.Addr{IPNet: ipNet(GatewayV6, 64), Flags: unix.IFA_F_NODAD}
	if ep.IPv6.IsValid() {
		if err := m.nl.AddrReplace(link, gw); err != nil {
			return fmt.Errorf("add %v to %s: %w", GatewayV6, name, err)
		}
	}
	if err := m.nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	if ep.MAC != "" {
		mac, err := net.ParseMAC(ep.MAC)
		if err != nil {
			return fmt.Errorf("endpoint %s: MAC %q: %w", ep.ID, ep.MAC, err)
		}
		for _, a := range ep.Addrs() {
			if err := m.nl.NeighSet(permanentNeigh(link.Attrs().Index, a, mac)); err != nil {
				return fmt.Errorf("neighbour %v on %s: %w", a, name, err)
			}
		}
	}
	return nil
}

func permanentNeigh(ifindex int, a netip.Addr, mac net.HardwareAddr) *netlink.Neigh {
	fam := unix.AF_INET
	if a.Is6() {
		fam = unix.AF_INET6
	}
	return &netlink.Neigh{LinkIndex: ifindex, Family: fam, State: netlink.NUD_PERMANENT, IP: a.AsSlice(), HardwareAddr: mac}
}

// setupContainer makes (or finishes) the veth pair of ep and returns the
// host side's ifindex. On error the caller deletes the veth.
func (m *Manager) setupContainer(ep *Endpoint, wns netns.NsHandle) (int, error) {
	link, err := m.nl.LinkByName(ep.HostIface)
	if err != nil && !isNotFound(err) {
		return 0, fmt.Errorf("look up %s: %w", ep.HostIface, err)
	}
	wmac, _ := net.ParseMAC(ep.MAC)
	if link == nil {
		veth := &netlink.Veth{
			LinkAttrs:        netlink.LinkAttrs{Name: ep.HostIface, HardwareAddr: HostMAC},
			PeerName:         ep.IfName,
			PeerHardwareAddr: wmac,
			PeerNamespace:    netlink.NsFd(int(wns)),
		}
		if err := m.nl.LinkAdd(veth); err != nil {
			if errors.Is(err, unix.EEXIST) {
				return 0, fmt.Errorf("add veth %s-%s: %w: %s or %s exists already", ep.HostIface, ep.IfName, ErrInvalidRequest, ep.HostIface, ep.IfName)
			}
			return 0, fmt.Errorf("add veth %s-%s: %w", ep.HostIface, ep.IfName, err)
		}
		if link, err = m.nl.LinkByName(ep.HostIface); err != nil {
			return 0, fmt.Errorf("look up new veth %s: %w", ep.HostIface, err)
		}
		// Only fe80::1: no generated link-local to wait for or to confuse
		// the workload's router discovery.
		if err := m.nl.LinkSetIP6AddrGenMode(link, addrGenModeNone); err != nil {
			return 0, fmt.Errorf("addr_gen_mode of %s: %w", ep.HostIface, err)
		}
	} else if _, ok := link.(*netlink.Veth); !ok {
		return 0, fmt.Errorf("endpoint %s: %w: %s exists and is a %s, not a veth", ep.ID, ErrInvalidRequest, ep.HostIface, link.Type())
	}
	if err := m.hostSide(link, ep); err != nil {
		return 0, err
	}
	wh, err := netlink.NewHandleAt(wns, unix.NETLINK_ROUTE)
	if err != nil {
		return 0, fmt.Errorf("netlink in netns %s: %w", ep.Netns, err)
	}
	defer wh.Close()
	if err := workloadSide(wh, ep); err != nil {
		return 0, err
	}
	return link.Attrs().Index, nil
}

// workloadSide configures the container end: its addresses (/32, /128, no
// DAD: the address is ours by allocation), link up, default routes through
// the link-local gateways, permanent neighbour entries for them.
func workloadSide(wh *netlink.Handle, ep *Endpoint) error {
	link, err := wh.LinkByName(ep.IfName)
	if err != nil {
		return fmt.Errorf("look up %s in %s: %w", ep.IfName, ep.Netns, err)
	}
	idx := link.Attrs().Index
	for _, a := range ep.Addrs() {
		na := &netlink.Addr{IPNet: ipNet(a, a.BitLen())}
		if a.Is6() {
			na.Flags = unix.IFA_F_NODAD
		}
		if err := wh.AddrReplace(link, na); err != nil {
			return fmt.Errorf("add %v to %s in %s: %w", a, ep.IfName, ep.Netns, err)
		}
	}
	if err := wh.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up in %s: %w", ep.IfName, ep.Netns, err)
	}
	for _, r := range workloadRoutes(ep, idx) {
		gw, _ := netip.AddrFromSlice(r.Gw)
		if err := wh.NeighSet(permanentNeigh(idx, gw.Unmap(), HostMAC)); err != nil {
			return fmt.Errorf("neighbour %v on %s in %s: %w", gw, ep.IfName, ep.Netns, err)
		}
		if err := wh.RouteReplace(&r); err != nil {
			return fmt.Errorf("default route via %v in %s: %w", gw, ep.Netns, err)
		}
	}
	return nil
}

func workloadRoutes(ep *Endpoint, idx int) []netlink.Route {
	var rs []netlink.Route
	if ep.IPv4.IsValid() {
		rs = append(rs, netlink.Route{LinkIndex: idx, Dst: ipNet(netip.IPv4Unspecified(), 0), Gw: GatewayV4.AsSlice(),
			Flags: int(netlink.FLAG_ONLINK), Family: unix.AF_INET})
	}
	if ep.IPv6.IsValid() {
		rs = append(rs, netlink.Route{LinkIndex: idx, Dst: ipNet(netip.IPv6Unspecified(), 0), Gw: GatewayV6.AsSlice(), Family: unix.AF_INET6})
	}
	return rs
}

// deleteVeth removes the host end, and with it the workload end.
func (m *Manager) deleteVeth(name string) error {
	link, err := m.nl.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err == nil {
		err = m.nl.LinkDel(link)
	}
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("delete veth %s: %w", name, err)
	}
	return nil
}

// releaseTap undoes what hostSide added to an adopted tap; the tap and its
// sysctls stay (they are the hypervisor's).
func (m *Manager) releaseTap(ep *Endpoint) error {
	link, err := m.nl.LinkByName(ep.HostIface)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up tap %s: %w", ep.HostIface, err)
	}
	var errs []error
	if ep.MAC != "" {
		mac, _ := net.ParseMAC(ep.MAC)
		for _, a := range ep.Addrs() {
			if err := m.nl.NeighDel(permanentNeigh(link.Attrs().Index, a, mac)); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("delete neighbour %v on %s: %w", a, ep.HostIface, err))
			}
		}
	}
	if ep.IPv6.IsValid() {
		if err := m.nl.AddrDel(link, &netlink.Addr{IPNet: ipNet(GatewayV6, 64)}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("delete %v from %s: %w", GatewayV6, ep.HostIface, err))
		}
	}
	return errors.Join(errs...)
}

// checkWorkload verifies the container end against the record.
func checkWorkload(wh *netlink.Handle, ep *Endpoint) error {
	link, err := wh.LinkByName(ep.IfName)
	if err != nil {
		return fmt.Errorf("check %s: %s missing in %s: %w", ep.ID, ep.IfName, ep.Netns, err)
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("check %s: %s is down in %s", ep.ID, ep.IfName, ep.Netns)
	}
	addrs, err := wh.AddrList(link, unix.AF_UNSPEC)
	if err != nil {
		return fmt.Errorf("check %s: list addresses: %w", ep.ID, err)
	}
	for _, a := range ep.Addrs() {
		if !slices.ContainsFunc(addrs, func(x netlink.Addr) bool {
			y, _ := netip.AddrFromSlice(x.IP)
			ones, _ := x.Mask.Size()
			return y.Unmap() == a && ones == a.BitLen()
		}) {
			return fmt.Errorf("check %s: %s in %s lacks %v", ep.ID, ep.IfName, ep.Netns, hostPrefix(a))
		}
	}
	for _, want := range workloadRoutes(ep, link.Attrs().Index) {
		got, err := wh.RouteListFiltered(want.Family, &netlink.Route{LinkIndex: want.LinkIndex}, netlink.RT_FILTER_OIF)
		if err != nil {
			return fmt.Errorf("check %s: list routes: %w", ep.ID, err)
		}
		if !slices.ContainsFunc(got, func(r netlink.Route) bool {
			isDefault := r.Dst == nil
			if r.Dst != nil {
				ones, _ := r.Dst.Mask.Size()
				isDefault = ones == 0
			}
			return isDefault && r.Gw.Equal(want.Gw)
		}) {
			return fmt.Errorf("check %s: no default route via %v dev %s in %s", ep.ID, want.Gw, ep.IfName, ep.Netns)
		}
	}
	return nil
}
