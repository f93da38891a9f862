package bgp

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// linkPeers discovers the IPv6 link-local address of the one peer on each
// point-to-point interface an unnumbered neighbor names.
//
// It makes this speaker discoverable and asks the peer at once: every
// probe sends, on each watched interface, an ICMPv6 echo request to
// ff02::1 (the peer's kernel answers from its link-local address, and the
// neighbor solicitation it sends first puts us in its neighbor table) and
// a router advertisement with router lifetime 0 (no default route, no
// prefix; FRR discovers unnumbered peers from RAs). It listens for echo
// replies and router advertisements; a link-local source that is not ours
// is the peer. Probes go out every second while an interface has no peer
// (or a second address answered), every 10 s after.
//
// The peer's address can appear late (the interface or the peer comes up
// after us) or change (the peer was replaced): a different address takes
// over once the current one has been silent for replaceAfter. A missing
// interface, one without a link-local address yet, or a socket that cannot
// be opened is retried at the next probe.
//
// Methods may be called from any goroutine.
type linkPeers struct {
	log    *slog.Logger
	kick   chan struct{} // 1-buffered: found changed
	events chan struct{} // 1-buffered: probe now (an interface to watch, a second address)

	mu      sync.Mutex // guards the fields below
	ifs     map[string]*linkPeer
	running bool
	stopped bool
	conn    *icmp.PacketConn
}

// linkPeer is what discovery knows of one interface.
type linkPeer struct {
	peer, cand   netip.Addr // without zone; cand: a second address that answered
	seen, candAt time.Time
	local        netip.Addr // the interface's own link-local address
}

// Discovery timing: liveness, not speed claims.
const (
	probeFast    = time.Second
	probeSlow    = 10 * time.Second
	replaceAfter = 3 * probeFast
)

func newLinkPeers() *linkPeers {
	return &linkPeers{log: slog.New(slog.DiscardHandler), kick: make(chan struct{}, 1),
		events: make(chan struct{}, 1), ifs: make(map[string]*linkPeer)}
}

// changed signals (coalesced) that found's answer changed.
func (l *linkPeers) changed() <-chan struct{} { return l.kick }

// found is the peer's link-local address on ifname, without zone.
func (l *linkPeers) found(ifname string) (netip.Addr, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p := l.ifs[ifname]; p != nil && p.peer.IsValid() {
		return p.peer, true
	}
	return netip.Addr{}, false
}

// local is the link-local address of ifname itself, as of the last probe.
func (l *linkPeers) local(ifname string) (netip.Addr, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p := l.ifs[ifname]; p != nil && p.local.IsValid() {
		return p.local, true
	}
	return netip.Addr{}, false
}

// watch makes ifs the interfaces to probe; what was found on others is
// forgotten.
func (l *linkPeers) watch(ifs []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	added := false
	for _, name := range ifs {
		if l.ifs[name] == nil {
			l.ifs[name] = &linkPeer{}
			added = true
		}
	}
	for name := range l.ifs {
		if !slices.Contains(ifs, name) {
			delete(l.ifs, name)
		}
	}
	if len(l.ifs) > 0 && !l.running {
		l.running = true
		go l.run()
	}
	if added {
		signal(l.events)
	}
}

func (l *linkPeers) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
	if l.conn != nil {
		l.conn.Close()
		l.conn = nil
	}
	signal(l.events)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// run probes until stop, opening the socket (again) as needed.
func (l *linkPeers) run() {
	var openErr string
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
		case <-l.events:
		}
		conn, wait, stopped := l.socket()
		if stopped {
			return
		}
		if conn == nil {
			if err := l.open(); err != nil && err.Error() != openErr {
				openErr = err.Error()
				l.log.Warn("bgp unnumbered: cannot probe for peers; retrying", "err", err)
			}
			timer.Reset(probeFast)
			continue
		}
		l.probe(conn)
		timer.Reset(wait)
	}
}

// socket is the open socket (nil if none), when to probe next, and
// whether discovery has stopped.
func (l *linkPeers) socket() (*ipv6.PacketConn, time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return nil, 0, true
	}
	wait := probeSlow
	for _, p := range l.ifs {
		if p.cand.IsValid() && time.Since(p.candAt) > 10*probeFast {
			p.cand = netip.Addr{} // the second address went quiet
		}
		if !p.peer.IsValid() || p.cand.IsValid() {
			wait = probeFast
		}
	}
	if l.conn == nil {
		return nil, wait, false
	}
	return l.conn.IPv6PacketConn(), wait, false
}

// open opens the raw ICMPv6 socket and starts its reader.
func (l *linkPeers) open() error {
	c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return err
	}
	pc := c.IPv6PacketConn()
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeEchoReply)
	f.Accept(ipv6.ICMPTypeRouterAdvertisement)
	err = errors.Join(pc.SetICMPFilter(&f), pc.SetControlMessage(ipv6.FlagInterface|ipv6.FlagSrc, true),
		// RFC 4861 6.1.2: a router advertisement's hop limit is 255.
		pc.SetMulticastHopLimit(255), pc.SetMulticastLoopback(false))
	if err != nil {
		c.Close()
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		c.Close()
		return nil
	}
	l.conn = c
	go l.read(c)
	return nil
}

// probe sends an echo request and a router advertisement on each watched
// interface.
func (l *linkPeers) probe(pc *ipv6.PacketConn) {
	l.mu.Lock()
	ifs := make([]string, 0, len(l.ifs))
	for name := range l.ifs {
		ifs = append(ifs, name)
	}
	l.mu.Unlock()
	echo, _ := (&icmp.Message{Type: ipv6.ICMPTypeEchoRequest,
		Body: &icmp.Echo{ID: os.Getpid() & 0xffff, Seq: 1, Data: []byte("switchd unnumbered")}}).Marshal(nil)
	dst := &net.IPAddr{IP: net.IPv6linklocalallnodes}
	for _, name := range ifs {
		ifi, err := net.InterfaceByName(name)
		if err != nil || ifi.Flags&net.FlagUp == 0 {
			continue // not there (yet), or down: the next probe looks again
		}
		l.setLocal(name, linkLocalOf(ifi))
		cm := &ipv6.ControlMessage{IfIndex: ifi.Index, HopLimit: 255}
		// Errors (no link-local address yet, carrier down) are retried
		// by the next probe.
		pc.WriteTo(echo, cm, dst)
		pc.WriteTo(routerAdvert(ifi.HardwareAddr), cm, dst)
	}
}

// routerAdvert is a router advertisement that announces only our
// presence: router lifetime 0 (RFC 4861 4.2: not a default router), no
// prefix, our link-layer address.
func routerAdvert(mac net.HardwareAddr) []byte {
	body := make([]byte, 12) // cur hop limit, flags, router lifetime, reachable time, retrans timer: all 0
	if len(mac) == 6 {
		body = append(body, 1, 1) // source link-layer address option, 8 bytes
		body = append(body, mac...)
	}
	b, _ := (&icmp.Message{Type: ipv6.ICMPTypeRouterAdvertisement, Body: &icmp.RawBody{Data: body}}).Marshal(nil)
	return b
}

// read takes answers until the socket is closed.
func (l *linkPeers) read(c *icmp.PacketConn) {
	pc := c.IPv6PacketConn()
	buf := make([]byte, 1500)
	for {
		n, cm, src, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(probeFast / 10) // a transient error; not a busy loop
			continue
		}
		if n < 1 || cm == nil {
			continue
		}
		typ := ipv6.ICMPType(buf[0])
		if typ != ipv6.ICMPTypeEchoReply && typ != ipv6.ICMPTypeRouterAdvertisement {
			continue
		}
		ip, ok := src.(*net.IPAddr)
		if !ok {
			continue
		}
		a, ok := netip.AddrFromSlice(ip.IP)
		if !ok || !a.Is6() || !a.IsLinkLocalUnicast() {
			continue
		}
		l.heard(cm.IfIndex, a.WithZone(""), time.Now())
	}
}

// heard records that a answered (or advertised itself) on interface
// ifindex.
func (l *linkPeers) heard(ifindex int, a netip.Addr, now time.Time) {
	ifi, err := net.InterfaceByIndex(ifindex)
	if err != nil || ours(ifi, a) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.ifs[ifi.Name]
	if p == nil {
		return
	}
	if l.update(ifi.Name, p, a, now) {
		signal(l.kick)
	}
}

// update applies one answer to p and reports whether the peer changed.
func (l *linkPeers) update(ifname string, p *linkPeer, a netip.Addr, now time.Time) bool {
	switch {
	case !p.peer.IsValid():
		l.log.Info("bgp unnumbered: peer found", "interface", ifname, "peer", a)
	case a == p.peer:
		p.seen = now
		return false
	case now.Sub(p.seen) < replaceAfter:
		if !p.cand.IsValid() {
			l.log.Warn("bgp unnumbered: a second address answers on a point-to-point interface; keeping the first while it answers",
				"interface", ifname, "peer", p.peer, "other", a)
			signal(l.events)
		}
		p.cand, p.candAt = a, now
		return false
	default:
		l.log.Info("bgp unnumbered: peer's address changed", "interface", ifname, "old", p.peer, "peer", a)
	}
	p.peer, p.seen, p.cand = a, now, netip.Addr{}
	return true
}

// ours reports whether a is an address of ifi.
func ours(ifi *net.Interface, a netip.Addr) bool {
	addrs, err := ifi.Addrs()
	if err != nil {
		return true // cannot tell: not taken as a peer this time
	}
	for _, x := range addrs {
		if n, ok := x.(*net.IPNet); ok {
			if b, ok := netip.AddrFromSlice(n.IP); ok && b.Unmap() == a {
				return true
			}
		}
	}
	return false
}

// setLocal records ifname's own link-local address (invalid: none yet).
func (l *linkPeers) setLocal(ifname string, a netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p := l.ifs[ifname]; p != nil && p.local != a {
		p.local = a
		signal(l.kick)
	}
}

// linkLocalOf is ifi's IPv6 link-local address (invalid if it has none,
// or only a tentative one: net does not say, GoBGP's bind will retry).
func linkLocalOf(ifi *net.Interface) netip.Addr {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}
	}
	for _, x := range addrs {
		if n, ok := x.(*net.IPNet); ok {
			if b, ok := netip.AddrFromSlice(n.IP); ok && b.Is6() && b.IsLinkLocalUnicast() {
				return b
			}
		}
	}
	return netip.Addr{}
}
