package netlink

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// EventKind says what an Event reports.
type EventKind uint8

const (
	LinkNew EventKind = iota + 1 // a link appeared or changed (RTM_NEWLINK)
	LinkDel                      // a link went away (RTM_DELLINK)
	AddrNew                      // an address was added (RTM_NEWADDR)
	AddrDel                      // an address was removed (RTM_DELADDR)
)

// Event is a parsed link or address message: a notification, or an entry
// of a dump (LinkNew, AddrNew).
type Event struct {
	Kind  EventKind
	Index int    // the interface's index
	Name  string // links: the interface's name
	// Flags are a link's IFF_* flags (IFF_UP, IFF_LOWER_UP, ...).
	Flags uint32
	MTU   uint32 // links: IFLA_MTU
	Alias string // links: IFLA_IFALIAS (ip link set alias)
	// Proto is an address's protocol (IFA_PROTO, Linux >= 6.3; 0 when
	// absent): who added it.
	Proto uint8
	// Prefix is an address with its prefix length (the local address on
	// a point-to-point link).
	Prefix netip.Prefix
}

// Carrier reports a link that is admin up and has carrier (IFF_UP and
// IFF_LOWER_UP): a link set down locally and a veth whose peer went down
// both lose it.
func (e Event) Carrier() bool {
	return e.Flags&unix.IFF_UP != 0 && e.Flags&unix.IFF_LOWER_UP != 0
}

// ParseEvent decodes an RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR or
// RTM_DELADDR message; ok is false for any other message or a malformed
// one.
func ParseEvent(m netlink.Message) (ev Event, ok bool) {
	d := m.Data
	switch uint16(m.Header.Type) {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		if len(d) < unix.SizeofIfInfomsg {
			return Event{}, false
		}
		ev = Event{Kind: LinkNew, Index: int(int32(binary.NativeEndian.Uint32(d[4:]))), Flags: binary.NativeEndian.Uint32(d[8:])}
		if m.Header.Type == unix.RTM_DELLINK {
			ev.Kind = LinkDel
		}
		attrs := d[unix.SizeofIfInfomsg:]
		if name := attr(attrs, unix.IFLA_IFNAME); name != nil {
			ev.Name = cString(name)
		}
		if mtu := attr(attrs, unix.IFLA_MTU); len(mtu) >= 4 {
			ev.MTU = binary.NativeEndian.Uint32(mtu)
		}
		if alias := attr(attrs, unix.IFLA_IFALIAS); alias != nil {
			ev.Alias = cString(alias)
		}
		return ev, true
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		if len(d) < unix.SizeofIfAddrmsg {
			return Event{}, false
		}
		ev = Event{Kind: AddrNew, Index: int(binary.NativeEndian.Uint32(d[4:]))}
		if m.Header.Type == unix.RTM_DELADDR {
			ev.Kind = AddrDel
		}
		attrs := d[unix.SizeofIfAddrmsg:]
		a := attr(attrs, unix.IFA_LOCAL)
		if a == nil {
			a = attr(attrs, unix.IFA_ADDRESS)
		}
		ip, ok := netip.AddrFromSlice(a)
		if !ok {
			return Event{}, false
		}
		ev.Prefix = netip.PrefixFrom(ip, int(d[1]))
		if p := attr(attrs, IFAProto); len(p) >= 1 {
			ev.Proto = p[0]
		}
		return ev, ev.Prefix.IsValid()
	}
	return Event{}, false
}

// IFAProto is IFA_PROTO (linux/if_addr.h, Linux >= 6.3), a u8;
// golang.org/x/sys/unix does not name it yet.
const IFAProto = 11

// attr returns the payload of the first attribute of type typ in b
// (flags bits ignored), or nil.
func attr(b []byte, typ uint16) []byte {
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b))
		if l < unix.SizeofRtAttr || l > len(b) {
			return nil
		}
		if binary.NativeEndian.Uint16(b[2:])&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER) == typ {
			return b[unix.SizeofRtAttr:l]
		}
		b = b[min(align(l), len(b)):]
	}
	return nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// Links dumps the namespace's links as LinkNew events (reset and retries
// as in Dump).
func (c *Conn) Links(ctx context.Context, reset func(), f func(Event)) error {
	// The counters are not needed, and make a dump of many links large.
	return c.dumpEvents(ctx, unix.RTM_GETLINK, unix.SizeofIfInfomsg, rtextFilterSkipStats, reset, f)
}

// Addrs dumps the namespace's addresses (both families) as AddrNew events.
func (c *Conn) Addrs(ctx context.Context, reset func(), f func(Event)) error {
	return c.dumpEvents(ctx, unix.RTM_GETADDR, unix.SizeofIfAddrmsg, 0, reset, f)
}

// dumpEvents dumps all objects of a type whose request is a zeroed family
// header of hdrLen bytes (with IFLA_EXT_MASK extMask if not 0).
func (c *Conn) dumpEvents(ctx context.Context, typ uint16, hdrLen int, extMask uint32, reset func(), f func(Event)) error {
	var b Batch
	b.Begin(typ, 0)
	b.Raw(make([]byte, hdrLen)...)
	if extMask != 0 {
		b.AttrU32(unix.IFLA_EXT_MASK, extMask)
	}
	b.End()
	return c.Dump(ctx, &b, reset, func(m netlink.Message) error {
		if ev, ok := ParseEvent(m); ok {
			f(ev)
		}
		return nil
	})
}

// Link asks the kernel for the link with index ifindex now (an error
// matching unix.ENODEV if there is none).
func (c *Conn) Link(ifindex int) (Event, error) {
	ev, err := c.getLink(ifindex, "")
	if err != nil {
		return Event{}, fmt.Errorf("get link %d: %w", ifindex, err)
	}
	return ev, nil
}

// LinkByName asks the kernel for the link named name now (an error
// matching unix.ENODEV if there is none).
func (c *Conn) LinkByName(name string) (Event, error) {
	ev, err := c.getLink(0, name)
	if err != nil {
		return Event{}, fmt.Errorf("get link %s: %w", name, err)
	}
	return ev, nil
}

func (c *Conn) getLink(ifindex int, name string) (Event, error) {
	var b Batch
	b.Begin(unix.RTM_GETLINK, 0)
	b.Raw(unix.AF_UNSPEC, 0, 0, 0)
	b.U32(uint32(ifindex))
	b.U32(0)
	b.U32(0)
	if name != "" {
		b.AttrString(unix.IFLA_IFNAME, name)
	}
	b.AttrU32(unix.IFLA_EXT_MASK, rtextFilterSkipStats)
	b.End()
	var ev Event
	var found bool
	var rerr error
	err := c.Exec(&b, func(_ int, m netlink.Message, err error) {
		if err != nil {
			rerr = err
			return
		}
		ev, found = ParseEvent(m)
	})
	if err == nil {
		err = rerr
	}
	if err == nil && !found {
		err = unix.ENODEV
	}
	return ev, err
}

// Monitor receives link and address notifications of a namespace.
// Receive blocks for the next datagram; Close ends it from any goroutine.
type Monitor struct {
	c *Conn
}

// NewMonitor subscribes to link and address (IPv4, IPv6) notifications in
// ns (nil: the calling thread's). Subscribe before listing what exists
// (Conn.Links, Conn.Addrs): a change in between is seen twice, which is
// harmless, while none is missed.
func NewMonitor(ns *NS) (*Monitor, error) {
	c, err := Dial(ns, unix.NETLINK_ROUTE, WithReceiveTimeout(0), WithSocketBuffers(0, 1<<20),
		WithGroups(unix.RTNLGRP_LINK, unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR))
	if err != nil {
		return nil, fmt.Errorf("link monitor: %w", err)
	}
	return &Monitor{c: c}, nil
}

// Receive waits for the next datagram of notifications and calls f for
// each event in it. An error that matches unix.ENOBUFS means events were
// lost (the socket overran): list again. After Close the error matches
// net.ErrClosed.
func (m *Monitor) Receive(f func(Event)) error {
	return m.c.Receive(func(msg netlink.Message) bool {
		if ev, ok := ParseEvent(msg); ok {
			f(ev)
		}
		return true
	})
}

// Close ends the subscription and unblocks Receive.
func (m *Monitor) Close() error { return m.c.Close() }

// rtextFilterSkipStats is RTEXT_FILTER_SKIP_STATS (linux/rtnetlink.h):
// a link lookup does not need the counters.
const rtextFilterSkipStats = 1 << 3
