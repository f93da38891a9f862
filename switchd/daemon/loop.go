package daemon

import (
	"cmp"
	"context"
	"time"
)

// urgent tells a long Apply to stop between batches: a route changed
// behind our back, or BGP has news that should join the next batch.
func (d *Daemon) urgent() bool {
	return len(d.monitor.Kick()) > 0 || len(d.speaker.Updates()) > 0 || len(d.speaker.PeerEvents()) > 0 || len(d.linkKick()) > 0
}

// loop connects the feeds to the components' inputs: each case hands one
// feed to its handler, and every turn ends in one FIB Apply, after a
// policy Apply if policy has changes.
func (d *Daemon) loop(ctx context.Context) error {
	resync := time.NewTicker(d.opts.ResyncInterval)
	defer resync.Stop()
	// retry re-runs Apply when a failed route is due again (an unreachable
	// next hop, an interface not there yet); fib backs off per route.
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	synced := d.speaker.Synced()
	// policyRetry re-runs a failed policy Apply after its back-off.
	policyRetry := time.NewTimer(time.Hour)
	policyRetry.Stop()
	defer policyRetry.Stop()
	counters := time.NewTicker(cmp.Or(d.opts.CountersInterval, 10*time.Second))
	defer counters.Stop()
	stateTick, stopState := d.stateTicker()
	defer stopState()
	d.sampleState(ctx)
	var epKick <-chan struct{}
	if d.endpoints != nil {
		epKick = d.endpoints.EndpointUpdates()
	}

	var wlKick <-chan struct{}
	if d.workloads != nil {
		wlKick = d.workloads.kick
	}
	// vmRetry adopts configured VMs whose tap is not there yet, every
	// vmRetryInterval while there are any: armed at the end of a turn
	// that leaves some pending, so an idle host does not wake for it.
	vmRetry := time.NewTimer(time.Hour)
	vmRetry.Stop()
	defer vmRetry.Stop()
	vmArmed := false

	d.armRetry(retry)
	d.armVMRetry(vmRetry, &vmArmed)
	for {
		select {
		case <-ctx.Done():
			d.log.Info("switchd stopping; routes stay in the kernel")
			return nil
		case <-d.reloads:
			d.reload(ctx)
		case c := <-d.g.calls():
			d.onSet(ctx, c)
		case <-d.speaker.PeerEvents():
			d.takePeerEvents(ctx)
		case <-d.speaker.NeighborUpdates():
			// An unnumbered peer found changes failsafe rules and BFD
			// sessions; else the status only: nothing for the FIB.
			if !d.onNeighbors(ctx) && !d.pol.dirty {
				continue
			}
		case <-d.linkKick():
			d.onLinks(ctx)
		case <-d.bfdKick():
			d.onBFD(ctx)
		case <-d.ifaceKick(): // applied at the end of the turn
		case <-d.ifl.retry:
		case <-d.bgpRoutes.updates():
			if !d.onBGPUpdates(ctx) {
				continue // a burst: held for the batching window
			}
		case <-d.bgpRoutes.windowEnd():
			d.onBGPWindowEnd(ctx)
		case <-d.monitor.Kick():
			d.onKernelRoutes()
		case <-wlKick:
			d.onWorkloads(ctx)
			// host publishes an endpoint before its routes: the endpoints
			// of the routes just taken reach policy in this turn, whose
			// policy Apply comes before the FIB's.
			d.onEndpoints()
		case <-epKick:
			d.onEndpoints()
		case <-d.dockerKick():
			d.setPolicy(d.intent) // a Docker network came or went
		case <-d.kubeKick():
			d.onKubernetes()
		case <-policyRetry.C:
		case <-counters.C:
			d.readACLCounters()
			continue // the status only
		case <-stateTick:
			d.sampleState(ctx)
			continue // the state tree only
		case <-vmRetry.C:
			vmArmed = false
			d.retryVMs(ctx)
		case <-resync.C:
			d.table.QueueResync()
			d.resyncPolicy()
			d.resyncInterfaces()
			d.retryBFD()
		case <-synced:
			synced = nil
			d.onSynced()
		case <-retry.C:
		case <-d.again:
		}
		// Interfaces first (their addresses are connected routes), then
		// policy: a new endpoint is filtered before its route makes it
		// reachable. A failed policy Apply only arms its retry.
		d.applyInterfaces(ctx)
		d.applyMembership(ctx)
		d.applyPolicy(ctx)
		d.applyFIB(ctx)
		d.armRetry(retry)
		armPolicyRetry(policyRetry, d.policyRetry())
		d.armVMRetry(vmRetry, &vmArmed)
	}
}

// vmRetryInterval is how often configured VMs without their tap are
// tried again.
const vmRetryInterval = 5 * time.Second

// armVMRetry arms t, unless armed already, while configured VMs wait for
// their tap.
func (d *Daemon) armVMRetry(t *time.Timer, armed *bool) {
	if *armed || d.workloads == nil || len(d.workloads.pendingVMs) == 0 {
		return
	}
	t.Reset(vmRetryInterval)
	*armed = true
}

// onLinks takes carrier changes, then the session ends they caused.
func (d *Daemon) onLinks(ctx context.Context) {
	d.takeCarrierEvents(ctx)
	d.takePeerEvents(ctx)
	d.sampleLinks(ctx) // oper status on change, not at the next sample
	d.retryBFD()       // a session's link may be there now
}

// onBGPUpdates takes the speaker's learned routes and reports whether the
// FIB is to be applied now. A session that just died goes to the kernel
// before its withdrawals.
func (d *Daemon) onBGPUpdates(ctx context.Context) (applyNow bool) {
	d.takePeerEvents(ctx)
	return d.bgpRoutes.onUpdates()
}

// onBGPWindowEnd takes what the batching window held back, after any
// session end that came meanwhile.
func (d *Daemon) onBGPWindowEnd(ctx context.Context) {
	d.takePeerEvents(ctx)
	d.bgpRoutes.onWindowEnd()
}

// onKernelRoutes hands the kernel's route events (others' routes, changes
// to ours behind our back) to the FIB.
func (d *Daemon) onKernelRoutes() {
	events, lost := d.monitor.Drain()
	for _, ev := range events {
		d.table.OnRouteEvent(ev)
	}
	if lost {
		d.table.QueueResync()
	}
}

// onWorkloads takes the workload routes into the FIB and announces the
// workload prefixes if they changed.
func (d *Daemon) onWorkloads(ctx context.Context) {
	if d.takeWorkloads() {
		d.announceWorkloads(ctx)
	}
}

// takeWorkloads hands queued workload routes to the FIB and reports
// whether the prefixes to announce changed.
func (d *Daemon) takeWorkloads() (advChanged bool) {
	return d.workloads.take(d.table, d.log.Warn)
}

// retryVMs adopts configured VMs whose tap has appeared since.
func (d *Daemon) retryVMs(ctx context.Context) {
	if len(d.workloads.pendingVMs) == 0 {
		return
	}
	if err := d.workloads.retryVMs(ctx); err != nil {
		d.log.Warn("configured VMs", "err", err)
	}
}

// onSynced ends the FIB's sweep hold: BGP has handed over everything, so
// routes of a previous run nobody wants now can go.
func (d *Daemon) onSynced() {
	d.log.Info("bgp synced; sweeping routes no longer wanted", "stale", d.table.Stale())
	d.table.EndOfInputs()
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
		// fib marks gateways without zone: an unnumbered neighbor's
		// link-local address is marked on every link (one peer each).
		if ev.Up {
			d.table.NextHopUp(ev.Neighbor.WithZone(""))
			continue
		}
		d.log.Info("bgp neighbor down; next hop taken out of the FIB's groups", "neighbor", ev.Neighbor)
		d.table.NextHopDown(ev.Neighbor.WithZone(""))
		down = true
	}
	if down {
		d.applyFIB(ctx)
	}
}

func (d *Daemon) applyFIB(ctx context.Context) {
	d.bgpRoutes.applying()
	start := time.Now()
	err := d.table.Apply(ctx)
	d.met.fibApplied(d.table, time.Since(start))
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
	d.publishFIB(err)
}

// armPolicyRetry sets t to next (zero: stopped).
func armPolicyRetry(t *time.Timer, next time.Time) {
	if next.IsZero() {
		t.Stop()
		return
	}
	t.Reset(max(time.Until(next), 10*time.Millisecond))
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
