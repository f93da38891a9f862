package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/switchd/bfd"
	"github.com/switchd/switchd/switchd/config"
	"github.com/switchd/switchd/switchd/daemon/apiclient"
)

// bfdEngine runs the BFD sessions of the daemon's namespace
// (*bfd.Engine); safe from any goroutine.
type bfdEngine interface {
	AddPeer(cfg bfd.PeerConfig) error
	RemovePeer(key bfd.Key) bool
	Updates() <-chan struct{}
	Drain() []bfd.Change
	Sessions() []bfd.Session
	Close() error
}

// bfdGate is what BFD needs of the speaker (*bgp.Speaker): a neighbor
// whose BFD session failed is dropped and held down until it is Up again.
// A speaker without it (tests' fakes) gets FIB marks only.
type bfdGate interface {
	HoldForBFD(ctx context.Context, addr netip.Addr, why string) error
	ReleaseBFD(ctx context.Context, addr netip.Addr) error
}

var _ bfdEngine = (*bfd.Engine)(nil)

// bfdLoop is the loop's bookkeeping of BFD.
type bfdLoop struct {
	// want are the configured sessions by key, as last given to the
	// engine.
	want map[bfd.Key]config.BFDSession
	// failed are the sessions that went from Up to Down (not by the
	// peer's AdminDown) and are not Up again: their peer is marked down
	// in the FIB and their neighbors are held.
	failed map[bfd.Key]bool
	// refused are configured sessions the engine refused (a link not
	// there yet): tried again on link news and at each resync.
	refused map[bfd.Key]bool
	// withheld are the static routes out of the FIB because BFD is down
	// to every gateway of theirs (bfd_static.go).
	withheld map[fib.RouteKey]bool
}

// newBFD starts the namespace's BFD engine (newComponents): one for the
// daemon, whatever the config, so a reload can add sessions.
func newBFD(log *slog.Logger) (bfdEngine, error) {
	e, err := bfd.New(bfd.WithLogger(log.With("component", "bfd")))
	if err != nil {
		return nil, err
	}
	return e, nil
}

// bfdKick is the BFD engine's feed (nil without an engine).
func (d *Daemon) bfdKick() <-chan struct{} {
	if d.bfd == nil {
		return nil
	}
	return d.bfd.Updates()
}

// setBFD makes the config's sessions the engine's: new and changed ones
// added (AddPeer changes a running session in place), gone ones removed
// with whatever their failure held.
func (d *Daemon) setBFD(ctx context.Context, in *config.Intent) {
	if d.bfd == nil {
		if len(in.BFD) > 0 {
			d.log.Error("BFD configured but no BFD engine is running")
		}
		return
	}
	want := make(map[bfd.Key]config.BFDSession, len(in.BFD))
	for _, s := range d.bfdSessions(in) { // bfd_unnumbered.go
		want[s.Key()] = s
	}
	for k, old := range d.bfdl.want {
		s, ok := want[k]
		switch {
		case !ok:
			// Gone: what its failure held is let go.
			if d.bfdl.failed[k] {
				d.recoverBFD(ctx, old)
				delete(d.bfdl.failed, k)
			}
			d.bfd.RemovePeer(k)
		case d.bfdl.failed[k] && !slices.Equal(s.Neighbors, old.Neighbors):
			// Still failed: neighbors it no longer protects are let go,
			// new ones held.
			g, _ := d.speaker.(bfdGate)
			for _, a := range old.Neighbors {
				if g != nil && !slices.Contains(s.Neighbors, a) {
					d.logBFDErr("BGP neighbor not released", a, g.ReleaseBFD(ctx, a))
				}
			}
			for _, a := range s.Neighbors {
				if g != nil && !slices.Contains(old.Neighbors, a) {
					d.logBFDErr("BGP neighbor not held for BFD", a, g.HoldForBFD(ctx, a, "BFD session down"))
				}
			}
		}
	}
	refused := d.bfdl.refused
	d.bfdl.refused = nil
	for k, s := range want {
		if old, ok := d.bfdl.want[k]; ok && old.PeerConfig == s.PeerConfig && !refused[k] {
			continue
		}
		d.addBFD(s)
	}
	d.bfdl.want = want
	d.bfdStatics()
	d.publishBFD()
}

// addBFD gives the engine session s, noting it for retryBFD if refused.
func (d *Daemon) addBFD(s config.BFDSession) {
	if err := d.bfd.AddPeer(s.PeerConfig); err != nil {
		if d.bfdl.refused == nil {
			d.bfdl.refused = make(map[bfd.Key]bool)
		}
		if !d.bfdl.refused[s.Key()] {
			d.log.Error("BFD session not started; tried again when links change", "peer", s.Key(), "err", err)
		}
		d.bfdl.refused[s.Key()] = true
		return
	}
	delete(d.bfdl.refused, s.Key())
}

// retryBFD gives the engine again the sessions it refused.
func (d *Daemon) retryBFD() {
	if len(d.bfdl.refused) == 0 {
		return
	}
	for k := range d.bfdl.refused {
		if s, ok := d.bfdl.want[k]; ok {
			d.addBFD(s)
		} else {
			delete(d.bfdl.refused, k)
		}
	}
	d.publishBFD()
}

// onBFD takes the engine's state changes. A session that fails (Up to
// Down, not because the peer went AdminDown: RFC 5882 §3.2, a peer whose
// BFD restarts or is turned off) takes its peer out of the FIB's groups
// in one write at once, then drops its BGP neighbors (their paths
// withdrawn now, not kept for graceful restart: RFC 5882 §4.3) and holds
// them down until the session is Up again, so BGP cannot come back over
// the broken path and flap.
func (d *Daemon) onBFD(ctx context.Context) {
	changes := d.bfd.Drain()
	var failed []config.BFDSession
	for _, c := range changes {
		s, ok := d.bfdl.want[c.Peer]
		if !ok {
			continue // removed since
		}
		switch {
		case c.New == bfd.Up && d.bfdl.failed[c.Peer]:
			delete(d.bfdl.failed, c.Peer)
			d.log.Info("BFD session up again; its peer is a next hop again", "peer", c.Peer)
			d.recoverBFD(ctx, s)
		case c.Old == bfd.Up && c.New == bfd.Down && c.RemoteState == bfd.AdminDown:
			d.log.Info("BFD session down by the peer's AdminDown: not a failure", "peer", c.Peer, "diag", c.RemoteDiag)
		case c.Old == bfd.Up && c.New == bfd.Down:
			if d.bfdl.failed == nil {
				d.bfdl.failed = make(map[bfd.Key]bool)
			}
			d.bfdl.failed[c.Peer] = true
			d.log.Warn("BFD session failed; peer taken out of the FIB and its BGP neighbors dropped", "peer", c.Peer, "diag", c.Diag)
			d.table.NextHopDown(c.Peer.Peer)
			failed = append(failed, s)
		}
	}
	if len(changes) > 0 {
		d.bfdStatics() // statics with every gateway down leave the FIB
	}
	if len(failed) > 0 {
		d.applyFIB(ctx) // one group write, before any withdrawal
		for _, s := range failed {
			// Up again later in the same batch: released already, so a
			// hold now would keep its neighbors down for good.
			if d.bfdl.failed[s.Key()] {
				d.holdNeighbors(ctx, s)
			}
		}
		d.takePeerEvents(ctx)
	}
	if len(changes) > 0 {
		d.publishBFD()
	}
}

// holdNeighbors drops s's BGP neighbors and holds them down.
func (d *Daemon) holdNeighbors(ctx context.Context, s config.BFDSession) {
	g, ok := d.speaker.(bfdGate)
	if !ok {
		return
	}
	for _, a := range s.Neighbors {
		d.logBFDErr("BGP neighbor not held for BFD", a, g.HoldForBFD(ctx, a, "BFD session down"))
	}
}

// recoverBFD undoes what a failure of s did: its peer is a next hop
// again and its neighbors may connect.
func (d *Daemon) recoverBFD(ctx context.Context, s config.BFDSession) {
	d.table.NextHopUp(s.Peer)
	g, ok := d.speaker.(bfdGate)
	if !ok {
		return
	}
	for _, a := range s.Neighbors {
		d.logBFDErr("BGP neighbor not released", a, g.ReleaseBFD(ctx, a))
	}
}

func (d *Daemon) logBFDErr(msg string, neighbor netip.Addr, err error) {
	if err != nil {
		d.log.Warn(msg, "neighbor", neighbor, "err", err)
	}
}

// publishBFD renders the engine's sessions into the status and the
// state tree.
func (d *Daemon) publishBFD() {
	ss := d.bfd.Sessions()
	st := &apiclient.BFDStatus{}
	for _, s := range ss {
		st.Sessions = append(st.Sessions, d.bfdSessionStatus(s))
	}
	if len(ss) == 0 {
		st = nil
	}
	d.status.update(func(s *Status) { s.BFD = st })
	if d.st.tree != nil {
		d.stateErr("bfd", d.st.tree.BFD(ss))
	}
}

func (d *Daemon) bfdSessionStatus(s bfd.Session) apiclient.BFDSessionStatus {
	c := s.Config
	out := apiclient.BFDSessionStatus{
		Peer: c.Peer.String(), Interface: c.Interface, Multihop: c.Multihop,
		State: s.State.String(), RemoteState: s.RemoteState.String(),
		LocalDiscriminator: s.LocalDiscr, RemoteDiscriminator: s.RemoteDiscr,
		TxIntervalMs:    float64(s.TxInterval) / float64(time.Millisecond),
		DetectionTimeMs: float64(s.DetectionTime) / float64(time.Millisecond),
		UpTransitions:   s.UpCount, FailureTransitions: s.DownCount,
		Failed: d.bfdl.failed[c.Key()],
	}
	if c.Local.IsValid() {
		out.Local = c.Local.String()
	}
	if s.LocalDiag != bfd.DiagNone {
		out.Diagnostic = s.LocalDiag.String()
	}
	if !s.LastDown.IsZero() {
		t := s.LastDown
		out.LastFailure = &t
	}
	if w, ok := d.bfdl.want[c.Key()]; ok {
		for _, a := range w.Neighbors {
			out.Neighbors = append(out.Neighbors, a.String())
		}
		out.Static = w.Static
	}
	return out
}
