package daemon

import (
	"context"
	"slices"
	"testing"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/switchd/bfd"
	"github.com/switchd/switchd/switchd/config"
)

// TestWiringBFDStatic: a static route whose only gateway's BFD session
// fails leaves the FIB's desired set in the same Apply as the gateway's
// group write (so a less specific route takes the traffic), and comes
// back when the session is Up; the fallback route via another gateway is
// never touched. A reload keeps a withheld route out, and a session
// removed from the config while failed gives the route back.
func TestWiringBFDStatic(t *testing.T) {
	ctx := context.Background()
	w := newWired(t, testConfig{statics: map[string]string{"192.0.2.0/24": "10.0.1.1", "192.0.0.0/16": "10.0.2.1"}}, nil)
	e := &testBFD{rec: w.rec, kick: make(chan struct{}, 1), peers: map[bfd.Key]bfd.PeerConfig{}}
	w.d.bfd = e
	s := config.BFDSession{PeerConfig: bfd.PeerConfig{Peer: addr("10.0.1.1"), Interface: "swp1"}, Static: true}
	k := s.Key()
	in := *w.d.intent
	in.BFD = []config.BFDSession{s}
	w.d.setBFD(ctx, &in)
	step := bfdStep(t, w, e)
	change := func(old, new bfd.State) bfd.Change {
		return bfd.Change{Peer: k, Old: old, New: new, RemoteState: bfd.Up}
	}
	step("first Up", []bfd.Change{change(bfd.Down, bfd.Up)})
	step("failure", []bfd.Change{change(bfd.Up, bfd.Down)},
		"fib.NextHopDown 10.0.1.1", "fib.DeleteRoute 192.0.2.0/24", "fib.Apply")
	step("Up again", []bfd.Change{change(bfd.Down, bfd.Up)}, "fib.NextHopUp 10.0.1.1", "fib.SetRoute 192.0.2.0/24")
	step("failure again", []bfd.Change{change(bfd.Up, bfd.Down)},
		"fib.NextHopDown 10.0.1.1", "fib.DeleteRoute 192.0.2.0/24", "fib.Apply")

	// A reload with the same statics writes nothing: the route stays out.
	m := w.rec.mark()
	if err := w.d.setStatics(&in); err != nil {
		t.Fatal(err)
	}
	w.d.setBFD(ctx, &in)
	if got := w.rec.since(m); len(got) != 0 {
		t.Errorf("reload while failed: %q", got)
	}
	// The session taken out of the config while failed: the route is
	// wanted again.
	m = w.rec.mark()
	noBFD := in
	noBFD.BFD = nil
	w.d.setBFD(ctx, &noBFD)
	want := []string{"fib.NextHopUp 10.0.1.1", "bfd.RemovePeer " + k.String(), "fib.SetRoute 192.0.2.0/24"}
	if got := w.rec.since(m); !slices.Equal(got, want) {
		t.Errorf("session removed while failed: %q, want %q", got, want)
	}

	// Failed again, then the route leaves the config: nothing to delete.
	w.d.setBFD(ctx, &in)
	step("failure with the route configured", []bfd.Change{change(bfd.Up, bfd.Down)},
		"fib.NextHopDown 10.0.1.1", "fib.DeleteRoute 192.0.2.0/24", "fib.Apply")
	m = w.rec.mark()
	less := in
	less.Routes = slices.DeleteFunc(slices.Clone(in.Routes), func(r fib.Route) bool { return r.Key.Dst == pfx("192.0.2.0/24") })
	if err := w.d.setStatics(&less); err != nil {
		t.Fatal(err)
	}
	if got := w.rec.since(m); len(got) != 0 {
		t.Errorf("withheld route removed from the config: %q", got)
	}
	if len(w.d.bfdl.withheld) != 0 {
		t.Errorf("withheld after the route left the config: %v", w.d.bfdl.withheld)
	}
}
