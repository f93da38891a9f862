package host

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	pnl "github.com/switchd/switchd/platform/netlink"
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

// setupContainer makes the veth pair of ep, or with adopt finishes an
// existing one (repair after a restart), and returns the host side's
// ifindex. Without adopt a veth of ep's name is a leftover without a
// record: it is removed and made again. On error the caller deletes the
// veth.
//
// Three round trips to the kernel for a new endpoint: the veth (created
// with the peer in the workload's netns under its final name, the new
// link echoed back for both ifindexes), one batch for the host side, one
// for the workload side; the IPv6 sysctls only if the new link did not
// inherit the values needed.
func (m *Manager) setupContainer(ep *Endpoint, wns *pnl.NS, adopt bool) (int, error) {
	c, err := m.conn()
	if err != nil {
		return 0, err
	}
	defer m.putConn(c)
	wmac, _ := net.ParseMAC(ep.MAC)
	var hostIdx, peerIdx int
	ipv6Done := false // the host side already forwards IPv6 and ignores RAs
	for try := 0; ; try++ {
		peerNS := wns
		if wns == nil {
			peerNS = m.hostNS // Docker moves the peer itself (docker.go)
		}
		mk := newVethMsg(ep.HostIface, HostMAC, ep.IfName, wmac, peerNS)
		err := c.do(mk)
		if err == nil {
			if idx, peer, ok := echoedLink(mk, ep.HostIface); ok {
				hostIdx, peerIdx = idx, peer
				fwd, ra, ok := echoedIPv6Conf(mk, hostIdx)
				ipv6Done = ok && fwd == 1 && ra != 2
			}
			break
		}
		if !errors.Is(mk.err, unix.EEXIST) {
			return 0, wrap(err, mk)
		}
		if adopt {
			break // finish what is there
		}
		if try > 0 {
			return 0, fmt.Errorf("add veth %s-%s: %w: %s or %s exists already", ep.HostIface, ep.IfName, ErrInvalidRequest, ep.HostIface, ep.IfName)
		}
		if err := m.deleteVeth(ep.HostIface); err != nil {
			return 0, err
		}
	}
	if hostIdx == 0 {
		// Adopting, or a kernel that does not echo new links.
		link, err := m.nl.LinkByName(ep.HostIface)
		if isNotFound(err) {
			// What exists is the peer's name in the workload's netns.
			return 0, fmt.Errorf("add veth %s-%s: %w: %s exists already in %s", ep.HostIface, ep.IfName, ErrInvalidRequest, ep.IfName, ep.Netns)
		}
		if err != nil {
			return 0, fmt.Errorf("look up %s: %w", ep.HostIface, err)
		}
		if _, ok := link.(*netlink.Veth); !ok {
			return 0, fmt.Errorf("endpoint %s: %w: %s exists and is a %s, not a veth", ep.ID, ErrInvalidRequest, ep.HostIface, link.Type())
		}
		hostIdx = link.Attrs().Index
	}

	// Host side, before the workload side comes up: with addr_gen_mode
	// none set while the peer is down, the host end never gets a
	// generated link-local address, only fe80::1.
	hs := []*rtmsg{
		hostLinkMsg(hostIdx, ep.HostIface),
		proxyDelayMsg(hostIdx, ep.HostIface, 0),
	}
	if ep.IPv6.IsValid() {
		hs = append(hs, addrMsg(hostIdx, GatewayV6, 64, unix.IFA_F_NODAD, fmt.Sprintf("add %v to %s", GatewayV6, ep.HostIface)))
	}
	if wns == nil && ep.IPv4.IsValid() {
		hs = append(hs, dockerGatewayMsg(hostIdx, ep.HostIface)) // docker.go
	}
	if wmac != nil {
		for _, a := range ep.Addrs() {
			hs = append(hs, neighMsg(hostIdx, a, wmac, fmt.Sprintf("neighbour %v on %s", a, ep.HostIface)))
		}
	}
	if err := c.do(hs...); err != nil {
		return 0, wrap(err, hs...)
	}
	// The IPv6 sysctls of the host side, only if the new link did not
	// inherit what is needed.
	if !ipv6Done {
		if err := m.hostNS.EnsureSysctls(toPNL(ipv6IfaceSysctls(ep.HostIface))...); err != nil {
			return 0, fmt.Errorf("configure %s: %w", ep.HostIface, err)
		}
	}
	if wns == nil {
		return hostIdx, nil
	}
	wc, err := dialRT(wns)
	if err != nil {
		return 0, fmt.Errorf("netlink in netns %s: %w", ep.Netns, err)
	}
	defer wc.close()
	if peerIdx == 0 {
		link, err := wc.c.LinkByName(ep.IfName)
		if err != nil {
			return 0, fmt.Errorf("look up %s in %s: %w", ep.IfName, ep.Netns, err)
		}
		peerIdx = link.Index
	}
	var ws []*rtmsg
	for _, a := range ep.Addrs() {
		var flags uint32
		if a.Is6() {
			flags = unix.IFA_F_NODAD
		}
		ws = append(ws, addrMsg(peerIdx, a, a.BitLen(), flags, fmt.Sprintf("add %v to %s in %s", a, ep.IfName, ep.Netns)))
	}
	ws = append(ws, linkUpMsg(peerIdx, fmt.Sprintf("set %s up in %s", ep.IfName, ep.Netns)))
	for _, a := range ep.Addrs() {
		gw := GatewayV4
		if a.Is6() {
			gw = GatewayV6
		}
		ws = append(ws,
			neighMsg(peerIdx, gw, HostMAC, fmt.Sprintf("neighbour %v on %s in %s", gw, ep.IfName, ep.Netns)),
			defaultRouteMsg(peerIdx, gw, fmt.Sprintf("default route via %v in %s", gw, ep.Netns)))
	}
	if err := wc.do(ws...); err != nil {
		return 0, wrap(err, ws...)
	}
	return hostIdx, nil
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
