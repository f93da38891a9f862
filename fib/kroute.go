package fib

import (
	"encoding/binary"
	"net/netip"

	"github.com/mdlayher/netlink"
	pnl "github.com/switchd/switchd/platform/netlink"
	"golang.org/x/sys/unix"
)

// rtaNHID is RTA_NH_ID: the nexthop object a route uses (x/sys/unix lacks it).
const rtaNHID = 30

const rtmsgLen = 12

// Offload is the hardware state the kernel reports for a route (rtm_flags),
// set by a switchdev driver that offloads the FIB to an ASIC.
type Offload uint8

const (
	Offloaded     Offload = 1 << iota // RTM_F_OFFLOAD: in hardware
	Trapped                           // RTM_F_TRAP: hardware traps matching packets to the CPU
	OffloadFailed                     // RTM_F_OFFLOAD_FAILED: the driver could not offload it
)

func offloadFromFlags(f uint32) Offload {
	return offloadBits(f, unix.RTM_F_OFFLOAD, unix.RTM_F_TRAP, unix.RTM_F_OFFLOAD_FAILED)
}

// offloadBits decodes hardware flags given their bits (0: none).
func offloadBits(f, offload, trap, failed uint32) Offload {
	var o Offload
	if f&offload != 0 {
		o |= Offloaded
	}
	if f&trap != 0 {
		o |= Trapped
	}
	if f&failed != 0 {
		o |= OffloadFailed
	}
	return o
}

func (o Offload) String() string {
	s := ""
	for _, f := range []struct {
		b Offload
		n string
	}{{Offloaded, "offload"}, {Trapped, "trap"}, {OffloadFailed, "offload_failed"}} {
		if o&f.b != 0 {
			if s != "" {
				s += ","
			}
			s += f.n
		}
	}
	if s == "" {
		return "none"
	}
	return s
}

func family(a netip.Addr) uint8 {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// appendRoute encodes an RTM_NEWROUTE (add: exclusive create; replace:
// create or replace) for r. With nhid != 0 the route uses that nexthop
// object; otherwise its next hops are inline (RTA_GATEWAY or RTA_MULTIPATH).
func appendRoute(m *pnl.Batch, kind opKind, r Route, nhid uint32, protocol int) {
	flags := netlink.HeaderFlags(unix.NLM_F_CREATE)
	if kind == opAdd {
		flags |= unix.NLM_F_EXCL
	} else {
		flags |= unix.NLM_F_REPLACE
	}
	m.Begin(unix.RTM_NEWROUTE, flags)
	scope := uint8(unix.RT_SCOPE_UNIVERSE)
	if r.Type == Unicast && nhid == 0 && len(r.NextHops) == 1 && !r.NextHops[0].Gateway.IsValid() {
		scope = unix.RT_SCOPE_LINK // a directly connected route, as iproute2 makes it
	}
	appendRtmsg(m, r.Key, uint8(protocol), scope, uint8(r.Type))
	if r.Type != Unicast {
		m.End()
		return
	}
	if nhid != 0 {
		m.AttrU32(rtaNHID, nhid)
		m.End()
		return
	}
	v4 := r.Key.Dst.Addr().Is4()
	if len(r.NextHops) == 1 {
		nh := r.NextHops[0]
		appendGateway(m, nh.Gateway, v4)
		if nh.Ifindex != 0 {
			m.AttrU32(unix.RTA_OIF, uint32(nh.Ifindex))
		}
		m.End()
		return
	}
	mp := m.Nest(unix.RTA_MULTIPATH)
	for _, nh := range r.NextHops {
		// struct rtnexthop: len, flags, hops (weight-1), ifindex; Nest
		// writes the length and the next two bytes.
		off := m.Nest(binary.NativeEndian.Uint16([]byte{0, byte(nh.Weight - 1)}))
		m.U32(uint32(nh.Ifindex))
		appendGateway(m, nh.Gateway, v4)
		m.EndNest(off)
	}
	m.EndNest(mp)
	m.End()
}

// appendRouteGet encodes the lookup of the route to dst (`ip route get`).
func appendRouteGet(m *pnl.Batch, dst netip.Addr) {
	m.Begin(unix.RTM_GETROUTE, 0)
	m.Raw(family(dst), uint8(dst.BitLen()), 0, 0, 0, 0, 0, 0)
	m.U32(0)
	m.Attr(unix.RTA_DST, dst.AsSlice())
	m.End()
}

// appendDelete encodes an RTM_DELROUTE for the route at k that the kernel
// only honours if the route carries protocol, so a stale view can never
// remove a foreign route.
func appendDelete(m *pnl.Batch, k RouteKey, protocol int) {
	m.Begin(unix.RTM_DELROUTE, 0)
	// RT_SCOPE_NOWHERE and type 0 match any scope and type.
	appendRtmsg(m, k, uint8(protocol), unix.RT_SCOPE_NOWHERE, 0)
	m.End()
}

func appendRtmsg(m *pnl.Batch, k RouteKey, protocol, scope, typ uint8) {
	tbl := uint8(unix.RT_TABLE_COMPAT)
	if k.Table < 256 {
		tbl = uint8(k.Table)
	}
	m.Raw(family(k.Dst.Addr()), uint8(k.Dst.Bits()), 0, k.TOS, tbl, protocol, scope, typ)
	m.U32(0)
	if k.Dst.Bits() > 0 {
		m.Attr(unix.RTA_DST, k.Dst.Addr().AsSlice())
	}
	m.AttrU32(unix.RTA_TABLE, uint32(k.Table))
	if k.Priority != 0 {
		m.AttrU32(unix.RTA_PRIORITY, uint32(k.Priority))
	}
}

func appendGateway(m *pnl.Batch, gw netip.Addr, v4Route bool) {
	switch {
	case !gw.IsValid():
	case gw.Is4() == v4Route:
		m.Attr(unix.RTA_GATEWAY, gw.AsSlice())
	default:
		// RTA_VIA: struct rtvia { family u16; addr }.
		b := binary.NativeEndian.AppendUint16(nil, uint16(family(gw)))
		m.Attr(unix.RTA_VIA, append(b, gw.AsSlice()...))
	}
}

// kroute is what a dump or notification says about one route.
type kroute struct {
	route    Route
	protocol int
	flags    uint32 // rtm_flags
	nhid     uint32
}

// routeDecoder decodes route messages. It shares equal next-hop lists
// between routes (a million routes over one group hold one slice), keyed by
// the raw attributes they were decoded from; its cache lives as long as
// the decoder, one dump.
type routeDecoder struct {
	nhCache map[string][]NextHop
	scratch []byte
}

// header decodes only the fixed part and the table: enough to filter.
func decodeRouteHeader(data []byte) (fam, typ uint8, protocol int, flags uint32, table int, ok bool) {
	if len(data) < rtmsgLen {
		return 0, 0, 0, 0, 0, false
	}
	table = int(data[4])
	forAttrs(data[rtmsgLen:], func(t uint16, v []byte) {
		if t == unix.RTA_TABLE && len(v) >= 4 {
			table = int(binary.NativeEndian.Uint32(v))
		}
	})
	return data[0], data[7], int(data[5]), binary.NativeEndian.Uint32(data[8:]), table, true
}

// nhidOf returns a route message's RTA_NH_ID, 0 if none.
func nhidOf(data []byte) uint32 {
	var id uint32
	if len(data) < rtmsgLen {
		return 0
	}
	forAttrs(data[rtmsgLen:], func(t uint16, v []byte) {
		if t == rtaNHID && len(v) >= 4 {
			id = binary.NativeEndian.Uint32(v)
		}
	})
	return id
}

// decode converts a route message. ok is false for messages that are not
// a plain route (cloned cache entries, bad lengths).
func (d *routeDecoder) decode(data []byte) (kr kroute, ok bool) {
	if len(data) < rtmsgLen {
		return kr, false
	}
	fam, dstLen, tos, typ := data[0], int(data[1]), data[3], data[7]
	kr.protocol = int(data[5])
	kr.flags = binary.NativeEndian.Uint32(data[8:])
	if kr.flags&unix.RTM_F_CLONED != 0 || (fam != unix.AF_INET && fam != unix.AF_INET6) {
		return kr, false
	}
	table := int(data[4])
	var dst, gw, via, oif, mp []byte
	prio := 0
	forAttrs(data[rtmsgLen:], func(t uint16, v []byte) {
		switch t {
		case unix.RTA_DST:
			dst = v
		case unix.RTA_TABLE:
			if len(v) >= 4 {
				table = int(binary.NativeEndian.Uint32(v))
			}
		case unix.RTA_PRIORITY:
			if len(v) >= 4 {
				prio = int(binary.NativeEndian.Uint32(v))
			}
		case unix.RTA_GATEWAY:
			gw = v
		case unix.RTA_VIA:
			via = v
		case unix.RTA_OIF:
			oif = v
		case unix.RTA_MULTIPATH:
			mp = v
		case rtaNHID:
			if len(v) >= 4 {
				kr.nhid = binary.NativeEndian.Uint32(v)
			}
		}
	})
	var addr netip.Addr
	if fam == unix.AF_INET {
		var a [4]byte
		copy(a[:], dst)
		addr = netip.AddrFrom4(a)
	} else {
		var a [16]byte
		copy(a[:], dst)
		addr = netip.AddrFrom16(a)
	}
	if dstLen > addr.BitLen() {
		return kr, false
	}
	kr.route = Route{
		Key:     RouteKey{Table: table, Dst: netip.PrefixFrom(addr, dstLen), TOS: tos, Priority: prio},
		Type:    RouteType(typ),
		offload: offloadFromFlags(kr.flags),
		nhg:     kr.nhid,
	}
	if RouteType(typ) == Unicast {
		kr.route.NextHops = d.nextHops(gw, via, oif, mp)
	}
	// IPv6 metric 0 never comes back (the kernel gives 1024), so the key is
	// already in normalized form; next hops are sorted by nextHops.
	return kr, true
}

func (d *routeDecoder) nextHops(gw, via, oif, mp []byte) []NextHop {
	if d.nhCache == nil {
		d.nhCache = make(map[string][]NextHop)
	}
	s := d.scratch[:0]
	for _, b := range [][]byte{gw, via, oif, mp} {
		s = append(s, byte(len(b)), byte(len(b)>>8))
		s = append(s, b...)
	}
	d.scratch = s
	if nhs, ok := d.nhCache[string(s)]; ok {
		return nhs
	}
	var nhs []NextHop
	if len(mp) > 0 {
		for len(mp) >= 8 {
			l := int(binary.NativeEndian.Uint16(mp))
			if l < 8 || l > len(mp) {
				break
			}
			nh := NextHop{Ifindex: int(int32(binary.NativeEndian.Uint32(mp[4:]))), Weight: int(mp[3]) + 1}
			var g, v []byte
			forAttrs(mp[8:l], func(t uint16, val []byte) {
				switch t {
				case unix.RTA_GATEWAY:
					g = val
				case unix.RTA_VIA:
					v = val
				}
			})
			nh.Gateway = decodeGateway(g, v)
			nhs = append(nhs, nh)
			mp = mp[min(len(mp), nlAlign(l)):]
		}
	} else {
		nh := NextHop{Gateway: decodeGateway(gw, via), Weight: 1}
		if len(oif) >= 4 {
			nh.Ifindex = int(int32(binary.NativeEndian.Uint32(oif)))
		}
		nhs = []NextHop{nh}
	}
	r := Route{NextHops: nhs}
	r.normalizeNextHops()
	d.nhCache[string(s)] = r.NextHops
	return r.NextHops
}

func decodeGateway(gw, via []byte) netip.Addr {
	if len(gw) > 0 {
		a, _ := netip.AddrFromSlice(gw)
		return a
	}
	if len(via) > 2 {
		a, _ := netip.AddrFromSlice(via[2:])
		return a
	}
	return netip.Addr{}
}

func nativeU32(b []byte) uint32 { return binary.NativeEndian.Uint32(b) }
