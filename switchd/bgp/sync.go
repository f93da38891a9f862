package bgp

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// The end of the initial update: when the speaker has learned everything
// its neighbors have, so that the daemon can sweep the routes a previous
// run left in the kernel that nobody announces any more.
//
// Per neighbor and negotiated family, the initial update is over when:
//   - End-of-RIB arrived (RFC 4724; GoBGP records it whenever one arrives).
//     But a restarting GoBGP also records it at the OPEN of a neighbor
//     that set the Restart State (R) bit (fsm.go, after RFC 4724 §3: do
//     not wait for that neighbor's End-of-RIB before advertising), and
//     FRR sets R in every OPEN for 120 s after its own start (BIRD only
//     while it recovers after bird -R, its gr_recovery): trusting
//     the record ended the initial update before FRR re-sent anything and
//     swept the routes it was about to confirm. From such a neighbor only
//     an End-of-RIB seen on GoBGP's watch (eorWatch) counts;
//   - or, if graceful restart was not negotiated for the family (we did not
//     announce it, or the neighbor's last OPEN did not), the session has
//     been established and the neighbor's update stream quiet for
//     quietFor. Such a neighbor need not send End-of-RIB, and GoBGP
//     peers never do without graceful restart (getBestFromLocal), so
//     waiting for one means waiting for the timeout. "Quiet" is measured
//     on what GoBGP counts for the neighbor: UPDATE messages read, paths
//     in its Adj-RIB-In (counted after processing) and the session's
//     uptime; and the best-path watch must have been idle for watchIdle,
//     so that the paths are in the route table before Synced closes.
//     A neighbor with graceful restart negotiated still waits for its
//     End-of-RIB: it promised one.
//
// A neighbor that does not come up holds Synced until the sync timeout if
// graceful restart is configured for it (its peers keep our routes that
// long too), and only for noGRUpWait if not: a router that restarted
// without graceful restart has lost its sessions anyway, and the routes
// it left in the kernel are guesses to be swept soon, not kept for two
// minutes. A neighbor the daemon knows cannot be reached (the link to it
// has no carrier; SetUnreachableNeighbors) is not waited for at all: a
// leaf restarting with an uplink down would otherwise keep its hosts on
// the stale routes of its previous run through that uplink, its peers'
// and its own, until the timeout.
//
// When Synced closes the speaker ends GoBGP's restarting-mode deferral
// (EndDeferral, in the carried GoBGP): GoBGP's own end waits for every
// configured graceful-restart peer to be established, so one that is down
// would hold every peer's routes for the whole DeferralTime.

const (
	quietFor   = 2 * time.Second
	watchIdle  = 250 * time.Millisecond
	noGRUpWait = 10 * time.Second
)

// Synced is closed once every enabled neighbor configured at the first
// Apply has finished its initial update (End-of-RIB, or a quiet update
// stream without graceful restart; see above), or is not waited for any
// more, or the sync timeout (Config.SyncTimeout) has passed since that
// Apply, whichever comes first. It closes once per Speaker; later changes
// do not reopen it.
func (s *Speaker) Synced() <-chan struct{} { return s.synced }

// syncState tracks the wait for the end of the initial update; owned by
// the monitor goroutine.
type syncState struct {
	start    time.Time
	deadline time.Time
	sentinel *sentinel // nil unless restarting
	quiet    map[netip.Addr]quietMark
	eors     *eorWatch
}

// eorWatch holds the End-of-RIB markers each neighbor sent in its current
// session, from GoBGP's watch: the watch reports only markers received,
// never those GoBGP assumes at an OPEN with the R bit. Its EOR and peer
// events come in order on one goroutine, so a session's end clears the
// markers of that session before the next one's arrive.
type eorWatch struct {
	mu   sync.Mutex
	seen map[netip.Addr]map[Family]bool
}

func newEORWatch() *eorWatch { return &eorWatch{seen: map[netip.Addr]map[Family]bool{}} }

// eorKey: GoBGP names the sender of a marker by its transport address, the
// peer by its configured one; they differ at most in the zone.
func eorKey(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

// onEOR takes an End-of-RIB from the watch (OnPathEor).
func (w *eorWatch) onEOR(p *apiutil.Path) {
	var f Family
	switch p.Family {
	case bgp.RF_IPv4_UC:
		f = IPv4Unicast
	case bgp.RF_IPv6_UC:
		f = IPv6Unicast
	default:
		return
	}
	w.mark(eorKey(p.PeerAddress), f)
}

func (w *eorWatch) mark(a netip.Addr, f Family) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen[a] == nil {
		w.seen[a] = map[Family]bool{}
	}
	w.seen[a][f] = true
}

// onPeer forgets a neighbor's markers when its session is not up.
func (w *eorWatch) onPeer(ev *apiutil.WatchEventMessage_PeerEvent) {
	if ev.Type != apiutil.PEER_EVENT_STATE || ev.Peer.State.SessionState == bgp.BGP_FSM_ESTABLISHED {
		return
	}
	w.mu.Lock()
	delete(w.seen, eorKey(ev.Peer.Conf.NeighborAddress))
	w.mu.Unlock()
}

func (w *eorWatch) has(a netip.Addr, f Family) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen[eorKey(a)][f]
}

// remoteRestarting reports whether p's last OPEN set the Restart State bit
// in its graceful-restart capability.
func remoteRestarting(p *api.Peer) bool {
	for _, c := range p.GetState().GetRemoteCap() {
		if gr := c.GetGracefulRestart(); gr != nil && gr.GetFlags()&0x08 != 0 {
			return true
		}
	}
	return false
}

// quietMark is the last change seen in a neighbor's update stream.
type quietMark struct {
	key   [3]uint64 // UPDATEs read, Adj-RIB-In paths, uptime
	since time.Time
}

// The monitor's looks (ListPeer) once synced. A look serves the neighbor
// feed's counts, the resend to new sessions and stale-routes-time; an
// idle node needs none of them, and hundreds of idle nodes share two
// cores in the simulator, where a look a second on every node was most
// of their CPU. So the monitor looks at once on a peer state change;
// every second while a new session waits to be sent its routes again or
// a restarting neighbor is back; and otherwise when an interval has
// passed since the last look: a second after a look that found a change
// or after best paths changed, doubling up to lookIdle while the looks
// find nothing new. It sleeps in between. Counts on a quiet node so lag
// by up to lookIdle (UPDATEs that change no best path, such as one the
// import policy rejects, only ever show at the next look).
const (
	lookTick = time.Second
	lookIdle = 10 * time.Second
)

// lookPace spaces the monitor's looks once synced.
type lookPace struct {
	every time.Duration // the interval now
	last  time.Time     // the last look's start
}

// wait is how long the monitor may sleep from now: until a look is due,
// or lookTick while busy (what only a look can settle is pending).
func (p *lookPace) wait(now time.Time, busy bool) time.Duration {
	if busy || p.every == 0 {
		return lookTick
	}
	return max(0, p.last.Add(p.every).Sub(now))
}

// due reports whether a look is due at now; news (best paths changed,
// something pending) sets the interval back to lookTick.
func (p *lookPace) due(now time.Time, news bool) bool {
	if news || p.every == 0 {
		p.every = lookTick
	}
	return now.Sub(p.last) >= p.every
}

// looked notes a look that started at start and whether it found
// anything new.
func (p *lookPace) looked(start time.Time, changed bool) {
	p.last = start
	if changed {
		p.every = lookTick
		return
	}
	p.every = min(2*p.every, lookIdle)
}

// monitor runs while the speaker runs: it closes Synced and enforces
// stale-routes-time. kick asks for an early look (peer state changes).
func (s *Speaker) monitor(stop <-chan struct{}, kick <-chan struct{}, st *syncState) {
	synced := s.isSynced()
	timer := time.NewTimer(0)
	defer timer.Stop()
	if synced {
		s.mu.Lock()
		srv := s.srv
		s.mu.Unlock()
		s.endDeferral(srv, st)
	}
	established := map[netip.Addr]time.Time{} // restarting peers back since
	// ListPeer counts each neighbor's received paths by walking its
	// Adj-RIB-In inside GoBGP's main loop (v4.8 copying every destination
	// on the way): with a large RIB a look waits until five times what the
	// last one took has passed, so the looks take at most a fifth of that
	// loop's time.
	var next time.Time
	var pace lookPace
	for {
		// Before Synced a look every 200 ms (the initial update's end
		// is seen in the looks), then as lookPace says.
		wait := 200 * time.Millisecond
		busy := s.newSess.waiting() || len(established) > 0
		if synced {
			wait = pace.wait(time.Now(), busy)
		}
		timer.Reset(max(wait, time.Until(next)))
		kicked := false
		select {
		case <-stop:
			if st.sentinel != nil {
				st.sentinel.close()
			}
			return
		case <-timer.C:
		case <-kick:
			kicked = true
		}
		start := time.Now()
		if start.Before(next) {
			continue
		}
		if synced && !kicked {
			watched := !pace.last.IsZero() && s.lastWatch.Load() > pace.last.UnixNano()
			if !pace.due(start, watched || busy) {
				continue
			}
		}
		s.mu.Lock()
		srv, want, unreach := s.srv, s.syncPeers, s.unreachNbrs
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var peers []*api.Peer
		err := srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) { peers = append(peers, p) })
		cancel()
		next = start.Add(5 * time.Since(start))
		if err != nil {
			continue
		}
		pace.looked(start, s.nbrs.onPeers(peers) || kicked)
		s.resendToNewSessions(srv, peers) // resend.go
		if !synced {
			now := time.Now()
			reach, unreachable := withoutUnreachable(want, unreach)
			done, waiting, how := syncDone(peers, reach, st, now, now.Sub(time.Unix(0, s.lastWatch.Load())))
			if done || now.After(st.deadline) {
				if !done {
					s.log.Warn("bgp sync timeout: going on without the initial update of some neighbors", "neighbors", waiting)
				} else {
					s.log.Info("bgp synced: initial update complete", "end-of-rib", how[syncEoR], "quiet", how[syncQuiet], "not-up", how[syncNotUp], "unreachable", unreachable)
				}
				synced = true
				s.closeSynced()
				s.endDeferral(srv, st)
			}
		}
		s.enforceStaleTime(peers, established)
	}
}

// SetUnreachableNeighbors names the neighbors that cannot be reached now
// (the links to them have no carrier), replacing the last list. Synced
// does not wait for them; one that is reachable again before Synced is
// waited for again. Addresses are as the daemon configured them (an
// unnumbered neighbor's with its interface as zone).
func (s *Speaker) SetUnreachableNeighbors(addrs []netip.Addr) {
	m := make(map[netip.Addr]bool, len(addrs))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range addrs {
		m[a.Unmap()] = true
		m[s.discovered(a.Unmap())] = true
	}
	s.unreachNbrs = m
}

// withoutUnreachable returns want without the neighbors in unreach, and
// how many it left out.
func withoutUnreachable(want, unreach map[netip.Addr]bool) (map[netip.Addr]bool, int) {
	if len(unreach) == 0 {
		return want, 0
	}
	out := make(map[netip.Addr]bool, len(want))
	for a, gr := range want {
		if !unreach[a] {
			out[a] = gr
		}
	}
	return out, len(want) - len(out)
}

// endDeferral ends GoBGP's restarting-mode deferral (see the top of this
// file) and removes the sentinel, if any. GoBGP then sends every
// established peer its routes and End-of-RIB.
func (s *Speaker) endDeferral(srv *server.BgpServer, st *syncState) {
	if !s.restarting {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.EndDeferral(ctx); err != nil {
		s.log.Warn("bgp: ending the restart deferral", "err", err)
	}
	if st.sentinel != nil {
		st.sentinel.release(srv)
		st.sentinel = nil
	}
}

// How a neighbor's initial update ended, for the log.
const (
	syncEoR = iota
	syncQuiet
	syncNotUp
)

// syncDone reports whether every wanted neighbor has finished its initial
// update or is not waited for any more; waiting names those that have not,
// how counts the others by syncEoR, syncQuiet and syncNotUp. want maps the
// neighbors to whether graceful restart is configured for them; sinceWatch
// is how long the best-path watch has been idle. It updates st.quiet.
func syncDone(peers []*api.Peer, want map[netip.Addr]bool, st *syncState, now time.Time, sinceWatch time.Duration) (done bool, waiting []string, how [3]int) {
	seen := map[netip.Addr]bool{}
	for _, p := range peers {
		addr, err := netip.ParseAddr(p.GetConf().GetNeighborAddress())
		if err != nil {
			continue
		}
		addr = addr.Unmap()
		gr, ok := want[addr]
		if !ok {
			continue
		}
		seen[addr] = true
		switch r := initialUpdate(p, gr, st, now, sinceWatch); r {
		case -1:
			waiting = append(waiting, addr.String())
		default:
			how[r]++
		}
	}
	for a := range want {
		if seen[a] {
			continue
		}
		if !want[a] && now.Sub(st.start) >= noGRUpWait {
			how[syncNotUp]++
			continue
		}
		waiting = append(waiting, a.String())
	}
	slices.Sort(waiting)
	return len(waiting) == 0, waiting, how
}

// initialUpdate says how neighbor p's initial update ended (syncEoR,
// syncQuiet, syncNotUp) or -1 while it goes on. gr: graceful restart is
// configured for it.
func initialUpdate(p *api.Peer, gr bool, st *syncState, now time.Time, sinceWatch time.Duration) int {
	addr, _ := netip.ParseAddr(p.GetConf().GetNeighborAddress())
	addr = addr.Unmap()
	if p.GetState().GetSessionState() != api.PeerState_SESSION_STATE_ESTABLISHED {
		delete(st.quiet, addr)
		if !gr && now.Sub(st.start) >= noGRUpWait {
			return syncNotUp
		}
		return -1
	}
	ns, _ := neighborStateFromAPI(p)
	remoteGR := remoteGRFamilies(p)
	restarted := remoteRestarting(p)
	var rib uint64
	checked, needQuiet := 0, false
	for _, af := range p.GetAfiSafis() {
		f, ok := familyFromAPI(af.GetConfig().GetFamily())
		if !ok || !slices.Contains(ns.NegotiatedFamilies, f) {
			continue
		}
		checked++
		rib += af.GetState().GetReceived()
		eor := af.GetMpGracefulRestart().GetState().GetEndOfRibReceived()
		if restarted {
			eor = st.eors.has(addr, f)
		}
		if eor {
			continue
		}
		if gr && slices.Contains(remoteGR, f) {
			return -1 // End-of-RIB promised
		}
		needQuiet = true
	}
	// Right after Established GoBGP may not report the negotiated
	// families yet: nothing checked is not done.
	if checked == 0 {
		return -1
	}
	if !needQuiet {
		return syncEoR
	}
	key := [3]uint64{p.GetState().GetMessages().GetReceived().GetUpdate(), rib, uint64(p.GetTimers().GetState().GetUptime().GetSeconds())}
	m, ok := st.quiet[addr]
	if !ok || m.key != key {
		st.quiet[addr] = quietMark{key: key, since: now}
		return -1
	}
	if now.Sub(m.since) < quietFor || sinceWatch < watchIdle {
		return -1
	}
	return syncQuiet
}
