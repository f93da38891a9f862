package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
)

// Session ends GoBGP gets wrong, and why sessions fail.
//
// GoBGP (3.37, and 4.8 alike) keeps a neighbor's paths as stale (a graceful restart) in
// two cases that are no restart:
//
//   - Hold-timer expiry of a session that negotiated graceful restart
//     (fsm.go established(), osrg/gobgp#2174): the neighbor is alive but
//     unreachable, or hung, and its paths point at a next hop that does
//     not forward. RFC 4724 lets a helper keep them; switchd does not,
//     because in a fabric another path usually exists and the stale one
//     blackholes for the whole restart time. OpenConfig has no leaf to
//     choose (graceful-restart has enabled, restart-time,
//     stale-routes-time and helper-only only), so there is no knob.
//   - A session whose OPEN announced no graceful restart (or not for
//     every family) after an earlier one that did: GoBGP records the
//     capability when an OPEN carries it (fsm.go opensent(),
//     pConf.GracefulRestart.State and AfiSafis[].MpGracefulRestart.State)
//     and never clears it, so the next failure of the session is treated
//     as a restart of the old one (cf. osrg/gobgp#2430).
//
// Both are answered with DropNeighbor, which withdraws the paths at once.
// GoBGP reports the two moments only in log records ("hold timer expired",
// "Peer Down" with reason "graceful-restart"), written on its FSM
// goroutines with the FSM's lock held, where a call into the server could
// deadlock; the speaker's logger queues them and watchSessions acts on
// them on its own goroutine.
//
// The same records give NeighborState.LastError its text. A session that
// never comes up leaves no record at all (GoBGP logs failed connection
// attempts at debug level only, behind a level check), so Neighbors
// derives the text from how long the neighbor has been without a session.

// recordKind is what a queued GoBGP log record says.
type recordKind int

const (
	recUp          recordKind = iota + 1
	recDown                   // session ended; paths withdrawn
	recGRDown                 // session ended as a graceful restart
	recHoldExpired            // hold timer expired in Established
	recPrefixLimit            // torn down at the prefix limit
	recConnectFail            // a TCP connection attempt failed (debug only)
)

type sessionRecord struct {
	kind   recordKind
	addr   netip.Addr
	detail string
	at     time.Time
}

// lastError is the latest failure of a neighbor's session.
type lastError struct {
	text string
	at   time.Time
	kind recordKind
}

// sessionNotes collects the records for watchSessions and keeps each
// neighbor's last error.
type sessionNotes struct {
	kick  chan struct{}
	onErr func(netip.Addr, string) // told each new last error (the neighbor feed)

	mu      sync.Mutex // guards the fields below
	queue   []sessionRecord
	lastErr map[netip.Addr]lastError
}

func newSessionNotes(onErr func(netip.Addr, string)) *sessionNotes {
	return &sessionNotes{kick: make(chan struct{}, 1), lastErr: make(map[netip.Addr]lastError), onErr: onErr}
}

func (n *sessionNotes) add(r sessionRecord) {
	if r.addr == sentinelAddr {
		return
	}
	r.at = time.Now()
	n.mu.Lock()
	prev := n.lastErr[r.addr]
	switch r.kind {
	case recDown, recGRDown:
		// The session end that follows a teardown for the prefix limit
		// or a hold-timer expiry says less than the record before it.
		if (prev.kind != recPrefixLimit && prev.kind != recHoldExpired) || r.at.Sub(prev.at) > time.Second {
			n.lastErr[r.addr] = lastError{"session ended: " + r.detail, r.at, r.kind}
		}
	case recHoldExpired:
		n.lastErr[r.addr] = lastError{"hold timer expired: nothing received from the neighbor for the negotiated hold time", r.at, r.kind}
	case recPrefixLimit:
		n.lastErr[r.addr] = lastError{r.detail, r.at, r.kind}
	case recConnectFail:
		n.lastErr[r.addr] = lastError{"TCP connection attempt failed: " + r.detail, r.at, r.kind}
	}
	n.queue = append(n.queue, r)
	le := n.lastErr[r.addr]
	n.mu.Unlock()
	if le != prev && n.onErr != nil {
		n.onErr(r.addr, le.text)
	}
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

func (n *sessionNotes) take() []sessionRecord {
	n.mu.Lock()
	defer n.mu.Unlock()
	q := n.queue
	n.queue = nil
	return q
}

func (n *sessionNotes) last(addr netip.Addr) lastError {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lastErr[addr]
}

// GoBGP 4.8 record texts and fields read here besides peerdown.go's
// (pkg/server/fsm.go, peer.go).
const (
	gobgpHoldExpired   = "hold timer expired"
	gobgpPrefixLimit   = "prefix limit reached"
	gobgpConnectFailed = "failed to connect"
	gobgpFieldState    = "State"
	gobgpFieldFamily   = "Family"
	gobgpFieldPct      = "Pct"
	gobgpFieldError    = "Error"
	gobgpEstablished   = "BGP_FSM_ESTABLISHED"
)

// sessionRecordOf turns a GoBGP log record into a sessionRecord, if it is
// one of those the speaker acts on.
func sessionRecordOf(msg string, fields map[string]any) (sessionRecord, bool) {
	key, _ := fields[gobgpFieldNeighbor].(string)
	a, err := netip.ParseAddr(key)
	if err != nil {
		return sessionRecord{}, false
	}
	r := sessionRecord{addr: a.WithZone("").Unmap()}
	switch msg {
	case gobgpPeerUp:
		r.kind = recUp
	case gobgpPeerDown:
		r.kind = recDown
		r.detail, _ = fields[gobgpFieldDownReason].(string)
		if r.detail == gobgpGracefulRestart {
			r.kind = recGRDown
			r.detail = "graceful restart (the neighbor's paths are kept as stale)"
		}
	case gobgpHoldExpired:
		// Also written in OpenSent/OpenConfirm, where there are no paths.
		if st, _ := fields[gobgpFieldState].(string); st != gobgpEstablished {
			return r, false
		}
		r.kind = recHoldExpired
	case gobgpPrefixLimit:
		if _, warning := fields[gobgpFieldPct]; warning {
			return r, false // the warning threshold: logged as it is
		}
		r.kind = recPrefixLimit
		r.detail = fmt.Sprintf("prefix limit of %v exceeded: session torn down (Cease, maximum number of prefixes reached); it stays down until the neighbor's configuration changes", fields[gobgpFieldFamily])
	case gobgpConnectFailed:
		r.kind = recConnectFail
		r.detail = fmt.Sprint(fields[gobgpFieldError])
	default:
		return r, false
	}
	return r, true
}

// watchSessions acts on the queued records until stop is closed.
func (s *Speaker) watchSessions(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-s.notes.kick:
		}
		for _, r := range s.notes.take() {
			switch r.kind {
			case recUp:
				s.mu.Lock()
				delete(s.limited, r.addr)
				s.mu.Unlock()
			case recHoldExpired:
				s.dropIfStale(r.addr, false, "hold timer expired: the neighbor is unreachable or hung, which is no restart")
			case recGRDown:
				s.dropIfStale(r.addr, true, "")
			case recPrefixLimit:
				s.log.Error("bgp neighbor exceeded its prefix limit: session torn down; it stays down until its configuration changes or switchd restarts",
					"neighbor", r.addr, "detail", r.detail)
				s.mu.Lock()
				if s.limited != nil {
					s.limited[r.addr] = true
				}
				s.mu.Unlock()
			}
		}
	}
}

// dropIfStale drops neighbor addr if GoBGP keeps (or will keep, after a
// hold-timer expiry) its paths as stale. With onlyUnannounced it does so
// only for families whose graceful restart the neighbor's last OPEN did
// not announce (GoBGP's leftover from an earlier session).
func (s *Speaker) dropIfStale(addr netip.Addr, onlyUnannounced bool, why string) {
	s.mu.Lock()
	srv, running := s.srv, s.running != nil && !s.stopped
	s.mu.Unlock()
	if !running {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var peer *api.Peer
	if err := srv.ListPeer(ctx, &api.ListPeerRequest{Address: addr.String()}, func(p *api.Peer) { peer = p }); err != nil || peer == nil {
		return
	}
	stale := staleFamilies(peer)
	if len(stale) == 0 {
		return // GoBGP withdraws the paths itself
	}
	if onlyUnannounced {
		announced := remoteGRFamilies(peer)
		var left []string
		for _, f := range stale {
			if !slices.Contains(announced, f) {
				left = append(left, f.String())
			}
		}
		if len(left) == 0 {
			return // a real graceful restart
		}
		why = fmt.Sprintf("session ended and GoBGP keeps the paths as in a graceful restart, but the neighbor's last OPEN did not announce graceful restart for %s (GoBGP kept the capability of an earlier session)", strings.Join(left, ", "))
	}
	if err := s.DropNeighbor(ctx, addr, why); err != nil {
		s.log.Error("drop bgp neighbor", "neighbor", addr, "err", err)
	}
}

// staleFamilies are the families of which GoBGP keeps the neighbor's paths
// as stale when its session fails.
func staleFamilies(p *api.Peer) []Family {
	var out []Family
	for _, af := range p.GetAfiSafis() {
		f, ok := familyFromAPI(af.GetConfig().GetFamily())
		if ok && af.GetMpGracefulRestart().GetState().GetEnabled() {
			out = append(out, f)
		}
	}
	return out
}

// remoteGRFamilies are the families for which the neighbor's last OPEN
// announced graceful restart; nil if it announced no capability.
func remoteGRFamilies(p *api.Peer) []Family {
	var out []Family
	for _, c := range p.GetState().GetRemoteCap() {
		gr := c.GetGracefulRestart()
		if gr == nil {
			continue
		}
		for _, t := range gr.GetTuples() {
			if f, ok := familyFromAPI(t.GetFamily()); ok {
				out = append(out, f)
			}
		}
	}
	return out
}

// noSessionAfter is how long a neighbor is without a session, with no
// other explanation, before LastError says the connection attempts fail.
// GoBGP makes its first attempt after 1-2 s and dials with a timeout of
// the connect-retry interval.
const noSessionAfter = 10 * time.Second

// lastErrorText is NeighborState.LastError of a neighbor: the latest
// failure GoBGP reported, or, for a neighbor without a session for
// noSessionAfter and nothing newer reported, why that usually is.
func (s *Speaker) lastErrorText(ns NeighborState, n Neighbor, since time.Time, now time.Time) string {
	le := s.notes.last(ns.Address)
	if ns.State != StateActive && ns.State != StateConnect {
		return le.text
	}
	down := since
	if le.at.After(down) {
		down = le.at
	}
	if down.IsZero() || now.Sub(down) < noSessionAfter {
		return le.text
	}
	var b strings.Builder
	if n.Passive {
		fmt.Fprintf(&b, "no session for %v: no TCP connection from the neighbor arrives (passive: switchd does not connect); the neighbor is unreachable, not configured for us, or its segments are dropped", now.Sub(down).Truncate(time.Second))
	} else {
		fmt.Fprintf(&b, "no session for %v: TCP connection attempts time out or are refused (peer unreachable, not listening, or not configured for us)", now.Sub(down).Truncate(time.Second))
	}
	if n.AuthPassword != "" {
		b.WriteString("; a TCP-MD5 password is set for this neighbor: a password mismatch (or a peer without it) looks exactly like this, as the kernel silently drops segments with a missing or wrong signature")
	}
	if le.text != "" {
		fmt.Fprintf(&b, "; before: %s", le.text)
	}
	return b.String()
}

// sessionRecord parses a GoBGP record once for both consumers: a session
// that came up, or ended with its paths withdrawn, is a PeerEvent
// (peerdown.go); every record goes to the notes.
func (l peerEventLogger) sessionRecord(msg string, fields map[string]any) {
	r, ok := sessionRecordOf(msg, fields)
	if !ok {
		return
	}
	switch r.kind {
	case recUp:
		l.ev.add(PeerEvent{Neighbor: r.addr, Up: true})
	case recDown:
		l.ev.add(PeerEvent{Neighbor: r.addr})
	}
	if l.notes != nil {
		l.notes.add(r)
	}
}
