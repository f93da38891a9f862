package bfd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// UDP ports (RFC 5881 §4, RFC 5883 §5) and the source port range (RFC
// 5881 §4: 49152–65535).
const (
	portSingleHop = 3784
	portMultihop  = 4784
	srcPortMin    = 49152
	srcPortMax    = 65535
)

// tosInternetControl is the TOS (traffic class) of our packets: IP
// precedence 6, network control, as FRR and BIRD send BFD.
const tosInternetControl = 0xc0

// listenKey names one of the four receive sockets.
type listenKey struct{ v6, multihop bool }

// openListener opens the receive socket of k: bound to the wildcard
// address and the port of k, asking for the TTL (hop limit), destination
// address and interface of each packet. Sockets open in the calling
// thread's namespace.
func openListener(k listenKey) (int, error) {
	family, port := unix.AF_INET, portSingleHop
	if k.v6 {
		family = unix.AF_INET6
	}
	if k.multihop {
		port = portMultihop
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, fmt.Errorf("bfd listen socket: %w", err)
	}
	var opts [][3]int
	var sa unix.Sockaddr
	if k.v6 {
		opts = [][3]int{{unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1}, {unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT, 1}, {unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1}}
		sa = &unix.SockaddrInet6{Port: port}
	} else {
		opts = [][3]int{{unix.IPPROTO_IP, unix.IP_RECVTTL, 1}, {unix.IPPROTO_IP, unix.IP_PKTINFO, 1}}
		sa = &unix.SockaddrInet4{Port: port}
	}
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o[0], o[1], o[2]); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("bfd listen socket: setsockopt %d/%d: %w", o[0], o[1], err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bfd listen on port %d: %w", port, err)
	}
	return fd, nil
}

// sender is a session's transmit socket: its own source port, TTL 255,
// bound to the local address and interface if configured.
type sender struct {
	fd   int
	dst  unix.Sockaddr
	port int
}

// openSender opens the transmit socket of cfg in the calling thread's
// namespace; ifindex is cfg.Interface's (0 for none).
func openSender(cfg PeerConfig, ifindex int) (sender, error) {
	v6 := cfg.Peer.Is6()
	family, port := unix.AF_INET, portSingleHop
	if v6 {
		family = unix.AF_INET6
	}
	if cfg.Multihop {
		port = portMultihop
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return sender{}, fmt.Errorf("bfd socket: %w", err)
	}
	fail := func(what string, err error) (sender, error) {
		unix.Close(fd)
		return sender{}, fmt.Errorf("bfd socket to %v: %s: %w", cfg.Peer, what, err)
	}
	// Freebind: a local address not (yet) on the machine is no error;
	// the session stays Down until it appears.
	if v6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, 1); err != nil {
			return fail("freebind", err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, 255); err != nil {
			return fail("hop limit", err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_TCLASS, tosInternetControl); err != nil {
			return fail("traffic class", err)
		}
	} else {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_FREEBIND, 1); err != nil {
			return fail("freebind", err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, 255); err != nil {
			return fail("ttl", err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TOS, tosInternetControl); err != nil {
			return fail("tos", err)
		}
	}
	if cfg.Interface != "" {
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, cfg.Interface); err != nil {
			return fail("bind to "+cfg.Interface, err)
		}
	}
	// A source port of our own from the range, tried from a random point:
	// the kernel's ephemeral range is another.
	start := rand.IntN(srcPortMax - srcPortMin + 1)
	for i := 0; ; i++ {
		if i > srcPortMax-srcPortMin {
			return fail("bind", errors.New("no free source port in 49152-65535"))
		}
		p := srcPortMin + (start+i)%(srcPortMax-srcPortMin+1)
		err := unix.Bind(fd, sockaddr(cfg.Local, v6, p, ifindex))
		if err == nil {
			return sender{fd: fd, dst: sockaddr(cfg.Peer, v6, port, ifindex), port: p}, nil
		}
		if !errors.Is(err, unix.EADDRINUSE) {
			return fail(fmt.Sprintf("bind %v port %d", cfg.Local, p), err)
		}
	}
}

// sockaddr is a's socket address with port; the zero Addr is the
// wildcard of the family.
func sockaddr(a netip.Addr, v6 bool, port, ifindex int) unix.Sockaddr {
	if !v6 {
		sa := &unix.SockaddrInet4{Port: port}
		if a.IsValid() {
			sa.Addr = a.As4()
		}
		return sa
	}
	sa := &unix.SockaddrInet6{Port: port}
	if a.IsValid() {
		sa.Addr = a.As16()
		if a.IsLinkLocalUnicast() {
			sa.ZoneId = uint32(ifindex)
		}
	}
	return sa
}

// meta is what the kernel tells about a received packet.
type meta struct {
	src, dst netip.Addr
	ifindex  int
	ttl      int
}

// parseMeta reads the source address and the control messages openListener
// asked for.
func parseMeta(from unix.Sockaddr, oob []byte) (meta, error) {
	m := meta{ttl: -1}
	switch sa := from.(type) {
	case *unix.SockaddrInet4:
		m.src = netip.AddrFrom4(sa.Addr)
	case *unix.SockaddrInet6:
		m.src = netip.AddrFrom16(sa.Addr).Unmap()
	default:
		return m, fmt.Errorf("source address %T", from)
	}
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return m, err
	}
	for _, c := range cmsgs {
		switch {
		case c.Header.Level == unix.IPPROTO_IP && c.Header.Type == unix.IP_TTL && len(c.Data) >= 4,
			c.Header.Level == unix.IPPROTO_IPV6 && c.Header.Type == unix.IPV6_HOPLIMIT && len(c.Data) >= 4:
			m.ttl = int(int32(binary.NativeEndian.Uint32(c.Data)))
		case c.Header.Level == unix.IPPROTO_IP && c.Header.Type == unix.IP_PKTINFO && len(c.Data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo: ifindex, spec_dst, addr (the header's
			// destination).
			m.ifindex = int(int32(binary.NativeEndian.Uint32(c.Data)))
			m.dst = netip.AddrFrom4([4]byte(c.Data[8:12]))
		case c.Header.Level == unix.IPPROTO_IPV6 && c.Header.Type == unix.IPV6_PKTINFO && len(c.Data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo: addr, ifindex.
			m.dst = netip.AddrFrom16([16]byte(c.Data[:16]))
			m.ifindex = int(binary.NativeEndian.Uint32(c.Data[16:]))
		}
	}
	if m.ttl < 0 || !m.dst.IsValid() {
		return m, errors.New("no TTL or destination in the control messages")
	}
	return m, nil
}

// ifindexOf resolves a link name in the calling thread's namespace.
func ifindexOf(name string) (int, error) {
	if name == "" {
		return 0, nil
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return ifi.Index, nil
}
