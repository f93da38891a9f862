package bfd

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
)

// Two engines in two namespaces: single-hop and multihop sessions, IPv4
// and IPv6, come Up; a single-hop session routed through r (TTL 254 on
// arrival) never does, its packets counted as bad TTL; closing one engine
// takes the other's sessions Down by detection time; a timer change while
// Up is a Poll Sequence both sides apply.
func TestEnginePairPrivileged(t *testing.T) {
	tp := newTopo(t)
	cfgs := peersOfA(100*time.Millisecond, 3)
	cfgs[2].MinTTL = 254 // one router on the way
	// Single hop to b's far address: through r.
	routed := PeerConfig{Peer: mustAddr("10.0.2.1"), Local: mustAddr("10.0.1.1"), DesiredMinTx: 100 * time.Millisecond}
	var mirrored []PeerConfig
	for _, c := range append(cfgs, routed) {
		c = mirror(c)
		if c.Interface != "" {
			c.Interface = "eth0"
		}
		mirrored = append(mirrored, c)
	}
	ea := newEngine(t, tp.a, append(cfgs, routed)...)
	eb := newEngine(t, tp.b, mirrored...)
	wa, wb := &watcher{e: ea}, &watcher{e: eb}
	wa.waitFor(t, "a's sessions Up", lastIs(keys(cfgs), Up, -1))
	wb.waitFor(t, "b's sessions Up", lastIs(keys(mirrored[:4]), Up, -1))

	// Both ends drop what comes through r on the single-hop port.
	for deadline := time.Now().Add(patience); ea.Stats().RxBadTTL < 3 || eb.Stats().RxBadTTL < 3; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("bad TTL counts a %+v b %+v", ea.Stats(), eb.Stats())
		}
	}
	for _, s := range ea.Sessions() {
		if s.Config.Key() == routed.Key() && (s.State != Down || s.UpCount != 0 || s.RxPackets != 0) {
			t.Errorf("routed single-hop session: %v, up %d times, %d packets accepted", s.State, s.UpCount, s.RxPackets)
		}
	}

	// Negotiated timers once the Poll Sequence that follows Up is done.
	wa.waitFor(t, "polls done", func([]Change) bool {
		for _, s := range ea.Sessions() {
			if s.State == Up && s.Polling {
				return false
			}
		}
		return true
	})
	for _, s := range ea.Sessions() {
		if s.State != Up {
			continue
		}
		if s.TxInterval != 100*time.Millisecond || s.DetectionTime != 300*time.Millisecond || s.RemoteDiscr == 0 || s.RemoteState != Up {
			t.Errorf("%v: tx %v detect %v remote discr %x state %v", s.Config.Key(), s.TxInterval, s.DetectionTime, s.RemoteDiscr, s.RemoteState)
		}
	}

	// A slower rate on a is polled for; b's detection time follows.
	slow := cfgs[0]
	slow.DesiredMinTx = 300 * time.Millisecond
	if err := ea.AddPeer(slow); err != nil {
		t.Fatal(err)
	}
	wb.waitFor(t, "b applies a's new rate", func([]Change) bool {
		for _, s := range eb.Sessions() {
			if s.Config.Key() == mirrored[0].Key() {
				return s.RemoteDesiredMinTx == 300*time.Millisecond && s.DetectionTime == 900*time.Millisecond
			}
		}
		return false
	})

	// Each session sends from a port of its own in 49152-65535.
	ports := map[int]bool{}
	ea.mu.Lock()
	for _, p := range ea.peers {
		if p.tx.port < srcPortMin || p.tx.port > srcPortMax || ports[p.tx.port] {
			t.Errorf("%v: source port %d", p.key, p.tx.port)
		}
		ports[p.tx.port] = true
	}
	ea.mu.Unlock()

	// a stops: it says AdminDown, and b's sessions go Down for that
	// reason, not by detection time.
	ea.Close()
	wb.waitFor(t, "b's sessions Down by a's AdminDown", lastIs(keys(mirrored[:4]), Down, int(DiagNeighborDown)))
}

// Single hop between IPv6 link-local addresses, with no local address
// given (as BGP unnumbered would): the link names the session.
func TestLinkLocalPrivileged(t *testing.T) {
	tp := newTopo(t)
	for _, x := range []struct {
		n *ns.NS
		a string
	}{{tp.a, "fe80::a/64"}, {tp.b, "fe80::b/64"}} {
		if err := x.n.AddAddr("eth0", netip.MustParsePrefix(x.a)); err != nil {
			t.Fatal(err)
		}
	}
	ca := PeerConfig{Peer: mustAddr("fe80::b"), Interface: "eth0", DesiredMinTx: 100 * time.Millisecond, RequiredMinRx: 100 * time.Millisecond}
	cb := PeerConfig{Peer: mustAddr("fe80::a"), Interface: "eth0", DesiredMinTx: 100 * time.Millisecond, RequiredMinRx: 100 * time.Millisecond}
	ea := newEngine(t, tp.a, ca)
	newEngine(t, tp.b, cb)
	(&watcher{e: ea}).waitFor(t, "link-local session Up", lastIs([]Key{ca.Key()}, Up, -1))
}

// RemovePeer tells the peer AdminDown: it goes Down with diag 3 ("neighbor
// signaled session down"), not by detection time.
func TestRemovePeerPrivileged(t *testing.T) {
	tp := newTopo(t)
	cfgs := peersOfA(100*time.Millisecond, 3)[:1]
	ea := newEngine(t, tp.a, cfgs...)
	back := mirror(cfgs[0])
	eb := newEngine(t, tp.b, back)
	wb := &watcher{e: eb}
	wb.waitFor(t, "Up", lastIs([]Key{back.Key()}, Up, -1))
	if !ea.RemovePeer(cfgs[0].Key()) {
		t.Fatal("RemovePeer: no such session")
	}
	if len(ea.Sessions()) != 0 {
		t.Errorf("sessions after RemovePeer: %v", describe(ea.Sessions()))
	}
	wb.waitFor(t, "Down by AdminDown", lastIs([]Key{back.Key()}, Down, int(DiagNeighborDown)))
	if c := wb.seen[len(wb.seen)-1]; c.RemoteState != AdminDown {
		t.Errorf("b's last change %+v: the peer not in AdminDown", c)
	}
}

// A session whose local address is not on the machine yet is accepted
// and comes Up once the address appears; a link that does not exist is
// refused, naming the field.
func TestAddPeerLaterAddressPrivileged(t *testing.T) {
	tp := newTopo(t)
	ca := PeerConfig{Peer: mustAddr("10.0.0.2"), Local: mustAddr("10.0.0.11"), Interface: "eth0", DesiredMinTx: 100 * time.Millisecond, RequiredMinRx: 100 * time.Millisecond}
	ea := newEngine(t, tp.a, ca)
	var fe *FieldError
	if err := ea.AddPeer(PeerConfig{Peer: mustAddr("10.0.0.3"), Interface: "nosuch0"}); !errors.As(err, &fe) || fe.Field != "Interface" {
		t.Errorf("AddPeer on a missing link: %v, want a FieldError on Interface", err)
	}
	newEngine(t, tp.b, mirror(ca))
	if err := tp.a.AddAddr("eth0", netip.MustParsePrefix("10.0.0.11/24")); err != nil {
		t.Fatal(err)
	}
	(&watcher{e: ea}).waitFor(t, "Up once the address exists", lastIs([]Key{ca.Key()}, Up, -1))
}
