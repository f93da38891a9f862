package bgp

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"

	"github.com/switchd/switchd/sim/ns"
)

// BIRD with graceful restart for both families, restart time 120 s: a
// route still there long after a failure is a stale one GoBGP kept.
var birdGR = fmt.Sprintf("graceful restart on; graceful restart time %d;", int(birdRestartTime.Seconds()))

const birdRestartTime = 120 * time.Second

// goneWithin bounds the wait for a route that must go at once when its
// neighbor fails: half the time GoBGP would keep it stale (birdGR), so a
// route gone within it was withdrawn, not timed out, however slowly a
// loaded machine gets there (1 s failed at load 88).
const goneWithin = birdRestartTime / 2

// gobgpPeer reads GoBGP's own view of neighbor addr.
func gobgpPeer(t *testing.T, s *Speaker, addr string) *api.Peer {
	t.Helper()
	var peer *api.Peer
	if err := s.srv.ListPeer(t.Context(), &api.ListPeerRequest{Address: addr}, func(p *api.Peer) { peer = p }); err != nil || peer == nil {
		t.Fatalf("list peer %s: %v", addr, err)
	}
	return peer
}

// waitGone waits until at most within after start for p to be withdrawn
// and returns how long after start it was.
func (r *rib) waitGone(t *testing.T, p netip.Prefix, start time.Time, within time.Duration, what string) time.Duration {
	t.Helper()
	for len(r.routes[p]) > 0 {
		if time.Since(start) > within {
			t.Fatalf("%s: %v still has next hops %v after %v", what, p, r.routes[p], within)
		}
		r.drainOnce(20 * time.Millisecond)
	}
	return time.Since(start)
}

// A graceful-restart neighbor whose packets stop arriving (not a link
// down, not a process death): the hold timer expires, and its routes go at
// once instead of staying stale for its restart time (120 s).
func TestPrivilegedHoldTimerExpiryIsNoRestart(t *testing.T) {
	ns.Privileged(t)
	b := startBIRDWith(t, birdSpec{Statics4: []netip.Prefix{pfx("10.50.0.0/24")}, Options: birdGR})
	cfg := birdConfig()
	cfg.GracefulRestart = grFast
	s := speaker(t, cfg)
	r := newRIB(s)
	r.waitRoute(t, pfx("10.50.0.0/24"), ip("10.99.0.2"))
	if fs := staleFamilies(gobgpPeer(t, s, "10.99.0.2")); !slices.Contains(fs, IPv4Unicast) {
		t.Fatalf("precondition: GoBGP would not keep BIRD's IPv4 routes on a failure (graceful restart families %v)", fs)
	}

	// BIRD's packets to us vanish; the session stays up on both sides
	// until a hold timer (3 s) expires.
	rules := filepath.Join(t.TempDir(), "drop.nft")
	os.WriteFile(rules, []byte("table inet blackhole {\n"+
		" chain in { type filter hook input priority 0; ip saddr 10.99.0.1 drop; }\n"+
		" chain out { type filter hook output priority 0; ip daddr 10.99.0.1 drop; }\n}\n"), 0o644)
	start := time.Now()
	if out, err := b.ns.Run(t.Context(), "nft", "-f", rules); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	took := r.waitGone(t, pfx("10.50.0.0/24"), start, goneWithin, "after BIRD's packets were dropped")
	t.Logf("route withdrawn %v after the packets were dropped (hold time 3 s)", took.Round(time.Millisecond))
	if le := neighborState(t, s, ip("10.99.0.2")).LastError; !strings.Contains(le, "hold timer expired") {
		t.Errorf("last error = %q, want the hold timer expiry", le)
	}
}

// A neighbor that came back without graceful restart and then dies: its
// routes go at once, though GoBGP kept the capability of the earlier
// session (osrg/gobgp#2430).
func TestPrivilegedPeerBackWithoutGRThenDies(t *testing.T) {
	ns.Privileged(t)
	spec := birdSpec{Statics4: []netip.Prefix{pfx("10.50.0.0/24")}, Options: birdGR}
	b := startBIRDWith(t, spec)
	cfg := birdConfig()
	cfg.GracefulRestart = grFast
	s := speaker(t, cfg)
	r := newRIB(s)
	r.waitRoute(t, pfx("10.50.0.0/24"), ip("10.99.0.2"))

	// BIRD restarts with graceful restart off (its shutdown sends a
	// Cease: the routes go, and come back with the new session). The
	// withdrawal is awaited before BIRD starts again: Drain reports a
	// prefix's state, not each change, so a route withdrawn and back
	// between two drains is never seen gone, and a start slowed by load
	// outlasts GoBGP's 5 s idle hold before the new session.
	b.kill(t, syscall.SIGTERM)
	r.waitRoute(t, pfx("10.50.0.0/24"))
	spec.Options = "graceful restart off;"
	b.start(t, birdConf(spec))
	r.waitRoute(t, pfx("10.50.0.0/24"), ip("10.99.0.2"))
	p := gobgpPeer(t, s, "10.99.0.2")
	if fs := remoteGRFamilies(p); len(fs) != 0 {
		t.Fatalf("precondition: BIRD's new OPEN announces graceful restart for %v", fs)
	}
	if fs := staleFamilies(p); !slices.Contains(fs, IPv4Unicast) {
		t.Fatalf("precondition: GoBGP no longer records the old session's graceful restart (families %v): the test covers nothing", fs)
	}

	start := time.Now()
	b.kill(t, syscall.SIGKILL)
	took := r.waitGone(t, pfx("10.50.0.0/24"), start, goneWithin, "after BIRD (back without graceful restart) was killed")
	t.Logf("route withdrawn %v after BIRD died", took.Round(time.Millisecond))
}

// An MD5 password mismatch leaves no trace at the BGP level (the kernel
// drops the segments): LastError says what it may be.
func TestPrivilegedMD5MismatchLastError(t *testing.T) {
	ns.Privileged(t)
	startBIRDWith(t, birdSpec{Statics4: []netip.Prefix{pfx("10.50.0.0/24")}, Options: `password "bird-secret";`})
	cfg := birdConfig()
	for i := range cfg.Neighbors {
		cfg.Neighbors[i].AuthPassword = "switchd-secret"
	}
	s := speaker(t, cfg)
	deadline := time.Now().Add(noSessionAfter + patience)
	for {
		n := neighborState(t, s, ip("10.99.0.2"))
		if n.State == StateEstablished {
			t.Fatal("session established despite different TCP-MD5 passwords")
		}
		if n.LastError != "" {
			t.Logf("state %v, last error: %s", n.State, n.LastError)
			if !strings.Contains(n.LastError, "TCP-MD5") || !strings.Contains(n.LastError, "time out") {
				t.Errorf("last error %q does not name connection timeouts and the TCP-MD5 password", n.LastError)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no last error for a session that cannot come up: %+v", n)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// prefix-limit: the neighbor sending more than max-prefixes has its
// session torn down (Cease, maximum number of prefixes) and its routes
// withdrawn; it stays down until its configuration changes.
func TestPrivilegedPrefixLimitTearsDown(t *testing.T) {
	ns.Privileged(t)
	var statics []netip.Prefix
	for i := range 20 {
		statics = append(statics, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 51, byte(i), 0}), 24))
	}
	b := startBIRDWith(t, birdSpec{Statics4: statics})
	cfg := birdConfig()
	cfg.Neighbors = cfg.Neighbors[:1] // IPv4 only
	cfg.Neighbors[0].PrefixLimits = []PrefixLimit{{Family: IPv4Unicast, MaxPrefixes: 10, WarningThresholdPct: 50}}
	s := speaker(t, cfg)
	r := newRIB(s)

	deadline := time.Now().Add(patience)
	for !strings.Contains(b.birdc(t, "show", "protocols", "all", "up4"), "Maximum number of prefixes reached") {
		if time.Now().After(deadline) {
			t.Fatalf("BIRD never got the Cease for the prefix limit:\n%s", b.birdc(t, "show", "protocols", "all", "up4"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	waitNotEstablished(t, s, "10.99.0.2")
	r.drainOnce(500 * time.Millisecond)
	if len(r.routes) != 0 {
		t.Errorf("routes of the neighbor over its prefix limit remain: %v", r.routes)
	}
	if le := neighborState(t, s, ip("10.99.0.2")).LastError; !strings.Contains(le, "prefix limit") {
		t.Errorf("last error = %q, want the prefix limit", le)
	}
	// BIRD tries again every second; the session stays down.
	time.Sleep(3 * time.Second)
	if st := neighborState(t, s, ip("10.99.0.2")).State; st == StateEstablished {
		t.Errorf("session over the prefix limit came back by itself")
	}

	// A higher limit in the configuration lets it up again.
	cfg.Neighbors[0].PrefixLimits[0].MaxPrefixes = 100
	if err := s.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	for _, p := range statics {
		r.waitRoute(t, p, ip("10.99.0.2"))
	}
}

var birdHoldTimer = regexp.MustCompile(`Hold timer:\s+[0-9.]+/(\d+)`)

// A hold-time change on reload reaches the running session: it is
// negotiated in OPEN, so the session is reset and the new value is seen
// by the peer.
func TestPrivilegedHoldTimeChangeOnReload(t *testing.T) {
	ns.Privileged(t)
	b := startBIRDWith(t, birdSpec{Statics4: []netip.Prefix{pfx("10.50.0.0/24")},
		Timers: "hold time 30; keepalive time 10; connect retry time 1; connect delay time 1; error wait time 1, 2;"})
	cfg := birdConfig()
	cfg.Neighbors = cfg.Neighbors[:1]
	cfg.Neighbors[0].Timers = Timers{ConnectRetry: time.Second, HoldTime: 9 * time.Second, Keepalive: 3 * time.Second}
	s := speaker(t, cfg)
	r := newRIB(s)
	r.waitRoute(t, pfx("10.50.0.0/24"), ip("10.99.0.2"))
	waitBIRDHold(t, b, "9")

	cfg.Neighbors[0].Timers.HoldTime, cfg.Neighbors[0].Timers.Keepalive = 6*time.Second, 2*time.Second
	if err := s.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	waitBIRDHold(t, b, "6")
	waitEstablished(t, s, "10.99.0.2")
	if got := gobgpPeer(t, s, "10.99.0.2").GetTimers().GetState().GetNegotiatedHoldTime(); got != 6 {
		t.Errorf("GoBGP's negotiated hold time = %d, want 6", got)
	}
}

// waitBIRDHold waits until BIRD's established session to us has the
// negotiated hold time want (seconds).
func waitBIRDHold(t *testing.T, b *birdPeer, want string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		out := b.birdc(t, "show", "protocols", "all", "up4")
		if m := birdHoldTimer.FindStringSubmatch(out); m != nil && m[1] == want && strings.Contains(out, "Established") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("BIRD's session never had hold time %s:\n%s", want, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Between two GoBGP speakers that both connect, the session reset by a
// hold-time change comes back with the new hold time: each side closes
// connections that arrive while it idles after the NOTIFICATION, so both
// must leave Idle together (IdleHoldTimeAfterReset).
func TestPrivilegedHoldTimeChangeBetweenSpeakers(t *testing.T) {
	ns.Privileged(t)
	aCfg := Config{ASN: 65001, RouterID: ip("10.0.0.1"), ListenAddresses: []netip.Addr{ip("127.0.0.1")},
		Neighbors: []Neighbor{peer("127.0.0.2", "127.0.0.1", 65002)}, Originate: []netip.Prefix{pfx("10.1.0.0/24")}}
	bCfg := Config{ASN: 65002, RouterID: ip("10.0.0.2"), ListenAddresses: []netip.Addr{ip("127.0.0.2")},
		Neighbors: []Neighbor{peer("127.0.0.1", "127.0.0.2", 65001)}}
	bCfg.Neighbors[0].Timers.HoldTime = 30 * time.Second
	sp := speakers(t, aCfg, bCfg)
	a, b := sp[0], sp[1]
	rb := newRIB(b)
	rb.waitRoute(t, pfx("10.1.0.0/24"), ip("127.0.0.1"))
	for i, hold := range []time.Duration{6 * time.Second, 9 * time.Second, 4 * time.Second} {
		aCfg.Neighbors[0].Timers.HoldTime = hold
		start := time.Now()
		if err := a.Apply(t.Context(), aCfg); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(patience)
		for {
			p := gobgpPeer(t, b, "127.0.0.1")
			if p.GetState().GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED && p.GetTimers().GetState().GetNegotiatedHoldTime() == uint64(hold/time.Second) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("change %d: B's session never came back with hold time %v: %v", i, hold, p.GetState().GetSessionState())
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("hold time %v: session back %v after the change", hold, time.Since(start).Round(10*time.Millisecond))
	}
}

// With graceful restart negotiated, a hold-time change brings the
// session back with the new hold time and costs no route: neither side
// withdraws the other's. A Cease of GoBGP's own ended the session for
// good on the changing side, which withdrew its neighbor's route at once
// and had it back only after its 5 s idle hold.
func TestPrivilegedHoldTimeChangeKeepsRoutes(t *testing.T) {
	ns.Privileged(t)
	pa, pb := pfx("10.1.0.0/24"), pfx("10.2.0.0/24")
	aCfg := Config{ASN: 65001, RouterID: ip("10.0.0.1"), GracefulRestart: grFast, ListenAddresses: []netip.Addr{ip("127.0.0.1")},
		Neighbors: []Neighbor{peer("127.0.0.2", "127.0.0.1", 65002)}, Originate: []netip.Prefix{pa}}
	bCfg := Config{ASN: 65002, RouterID: ip("10.0.0.2"), GracefulRestart: grFast, ListenAddresses: []netip.Addr{ip("127.0.0.2")},
		Neighbors: []Neighbor{peer("127.0.0.1", "127.0.0.2", 65001)}, Originate: []netip.Prefix{pb}}
	bCfg.Neighbors[0].Timers.HoldTime = 30 * time.Second
	sp := speakers(t, aCfg, bCfg)
	a, b := sp[0], sp[1]
	ra, rb := newRIB(a), newRIB(b)
	ra.waitRoute(t, pb, ip("127.0.0.2"))
	rb.waitRoute(t, pa, ip("127.0.0.1"))
	waitEstablished(t, a, "127.0.0.2")

	aCfg.Neighbors[0].Timers.HoldTime, aCfg.Neighbors[0].Timers.Keepalive = 6*time.Second, 2*time.Second
	if err := a.Apply(t.Context(), aCfg); err != nil {
		t.Fatal(err)
	}
	// Follow both sides' routes until the new session has the new hold
	// time and a second more (End-of-RIB, stale paths swept).
	deadline := time.Now().Add(patience)
	var back time.Time
	for back.IsZero() || time.Since(back) < time.Second {
		ra.drainOnce(50 * time.Millisecond)
		rb.drainOnce(50 * time.Millisecond)
		p := gobgpPeer(t, b, "127.0.0.1")
		if back.IsZero() && p.GetState().GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED && p.GetTimers().GetState().GetNegotiatedHoldTime() == 6 {
			back = time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("B's session never came back with hold time 6 s: %v", p.GetState().GetSessionState())
		}
	}
	noWithdraw(t, ra, pb, "A, across its hold-time change")
	noWithdraw(t, rb, pa, "B, across A's hold-time change")
	if got := gobgpPeer(t, a, "127.0.0.2").GetTimers().GetState().GetNegotiatedHoldTime(); got != 6 {
		t.Errorf("A's negotiated hold time = %d, want 6", got)
	}
}

// A neighbor's description is a note for people: changing it on a reload
// (or a gNMI Set) keeps the session. GoBGP's UpdatePeer would reset it.
func TestPrivilegedDescriptionChangeKeepsSession(t *testing.T) {
	ns.Privileged(t)
	startBIRDWith(t, birdSpec{Statics4: []netip.Prefix{pfx("10.50.0.0/24")}})
	cfg := birdConfig()
	cfg.Neighbors = cfg.Neighbors[:1]
	s := speaker(t, cfg)
	r := newRIB(s)
	r.waitRoute(t, pfx("10.50.0.0/24"), ip("10.99.0.2"))
	waitEstablished(t, s, "10.99.0.2")
	before := gobgpPeer(t, s, "10.99.0.2").GetTimers().GetState().GetUptime().AsTime()

	cfg.Neighbors[0].Description = "rack 7, BIRD"
	if err := s.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	// A reset would show within a second: GoBGP sends the NOTIFICATION
	// at once and the session leaves Established.
	time.Sleep(2 * time.Second)
	p := gobgpPeer(t, s, "10.99.0.2")
	if st, up := p.GetState().GetSessionState(), p.GetTimers().GetState().GetUptime().AsTime(); st != api.PeerState_SESSION_STATE_ESTABLISHED || !up.Equal(before) {
		t.Fatalf("a description change cost the session: state %v, established since %v, before %v", st, up, before)
	}
}
