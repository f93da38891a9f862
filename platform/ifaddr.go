package platform

import (
	"context"
	"errors"
	"net"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	pnl "github.com/switchd/switchd/platform/netlink"
)

// Interfaces' rtnetlink messages. vishvananda/netlink (v1.3.1) knows no
// IFA_PROTO, so the address messages are encoded here on
// platform/netlink's Batch; links and addresses are decoded by
// pnl.ParseEvent (which reads MTU, alias and the address protocol too).

type nlMessage = netlink.Message

// ifEvent is a decoded link or address message.
type ifEvent struct {
	kind  pnl.EventKind
	link  kernelLink // links
	addr  addrKey    // addresses
	proto uint8      // addresses: IFA_PROTO (0 if absent)
}

// ifEventOf is the reconciler's view of a decoded message; ok is false
// for a link without a name (a malformed one).
func ifEventOf(e pnl.Event) (ev ifEvent, ok bool) {
	ev.kind = e.Kind
	switch e.Kind {
	case pnl.LinkNew, pnl.LinkDel:
		ev.link = kernelLink{Index: e.Index, Name: e.Name, Flags: e.Flags, MTU: e.MTU, Alias: e.Alias}
		return ev, e.Name != ""
	}
	ev.addr, ev.proto = addrKey{Index: e.Index, Prefix: e.Prefix}, e.Proto
	return ev, true
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
	b.AttrU8(pnl.IFAProto, AddrProtocol)
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
func (r *Interfaces) watch(mon *pnl.Monitor) {
	defer r.wg.Done()
	for {
		kick := false
		err := mon.Receive(func(e pnl.Event) {
			ev, ok := ifEventOf(e)
			if !ok {
				return
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
	err = c.Addrs(ctx, func() { clear(out) }, func(ev pnl.Event) {
		if ev.Proto == AddrProtocol {
			out[names[ev.Index]] = append(out[names[ev.Index]], ev.Prefix)
		}
	})
	return out, err
}
