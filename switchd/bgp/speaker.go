package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Speaker is switchd's BGP speaker: one embedded GoBGP server driven by
// declarative Configs, reporting learned routes as whole ECMP routes.
//
// Apply, SetOriginated, Neighbors and Stop may be called from any
// goroutine (they are serialised); Updates/Drain belong to one consumer,
// the fib loop.
//
// Complicating factors:
//   - GoBGP takes the ASN, router-id, listeners and multipath only in
//     StartBgp, so changing one of them restarts the server (every session
//     resets). Everything else is applied as a difference.
//   - GoBGP keeps multipath and best-path options in package variables
//     (internal/pkg/table.UseMultiplePaths): all speakers in one process
//     share them. Apply refuses a multipath setting that differs from
//     another running Speaker's.
//   - A GoBGP v4 server serves once (StopBgp ends Serve), so that restart
//     is a new server.
type Speaker struct {
	log    *slog.Logger
	routes *routeTable
	peerEv *peerEvents // sessions down for good, and up (peerdown.go)
	notes  *sessionNotes
	nbrs   *neighborFeed // neighbor state (neighborfeed.go)
	links  *linkPeers    // unnumbered neighbors' discovery (unnumbered_probe.go)
	unnum  unnumberedState
	// newSess are sessions owed their routes again (resend.go).
	newSess newSessions

	mu          sync.Mutex // guards the fields below
	srv         *server.BgpServer
	stopped     bool
	running     *global // nil until StartBgp succeeded
	peers       map[netip.Addr]Neighbor
	orig        originated // prefixes we announce (originate.go)
	memb        membership // group membership routes (membership.go)
	watchCancel context.CancelFunc
	policy      *compiledPolicy     // nil until a policy was installed
	policyBase  *compiledPolicy     // the config's, without next-hop tracking (nht.go)
	unreachable []netip.Addr        // next hops whose paths are rejected (nht.go)
	restarting  bool                // SetRestarting was called
	syncPeers   map[netip.Addr]bool // enabled at the first Apply: graceful restart configured
	unreachNbrs map[netip.Addr]bool // not waited for by Synced (SetUnreachableNeighbors); replaced, never changed
	syncTimeout time.Duration
	monStop     chan struct{} // closes the monitor of the running server
	sessStop    chan struct{} // closes watchSessions
	linkStop    chan struct{} // closes watchLinkPeers
	// limited are the neighbors held down for exceeding a prefix limit
	// (sessions.go); since is when each neighbor was last (re)added.
	limited map[netip.Addr]bool
	since   map[netip.Addr]time.Time
	// bfdHeld are the neighbors held down after a BFD failure (bfdgate.go).
	bfdHeld map[netip.Addr]bool

	synced    chan struct{}
	syncOnce  sync.Once
	lastWatch atomic.Int64 // unix ns of the latest best-path event
}

// Option configures a Speaker.
type Option func(*Speaker)

// WithLogger sends the speaker's and GoBGP's logs to l. Without it the
// speaker is silent.
func WithLogger(l *slog.Logger) Option {
	return func(s *Speaker) { s.log = l }
}

// New returns a speaker; Start runs it.
func New(opts ...Option) *Speaker {
	s := &Speaker{
		log:     slog.New(slog.DiscardHandler),
		routes:  newRouteTable(),
		peerEv:  newPeerEvents(),
		peers:   make(map[netip.Addr]Neighbor),
		limited: make(map[netip.Addr]bool),
		since:   make(map[netip.Addr]time.Time),
		orig:    newOriginated(),
		synced:  make(chan struct{}),
	}
	s.nbrs = newNeighborFeed()
	s.links = newLinkPeers()
	s.notes = newSessionNotes(s.nbrs.onError)
	for _, o := range opts {
		o(s)
	}
	s.links.log = s.log
	return s
}

// Start creates the GoBGP server and its event loop. The speaker speaks
// BGP only after the first Apply. ctx is not retained: Stop ends the
// speaker.
func (s *Speaker) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("start bgp speaker: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("start bgp speaker: already stopped")
	}
	if s.srv != nil {
		return errors.New("start bgp speaker: already started")
	}
	s.newServerLocked()
	s.sessStop = make(chan struct{})
	go s.watchSessions(s.sessStop)
	s.linkStop = make(chan struct{})
	go s.watchLinkPeers(s.linkStop)
	return nil
}

// newServerLocked creates the GoBGP server and runs it. A v4 server
// serves once: StopBgp ends its Serve, so a restart needs a new one.
func (s *Speaker) newServerLocked() {
	// The logger also reports sessions that go down (peerdown.go). The
	// level is the handler's business (log.go), so GoBGP's is the lowest.
	pl := peerEventLogger{ev: s.peerEv, notes: s.notes}
	lvl := new(slog.LevelVar)
	lvl.Set(slog.LevelDebug)
	s.srv = server.NewBgpServer(server.LoggerOption(slog.New(&gobgpHandler{
		next: s.log.With("component", "gobgp").Handler(), on: pl.sessionRecord}), lvl))
	// Every BgpServer API call is a closure run by Serve: it must run first.
	go s.srv.Serve()
}

// Stop shuts the BGP server down. Neighbors with graceful restart (not
// helper-only) get a NOTIFICATION that keeps our routes at the peer (RFC
// 8538 N bit) until we are back or our restart time passes; the others
// withdraw our routes. Late route events are dropped and Drain returns
// nothing new.
func (s *Speaker) Stop() {
	s.routes.stop()
	s.peerEv.stop()
	s.nbrs.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.stopped = true
	if s.sessStop != nil {
		close(s.sessStop)
		s.sessStop = nil
	}
	if s.linkStop != nil {
		close(s.linkStop)
		s.linkStop = nil
	}
	s.links.stop()
	if s.watchCancel != nil {
		s.watchCancel()
	}
	if s.monStop != nil {
		close(s.monStop)
		s.monStop = nil
	}
	if s.srv != nil {
		if s.running != nil {
			s.gracefulStopLocked()
		}
		// StopBgp zeroes GoBGP's global config while FSM goroutines of
		// the peers it just deleted may still read it: v3.37 did on every
		// received message (a race `go test -race` reported), v4.8 only
		// when handling an OPEN (restart_test.go). It also ends Serve
		// (v4), started or not.
		s.srv.StopBgp(context.Background(), &api.StopBgpRequest{})
	}
	s.running = nil
	procMultipath.release(s)
}

// Updates signals (coalesced) that Drain has something new.
func (s *Speaker) Updates() <-chan struct{} { return s.routes.kick }

// Drain returns every learned prefix whose ECMP next-hop set changed since
// the previous Drain, each with its whole current set, sorted by prefix; an
// empty NextHops means the prefix is gone. Locally originated prefixes and
// paths via our own addresses never appear. NextHops slices may be shared
// between routes and must not be modified.
func (s *Speaker) Drain() []Route {
	s.routes.mu.Lock()
	stopped := s.routes.stopped
	s.routes.mu.Unlock()
	if stopped {
		return nil
	}
	return s.routes.drain()
}

// DrainSome is Drain for a consumer that takes routes in bounded batches:
// it appends to buf (which it may reuse) up to max changed prefixes (0: no
// limit), in no particular order, and reports whether more are left
// (Updates is then signalled again). NextHops slices are shared between
// routes and with the speaker, and must not be modified.
func (s *Speaker) DrainSome(buf []Route, max int) (routes []Route, more bool) {
	s.routes.mu.Lock()
	stopped := s.routes.stopped
	s.routes.mu.Unlock()
	if stopped {
		return buf, false
	}
	more = s.routes.drainEach(max, func(r Route) { buf = append(buf, r) })
	return buf, more
}

// Learned is the number of prefixes Drain and DrainSome have handed out
// with next hops and not withdrawn since.
func (s *Speaker) Learned() int { return s.routes.learnedCount() }

// Apply makes the running configuration equal to c, changing only what
// differs. c is validated as a whole first; if it is invalid nothing
// changes. Errors from GoBGP name the neighbor or prefix; what failed stays
// different from c and is retried by the next Apply.
func (s *Speaker) Apply(ctx context.Context, c Config) error {
	return s.apply(ctx, c, s.unnum.remember(c))
}

// apply is Apply of the config of generation gen; it does nothing if a
// later Apply has begun (unnumbered.go applies a config again).
func (s *Speaker) apply(ctx context.Context, c Config, gen uint64) error {
	d, err := validate(c)
	if err != nil {
		return err
	}
	for _, addr := range sortedKeys(d.neighbors) {
		if d.neighbors[addr].AuthPassword == "" {
			continue
		}
		if err := tcpMD5Error(); err != nil {
			return fmt.Errorf("invalid bgp config: neighbor %v: auth-password: %w", addr, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopped:
		return errors.New("apply bgp config: speaker stopped")
	case s.srv == nil:
		return errors.New("apply bgp config: speaker not started")
	}
	if _, latest := s.unnum.latest(); gen != latest {
		return nil // a later Apply takes its place
	}
	// Unnumbered neighbors: probed on their interfaces, present once
	// their peer's address is known (unnumbered.go).
	s.watchInterfaces(d)
	d = resolveUnnumbered(d, s.links.found, s.links.local)
	s.routes.zones.set(d.neighbors)
	restart := s.running != nil && !s.running.equal(d.global)
	if s.running == nil || restart {
		if err := procMultipath.check(s, d.global.Multipath); err != nil {
			return err
		}
	}
	s.routes.configure(d.multipath, d.ownAddrs())

	if restart {
		// The one exception to applying only the difference: GoBGP reads
		// ASN, router-id, listen port/addresses and multipath only in
		// StartBgp, so changing them means StopBgp + StartBgp. All
		// sessions reset and every neighbor and path is added again.
		s.log.Info("restarting bgp for a global config change",
			"asn", d.global.ASN, "router-id", d.global.RouterID)
		s.watchCancel()
		close(s.monStop)
		s.monStop = nil
		s.gracefulStopLocked()
		if err := s.srv.StopBgp(ctx, &api.StopBgpRequest{}); err != nil {
			return fmt.Errorf("stop bgp for restart: %w", err)
		}
		s.newServerLocked()
		s.running = nil
		s.policy = nil
		clear(s.peers)
		clear(s.orig.announced)
		clear(s.memb.announced)
		procMultipath.release(s)
	}
	if !s.isSynced() {
		s.syncPeers = make(map[netip.Addr]bool)
		for a, n := range d.neighbors {
			if n.Enabled {
				s.syncPeers[a] = n.GracefulRestart.Enabled
			}
		}
		// Unnumbered neighbors not discovered yet are waited for too
		// (under fe80::%if, which no peer has: the timeouts apply).
		for a, n := range d.pending {
			if n.Enabled {
				s.syncPeers[a] = n.GracefulRestart.Enabled
			}
		}
		s.syncTimeout = d.syncTimeout
	}
	if s.running == nil {
		if err := s.startLocked(ctx, d); err != nil {
			return err
		}
	}

	var errs []error
	// Policy first, so that routes from new neighbors are filtered from
	// their first UPDATE.
	if err := s.applyPolicyLocked(ctx, d.policy); err != nil {
		errs = append(errs, err)
	}
	s.nbrs.configure(d.neighbors, false)
	errs = append(errs, s.applyNeighborsLocked(ctx, d.neighbors)...)
	s.nbrs.configure(s.peers, true)
	// The config's prefixes replace the config's only: those of
	// SetOriginated's owners stay (originate.go).
	s.orig.config = d.originate
	errs = append(errs, s.syncOriginatedLocked(ctx, s.orig.all())...)
	errs = append(errs, s.syncMembershipLocked(s.memb.all())...)
	return errors.Join(errs...)
}

func (s *Speaker) isSynced() bool {
	select {
	case <-s.synced:
		return true
	default:
		return false
	}
}

func (s *Speaker) closeSynced() { s.syncOnce.Do(func() { close(s.synced) }) }

func (s *Speaker) startLocked(ctx context.Context, d *desired) error {
	g := d.global
	if err := s.srv.StartBgp(ctx, &api.StartBgpRequest{Global: g.api()}); err != nil {
		return fmt.Errorf("start bgp (asn %d, router-id %v, port %d): %w", g.ASN, g.RouterID, g.ListenPort, err)
	}
	procMultipath.take(s, g.Multipath)
	gen := s.routes.newGeneration(g.Multipath)
	wctx, cancel := context.WithCancel(context.Background())
	kick := make(chan struct{}, 1)
	best := s.routes.bestPaths(gen)
	eors := newEORWatch() // sync.go: End-of-RIB really received
	cbs := server.WatchEventMessageCallbacks{
		OnPathEor: func(p *apiutil.Path, _ time.Time) { eors.onEOR(p) },
		OnBestPath: func(paths []*apiutil.Path, _ time.Time) {
			s.lastWatch.Store(time.Now().UnixNano()) // sync.go: watch idle
			best(paths)
		},
		OnPeerUpdate: func(ev *apiutil.WatchEventMessage_PeerEvent, now time.Time) {
			s.routes.onPeer(gen, ev)
			s.routes.zones.zonePeer(ev)
			s.nbrs.onPeerEvent(ev, now)
			s.newSess.onPeerEvent(ev)
			eors.onPeer(ev)
			select {
			case kick <- struct{}{}:
			default:
			}
		},
	}
	// GoBGP converts paths for the watch on its own goroutine while its
	// server goroutine may mark the same paths stale (a graceful-restart
	// peer going down; osrg/gobgp#2705): v4.8's toPathApiUtil still reads
	// the stale flag of the path's shared origin, though the clones it
	// converts are made on the server goroutine. The flag read is a bool; the
	// worst case is a path reported with a stale stale-bit, which the
	// adapter ignores.
	if err := s.srv.WatchEvent(wctx, cbs, server.WatchBestPath(true), server.WatchPeer(), server.WatchEor(false)); err != nil {
		cancel()
		s.srv.StopBgp(ctx, &api.StopBgpRequest{})
		s.newServerLocked()
		procMultipath.release(s)
		return fmt.Errorf("watch bgp best paths: %w", err)
	}
	s.watchCancel = cancel
	s.running = &g

	now := time.Now()
	st := &syncState{start: now, deadline: now.Add(s.syncTimeout), quiet: make(map[netip.Addr]quietMark), eors: eors}
	if s.restarting && !s.isSynced() && (restartingRole(d.neighbors) || restartingRole(d.pending)) {
		sn, err := s.startSentinelLocked(ctx, g.ASN, s.deferral())
		if err != nil {
			// Without it GoBGP's own deferral still applies, cut short
			// by the first End-of-RIB (see graceful.go).
			s.log.Warn("restart sentinel unavailable", "err", err)
		}
		st.sentinel = sn
	}
	s.monStop = make(chan struct{})
	go s.monitor(s.monStop, kick, st)
	return nil
}

// restartingRole reports whether some neighbor restarts gracefully with us.
func restartingRole(ns map[netip.Addr]Neighbor) bool {
	for _, n := range ns {
		if g := n.GracefulRestart; n.Enabled && g != nil && g.Enabled && !g.HelperOnly {
			return true
		}
	}
	return false
}

// deferral is GoBGP's per-peer DeferralTime in restarting mode: longer
// than the sync timeout, so that Synced, not the timer, ends the deferral.
func (s *Speaker) deferral() time.Duration { return s.syncTimeout + 10*time.Second }

// localRestartingLocked reports whether peers added now start in restarting
// mode.
func (s *Speaker) localRestartingLocked() bool { return s.restarting && !s.isSynced() }

func (s *Speaker) applyNeighborsLocked(ctx context.Context, want map[netip.Addr]Neighbor) []error {
	var errs []error
	for _, addr := range sortedKeys(s.peers) {
		if _, ok := want[addr]; ok {
			continue
		}
		if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()}); err != nil {
			errs = append(errs, fmt.Errorf("delete neighbor %v: %w", addr, err))
			continue
		}
		delete(s.peers, addr)
		delete(s.limited, addr)
		delete(s.since, addr)
	}
	for _, addr := range sortedKeys(want) {
		n := want[addr]
		old, ok := s.peers[addr]
		switch {
		case !ok:
			if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.bfdGateLocked(n, neighborAPI(n, s.localRestartingLocked(), s.deferral()))}); err != nil {
				errs = append(errs, fmt.Errorf("add neighbor %v: %w", addr, err))
				continue
			}
			s.since[addr] = time.Now()
		case !neighborEqual(old, n):
			if err := s.updateNeighborLocked(ctx, old, n); err != nil {
				// GoBGP may have removed the peer halfway; remove it
				// for sure so the next Apply adds it afresh.
				s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()})
				delete(s.peers, addr)
				errs = append(errs, fmt.Errorf("update neighbor %v: %w", addr, err))
				continue
			}
		default:
			continue
		}
		s.peers[addr] = n
	}
	return errs
}

// updateNeighborLocked changes a configured neighbor from old to n.
//
// GoBGP's UpdatePeer decides most of what a change costs: AS, addresses,
// families, password, description, admin state or graceful restart reset
// the session; prefix limits and the TTL apply to the running session.
// What it does not apply is fixed up here:
//   - Timers are only stored: hold time and keepalive are negotiated in
//     the OPEN message, so a change resets an established session (logged
//     at Info: it costs the session; with graceful restart, not its
//     routes: restartSession).
//   - A neighbor without a session is added afresh: GoBGP's connection
//     attempts read connect-retry and the TTL (ebgp-multihop) only when
//     they start, so they would go on with the old values.
//   - A neighbor held down for exceeding its prefix limit stays down
//     (GoBGP's admin state "prefix limit") until it is added afresh.
func (s *Speaker) updateNeighborLocked(ctx context.Context, old, n Neighbor) error {
	addr := n.Address
	p := s.bfdGateLocked(n, neighborAPI(n, s.localRestartingLocked(), s.deferral()))
	established := false
	var session sessionAddrs // set when graceful restart is negotiated on it
	s.srv.ListPeer(ctx, &api.ListPeerRequest{Address: addr.String()}, func(ap *api.Peer) {
		established = ap.GetState().GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED
		l, err := netip.ParseAddr(ap.GetTransport().GetLocalAddress())
		if established && err == nil && ap.GetGracefulRestart().GetPeerRestartTime() > 0 {
			session = sessionAddrs{local: plain(l), remote: plain(addr)}
		}
	})
	readd := s.limited[addr]
	timers := old.Timers != n.Timers
	negotiated := old.Timers.HoldTime != n.Timers.HoldTime || old.Timers.Keepalive != n.Timers.Keepalive
	switch {
	case readd:
		s.log.Info("bgp neighbor held down at its prefix limit: configuration changed, connecting again", "neighbor", addr)
	case !established:
		s.log.Info("bgp neighbor without session changed: restarting its connection attempts with the new configuration", "neighbor", addr)
		readd = true
	}
	if readd {
		if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()}); err != nil {
			return err
		}
		delete(s.limited, addr)
		s.since[addr] = time.Now()
		return s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: p})
	}
	if _, err := s.srv.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: p}); err != nil {
		return err
	}
	switch {
	case negotiated && established:
		s.log.Info("bgp neighbor hold-time/keepalive changed: resetting its session, as they are negotiated in the OPEN message",
			"neighbor", addr, "hold-time", n.Timers.HoldTime, "keepalive", n.Timers.Keepalive)
		s.since[addr] = time.Now()
		if restartSession(session, n.GracefulRestart) {
			return nil
		}
		if err := s.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: addr.String(), Communication: "hold-time or keepalive changed"}); err != nil {
			return fmt.Errorf("reset session for new timers: %w", err)
		}
	case timers && established:
		s.log.Info("bgp neighbor connect-retry/advertisement timers changed: they apply from the next session", "neighbor", addr)
	}
	return nil
}

func sortedKeys[V any](m map[netip.Addr]V) []netip.Addr {
	keys := make([]netip.Addr, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, netip.Addr.Compare)
	return keys
}

func sortedPrefixes(m map[netip.Prefix]struct{}) []netip.Prefix {
	keys := make([]netip.Prefix, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, comparePrefix)
	return keys
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// procMultipath tracks the multipath setting of the running speakers of
// this process, because GoBGP keeps it in a package variable that the last
// StartBgp overwrites for all of them.
var procMultipath = &multipathOwners{m: make(map[*Speaker]bool)}

type multipathOwners struct {
	mu sync.Mutex // guards m
	m  map[*Speaker]bool
}

func (o *multipathOwners) check(s *Speaker, enabled bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for other, e := range o.m {
		if other != s && e != enabled {
			return fmt.Errorf("apply bgp config: multipath %v conflicts with another speaker in this process (GoBGP keeps multipath process-wide)", enabled)
		}
	}
	return nil
}

func (o *multipathOwners) take(s *Speaker, enabled bool) {
	o.mu.Lock()
	o.m[s] = enabled
	o.mu.Unlock()
}

func (o *multipathOwners) release(s *Speaker) {
	o.mu.Lock()
	delete(o.m, s)
	o.mu.Unlock()
}
