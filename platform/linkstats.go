package platform

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	pnl "github.com/switchd/switchd/platform/netlink"
)

// LinkStats is one interface as the kernel reports it in a link dump:
// identity, flags, operational state, MTU, 64-bit counters, and its
// addresses. It is what the interfaces' state tree is rendered from.
type LinkStats struct {
	Index int
	Name  string
	// Kind is the link's driver kind (IFLA_INFO_KIND: "veth", "bridge",
	// "vlan", "bond", ...); empty for a physical port or the loopback.
	Kind string
	// Type is the hardware type (ARPHRD_*, e.g. unix.ARPHRD_ETHER).
	Type uint16
	// Flags are the IFF_* flags (IFF_UP is the admin state).
	Flags uint32
	// OperState is the RFC 2863 state (IF_OPER_*, linux/if.h).
	OperState uint8
	MTU       uint32
	// CarrierChanges counts carrier transitions since the link was
	// created (IFLA_CARRIER_CHANGES).
	CarrierChanges uint32
	Counters       LinkCounters
	// Addrs are the link's addresses with their prefix lengths, IPv4
	// first, each family sorted.
	Addrs []netip.Prefix
}

// LinkCounters are the kernel's 64-bit link statistics
// (struct rtnl_link_stats64, the first ten fields).
type LinkCounters struct {
	RxPackets, TxPackets uint64
	RxBytes, TxBytes     uint64
	RxErrors, TxErrors   uint64
	RxDropped, TxDropped uint64
	Multicast            uint64
	Collisions           uint64
}

// The RFC 2863 operational states (linux/if.h IF_OPER_*).
const (
	OperUnknown        = 0
	OperNotPresent     = 1
	OperDown           = 2
	OperLowerLayerDown = 3
	OperTesting        = 4
	OperDormant        = 5
	OperUp             = 6
)

// LinkStatsReader reads every link's state and counters in one namespace:
// one RTM_GETLINK dump and one RTM_GETADDR dump per Read. Its methods
// should only be called from one goroutine.
type LinkStatsReader struct {
	c *pnl.Conn
}

// NewLinkStatsReader opens a netlink socket in namespace h (nil for the
// caller's).
func NewLinkStatsReader(h *pnl.NS) (*LinkStatsReader, error) {
	c, err := pnl.Dial(h, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("link stats: %w", err)
	}
	return &LinkStatsReader{c: c}, nil
}

// Close closes the socket.
func (r *LinkStatsReader) Close() error { return r.c.Close() }

// Read returns every link of the namespace, sorted by index.
func (r *LinkStatsReader) Read(ctx context.Context) ([]LinkStats, error) {
	var links []LinkStats
	var req pnl.Batch
	req.Begin(unix.RTM_GETLINK, 0)
	req.Raw(make([]byte, unix.SizeofIfInfomsg)...)
	req.End()
	err := r.c.Dump(ctx, &req, func() { links = links[:0] }, func(m netlink.Message) error {
		if l, ok := ParseLinkStats(m.Data); ok {
			links = append(links, l)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("link stats: %w", err)
	}
	slices.SortFunc(links, func(a, b LinkStats) int { return a.Index - b.Index })
	byIndex := make(map[int]int, len(links))
	for i, l := range links {
		byIndex[l.Index] = i
	}
	err = r.c.Addrs(ctx, func() {
		for i := range links {
			links[i].Addrs = links[i].Addrs[:0]
		}
	}, func(ev pnl.Event) {
		if i, ok := byIndex[ev.Index]; ok {
			links[i].Addrs = append(links[i].Addrs, ev.Prefix)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("link stats: %w", err)
	}
	for i := range links {
		slices.SortFunc(links[i].Addrs, comparePrefix)
	}
	return links, nil
}

// comparePrefix orders IPv4 before IPv6, then by address and length.
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// ParseLinkStats decodes an RTM_NEWLINK message's payload (ifinfomsg and
// attributes); ok is false if it is malformed.
func ParseLinkStats(d []byte) (l LinkStats, ok bool) {
	if len(d) < unix.SizeofIfInfomsg {
		return l, false
	}
	l.Type = binary.NativeEndian.Uint16(d[2:])
	l.Index = int(int32(binary.NativeEndian.Uint32(d[4:])))
	l.Flags = binary.NativeEndian.Uint32(d[8:])
	ad, err := netlink.NewAttributeDecoder(d[unix.SizeofIfInfomsg:])
	if err != nil {
		return l, false
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.IFLA_IFNAME:
			l.Name = ad.String()
		case unix.IFLA_MTU:
			l.MTU = ad.Uint32()
		case unix.IFLA_OPERSTATE:
			l.OperState = ad.Uint8()
		case unix.IFLA_CARRIER_CHANGES:
			l.CarrierChanges = ad.Uint32()
		case unix.IFLA_STATS64:
			ad.Do(func(b []byte) error { l.Counters = parseStats64(b); return nil })
		case unix.IFLA_LINKINFO:
			ad.Nested(func(nd *netlink.AttributeDecoder) error {
				for nd.Next() {
					if nd.Type() == unix.IFLA_INFO_KIND {
						l.Kind = nd.String()
					}
				}
				return nil
			})
		}
	}
	return l, ad.Err() == nil && l.Name != ""
}

// parseStats64 reads the first ten u64 fields of rtnl_link_stats64; a
// shorter payload leaves the missing ones zero.
func parseStats64(b []byte) LinkCounters {
	var v [10]uint64
	for i := range v {
		if len(b) < 8*(i+1) {
			break
		}
		v[i] = binary.NativeEndian.Uint64(b[8*i:])
	}
	return LinkCounters{
		RxPackets: v[0], TxPackets: v[1], RxBytes: v[2], TxBytes: v[3],
		RxErrors: v[4], TxErrors: v[5], RxDropped: v[6], TxDropped: v[7],
		Multicast: v[8], Collisions: v[9],
	}
}
