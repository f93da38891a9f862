package bgp

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Graceful restart and the End-of-RIB signal.
//
// What GoBGP 4.8 does by itself (pkg/server; 3.37 alike but where said):
//   - Helper: a session of a neighbor that negotiated the capability and
//     ends without NOTIFICATION (read/write failure, hold timer), or with
//     a non-Hard-Reset NOTIFICATION when both sides set the N bit (RFC
//     8538), marks the neighbor's paths stale instead of withdrawing them.
//     They stay until the neighbor is back and has sent End-of-RIB for
//     every family (then the paths it did not announce again are
//     withdrawn) or until the restart time it announced has passed.
//   - Restarting: a peer added with LocalRestarting sets the R bit in its
//     OPEN and GoBGP sends it nothing until "all" peers have sent End-of-RIB
//     or that peer's DeferralTime has passed. End-of-RIB itself is sent only
//     to peers that negotiated graceful restart (getBestFromLocal); without
//     it a GoBGP peer never sends one.
//   - "All" (peer.receivedAllEOR) leaves out peers established without
//     the capability in their OPEN, peers configured without graceful
//     restart, and peers whose OPEN set the R bit (their End-of-RIB is
//     marked received at the OPEN; FRR sets it for 120 s after its own
//     start); peers not in GoBGP at all (unnumbered neighbors still being
//     discovered) are not even asked. 3.37 also left out every peer whose
//     OPEN it had not seen yet; 4.8 counts a configured graceful-restart
//     peer that is not established as pending. So GoBGP may still flush
//     its incomplete RIB, with End-of-RIB, to a peer before switchd's own
//     initial update is over (sync.go: quiet non-graceful neighbors,
//     pending ones, a restarted peer's real End-of-RIB); that peer then
//     drops the stale routes the speaker would have relayed from the
//     others. A leaf restarted that way cut its hosts off from the rest of
//     the fabric for a second (seen on 3.37).
//
// So the restarting speaker adds one more peer first: a sentinel, a
// minimal BGP speaker inside this process on a loopback address, which
// announces graceful restart for both families and never sends
// End-of-RIB. While its session is up GoBGP's "all peers sent End-of-RIB"
// is false, so nothing is sent to any peer. When Synced closes (every
// neighbor that can be reached sent End-of-RIB, or the sync timeout
// passed; sync.go) the speaker ends the deferral itself (EndDeferral, added
// to the carried GoBGP): GoBGP would still wait for every configured
// graceful-restart peer to come up, and one whose link is down held every
// other peer's routes for its DeferralTime. GoBGP then sends every
// established peer its routes and End-of-RIB at once, and the sentinel
// peer is deleted.

// sentinelAddr is the sentinel's address: in 127/8, so on lo without
// configuration, and unlikely to be a configured neighbor.
var sentinelAddr = netip.MustParseAddr("127.255.179.1")

func grAPI(g *GracefulRestart, restarting bool, deferral time.Duration) *api.GracefulRestart {
	if g == nil || !g.Enabled {
		return nil
	}
	return &api.GracefulRestart{
		Enabled:     true,
		HelperOnly:  g.HelperOnly,
		RestartTime: uint32(secs(g.RestartTime)),
		// N bit (RFC 8538): a NOTIFICATION other than Hard Reset keeps
		// routes too, which is how Stop restarts gracefully.
		NotificationEnabled: true,
		LocalRestarting:     restarting && !g.HelperOnly,
		DeferralTime:        uint32(min(secs(deferral), 65535)),
		StaleRoutesTime:     uint32(secs(g.StaleRoutesTime)),
	}
}

// SetRestarting tells the speaker that this process restarted with its
// forwarding state intact (the FIB adopted routes it had programmed). The
// speaker then sets the restart-state bit for neighbors with graceful
// restart and sends no UPDATE until Synced. It must be called before the
// first Apply.
func (s *Speaker) SetRestarting() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running != nil {
		return fmt.Errorf("set restarting: bgp already running")
	}
	s.restarting = true
	return nil
}

// enforceStaleTime resets the session of a neighbor that came back from a
// restart but has not sent End-of-RIB within its stale-routes-time: GoBGP
// keeps such stale paths for ever otherwise (it parses stale-routes-time
// and never reads it). GoBGP treats a NOTIFICATION it sends itself as the
// end of the session, not a restart, so the reset drops the stale paths.
func (s *Speaker) enforceStaleTime(peers []*api.Peer, since map[netip.Addr]time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil || s.running == nil {
		return
	}
	for _, p := range peers {
		addr, err := netip.ParseAddr(p.GetConf().GetNeighborAddress())
		if err != nil {
			continue
		}
		addr = addr.Unmap()
		n, ok := s.peers[addr]
		gr := p.GetGracefulRestart()
		if !ok || !gr.GetPeerRestarting() || p.GetState().GetSessionState() != api.PeerState_SESSION_STATE_ESTABLISHED {
			delete(since, addr)
			continue
		}
		t, ok := since[addr]
		if !ok {
			since[addr] = time.Now()
			continue
		}
		if time.Since(t) < n.GracefulRestart.StaleRoutesTime {
			continue
		}
		s.log.Warn("neighbor did not send End-of-RIB within stale-routes-time; resetting its session to drop its stale routes",
			"neighbor", addr, "stale-routes-time", n.GracefulRestart.StaleRoutesTime)
		delete(since, addr)
		s.srv.ResetPeer(context.Background(), &api.ResetPeerRequest{Address: addr.String(), Communication: "stale-routes-time expired"})
	}
}

// gracefulStopLocked ends the sessions of neighbors that restart
// gracefully so that they keep our routes: it shuts the sessions' sockets
// down all at once (tcpshut.go says why not with a NOTIFICATION), and
// resets with Cease/Administrative Reset (kept by the N bit, RFC 8538) only
// a session whose socket it did not find. StopBgp's Peer De-configured
// would be a Hard Reset that withdraws them. It waits (bounded) until
// those sessions are down.
func (s *Speaker) gracefulStopLocked() {
	var gr []netip.Addr
	for a, n := range s.peers {
		if g := n.GracefulRestart; g != nil && g.Enabled && !g.HelperOnly {
			gr = append(gr, a)
		}
	}
	if len(gr) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	// GoBGP knows each established session's local address.
	var sessions []sessionAddrs
	s.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		l, err1 := netip.ParseAddr(p.GetTransport().GetLocalAddress())
		r, err2 := netip.ParseAddr(p.GetConf().GetNeighborAddress())
		if err1 == nil && err2 == nil && p.GetState().GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED &&
			slices.ContainsFunc(gr, func(a netip.Addr) bool { return plain(a) == plain(r) }) {
			sessions = append(sessions, sessionAddrs{local: plain(l), remote: plain(r)})
		}
	})
	shut, err := shutdownSessions(sessions)
	if err != nil {
		s.log.Warn("graceful stop: cannot list our sockets; resetting sessions with a NOTIFICATION", "err", err)
	}
	for _, a := range gr {
		if !slices.ContainsFunc(shut, func(c sessionAddrs) bool { return c.remote == plain(a) }) {
			s.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: a.String(), Communication: "switchd restarting"})
		}
	}
	s.log.Info("graceful stop: sessions closed for neighbors to keep our routes", "sockets", len(shut), "neighbors", len(gr))
	for ctx.Err() == nil {
		up := false
		s.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
			if p.GetState().GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED {
				up = true
			}
		})
		if !up {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sentinel is the stand-in peer that holds GoBGP's restarting-mode
// deferral open until Synced; see the comment at the top of this file.
type sentinel struct {
	ln   net.Listener
	asn  uint32
	mu   sync.Mutex // guards conn, released
	conn net.Conn
	rel  bool
	up   chan struct{} // closed when the session has been opened
	once sync.Once
}

// startSentinelLocked listens on the sentinel address and adds it as a
// restarting peer, then waits (bounded) for its session so that it is up
// before any real neighbor can send End-of-RIB.
func (s *Speaker) startSentinelLocked(ctx context.Context, asn uint32, deferral time.Duration) (*sentinel, error) {
	ln, err := net.Listen("tcp4", net.JoinHostPort(sentinelAddr.String(), "0"))
	if err != nil {
		return nil, fmt.Errorf("sentinel listener: %w", err)
	}
	st := &sentinel{ln: ln, asn: asn, up: make(chan struct{})}
	go st.serve()
	port := ln.Addr().(*net.TCPAddr).Port
	g := &GracefulRestart{Enabled: true, RestartTime: DefaultRestartTime}
	p := &api.Peer{
		Conf:            &api.PeerConf{NeighborAddress: sentinelAddr.String(), PeerAsn: asn, Description: "switchd restart sentinel"},
		Timers:          &api.Timers{Config: &api.TimersConfig{ConnectRetry: 1}},
		Transport:       &api.Transport{RemotePort: uint32(port)},
		GracefulRestart: grAPI(g, true, deferral),
	}
	for _, f := range []Family{IPv4Unicast, IPv6Unicast} {
		p.AfiSafis = append(p.AfiSafis, &api.AfiSafi{
			Config:            &api.AfiSafiConfig{Family: f.api(), Enabled: true},
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}},
		})
	}
	if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: p}); err != nil {
		ln.Close()
		return nil, fmt.Errorf("add sentinel peer: %w", err)
	}
	// GoBGP connects after a random 1-2 s.
	wait := time.NewTimer(5 * time.Second)
	defer wait.Stop()
	select {
	case <-st.up:
	case <-wait.C:
		s.log.Warn("restart sentinel session not up; End-of-RIB deferral may be cut short")
	case <-ctx.Done():
	}
	return st, nil
}

func (st *sentinel) serve() {
	for {
		c, err := st.ln.Accept()
		if err != nil {
			return
		}
		st.mu.Lock()
		if st.conn != nil || st.rel {
			st.mu.Unlock()
			c.Close()
			continue
		}
		st.conn = c
		st.mu.Unlock()
		go st.session(c)
	}
}

func (st *sentinel) session(c net.Conn) {
	as16 := uint16(st.asn)
	if st.asn > 65535 {
		as16 = 23456 // AS_TRANS
	}
	var tuples []*bgp.CapGracefulRestartTuple
	caps := []bgp.ParameterCapabilityInterface{
		bgp.NewCapMultiProtocol(bgp.RF_IPv4_UC), bgp.NewCapMultiProtocol(bgp.RF_IPv6_UC),
		bgp.NewCapFourOctetASNumber(st.asn),
	}
	for _, rf := range []bgp.Family{bgp.RF_IPv4_UC, bgp.RF_IPv6_UC} {
		tuples = append(tuples, bgp.NewCapGracefulRestartTuple(rf, true))
	}
	caps = append(caps, bgp.NewCapGracefulRestart(false, false, 120, tuples))
	open, err := bgp.NewBGPOpenMessage(as16, 90, sentinelAddr, []bgp.OptionParameterInterface{bgp.NewOptionParameterCapability(caps)})
	if err != nil {
		c.Close()
		return
	}
	for _, m := range []*bgp.BGPMessage{open, bgp.NewBGPKeepAliveMessage()} {
		b, _ := m.Serialize()
		if _, err := c.Write(b); err != nil {
			c.Close()
			return
		}
	}
	st.once.Do(func() { close(st.up) })
	go func() {
		ka := time.NewTicker(30 * time.Second)
		defer ka.Stop()
		b, _ := bgp.NewBGPKeepAliveMessage().Serialize()
		for range ka.C {
			st.mu.Lock()
			_, err := c.Write(b)
			st.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	// Whatever GoBGP sends is read and dropped.
	io.Copy(io.Discard, c)
	c.Close()
}

// release removes the sentinel peer from srv once the deferral it held is
// over (endDeferral).
func (st *sentinel) release(srv *server.BgpServer) {
	srv.DeletePeer(context.Background(), &api.DeletePeerRequest{Address: sentinelAddr.String()})
	st.close()
}

func (st *sentinel) close() {
	st.ln.Close()
	st.mu.Lock()
	if st.conn != nil {
		st.conn.Close()
	}
	st.rel = true
	st.mu.Unlock()
}
