package host

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	pnl "github.com/switchd/switchd/platform/netlink"
)

// rtconn is an rtnetlink socket bound to one network namespace, for the
// hot path of endpoint setup: requests go out in batches (several netlink
// messages in one sendmsg), so a side of an endpoint is one round trip
// instead of one per object. vishvananda/netlink's Handle sends one
// message per call and locks its socket for the round trip, which
// serializes concurrent Adds on a shared handle.
type rtconn struct {
	c      *pnl.Conn
	b      pnl.Batch
	broken bool // a batch failed as a whole: do not reuse
}

// rtTimeout bounds a wait for the kernel's answer.
const rtTimeout = 30 * time.Second

// dialRT opens an rtnetlink socket in ns (nil: the caller's netns).
func dialRT(ns *pnl.NS) (*rtconn, error) {
	c, err := pnl.Dial(ns, unix.NETLINK_ROUTE, pnl.WithReceiveTimeout(rtTimeout))
	if err != nil {
		return nil, fmt.Errorf("rtnetlink socket: %w", err)
	}
	return &rtconn{c: c}, nil
}

func (c *rtconn) close() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

// reusable reports whether c may go back to the pool: not closed, and no
// batch of it failed as a whole (its late answers would only be skipped,
// but a socket that did not answer in time is suspect).
func (c *rtconn) reusable() bool { return c.c != nil && !c.broken }

// rtmsg is one request of a batch and, after do, its outcome.
type rtmsg struct {
	enc  func(b *pnl.Batch) // appends the request
	what string             // names the operation and object in errors
	err  error
	echo [][]byte // whole messages echoed back (NLM_F_ECHO)
}

// do sends msgs in one write and reads every answer. The kernel handles
// them in order and goes on after a failed one; each message's err says
// how it went. The returned error is the first failure (or a socket
// error).
func (c *rtconn) do(msgs ...*rtmsg) error {
	c.b.Reset()
	for _, m := range msgs {
		m.err, m.echo = nil, nil
		m.enc(&c.b)
	}
	err := c.c.Exec(&c.b, func(i int, reply netlink.Message, err error) {
		m := msgs[i]
		if err != nil {
			m.err = err
			return
		}
		raw := make([]byte, unix.SizeofNlMsghdr+len(reply.Data))
		binary.NativeEndian.PutUint32(raw, reply.Header.Length)
		binary.NativeEndian.PutUint16(raw[4:], uint16(reply.Header.Type))
		copy(raw[unix.SizeofNlMsghdr:], reply.Data)
		m.echo = append(m.echo, raw)
	})
	if err != nil {
		c.broken = true
		return fmt.Errorf("rtnetlink: %w", err)
	}
	for _, m := range msgs {
		if m.err != nil {
			return m.err
		}
	}
	return nil
}

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

// Request encoders. Each matches what the vishvananda/netlink call it
// replaced sends (RouteReplace, AddrReplace, NeighSet, LinkSetUp).

// ifinfomsg appends struct ifinfomsg.
func ifinfomsg(b *pnl.Batch, ifindex int, flags, change uint32) {
	b.Raw(unix.AF_UNSPEC, 0, 0, 0)
	b.U32(uint32(ifindex))
	b.U32(flags)
	b.U32(change)
}

// Veth attribute (linux/veth.h).
const vethInfoPeer = 1

// newVethMsg creates a veth pair in one message: the host end named and
// addressed, up (its carrier stays off until the peer is up, so nothing
// is generated on it yet), the peer created straight in the workload's
// netns under its final name and MAC. NLM_F_ECHO returns the new link, so
// its ifindex and its peer's need no lookup.
func newVethMsg(host string, hostMAC net.HardwareAddr, peer string, peerMAC net.HardwareAddr, peerNS *pnl.NS) *rtmsg {
	return &rtmsg{what: "add veth " + host + "-" + peer, enc: func(b *pnl.Batch) {
		b.Begin(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ECHO)
		ifinfomsg(b, 0, unix.IFF_UP, unix.IFF_UP)
		b.AttrString(unix.IFLA_IFNAME, host)
		b.Attr(unix.IFLA_ADDRESS, hostMAC)
		info := b.Nest(unix.IFLA_LINKINFO)
		b.Attr(unix.IFLA_INFO_KIND, []byte("veth"))
		data := b.Nest(unix.IFLA_INFO_DATA)
		p := b.Nest(vethInfoPeer)
		ifinfomsg(b, 0, 0, 0)
		b.AttrString(unix.IFLA_IFNAME, peer)
		if peerMAC != nil {
			b.Attr(unix.IFLA_ADDRESS, peerMAC)
		}
		b.AttrU32(unix.IFLA_NET_NS_FD, uint32(peerNS.Fd()))
		b.EndNest(p)
		b.EndNest(data)
		b.EndNest(info)
		b.End()
	}}
}

// echoedLink finds the link named name in what an NLM_F_ECHO'd
// RTM_NEWLINK returned: its ifindex and, for a veth, its peer's
// (IFLA_LINK).
func echoedLink(m *rtmsg, name string) (ifindex, peer int, ok bool) {
	for _, raw := range m.echo {
		ifi, attrs, ok := echoedIfinfo(raw)
		if !ok {
			continue
		}
		if n := rtAttr(attrs, unix.IFLA_IFNAME); len(n) > 0 && unix.ByteSliceToString(n) == name {
			if l := rtAttr(attrs, unix.IFLA_LINK); len(l) >= 4 {
				peer = int(int32(binary.NativeEndian.Uint32(l)))
			}
			return int(int32(binary.NativeEndian.Uint32(ifi[4:]))), peer, true
		}
	}
	return 0, 0, false
}

// echoedIfinfo splits an echoed RTM_NEWLINK into its ifinfomsg and its
// attributes.
func echoedIfinfo(raw []byte) (ifi, attrs []byte, ok bool) {
	if len(raw) < unix.SizeofNlMsghdr+unix.SizeofIfInfomsg || binary.NativeEndian.Uint16(raw[4:]) != unix.RTM_NEWLINK {
		return nil, nil, false
	}
	ifi = raw[unix.SizeofNlMsghdr:]
	return ifi, ifi[unix.SizeofIfInfomsg:], true
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
		ifi, attrs, ok := echoedIfinfo(raw)
		if !ok || int(int32(binary.NativeEndian.Uint32(ifi[4:]))) != ifindex {
			continue
		}
		spec := rtAttr(attrs, unix.IFLA_AF_SPEC)
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
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil
	}
	for ad.Next() {
		if ad.Type() == typ {
			return ad.Bytes()
		}
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
	return &rtmsg{what: "configure " + name, enc: func(b *pnl.Batch) {
		b.Begin(unix.RTM_NEWLINK, 0)
		ifinfomsg(b, ifindex, unix.IFF_UP, unix.IFF_UP)
		spec := b.Nest(unix.IFLA_AF_SPEC)
		inet := b.Nest(unix.AF_INET)
		conf := b.Nest(unix.IFLA_INET_CONF)
		for _, c := range []uint16{ipv4DevconfForwarding, ipv4DevconfProxyARP, ipv4DevconfRPFilter} {
			b.AttrU32(c, 1)
		}
		b.EndNest(conf)
		b.EndNest(inet)
		inet6 := b.Nest(unix.AF_INET6)
		b.AttrU8(unix.IFLA_INET6_ADDR_GEN_MODE, addrGenModeNone)
		b.EndNest(inet6)
		b.EndNest(spec)
		b.End()
	}}
}

// Neighbour table attributes (linux/neighbour.h).
const (
	ndtaName        = 1
	ndtaParms       = 6
	ndtpaIfindex    = 1
	ndtpaProxyDelay = 13
)

// proxyDelayMsg sets net.ipv4.neigh.<if>.proxy_delay: proxy ARP answers
// at once instead of after up to 0.8 s.
func proxyDelayMsg(ifindex int, name string, d time.Duration) *rtmsg {
	return &rtmsg{what: "proxy_delay of " + name, enc: func(b *pnl.Batch) {
		b.Begin(unix.RTM_SETNEIGHTBL, 0)
		b.Raw(unix.AF_INET, 0, 0, 0) // struct ndtmsg
		b.AttrString(ndtaName, "arp_cache")
		parms := b.Nest(ndtaParms)
		b.AttrU32(ndtpaIfindex, uint32(ifindex))
		b.AttrU64(ndtpaProxyDelay, uint64(d.Milliseconds()))
		b.EndNest(parms)
		b.End()
	}}
}

func family(a netip.Addr) uint8 {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// neighMsg is NeighSet of a permanent entry.
func neighMsg(ifindex int, a netip.Addr, mac net.HardwareAddr, what string) *rtmsg {
	return &rtmsg{what: what, enc: func(b *pnl.Batch) {
		b.Begin(unix.RTM_NEWNEIGH, unix.NLM_F_CREATE|unix.NLM_F_REPLACE)
		b.Raw(family(a), 0, 0, 0) // struct ndmsg: family, pads
		b.U32(uint32(ifindex))
		b.Raw(binary.NativeEndian.AppendUint16(nil, unix.NUD_PERMANENT)...) // state
		b.Raw(0, 0)                                                         // flags, type
		b.Attr(unix.NDA_DST, a.AsSlice())
		b.Attr(unix.NDA_LLADDR, mac)
		b.End()
	}}
}

// addrMsg is AddrReplace of a/bits on ifindex.
func addrMsg(ifindex int, a netip.Addr, bits int, flags uint32, what string) *rtmsg {
	return &rtmsg{what: what, enc: func(b *pnl.Batch) {
		b.Begin(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_REPLACE)
		b.Raw(family(a), uint8(bits), 0, 0) // struct ifaddrmsg
		b.U32(uint32(ifindex))
		b.Attr(unix.IFA_LOCAL, a.AsSlice())
		b.Attr(unix.IFA_ADDRESS, a.AsSlice())
		if flags != 0 {
			b.AttrU32(unix.IFA_FLAGS, flags)
		}
		b.End()
	}}
}

// linkUpMsg is LinkSetUp.
func linkUpMsg(ifindex int, what string) *rtmsg {
	return &rtmsg{what: what, enc: func(b *pnl.Batch) {
		b.Begin(unix.RTM_NEWLINK, 0)
		ifinfomsg(b, ifindex, unix.IFF_UP, unix.IFF_UP)
		b.End()
	}}
}

// defaultRouteMsg is RouteReplace of a default route via gw out of
// ifindex (onlink for IPv4, whose gateway is on no subnet of the link).
func defaultRouteMsg(ifindex int, gw netip.Addr, what string) *rtmsg {
	return &rtmsg{what: what, enc: func(b *pnl.Batch) {
		b.Begin(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_REPLACE)
		// struct rtmsg: main table, boot protocol, universe scope, unicast
		// (what vishvananda's RouteReplace sends for such a route).
		b.Raw(family(gw), 0, 0, 0, unix.RT_TABLE_MAIN, unix.RTPROT_BOOT, unix.RT_SCOPE_UNIVERSE, unix.RTN_UNICAST)
		var flags uint32
		if gw.Is4() {
			flags = unix.RTNH_F_ONLINK
		}
		b.U32(flags)
		b.Attr(unix.RTA_GATEWAY, gw.AsSlice())
		b.AttrU32(unix.RTA_OIF, uint32(ifindex))
		b.End()
	}}
}
