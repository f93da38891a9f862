package fib

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// resolver finds the interface of a gateway, as `ip route get` does.
type resolver struct {
	c    *rtnl
	done map[netip.Addr]resolved
}

type resolved struct {
	ifindex int
	err     error
}

func (r *resolver) ifindex(gw netip.Addr) (int, error) {
	if x, ok := r.done[gw]; ok {
		return x.ifindex, x.err
	}
	ifindex, err := r.lookup(gw)
	if r.done == nil {
		r.done = make(map[netip.Addr]resolved)
	}
	r.done[gw] = resolved{ifindex, err}
	return ifindex, err
}

func (r *resolver) lookup(gw netip.Addr) (int, error) {
	var b msgBuf
	seq := r.c.nextSeq(1)
	b.begin(unix.RTM_GETROUTE, 0, seq)
	b.raw(family(gw), uint8(gw.BitLen()), 0, 0, 0, 0, 0, 0)
	b.u32(0)
	b.attr(unix.RTA_DST, gw.AsSlice())
	b.end()
	if err := unix.Sendto(r.c.fd, b.b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, err
	}
	var kr kroute
	var rerr error
	got := false
	for !got {
		err := r.c.recv(func(h unix.NlMsghdr, data []byte) bool {
			if h.Seq != seq {
				return true
			}
			got = true
			if h.Type == unix.NLMSG_ERROR {
				rerr = parseError(h, data)
				if rerr == nil {
					rerr = errors.New("no answer")
				}
				return false
			}
			var d routeDecoder
			if len(data) >= rtmsgLen {
				// A lookup answer is marked cloned; it is no cache entry here.
				f := binary.NativeEndian.Uint32(data[8:]) &^ unix.RTM_F_CLONED
				binary.NativeEndian.PutUint32(data[8:], f)
			}
			kr, _ = d.decode(data)
			return false
		})
		if err != nil {
			return 0, err
		}
	}
	if rerr != nil {
		return 0, rerr
	}
	if kr.route.Type != Unicast || len(kr.route.NextHops) != 1 {
		return 0, fmt.Errorf("%w (route type %d)", unix.ENETUNREACH, kr.route.Type)
	}
	nh := kr.route.NextHops[0]
	if nh.Gateway.IsValid() && nh.Gateway != gw {
		return 0, fmt.Errorf("not directly connected (reached via %v)", nh.Gateway)
	}
	return nh.Ifindex, nil
}
