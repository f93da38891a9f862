package host

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// rtconn is a raw rtnetlink socket bound to one network namespace, for the
// hot path of endpoint setup: requests go out in batches (several netlink
// messages in one sendmsg, one ack each), so a side of an endpoint is one
// round trip instead of one per object. vishvananda/netlink's Handle sends
// one message per call and locks its socket for the round trip, which
// serializes concurrent Adds on a shared handle.
type rtconn struct {
	fd   int
	seq  uint32
	rbuf []byte
}

// rtTimeout bounds a wait for the kernel's answer.
var rtTimeout = unix.Timeval{Sec: 30}

// dialRT opens a rtnetlink socket in h (the caller's netns if h is
// netns.None()).
func dialRT(h netns.NsHandle) (*rtconn, error) {
	var fd int
	open := func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("rtnetlink socket: %w", err)
		}
		return nil
	}
	var err error
	if h.IsOpen() {
		err = inNetns(h, open)
	} else {
		err = open()
	}
	if err != nil {
		return nil, err
	}
	c := &rtconn{fd: fd, rbuf: make([]byte, 32<<10)}
	for _, o := range []struct{ opt, v int }{
		{unix.NETLINK_EXT_ACK, 1}, // error messages from the kernel
		{unix.NETLINK_CAP_ACK, 1}, // acks without a copy of the request
	} {
		unix.SetsockoptInt(fd, unix.SOL_NETLINK, o.opt, o.v) // best effort
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &rtTimeout); err != nil {
		c.close()
		return nil, fmt.Errorf("rtnetlink socket: receive timeout: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		c.close()
		return nil, fmt.Errorf("rtnetlink socket: bind: %w", err)
	}
	return c, nil
}

func (c *rtconn) close() {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
}

// rtmsg is one request of a batch and, after do, its outcome.
type rtmsg struct {
	req  *nl.NetlinkRequest
	what string // names the operation and object in errors
	err  error
	echo [][]byte // whole messages echoed back (NLM_F_ECHO)
}

func newMsg(typ, flags int, what string, data ...nl.NetlinkRequestData) *rtmsg {
	req := nl.NewNetlinkRequest(typ, flags|unix.NLM_F_ACK)
	for _, d := range data {
		req.AddData(d)
	}
	return &rtmsg{req: req, what: what}
}

// do sends msgs in one write and waits for every ack. The kernel handles
// them in order and goes on after a failed one; each message's err says
// how it went. The returned error is the first failure (or a socket
// error).
func (c *rtconn) do(msgs ...*rtmsg) error {
	var buf []byte
	bySeq := make(map[uint32]*rtmsg, len(msgs))
	for _, m := range msgs {
		c.seq++
		m.req.Seq = c.seq
		m.err = nil
		bySeq[c.seq] = m
		buf = append(buf, m.req.Serialize()...)
	}
	if err := unix.Sendto(c.fd, buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("rtnetlink send: %w", err)
	}
	pending := len(msgs)
	for pending > 0 {
		n, _, err := unix.Recvfrom(c.fd, c.rbuf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			// Whatever is late now would desynchronize the socket.
			c.close()
			return fmt.Errorf("rtnetlink: no answer within %ds", rtTimeout.Sec)
		}
		if err != nil {
			c.close()
			return fmt.Errorf("rtnetlink receive: %w", err)
		}
		nms, err := syscall.ParseNetlinkMessage(c.rbuf[:n])
		if err != nil {
			c.close()
			return fmt.Errorf("rtnetlink parse: %w", err)
		}
		for _, nm := range nms {
			m := bySeq[nm.Header.Seq]
			if m == nil {
				continue // not ours (a late answer of an earlier batch cannot happen: close above)
			}
			if nm.Header.Type != unix.NLMSG_ERROR {
				raw := make([]byte, unix.SizeofNlMsghdr+len(nm.Data))
				binary.NativeEndian.PutUint32(raw, nm.Header.Len)
				binary.NativeEndian.PutUint16(raw[4:], nm.Header.Type)
				copy(raw[unix.SizeofNlMsghdr:], nm.Data)
				m.echo = append(m.echo, raw)
				continue
			}
			m.err = ackError(nm)
			delete(bySeq, nm.Header.Seq)
			pending--
		}
	}
	for _, m := range msgs {
		if m.err != nil {
			return m.err
		}
	}
	return nil
}

// ackError decodes an NLMSG_ERROR: nil for an ack, else the errno with the
// kernel's extended-ack message if it sent one.
func ackError(nm syscall.NetlinkMessage) error {
	if len(nm.Data) < 4 {
		return fmt.Errorf("rtnetlink: short ack")
	}
	errno := -int32(binary.NativeEndian.Uint32(nm.Data))
	if errno == 0 {
		return nil
	}
	err := error(syscall.Errno(errno))
	if nm.Header.Flags&unix.NLM_F_ACK_TLVS == 0 {
		return err
	}
	// nlmsgerr: error, then the request's header (just the header with
	// NETLINK_CAP_ACK, or when capped), then TLVs.
	rest := nm.Data[4:]
	if len(rest) < unix.SizeofNlMsghdr {
		return err
	}
	skip := unix.SizeofNlMsghdr
	if nm.Header.Flags&unix.NLM_F_CAPPED == 0 {
		skip = int(nlAlign(binary.NativeEndian.Uint32(rest)))
	}
	if skip > len(rest) {
		return err
	}
	rest = rest[skip:]
	for len(rest) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(rest))
		t := binary.NativeEndian.Uint16(rest[2:])
		if l < unix.SizeofRtAttr || l > len(rest) {
			break
		}
		if t == unix.NLMSGERR_ATTR_MSG {
			return fmt.Errorf("%w (%s)", err, unix.ByteSliceToString(rest[unix.SizeofRtAttr:l]))
		}
		rest = rest[min(int(nlAlign(uint32(l))), len(rest)):]
	}
	return err
}

func nlAlign(n uint32) uint32 { return (n + 3) &^ 3 }

// wrap names the failed messages' operations; err is what do returned,
// which is all there is when the socket itself failed.
func wrap(err error, msgs ...*rtmsg) error {
	var errs []error
	for _, m := range msgs {
		if m.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.what, m.err))
		}
	}
	if len(errs) == 0 && err != nil {
		what := msgs[0].what
		if len(msgs) > 1 {
			what += fmt.Sprintf(" (and %d more)", len(msgs)-1)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	return errors.Join(errs...)
}

// Request builders. Each matches what the vishvananda/netlink call it
// replaces sends (RouteReplace, AddrReplace, NeighSet, LinkSetUp).

// newVethMsg creates a veth pair in one message: the host end named and
// addressed, up (its carrier stays off until the peer is up, so nothing
// is generated on it yet), the peer created straight in the workload's
// netns under its final name and MAC. NLM_F_ECHO returns the new link, so
// its ifindex and its peer's need no lookup.
func newVethMsg(host string, hostMAC net.HardwareAddr, peer string, peerMAC net.HardwareAddr, peerNS netns.NsHandle) *rtmsg {
	ifi := nl.NewIfInfomsg(unix.AF_UNSPEC)
	ifi.Flags, ifi.Change = unix.IFF_UP, unix.IFF_UP
	m := newMsg(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ECHO, "add veth "+host+"-"+peer, ifi,
		nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(host)),
		nl.NewRtAttr(unix.IFLA_ADDRESS, hostMAC))
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("veth"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	p := data.AddRtAttr(nl.VETH_INFO_PEER, nil)
	nl.NewIfInfomsgChild(p, unix.AF_UNSPEC)
	p.AddRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(peer))
	if peerMAC != nil {
		p.AddRtAttr(unix.IFLA_ADDRESS, peerMAC)
	}
	p.AddRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(peerNS)))
	m.req.AddData(info)
	return m
}

// echoedLink finds the link an NLM_F_ECHO'd RTM_NEWLINK returned.
func echoedLink(m *rtmsg, name string) (netlink.Link, bool) {
	for _, raw := range m.echo {
		hdr := unix.NlMsghdr{Len: binary.NativeEndian.Uint32(raw), Type: binary.NativeEndian.Uint16(raw[4:])}
		if hdr.Type != unix.RTM_NEWLINK {
			continue
		}
		l, err := netlink.LinkDeserialize(&hdr, raw[unix.SizeofNlMsghdr:])
		if err == nil && l.Attrs().Name == name {
			return l, true
		}
	}
	return nil, false
}

// IPv6 devconf indexes (linux/ipv6.h, enum DEVCONF_*).
const (
	ipv6DevconfForwarding = 0
	ipv6DevconfAcceptRA   = 3
)

// echoedIPv6Conf reads the host side's IPv6 forwarding and accept_ra from
// the link an NLM_F_ECHO'd RTM_NEWLINK returned (IFLA_AF_SPEC → AF_INET6 →
// IFLA_INET6_CONF, an array of s32 indexed by DEVCONF_*).
func echoedIPv6Conf(m *rtmsg, ifindex int) (forwarding, acceptRA int32, ok bool) {
	for _, raw := range m.echo {
		if len(raw) < unix.SizeofNlMsghdr+unix.SizeofIfInfomsg || binary.NativeEndian.Uint16(raw[4:]) != unix.RTM_NEWLINK {
			continue
		}
		ifi := raw[unix.SizeofNlMsghdr:]
		if int(int32(binary.NativeEndian.Uint32(ifi[4:]))) != ifindex {
			continue
		}
		spec := rtAttr(ifi[unix.SizeofIfInfomsg:], unix.IFLA_AF_SPEC)
		conf := rtAttr(rtAttr(spec, unix.AF_INET6), unix.IFLA_INET6_CONF)
		if len(conf) < 4*(ipv6DevconfAcceptRA+1) {
			return 0, 0, false
		}
		return int32(binary.NativeEndian.Uint32(conf[4*ipv6DevconfForwarding:])),
			int32(binary.NativeEndian.Uint32(conf[4*ipv6DevconfAcceptRA:])), true
	}
	return 0, 0, false
}

// rtAttr returns the payload of the first attribute of type typ in b.
func rtAttr(b []byte, typ uint16) []byte {
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b))
		if l < unix.SizeofRtAttr || l > len(b) {
			return nil
		}
		if binary.NativeEndian.Uint16(b[2:])&^unix.NLA_F_NESTED == typ {
			return b[unix.SizeofRtAttr:l]
		}
		b = b[min(int(nlAlign(uint32(l))), len(b)):]
	}
	return nil
}

// IPv4 devconf indexes (linux/ip.h, enum IPV4_DEVCONF_*).
const (
	ipv4DevconfForwarding = 1
	ipv4DevconfProxyARP   = 3
	ipv4DevconfRPFilter   = 8
)

// hostLinkMsg sets, on the host side of an endpoint in one message, what
// are per-interface sysctls otherwise: IPv4 forwarding, proxy_arp and
// rp_filter (IFLA_INET_CONF), and IPv6 addr_gen_mode none (only fe80::1,
// no generated link-local to wait for), and brings it up. See
// ifaceSysctls for why each.
func hostLinkMsg(ifindex int, name string) *rtmsg {
	ifi := nl.NewIfInfomsg(unix.AF_UNSPEC)
	ifi.Index = int32(ifindex)
	ifi.Flags, ifi.Change = unix.IFF_UP, unix.IFF_UP
	spec := nl.NewRtAttr(unix.IFLA_AF_SPEC, nil)
	conf := spec.AddRtAttr(unix.AF_INET, nil).AddRtAttr(unix.IFLA_INET_CONF, nil)
	for _, c := range []uint16{ipv4DevconfForwarding, ipv4DevconfProxyARP, ipv4DevconfRPFilter} {
		conf.AddRtAttr(int(c), nl.Uint32Attr(1))
	}
	spec.AddRtAttr(unix.AF_INET6, nil).AddRtAttr(unix.IFLA_INET6_ADDR_GEN_MODE, nl.Uint8Attr(addrGenModeNone))
	return newMsg(unix.RTM_NEWLINK, 0, "configure "+name, ifi, spec)
}

// Neighbour table attributes (linux/neighbour.h).
const (
	ndtaName        = 1
	ndtaParms       = 6
	ndtpaIfindex    = 1
	ndtpaProxyDelay = 13
)

type ndtmsg struct{ family uint8 }

func (m ndtmsg) Len() int          { return 4 }
func (m ndtmsg) Serialize() []byte { return []byte{m.family, 0, 0, 0} }

// proxyDelayMsg sets net.ipv4.neigh.<if>.proxy_delay: proxy ARP answers
// at once instead of after up to 0.8 s.
func proxyDelayMsg(ifindex int, name string, d time.Duration) *rtmsg {
	parms := nl.NewRtAttr(ndtaParms, nil)
	parms.AddRtAttr(ndtpaIfindex, nl.Uint32Attr(uint32(ifindex)))
	parms.AddRtAttr(ndtpaProxyDelay, nl.Uint64Attr(uint64(d.Milliseconds())))
	return newMsg(unix.RTM_SETNEIGHTBL, 0, "proxy_delay of "+name, ndtmsg{unix.AF_INET},
		nl.NewRtAttr(ndtaName, nl.ZeroTerminated("arp_cache")), parms)
}

func family(a netip.Addr) int {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// neighMsg is NeighSet of a permanent entry.
func neighMsg(ifindex int, a netip.Addr, mac net.HardwareAddr, what string) *rtmsg {
	return newMsg(unix.RTM_NEWNEIGH, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, what,
		&netlink.Ndmsg{Family: uint8(family(a)), Index: uint32(ifindex), State: netlink.NUD_PERMANENT},
		nl.NewRtAttr(unix.NDA_DST, a.AsSlice()),
		nl.NewRtAttr(unix.NDA_LLADDR, mac))
}

// addrMsg is AddrReplace of a/bits on ifindex.
func addrMsg(ifindex int, a netip.Addr, bits int, flags uint32, what string) *rtmsg {
	ifa := nl.NewIfAddrmsg(family(a))
	ifa.Index = uint32(ifindex)
	ifa.Prefixlen = uint8(bits)
	attrs := []nl.NetlinkRequestData{ifa,
		nl.NewRtAttr(unix.IFA_LOCAL, a.AsSlice()),
		nl.NewRtAttr(unix.IFA_ADDRESS, a.AsSlice())}
	if flags != 0 {
		attrs = append(attrs, nl.NewRtAttr(unix.IFA_FLAGS, nl.Uint32Attr(flags)))
	}
	return newMsg(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, what, attrs...)
}

// linkUpMsg is LinkSetUp.
func linkUpMsg(ifindex int, what string) *rtmsg {
	ifi := nl.NewIfInfomsg(unix.AF_UNSPEC)
	ifi.Index = int32(ifindex)
	ifi.Flags, ifi.Change = unix.IFF_UP, unix.IFF_UP
	return newMsg(unix.RTM_NEWLINK, 0, what, ifi)
}

// defaultRouteMsg is RouteReplace of a default route via gw out of
// ifindex (onlink for IPv4, whose gateway is on no subnet of the link).
func defaultRouteMsg(ifindex int, gw netip.Addr, what string) *rtmsg {
	rt := nl.NewRtMsg()
	rt.Family = uint8(family(gw))
	if gw.Is4() {
		rt.Flags = unix.RTNH_F_ONLINK
	}
	return newMsg(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, what, rt,
		nl.NewRtAttr(unix.RTA_GATEWAY, gw.AsSlice()),
		nl.NewRtAttr(unix.RTA_OIF, nl.Uint32Attr(uint32(ifindex))))
}
