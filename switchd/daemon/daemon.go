// Package daemon wires switchd's components together: the validated intent
// from the config file feeds the BGP speaker and the FIB; routes the
// speaker learns flow into the FIB; a local API reports state.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/platform"
	"github.com/switchd/switchd/switchd/bgp"
	"github.com/switchd/switchd/switchd/config"
)

// Options configure a daemon run.
type Options struct {
	ConfigPath string
	// Socket is the unix socket of the local API (status today; the CNI
	// plugin's requests later).
	Socket   string
	StateDir string
	Logger   *slog.Logger
	// ResyncInterval is how often the FIB is compared with a fresh kernel
	// dump, repairing anything changed behind switchd's back.
	ResyncInterval time.Duration
	// HashPolicy overrides the config's ECMP hash (/switchd/config/
	// ecmp-hash-policy, default L4; fib_multipath_hash_policy for IPv4 and
	// IPv6); -1 leaves the kernel's setting alone.
	HashPolicy *int
}

// resilientIdle is how long a resilient group's bucket must be idle before
// a next hop that came back takes it over, so returning paths do not
// break flows that are running.
const resilientIdle = 30 * time.Second

// setHashPolicy sets the kernel's ECMP hash: Options.HashPolicy if given,
// else the config's.
func setHashPolicy(opts Options, configured int) {
	policy := configured
	if opts.HashPolicy != nil {
		policy = *opts.HashPolicy
	}
	if policy < 0 {
		return
	}
	if err := fib.SetMultipathHashPolicy(netns.None(), policy); err != nil {
		opts.Logger.Warn("ECMP hash policy not set", "policy", policy, "err", err)
	}
}

// Daemon is one running switchd. Its loop goroutine owns the FIB table and
// the route maps; everything else reaches them through channels or the
// status snapshot.
type Daemon struct {
	opts    Options
	log     *slog.Logger
	speaker *bgp.Speaker
	table   *fib.Table
	monitor *fib.Monitor
	links   *platform.LinkMonitor // nil if unavailable (links.go)
	// unreachable are the BGP next hops the FIB cannot resolve or that lie
	// on a link without carrier, as last told to the speaker (nht.go).
	unreachable []netip.Addr

	intent    *config.Intent
	workloads *workloads // nil unless pools or VMs are configured
	// statics holds the config's routes by key; the FIB's desired set is
	// these, the routes learned over BGP (the speaker keeps that set; fib
	// keeps the routes) and workload routes.
	statics map[fib.RouteKey]fib.Route
	// bgpRoutes turns the speaker's learned routes into FIB routes
	// (bgpfib.go).
	bgpRoutes *bgpFIB
	// again asks the loop for another Apply at once: the last one was cut
	// short (fib.Table.More) to let urgent work in.
	again chan struct{}

	mu     sync.Mutex // guards status
	status Status
}

// Run loads the config, starts the components and serves until ctx is done
// or SIGTERM/SIGINT arrives. SIGHUP reloads the config file: a valid file is
// applied as a difference, an invalid one is reported and changes nothing.
// Routes stay in the kernel when Run returns, so traffic keeps flowing
// while switchd restarts.
func Run(ctx context.Context, opts Options) error {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ResyncInterval == 0 {
		opts.ResyncInterval = 30 * time.Second
	}
	intent, err := config.Load(opts.ConfigPath)
	if err != nil {
		return err
	}
	if opts.StateDir != "" {
		if err := os.MkdirAll(opts.StateDir, 0o750); err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	setHashPolicy(opts, intent.Dataplane.HashPolicy)
	if err := platform.SetSysctls("/", platform.RouterSysctls); err != nil {
		opts.Logger.Warn("router sysctls not set", "err", err)
	}

	d := &Daemon{
		opts:    opts,
		log:     opts.Logger,
		speaker: bgp.New(bgp.WithLogger(opts.Logger.With("component", "bgp"))),
		statics: make(map[fib.RouteKey]fib.Route),
		again:   make(chan struct{}, 1),
	}
	// The monitor subscribes before the table's first dump, so no change
	// in between is missed.
	// It also reports other owners' routes: fib resolves recursive BGP
	// next hops (iBGP, loopback peering) through them.
	fk, err := fib.Open(netns.None())
	if err != nil {
		return fmt.Errorf("fib: %w", err)
	}
	defer fk.Close()
	if d.monitor, err = fk.NewMonitor(fib.MainTable, fib.WithNextHopResolution()); err != nil {
		return fmt.Errorf("route monitor: %w", err)
	}
	defer d.monitor.Close()
	if err := d.startLinkMonitor(); err != nil {
		return fmt.Errorf("link monitor: %w", err)
	}
	defer func() {
		if d.links != nil {
			d.links.Close()
		}
	}()
	// The sweep hold keeps routes a previous switchd left in the kernel
	// until BGP has handed over everything (End-of-RIB from every peer, or
	// the sync timeout): unchanged routes are then never deleted and added
	// again, and traffic keeps flowing through a restart.
	fibOpts := []fib.Opt{
		fib.WithLogger(opts.Logger.With("component", "fib")),
		fib.WithSweepHold(),
		fib.WithInterrupt(d.urgent),
		fib.WithNextHopResolution(),
	}
	if b := intent.Dataplane.ResilientBuckets; b > 0 {
		fibOpts = append(fibOpts, fib.WithResilientGroups(b, resilientIdle))
	}
	d.table = fk.NewTable(fib.MainTable, fibOpts...)
	defer d.table.Close()
	d.bgpRoutes = newBGPFIB(d.speaker, d.table, opts.Logger)

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if err := d.speaker.Start(ctx); err != nil {
		return fmt.Errorf("start bgp: %w", err)
	}
	defer d.speaker.Stop()
	if err := d.startWorkloads(intent.Workloads); err != nil {
		return err
	}
	if d.workloads != nil {
		defer d.workloads.m.Close() // endpoints stay in the kernel
		d.workloads.take(d.table, d.log.Warn)
		// Recorded now, announced by the first Apply with the config's.
		d.announceWorkloads(ctx)
	}
	if err := d.setStatics(intent); err != nil {
		return err
	}

	// Adopt what a previous switchd left: the first Apply dumps the table.
	// Routes of ours that nothing local wants (BGP's) mean this is a
	// restart with forwarding state intact, which BGP tells its peers.
	d.table.QueueResync()
	d.applyFIB(ctx)
	if n := d.table.Stale(); n > 0 {
		d.log.Info("adopted routes of a previous run; restarting gracefully", "routes", n)
		if err := d.speaker.SetRestarting(); err != nil {
			return fmt.Errorf("bgp restart mode: %w", err)
		}
	}
	if err := d.applyIntent(ctx, intent); err != nil {
		return err
	}

	var api *apiServer
	if opts.Socket != "" {
		if api, err = d.serveAPI(opts.Socket); err != nil {
			return err
		}
		defer api.Close()
	}
	releaseStartupMemory()
	d.log.Info("switchd running", "config", opts.ConfigPath, "asn", intent.BGP.ASN, "router-id", intent.BGP.RouterID)
	return d.loop(ctx)
}

// applyIntent hands a validated intent to the components. BGP goes first:
// it validates its part as a whole and rejects it before changing anything.
func (d *Daemon) applyIntent(ctx context.Context, in *config.Intent) error {
	if err := d.speaker.Apply(ctx, in.BGP); err != nil {
		return fmt.Errorf("apply bgp config: %w", err)
	}
	if d.workloads != nil {
		if d.intent != nil && (!slices.Equal(d.intent.Workloads.Pools, in.Workloads.Pools) || !slices.Equal(d.intent.Workloads.StaticPrefixes, in.Workloads.StaticPrefixes)) {
			d.log.Warn("IPAM pool and static-prefix changes take effect when switchd restarts")
		}
		if err := d.workloads.setVMs(ctx, in.Workloads.VMs); err != nil {
			d.log.Error("configured VMs", "err", err)
		}
	}
	if err := d.setStatics(in); err != nil {
		return err
	}
	if d.intent != nil {
		if in.Dataplane.HashPolicy != d.intent.Dataplane.HashPolicy {
			setHashPolicy(d.opts, in.Dataplane.HashPolicy)
		}
		if in.Dataplane.ResilientBuckets != d.intent.Dataplane.ResilientBuckets {
			d.log.Warn("resilient-ecmp-buckets changes take effect when switchd restarts")
		}
	}
	d.intent = in
	d.mu.Lock()
	d.status.BGP.ASN = in.BGP.ASN
	d.status.BGP.RouterID = in.BGP.RouterID.String()
	d.mu.Unlock()
	return nil
}

// setStatics makes the config's static and aggregate routes desired.
func (d *Daemon) setStatics(in *config.Intent) error {
	want := make(map[fib.RouteKey]fib.Route, len(in.Routes))
	for _, r := range in.Routes {
		r.Key.Priority = StaticRouteMetric
		r.Normalize()
		want[r.Key] = r
	}
	for k, r := range want {
		if err := d.table.SetRoute(r); err != nil {
			return fmt.Errorf("static route %v: %w", k, err)
		}
	}
	for k := range d.statics {
		if _, ok := want[k]; !ok {
			d.table.DeleteRoute(k)
		}
	}
	d.statics = want
	return nil
}

// urgent tells a long Apply to stop between batches: a route changed
// behind our back, or BGP has news that should join the next batch.
func (d *Daemon) urgent() bool {
	return len(d.monitor.Kick()) > 0 || len(d.speaker.Updates()) > 0 || len(d.speaker.PeerEvents()) > 0 || len(d.linkKick()) > 0
}

func (d *Daemon) loop(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	resync := time.NewTicker(d.opts.ResyncInterval)
	defer resync.Stop()
	// retry re-runs Apply when a failed route is due again (an unreachable
	// next hop, an interface not there yet); fib backs off per route.
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	synced := d.speaker.Synced()

	var wlKick <-chan struct{}
	var vmRetry <-chan time.Time
	if d.workloads != nil {
		wlKick = d.workloads.kick
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		vmRetry = t.C
	}

	d.armRetry(retry)
	for {
		select {
		case <-ctx.Done():
			d.log.Info("switchd stopping; routes stay in the kernel")
			return nil
		case <-hup:
			d.reload(ctx)
		case <-d.speaker.PeerEvents():
			d.takePeerEvents(ctx)
		case <-d.linkKick():
			d.takeCarrierEvents(ctx)
			d.takePeerEvents(ctx)
		case <-d.bgpRoutes.updates():
			// A session that just died goes to the kernel before its
			// withdrawals.
			d.takePeerEvents(ctx)
			if !d.bgpRoutes.onUpdates() {
				continue // a burst: held for the batching window
			}
		case <-d.bgpRoutes.windowEnd():
			d.takePeerEvents(ctx)
			d.bgpRoutes.onWindowEnd()
		case <-d.monitor.Kick():
			events, lost := d.monitor.Drain()
			for _, ev := range events {
				d.table.OnRouteEvent(ev)
			}
			if lost {
				d.table.QueueResync()
			}
		case <-wlKick:
			if d.workloads.take(d.table, d.log.Warn) {
				d.announceWorkloads(ctx)
			}
		case <-vmRetry:
			if len(d.workloads.pendingVMs) > 0 {
				if err := d.workloads.retryVMs(ctx); err != nil {
					d.log.Warn("configured VMs", "err", err)
				}
			}
		case <-resync.C:
			d.table.QueueResync()
		case <-synced:
			synced = nil
			d.log.Info("bgp synced; sweeping routes no longer wanted", "stale", d.table.Stale())
			d.table.EndOfInputs()
		case <-retry.C:
		case <-d.again:
		}
		d.applyFIB(ctx)
		d.armRetry(retry)
	}
}

func (d *Daemon) reload(ctx context.Context) {
	defer releaseStartupMemory()
	in, err := config.Load(d.opts.ConfigPath)
	if err != nil {
		d.log.Error("config reload rejected; running config unchanged", "config", d.opts.ConfigPath, "err", err)
		return
	}
	if err := d.applyIntent(ctx, in); err != nil {
		d.log.Error("config reload failed", "err", err)
		return
	}
	d.log.Info("config reloaded", "config", d.opts.ConfigPath)
}

// takePeerEvents hands the speaker's session events to the FIB. A
// neighbor whose session ended for good (its paths will be withdrawn) is
// marked down as a next hop and the FIB applied at once: every nexthop
// group through it is rewritten without it in one write, before the
// per-prefix withdrawals (a million take seconds) have come through. A
// session that comes back ends the mark.
func (d *Daemon) takePeerEvents(ctx context.Context) {
	evs := d.speaker.TakePeerEvents()
	down := false
	for _, ev := range evs {
		if ev.Up {
			d.table.NextHopUp(ev.Neighbor)
			continue
		}
		d.log.Info("bgp neighbor down; next hop taken out of the FIB's groups", "neighbor", ev.Neighbor)
		d.table.NextHopDown(ev.Neighbor)
		down = true
	}
	if down {
		d.applyFIB(ctx)
	}
}

func (d *Daemon) applyFIB(ctx context.Context) {
	d.bgpRoutes.applying()
	err := d.table.Apply(ctx)
	if err != nil {
		d.log.Warn("fib apply incomplete; will retry", "err", err)
	}
	d.trackNextHops(ctx)
	if d.table.More() {
		select {
		case d.again <- struct{}{}:
		default:
		}
	}
	d.mu.Lock()
	d.status.FIB = FIBStatus{
		Routes:     d.bgpRoutes.routes() + len(d.statics) + d.workloads.routes(),
		InSync:     d.table.InSync(),
		LastResync: d.table.LastResync(),
		Stale:      d.table.Stale(),
	}
	if err != nil {
		d.status.FIB.LastError = err.Error()
	}
	d.mu.Unlock()
}

// armRetry sets the retry timer to when fib wants the next failed route
// retried; nothing failed, nothing armed.
func (d *Daemon) armRetry(t *time.Timer) {
	next := d.table.NextRetry()
	if next.IsZero() {
		t.Stop()
		return
	}
	t.Reset(max(time.Until(next), 10*time.Millisecond))
}

// socketDir makes sure the API socket's directory exists and no stale
// socket from a previous run blocks the listener.
func socketDir(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
