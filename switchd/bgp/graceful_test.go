package bgp

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"

	"github.com/switchd/switchd/sim/ns"
)

// Graceful restart needs a speaker that dies without a word: it runs in a
// child process (this test binary, TestHelperSpeakerProcess) that the test
// kills with SIGKILL and starts again.

const childEnv = "SWITCHD_TEST_BGP_CHILD"

type childSpec struct {
	Config     Config
	Restarting bool
}

// TestHelperSpeakerProcess is the child: it runs the speaker described in
// its environment until it is killed. It does nothing in a normal run.
func TestHelperSpeakerProcess(t *testing.T) {
	raw := os.Getenv(childEnv)
	if raw == "" {
		t.Skip("runs only as a child of the graceful restart tests")
	}
	var spec childSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	s := New(WithLogger(testLogger(t)))
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if spec.Restarting {
		if err := s.SetRestarting(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Apply(t.Context(), spec.Config); err != nil {
		t.Fatal(err)
	}
	select {}
}

// startChild runs a speaker in a child process; the returned function
// kills it with SIGKILL (also at the end of the test).
func startChild(t *testing.T, spec childSpec) (kill func()) {
	t.Helper()
	p := startChildProc(t, spec)
	return func() { p.Signal(syscall.SIGKILL); p.Wait() }
}

// startChildProc is startChild returning the process, for tests that
// signal it otherwise (it is killed at the end of the test too).
func startChildProc(t *testing.T, spec childSpec) *os.Process {
	t.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSpeakerProcess$", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGKILL); cmd.Process.Wait() })
	return cmd.Process
}

var grFast = GracefulRestart{Enabled: true, RestartTime: 60 * time.Second}

// noWithdraw fails if r ever drained p as withdrawn.
func noWithdraw(t *testing.T, r *rib, p netip.Prefix, when string) {
	t.Helper()
	for _, rt := range r.seen {
		if rt.Prefix == p && len(rt.NextHops) == 0 {
			t.Errorf("%s: %v was withdrawn (Drain output %v)", when, p, r.seen)
			return
		}
	}
}

// waitNotEstablished waits until s's session to addr is down.
func waitNotEstablished(t *testing.T, s *Speaker, addr string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for neighborState(t, s, ip(addr)).State == StateEstablished {
		if time.Now().After(deadline) {
			t.Fatalf("session to %s still established", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPrivilegedGracefulRestartHelperAndRestarting(t *testing.T) {
	ns.Privileged(t)
	mp := Multipath{Enabled: true}
	pa1, pa2, pc := pfx("10.1.1.0/24"), pfx("10.1.2.0/24"), pfx("10.3.0.0/24")
	// A (the child) sits between B and C, like a leaf between a spine and
	// a host: B learns C's prefix only through A. B and C are passive, so
	// A's sessions come up one by one after its random connect delays.
	aCfg := Config{
		ASN: 65001, RouterID: ip("10.0.0.1"), Multipath: mp, GracefulRestart: grFast,
		ListenAddresses: []netip.Addr{ip("127.0.0.1")},
		Neighbors:       []Neighbor{peer("127.0.0.2", "127.0.0.1", 65002), peer("127.0.0.3", "127.0.0.1", 65003)},
		Originate:       []netip.Prefix{pa1, pa2},
	}
	side := func(n int, as uint32, originate ...netip.Prefix) Config {
		addr := netip.AddrFrom4([4]byte{127, 0, 0, byte(n)})
		nb := peer("127.0.0.1", addr.String(), 65001)
		nb.Passive = true
		return Config{
			ASN: as, RouterID: netip.AddrFrom4([4]byte{10, 0, 0, byte(n)}), Multipath: mp, GracefulRestart: grFast,
			ListenAddresses: []netip.Addr{addr}, Neighbors: []Neighbor{nb}, Originate: originate,
		}
	}
	sp := speakers(t, side(2, 65002), side(3, 65003, pc))
	b := sp[0]
	rb := newRIB(b)

	kill := startChild(t, childSpec{Config: aCfg})
	rb.waitRoute(t, pa1, ip("127.0.0.1"))
	rb.waitRoute(t, pa2, ip("127.0.0.1"))
	rb.waitRoute(t, pc, ip("127.0.0.1"))
	waitEstablished(t, b, "127.0.0.1")

	// A dies without a NOTIFICATION: B keeps its routes (helper).
	kill()
	waitNotEstablished(t, b, "127.0.0.1")
	rb.drainOnce(500 * time.Millisecond)
	for _, p := range []netip.Prefix{pa1, pa2, pc} {
		if got := rb.routes[p]; len(got) == 0 {
			t.Fatalf("helper dropped %v when the restarting peer's session went down", p)
		}
	}

	// A comes back restarting, no longer originating pa2. B must never
	// lose pa1 or pc (A defers its End-of-RIB until it has C's routes),
	// and loses pa2 once A's End-of-RIB arrives.
	aCfg.Originate = []netip.Prefix{pa1}
	startChild(t, childSpec{Config: aCfg, Restarting: true})
	rb.waitRoute(t, pa2)
	rb.drainOnce(500 * time.Millisecond)
	noWithdraw(t, rb, pa1, "across A's restart")
	noWithdraw(t, rb, pc, "across A's restart")
	if got := rb.routes[pc]; len(got) != 1 || got[0] != ip("127.0.0.1") {
		t.Errorf("after A's restart B has %v via %v, want via 127.0.0.1", pc, got)
	}
	if st := neighborState(t, b, ip("127.0.0.1")); st.State != StateEstablished {
		t.Errorf("B's session to A after the restart: %v", st.State)
	}
}

func TestPrivilegedStopKeepsRoutesAtGracefulPeers(t *testing.T) {
	ns.Privileged(t)
	mp := Multipath{Enabled: true}
	gr := GracefulRestart{Enabled: true, RestartTime: 2 * time.Second}
	sp := speakers(t,
		Config{ASN: 65001, RouterID: ip("10.0.0.1"), Multipath: mp, GracefulRestart: gr,
			ListenAddresses: []netip.Addr{ip("127.0.0.1")}, Neighbors: []Neighbor{peer("127.0.0.2", "127.0.0.1", 65002)},
			Originate: []netip.Prefix{pfx("10.1.0.0/24")}},
		Config{ASN: 65002, RouterID: ip("10.0.0.2"), Multipath: mp, GracefulRestart: gr,
			ListenAddresses: []netip.Addr{ip("127.0.0.2")}, Neighbors: []Neighbor{peer("127.0.0.1", "127.0.0.2", 65001)}},
	)
	a, b := sp[0], sp[1]
	rb := newRIB(b)
	rb.waitRoute(t, pfx("10.1.0.0/24"), ip("127.0.0.1"))
	waitEstablished(t, b, "127.0.0.1")

	a.Stop()
	waitNotEstablished(t, b, "127.0.0.1")
	rb.drainOnce(200 * time.Millisecond)
	noWithdraw(t, rb, pfx("10.1.0.0/24"), "right after A's Stop")
	// A does not come back: its restart time (2 s) ends the wait.
	rb.waitRoute(t, pfx("10.1.0.0/24"))
}

func TestPrivilegedSynced(t *testing.T) {
	ns.Privileged(t)
	mp := Multipath{Enabled: true}
	t.Run("EndOfRIB", func(t *testing.T) {
		// A long timeout: only End-of-RIB can close Synced in time.
		sp := speakers(t,
			Config{ASN: 65001, RouterID: ip("10.0.0.1"), Multipath: mp, GracefulRestart: grFast, SyncTimeout: time.Hour,
				ListenAddresses: []netip.Addr{ip("127.0.0.1")}, Neighbors: []Neighbor{peer("127.0.0.2", "127.0.0.1", 65002)}},
			Config{ASN: 65002, RouterID: ip("10.0.0.2"), Multipath: mp, GracefulRestart: grFast,
				ListenAddresses: []netip.Addr{ip("127.0.0.2")}, Neighbors: []Neighbor{peer("127.0.0.1", "127.0.0.2", 65001)},
				Originate: []netip.Prefix{pfx("10.2.0.0/24")}},
		)
		select {
		case <-sp[0].Synced():
		case <-time.After(patience):
			t.Fatal("Synced not closed though the only neighbor is up and sent End-of-RIB")
		}
		// Everything the neighbor had was learned before End-of-RIB.
		newRIB(sp[0]).waitRoute(t, pfx("10.2.0.0/24"), ip("127.0.0.2"))
	})
	t.Run("QuietWithoutGR", func(t *testing.T) {
		// Without graceful restart GoBGP sends no End-of-RIB: Synced closes
		// once the neighbor is up and its update stream has gone quiet,
		// long before the timeout (issue 7 item 5; before, it waited for
		// the timeout). The neighbor is in the waiting speaker's first
		// Apply (speakers() would apply an empty neighbor list first, and
		// with nothing to wait for Synced may close before the neighbors
		// arrive).
		sp := []*Speaker{
			speaker(t, Config{ASN: 65001, RouterID: ip("10.0.0.1"), Multipath: mp, SyncTimeout: time.Hour,
				ListenAddresses: []netip.Addr{ip("127.0.0.1")}, Neighbors: []Neighbor{peer("127.0.0.2", "127.0.0.1", 65002)}}),
			speaker(t, Config{ASN: 65002, RouterID: ip("10.0.0.2"), Multipath: mp,
				ListenAddresses: []netip.Addr{ip("127.0.0.2")}, Neighbors: []Neighbor{peer("127.0.0.1", "127.0.0.2", 65001)},
				Originate: []netip.Prefix{pfx("10.2.0.0/24")}}),
		}
		select {
		case <-sp[0].Synced():
		case <-time.After(patience):
			t.Fatal("Synced not closed though the neighbor without graceful restart is up and quiet")
		}
		// Everything the neighbor had was learned before Synced.
		r := newRIB(sp[0])
		r.drainOnce(0)
		if got := r.routes[pfx("10.2.0.0/24")]; !slices.Equal(got, []netip.Addr{ip("127.0.0.2")}) {
			t.Errorf("at Synced, 10.2.0.0/24 has next hops %v, want 127.0.0.2", got)
		}
	})
	t.Run("NeverUpWithoutGR", func(t *testing.T) {
		// A neighbor without graceful restart that does not come up holds
		// Synced for noGRUpWait only, not for the (long) sync timeout.
		s := speaker(t, Config{ASN: 65001, RouterID: ip("10.0.0.1"), Multipath: mp, SyncTimeout: time.Hour, ListenPort: -1,
			Neighbors: []Neighbor{peer("127.0.0.9", "127.0.0.1", 65009)}})
		select {
		case <-s.Synced():
		case <-time.After(noGRUpWait + patience):
			t.Fatal("Synced never closed though the only neighbor has no graceful restart and is not up")
		}
	})
	t.Run("DeadNeighborTimesOut", func(t *testing.T) {
		s := speaker(t, Config{ASN: 65001, RouterID: ip("10.0.0.1"), Multipath: mp, GracefulRestart: grFast,
			SyncTimeout: 2 * time.Second, ListenPort: -1,
			Neighbors: []Neighbor{peer("127.0.0.9", "127.0.0.1", 65009)}})
		select {
		case <-s.Synced():
		case <-time.After(patience):
			t.Fatal("Synced never closed though the sync timeout passed")
		}
	})
}

func TestPrivilegedSyncedWithBIRD(t *testing.T) {
	ns.Privileged(t)
	// BIRD is graceful-restart aware by default: it sends End-of-RIB to a
	// speaker announcing the capability.
	startBIRD(t, []netip.Prefix{pfx("10.50.0.0/24")}, []netip.Prefix{pfx("2001:db8:50::/48")})
	cfg := birdConfig()
	cfg.GracefulRestart = grFast
	cfg.SyncTimeout = time.Hour
	s := speaker(t, cfg)
	select {
	case <-s.Synced():
	case <-time.After(patience):
		t.Fatal("Synced not closed with BIRD up on both sessions")
	}
	r := newRIB(s)
	r.waitRoute(t, pfx("10.50.0.0/24"), ip("10.99.0.2"))
	r.waitRoute(t, pfx("2001:db8:50::/48"), ip("fd99::2"))
}

// TestPrivilegedStopWithdrawsNothingRelayed stops a speaker between six
// graceful-restart neighbors, each of which sent it a prefix it relayed to
// the others: no neighbor may receive a withdrawal of another's prefix. Ending
// the sessions one NOTIFICATION at a time did that: GoBGP counts a session
// it reset itself as over, withdraws that neighbor's prefix, and sends the
// withdrawal on the sessions it had not reset yet (tcpshut.go).
func TestPrivilegedStopWithdrawsNothingRelayed(t *testing.T) {
	ns.Privileged(t)
	mp := Multipath{Enabled: true}
	const n = 6
	side := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)}) }
	prefix := func(i int) netip.Prefix { return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 2, byte(i), 0}), 24) }
	hub := Config{ASN: 65001, RouterID: ip("10.0.0.1"), Multipath: mp, GracefulRestart: grFast,
		ListenAddresses: []netip.Addr{ip("127.0.0.1")}}
	cfgs := []Config{hub}
	for i := range n {
		hub.Neighbors = append(hub.Neighbors, peer(side(i).String(), "127.0.0.1", uint32(65100+i)))
		// Passive: no connection collisions with the hub.
		nb := peer("127.0.0.1", side(i).String(), 65001)
		nb.Passive = true
		cfgs = append(cfgs, Config{ASN: uint32(65100 + i), RouterID: netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}),
			Multipath: mp, GracefulRestart: grFast, ListenAddresses: []netip.Addr{side(i)},
			Neighbors: []Neighbor{nb}, Originate: []netip.Prefix{prefix(i)}})
	}
	cfgs[0] = hub
	sp := speakers(t, cfgs...)
	ribs := make([]*rib, n)
	for i := range n {
		ribs[i] = newRIB(sp[1+i])
		for j := range n {
			if j != i {
				ribs[i].waitRoute(t, prefix(j), ip("127.0.0.1"))
			}
		}
	}

	sp[0].Stop()
	for i := range n {
		waitNotEstablished(t, sp[1+i], "127.0.0.1")
	}
	for i := range n {
		ribs[i].drainOnce(200 * time.Millisecond)
		for j := range n {
			if j != i {
				noWithdraw(t, ribs[i], prefix(j), fmt.Sprintf("neighbor %v, when the hub stopped", side(i)))
			}
		}
	}
}

// TestPrivilegedHelperTakesRestartedPeerAtOnce has a peer die and connect
// again at once, as a restarting FRR does 70 ms after its start: the
// helper must take that connection and answer it with an OPEN. GoBGP held
// a session that had gone down in Idle for 5 s and closed every
// connection meanwhile, so a restarted FRR spine's sessions came up 5 s
// late, at the end of the hold, in no particular order; FRR then ended
// its selection deferral on the first leaf's End-of-RIB and dropped the
// other leaf's routes from its kernel until they came.
func TestPrivilegedHelperTakesRestartedPeerAtOnce(t *testing.T) {
	ns.Privileged(t)
	p := pfx("10.1.0.0/24")
	aCfg := Config{ASN: 65001, RouterID: ip("10.0.0.1"), GracefulRestart: grFast,
		ListenAddresses: []netip.Addr{ip("127.0.0.1")}, Neighbors: []Neighbor{peer("127.0.0.2", "127.0.0.1", 65002)},
		Originate: []netip.Prefix{p}}
	// B is passive: it only ever answers A's connections.
	toA := peer("127.0.0.1", "127.0.0.2", 65001)
	toA.Passive = true
	b := speakers(t, Config{ASN: 65002, RouterID: ip("10.0.0.2"), GracefulRestart: grFast,
		ListenAddresses: []netip.Addr{ip("127.0.0.2")}, Neighbors: []Neighbor{toA}})[0]
	rb := newRIB(b)

	kill := startChild(t, childSpec{Config: aCfg})
	rb.waitRoute(t, p, ip("127.0.0.1"))
	waitEstablished(t, b, "127.0.0.1")
	kill()
	waitNotEstablished(t, b, "127.0.0.1")

	// A is back 100 ms later (FRR's bgpd took 70 ms): a connection from
	// its address. Unpatched, B still idled for 4.9 s.
	time.Sleep(100 * time.Millisecond)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}, Timeout: patience}
	c, err := d.Dial("tcp", "127.0.0.2:179")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(patience))
	var hdr [19]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("B refused the restarted peer's connection (%v) instead of answering with an OPEN", err)
	}
	if hdr[18] != 1 {
		t.Fatalf("B answered the restarted peer's connection with message type %d, want an OPEN (1)", hdr[18])
	}
	// Helper all along: the route is kept.
	rb.drainOnce(200 * time.Millisecond)
	noWithdraw(t, rb, p, "across A's restart")
}

// TestPrivilegedConfigChangeKeepsGracefulRestart changes a neighbor's
// prefix limit, which GoBGP applies to the running session, and then the
// neighbor dies: its route must be kept, as after any restart. GoBGP's
// UpdatePeer replaced the session's per-family state with the new
// configuration's, which has none: graceful restart was forgotten and the
// route dropped at once.
func TestPrivilegedConfigChangeKeepsGracefulRestart(t *testing.T) {
	ns.Privileged(t)
	p := pfx("10.1.0.0/24")
	aCfg := Config{ASN: 65001, RouterID: ip("10.0.0.1"), GracefulRestart: grFast,
		ListenAddresses: []netip.Addr{ip("127.0.0.1")}, Neighbors: []Neighbor{peer("127.0.0.2", "127.0.0.1", 65002)},
		Originate: []netip.Prefix{p}}
	bCfg := Config{ASN: 65002, RouterID: ip("10.0.0.2"), GracefulRestart: grFast,
		ListenAddresses: []netip.Addr{ip("127.0.0.2")}, Neighbors: []Neighbor{peer("127.0.0.1", "127.0.0.2", 65001)}}
	b := speakers(t, bCfg)[0]
	rb := newRIB(b)
	kill := startChild(t, childSpec{Config: aCfg})
	rb.waitRoute(t, p, ip("127.0.0.1"))
	waitEstablished(t, b, "127.0.0.1")
	up := gobgpPeer(t, b, "127.0.0.1").GetTimers().GetState().GetUptime().AsTime()

	bCfg.Neighbors[0].PrefixLimits = []PrefixLimit{{Family: IPv4Unicast, MaxPrefixes: 1000}}
	if err := b.Apply(t.Context(), bCfg); err != nil {
		t.Fatal(err)
	}
	if st := gobgpPeer(t, b, "127.0.0.1"); st.GetState().GetSessionState() != api.PeerState_SESSION_STATE_ESTABLISHED ||
		!st.GetTimers().GetState().GetUptime().AsTime().Equal(up) {
		t.Fatalf("the prefix-limit change reset the session: %v", st.GetState().GetSessionState())
	}

	kill()
	waitNotEstablished(t, b, "127.0.0.1")
	rb.drainOnce(500 * time.Millisecond)
	noWithdraw(t, rb, p, "after A died")
}
