package daemon

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/switchd/switchd/switchd/bfd"
	"github.com/switchd/switchd/switchd/config"
)

// testBFD is a BFD engine whose changes the test gives.
type testBFD struct {
	rec     *recorder
	kick    chan struct{}
	changes []bfd.Change
	peers   map[bfd.Key]bfd.PeerConfig
	refuse  bool // AddPeer fails, as for a link not there yet
}

func (e *testBFD) AddPeer(c bfd.PeerConfig) error {
	if e.refuse {
		e.rec.add("bfd.AddPeer %v refused", c.Key())
		return &bfd.FieldError{Peer: c.Peer, Field: "Interface", Reason: "no such link"}
	}
	e.rec.add("bfd.AddPeer %v", c.Key())
	e.peers[c.Key()] = c
	return nil
}
func (e *testBFD) RemovePeer(k bfd.Key) bool {
	e.rec.add("bfd.RemovePeer %v", k)
	delete(e.peers, k)
	return true
}
func (e *testBFD) Updates() <-chan struct{} { return e.kick }
func (e *testBFD) Drain() []bfd.Change {
	c := e.changes
	e.changes = nil
	return c
}
func (e *testBFD) Sessions() []bfd.Session {
	var out []bfd.Session
	for _, c := range e.peers {
		out = append(out, bfd.Session{Config: c, State: bfd.Up})
	}
	return out
}
func (e *testBFD) Close() error { return nil }

// gatedSpeaker is the test speaker with the BFD hold.
type gatedSpeaker struct{ *testSpeaker }

func (s gatedSpeaker) HoldForBFD(ctx context.Context, a netip.Addr, why string) error {
	s.rec.add("bgp.HoldForBFD %v", a)
	return s.DropNeighbor(ctx, a, why)
}
func (s gatedSpeaker) ReleaseBFD(ctx context.Context, a netip.Addr) error {
	s.rec.add("bgp.ReleaseBFD %v", a)
	return nil
}

// TestWiringBFD: a BFD failure (Up to Down) marks the peer down in the
// FIB and applies it (one group write) before the BGP neighbor is dropped
// and held; Up again marks it up and releases the neighbor; the peer's
// AdminDown (its BFD restarting) and sessions coming up for the first
// time touch nothing; a session dropped from the config is removed from
// the engine and lets go of what its failure held.
func TestWiringBFD(t *testing.T) {
	ctx := context.Background()
	w := newWired(t, testConfig{neighbors: []string{"10.0.1.1"}}, nil)
	e := &testBFD{rec: w.rec, kick: make(chan struct{}, 1), peers: map[bfd.Key]bfd.PeerConfig{}}
	w.d.bfd = e
	w.d.speaker = gatedSpeaker{w.sp}
	a := addr("10.0.1.1")
	s := config.BFDSession{PeerConfig: bfd.PeerConfig{Peer: a, Interface: "swp1"}, Neighbors: []netip.Addr{a}}
	k := s.Key()

	m := w.rec.mark()
	w.d.setBFD(ctx, &config.Intent{BFD: []config.BFDSession{s}})
	if got := w.rec.since(m); !slices.Equal(got, []string{"bfd.AddPeer " + k.String()}) {
		t.Fatalf("setBFD: %q", got)
	}
	if st := w.d.status.load().BFD; st == nil || len(st.Sessions) != 1 || st.Sessions[0].Neighbors[0] != "10.0.1.1" {
		t.Errorf("status: %+v", st)
	}
	step := bfdStep(t, w, e)
	change := func(old, new, remote bfd.State) bfd.Change {
		return bfd.Change{Peer: k, Old: old, New: new, RemoteState: remote}
	}
	step("first Up", []bfd.Change{change(bfd.Down, bfd.Init, bfd.Down), change(bfd.Init, bfd.Up, bfd.Up)})
	step("failure", []bfd.Change{change(bfd.Up, bfd.Down, bfd.Up)},
		"fib.NextHopDown 10.0.1.1", "fib.Apply",
		"bgp.HoldForBFD 10.0.1.1", "bgp.DropNeighbor 10.0.1.1", "fib.NextHopDown 10.0.1.1", "fib.Apply")
	if st := w.d.status.load().BFD.Sessions[0]; !st.Failed {
		t.Errorf("status after the failure: %+v, want failed", st)
	}
	step("Up again", []bfd.Change{change(bfd.Down, bfd.Up, bfd.Up)}, "fib.NextHopUp 10.0.1.1", "bgp.ReleaseBFD 10.0.1.1")
	// Down and Up again in one batch (a loaded machine): nothing stays
	// held, or the neighbors would stay down with BFD up.
	step("failure and Up again at once", []bfd.Change{change(bfd.Up, bfd.Down, bfd.Up), change(bfd.Down, bfd.Up, bfd.Up)},
		"fib.NextHopDown 10.0.1.1", "fib.NextHopUp 10.0.1.1", "bgp.ReleaseBFD 10.0.1.1", "fib.Apply")
	step("peer's AdminDown", []bfd.Change{change(bfd.Up, bfd.Down, bfd.AdminDown)})

	step("failure again", []bfd.Change{change(bfd.Up, bfd.Down, bfd.Init)},
		"fib.NextHopDown 10.0.1.1", "fib.Apply",
		"bgp.HoldForBFD 10.0.1.1", "bgp.DropNeighbor 10.0.1.1", "fib.NextHopDown 10.0.1.1", "fib.Apply")
	// A reload while failed: the session now protects 10.0.1.3 instead,
	// which is held at once; 10.0.1.1 is let go; the FIB mark stays.
	m = w.rec.mark()
	s2 := s
	s2.Neighbors = []netip.Addr{addr("10.0.1.3")}
	w.d.setBFD(ctx, &config.Intent{BFD: []config.BFDSession{s2}})
	if got := w.rec.since(m); !slices.Equal(got, []string{"bgp.ReleaseBFD 10.0.1.1", "bgp.HoldForBFD 10.0.1.3", "bgp.DropNeighbor 10.0.1.3"}) {
		t.Errorf("neighbors changed while failed: %q", got)
	}
	m = w.rec.mark()
	w.d.setBFD(ctx, &config.Intent{})
	if got := w.rec.since(m); !slices.Equal(got, []string{"fib.NextHopUp 10.0.1.1", "bgp.ReleaseBFD 10.0.1.3", "bfd.RemovePeer " + k.String()}) {
		t.Errorf("session removed while failed: %q", got)
	}
	if st := w.d.status.load().BFD; st != nil {
		t.Errorf("status without sessions: %+v", st)
	}
}

// TestWiringBFDRetry: a session the engine refuses (its link is not there
// yet) is given again at the next retry (link news, resync) until taken,
// and not after.
func TestWiringBFDRetry(t *testing.T) {
	w := newWired(t, testConfig{neighbors: []string{"10.0.1.1"}}, nil)
	e := &testBFD{rec: w.rec, kick: make(chan struct{}, 1), peers: map[bfd.Key]bfd.PeerConfig{}, refuse: true}
	w.d.bfd = e
	s := config.BFDSession{PeerConfig: bfd.PeerConfig{Peer: addr("10.0.1.1"), Interface: "swp9"}}
	k := s.Key().String()
	m := w.rec.mark()
	w.d.setBFD(context.Background(), &config.Intent{BFD: []config.BFDSession{s}})
	w.d.retryBFD()
	e.refuse = false
	w.d.retryBFD()
	w.d.retryBFD()
	want := []string{"bfd.AddPeer " + k + " refused", "bfd.AddPeer " + k + " refused", "bfd.AddPeer " + k}
	if got := w.rec.since(m); !slices.Equal(got, want) {
		t.Errorf("calls %q, want %q", got, want)
	}
}

// bfdStep gives the daemon engine changes and checks the calls onBFD
// makes (turn ends left out).
func bfdStep(t *testing.T, w *wired, e *testBFD) func(what string, cs []bfd.Change, want ...string) {
	return func(what string, cs []bfd.Change, want ...string) {
		t.Helper()
		m := w.rec.mark()
		e.changes = cs
		w.d.onBFD(context.Background())
		if got := withoutTurnEnds(w.rec.since(m)); !slices.Equal(got, want) {
			t.Errorf("%s: calls %q, want %q", what, got, want)
		}
	}
}
