package platform

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	pnl "github.com/switchd/switchd/platform/netlink"
)

// Interfaces' rtnetlink messages. vishvananda/netlink (v1.3.1) knows no
// IFA_PROTO, so the address messages are encoded here on
// platform/netlink's Batch, and links and addresses are decoded here with
// what pnl.Event leaves out (MTU, alias, address protocol).

type nlMessage = netlink.Message

// ifaProto is IFA_PROTO (linux/if_addr.h, Linux >= 6.3): the address's
// protocol, a u8. golang.org/x/sys/unix does not name it yet.
const ifaProto = 11

// ifEvent is a decoded link or address message.
type ifEvent struct {
	kind  pnl.EventKind
	link  kernelLink // links
	addr  addrKey    // addresses
	proto uint8      // addresses: IFA_PROTO (0 if absent)
}

// parseIfMessage decodes RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR and
// RTM_DELADDR (notifications and dump entries); ok is false for anything
// else or a malformed message.
func parseIfMessage(m nlMessage) (ev ifEvent, ok bool) {
	d := m.Data
	switch uint16(m.Header.Type) {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		if len(d) < unix.SizeofIfInfomsg {
			return ifEvent{}, false
		}
		ev.kind = pnl.LinkNew
		if m.Header.Type == unix.RTM_DELLINK {
			ev.kind = pnl.LinkDel
		}
		ev.link.Index = int(int32(binary.NativeEndian.Uint32(d[4:])))
		ev.link.Flags = binary.NativeEndian.Uint32(d[8:])
		ad, err := netlink.NewAttributeDecoder(d[unix.SizeofIfInfomsg:])
		if err != nil {
			return ifEvent{}, false
		}
		for ad.Next() {
			switch ad.Type() {
			case unix.IFLA_IFNAME:
				ev.link.Name = ad.String()
			case unix.IFLA_MTU:
				ev.link.MTU = ad.Uint32()
			case unix.IFLA_IFALIAS:
				ev.link.Alias = ad.String()
			}
		}
		return ev, ad.Err() == nil && ev.link.Name != ""
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		if len(d) < unix.SizeofIfAddrmsg {
			return ifEvent{}, false
		}
		ev.kind = pnl.AddrNew
		if m.Header.Type == unix.RTM_DELADDR {
			ev.kind = pnl.AddrDel
		}
		plen := int(d[1])
		ev.addr.Index = int(binary.NativeEndian.Uint32(d[4:]))
		ad, err := netlink.NewAttributeDecoder(d[unix.SizeofIfAddrmsg:])
		if err != nil {
			return ifEvent{}, false
		}
		var local, address []byte
		for ad.Next() {
			switch ad.Type() {
			case unix.IFA_LOCAL:
				local = ad.Bytes()
			case unix.IFA_ADDRESS:
				address = ad.Bytes()
			case ifaProto:
				ev.proto = ad.Uint8()
			}
		}
		if local == nil {
			local = address // IPv6 sends IFA_ADDRESS only
		}
		ip, ok := netip.AddrFromSlice(local)
		if !ok || ad.Err() != nil {
			return ifEvent{}, false
		}
		ev.addr.Prefix = netip.PrefixFrom(ip, plen)
		return ev, ev.addr.Prefix.IsValid()
	}
	return ifEvent{}, false
}

func linkDumpRequest() *pnl.Batch {
	var b pnl.Batch
	b.Begin(unix.RTM_GETLINK, 0)
	b.Raw(make([]byte, unix.SizeofIfInfomsg)...)
	// The counters are not needed, and make a dump of many links large.
	b.AttrU32(unix.IFLA_EXT_MASK, 1<<3) // RTEXT_FILTER_SKIP_STATS
	b.End()
	return &b
}

func addrDumpRequest() *pnl.Batch {
	var b pnl.Batch
	b.Begin(unix.RTM_GETADDR, 0)
	b.Raw(make([]byte, unix.SizeofIfAddrmsg)...)
	b.End()
	return &b
}

// encodeOp appends the request that performs o.
func encodeOp(b *pnl.Batch, o ifOp) {
	if o.link != nil {
		encodeLinkChange(b, *o.link)
		return
	}
	family := byte(unix.AF_INET)
	if o.addr.Addr().Is6() {
		family = unix.AF_INET6
	}
	ip := o.addr.Addr().AsSlice()
	if o.del {
		b.Begin(unix.RTM_DELADDR, 0)
	} else {
		// Replace: a configured address already there (ours after a
		// restart) is no error.
		b.Begin(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_REPLACE)
	}
	b.Raw(family, byte(o.addr.Bits()), 0, unix.RT_SCOPE_UNIVERSE)
	b.U32(uint32(o.idx))
	b.Attr(unix.IFA_LOCAL, ip)
	b.Attr(unix.IFA_ADDRESS, ip)
	if o.del {
		b.End()
		return
	}
	if family == unix.AF_INET {
		// As `ip address add ... brd +`: the subnet's broadcast address,
		// which /31 and /32 do not have.
		if o.addr.Bits() < 31 {
			b.Attr(unix.IFA_BROADCAST, broadcast(o.addr))
		}
	} else {
		// No duplicate address detection: the address is usable at once
		// (BGP binds it), and the config refuses the same address twice.
		b.AttrU32(unix.IFA_FLAGS, unix.IFA_F_NODAD)
	}
	b.AttrU8(ifaProto, AddrProtocol)
	b.End()
}

func broadcast(p netip.Prefix) []byte {
	ip := p.Addr().AsSlice()
	mask := net.CIDRMask(p.Bits(), 32)
	for i := range ip {
		ip[i] |= ^mask[i]
	}
	return ip
}

// encodeLinkChange appends an RTM_NEWLINK that changes an existing link.
func encodeLinkChange(b *pnl.Batch, ch linkChange) {
	var flags, change uint32
	if ch.Up != nil {
		change = unix.IFF_UP
		if *ch.Up {
			flags = unix.IFF_UP
		}
	}
	b.Begin(unix.RTM_NEWLINK, 0)
	b.Raw(unix.AF_UNSPEC, 0, 0, 0)
	b.U32(uint32(ch.Index))
	b.U32(flags)
	b.U32(change)
	if ch.MTU != 0 {
		b.AttrU32(unix.IFLA_MTU, ch.MTU)
	}
	if ch.Alias != nil {
		b.AttrString(unix.IFLA_IFALIAS, *ch.Alias)
	}
	b.End()
}

// watch reads notifications until Close: each is queued for the next
// Apply, and those that concern a configured link, an address on one or
// an address of ours kick. Past maxQueuedEvents, or when the socket
// overran, the queue is dropped and the next Apply dumps.
func (r *Interfaces) watch(mon *pnl.Conn) {
	defer r.wg.Done()
	for {
		kick := false
		err := mon.Receive(func(m nlMessage) bool {
			ev, ok := parseIfMessage(m)
			if !ok {
				return true
			}
			r.mu.Lock()
			if len(r.events) >= maxQueuedEvents {
				r.events, r.overrun = nil, true
			}
			if !r.overrun {
				r.events = append(r.events, ev)
			}
			if r.relevantLocked(ev) {
				kick = true
			}
			r.mu.Unlock()
			return true
		})
		if errors.Is(err, unix.ENOBUFS) {
			r.mu.Lock()
			r.events, r.overrun = nil, true
			r.mu.Unlock()
			kick = true
			err = nil
		}
		if err != nil {
			select {
			case <-r.done:
				return
			default:
			}
			r.mu.Lock()
			r.monErr = err
			r.mu.Unlock()
			kick = true
		}
		if kick {
			select {
			case r.kick <- struct{}{}:
			default:
			}
		}
		if err != nil {
			return
		}
	}
}

func (r *Interfaces) relevantLocked(ev ifEvent) bool {
	if r.overrun {
		return true
	}
	switch ev.kind {
	case pnl.LinkNew, pnl.LinkDel:
		return r.watchNm[ev.link.Name] || r.watchIdx[ev.link.Index]
	}
	return ev.proto == AddrProtocol || r.watchIdx[ev.addr.Index]
}

// OwnedAddrs lists the addresses switchd owns in ns (nil: the caller's),
// those tagged with AddrProtocol, by interface name; for tests and tools
// that check what a daemon configured.
func OwnedAddrs(ctx context.Context, ns *pnl.NS) (map[string][]netip.Prefix, error) {
	c, err := pnl.Dial(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	names := map[int]string{}
	if err := c.Links(ctx, func() { clear(names) }, func(ev pnl.Event) { names[ev.Index] = ev.Name }); err != nil {
		return nil, err
	}
	out := map[string][]netip.Prefix{}
	err = c.Dump(ctx, addrDumpRequest(), func() { clear(out) }, func(m nlMessage) error {
		if ev, ok := parseIfMessage(m); ok && ev.proto == AddrProtocol {
			n := names[ev.addr.Index]
			out[n] = append(out[n], ev.addr.Prefix)
		}
		return nil
	})
	return out, err
}
