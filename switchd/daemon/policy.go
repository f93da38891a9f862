package daemon

import (
	"context"
	"net/netip"
	"reflect"
	"slices"
	"time"

	"github.com/switchd/switchd/host"
	"github.com/switchd/switchd/policy"
	"github.com/switchd/switchd/switchd/bgp"
	"github.com/switchd/switchd/switchd/config"
)

// Policy wiring: the config's workload policy, failsafe additions and ACLs,
// and host's endpoint events, go to the policy engine as desired state;
// the loop applies it next to the FIB, with its own retry, so a failed
// policy Apply never holds routing up.

// policyApplyTimeout bounds one policy Apply: a kernel that does not
// answer fails it (retried later) instead of stopping the loop.
const policyApplyTimeout = 10 * time.Second

// Back-off of a failing policy Apply: the first retry after
// policyRetryMin, doubling up to policyRetryMax.
const (
	policyRetryMin = 500 * time.Millisecond
	policyRetryMax = 30 * time.Second
)

// policyLoop is the loop's bookkeeping of the policy engine.
type policyLoop struct {
	// dirty: an input or a resync was handed to the engine since its last
	// successful Apply.
	dirty bool
	// failures counts Applies failed in a row; retryAt is when the next
	// may run (zero: at once).
	failures int
	retryAt  time.Time
	// failsafe is the failsafe config last given to the engine.
	failsafe *policy.FailsafeConfig
	// workload is the workload policy last given (failsafe ports left out).
	workload *policy.Intent
}

// setPolicy hands the intent's policy parts to the engine, each only if it
// changed since the last intent (the engine diffs too, but a recompile is
// not free). Config validated them, so an error here is the engine's
// (an inconsistent table call): logged, and the next change recompiles.
func (d *Daemon) setPolicy(in *config.Intent) {
	old := d.intent
	// The extra failsafe ports go to SetFailsafe: a change of them alone
	// recompiles no workload policy.
	workloadPolicy := func(in policy.Intent) policy.Intent { in.FailsafeExtra = policy.Failsafe{}; return in }
	wp := d.withDockerPolicies(in.Policy) // Docker networks' policies (docker.go)
	wp = d.withKubernetesPolicies(wp)     // NetworkPolicies (kubernetes.go)
	wp.Interfaces = d.workloadInterfaces(in)
	if cmpWP := workloadPolicy(wp); d.pol.workload == nil || !reflect.DeepEqual(*d.pol.workload, cmpWP) {
		if err := d.policy.SetIntent(wp); err != nil {
			d.log.Error("workload policy not compiled", "err", err)
		}
		d.pol.workload = &cmpWP
		d.pol.dirty = true
	}
	d.groups.setGroups(d.withDockerGroups(in.Groups)) // membership*.go
	fs := failsafeConfig(in.BGP, in.Policy.FailsafeExtra)
	// Unnumbered neighbors' discovered peers (unnumbered.go).
	fs.Neighbors = withLinkPeers(fs.Neighbors, d.linkPeers())
	fs.GNMIPort = in.GNMI.Port // 0, none served: policy's default stays open
	if d.pol.failsafe == nil || !reflect.DeepEqual(*d.pol.failsafe, fs) {
		if err := d.policy.SetFailsafe(fs); err != nil {
			d.log.Error("failsafe rules not compiled", "err", err)
		}
		d.pol.failsafe = &fs
		d.pol.dirty = true
	}
	if old == nil || !reflect.DeepEqual(old.ACL, in.ACL) {
		if err := d.policy.SetACL(in.ACL); err != nil {
			d.log.Error("ACLs not compiled", "err", err)
		}
		d.pol.dirty = true
	}
}

// workloadInterfaces are the names host gives workload interfaces: its
// veth prefix and the configured VMs' taps. Policy drops traffic through
// one it has no endpoint for, so a workload is cut off, not open, until
// its endpoint reaches policy.
func (d *Daemon) workloadInterfaces(in *config.Intent) []string {
	if d.workloads == nil {
		return nil
	}
	out := []string{d.workloads.m.IfacePrefix() + "*"}
	for _, vm := range in.Workloads.VMs {
		out = append(out, vm.Tap)
	}
	return out
}

// failsafeConfig is what the failsafe rules keep beside their fixed list:
// the configured BGP neighbors (sorted, so a reordered config is no
// change) and the configured extra ports; setPolicy adds the gNMI port.
func failsafeConfig(b bgp.Config, extra policy.Failsafe) policy.FailsafeConfig {
	var nbs []netip.Addr
	for _, n := range b.Neighbors {
		nbs = append(nbs, n.Address)
	}
	slices.SortFunc(nbs, netip.Addr.Compare)
	return policy.FailsafeConfig{Neighbors: slices.Compact(nbs), Extra: extra}
}

// onEndpoints hands host's endpoint events to the engine: an added or
// updated endpoint is upserted whole (its set and map elements change,
// never a rule), a removed one deleted.
func (d *Daemon) onEndpoints() {
	evs := d.endpoints.DrainEndpoints()
	d.publishEndpointState(evs)
	for _, ev := range evs {
		e := ev.Endpoint
		var err error
		if ev.Type == host.EndpointRemoved {
			d.groups.remove(e.ID)
			d.kubeForget(e.ID)
			err = d.policy.DeleteEndpoint(e.ID)
		} else {
			ep := d.kubeEndpoint(policyEndpoint(e)) // a pod's labels (kubernetes.go)
			d.groups.upsert(ep)
			err = d.policy.UpsertEndpoint(ep)
		}
		if err != nil {
			d.log.Error("endpoint not in policy", "endpoint", e.ID, "event", ev.Type.String(), "err", err)
		}
	}
	if len(evs) > 0 {
		d.pol.dirty = true
	}
}

// policyEndpoint is a host endpoint as policy sees it: the host-side
// interface, the addresses and the labels.
func policyEndpoint(e host.Endpoint) policy.Endpoint {
	return policy.Endpoint{ID: e.ID, Interface: e.HostIface, Addrs: e.Addrs(), Labels: e.Labels}
}

// resyncPolicy makes the next policy Apply look for drift.
func (d *Daemon) resyncPolicy() {
	d.policy.QueueResync()
	d.pol.dirty = true
}

// applyPolicy applies the engine if something changed and no back-off is
// running, then publishes its status. A failure is logged and retried
// (policyRetry says when); it never stops the loop or the FIB.
func (d *Daemon) applyPolicy(ctx context.Context) {
	if !d.pol.dirty || time.Now().Before(d.pol.retryAt) {
		return
	}
	actx, cancel := context.WithTimeout(ctx, policyApplyTimeout)
	err := d.policy.Apply(actx)
	cancel()
	if err != nil {
		d.pol.failures++
		backoff := min(policyRetryMin<<min(d.pol.failures-1, 10), policyRetryMax)
		d.pol.retryAt = time.Now().Add(backoff)
		d.log.Warn("policy apply failed; will retry", "in", backoff, "err", err)
	} else {
		d.pol.dirty, d.pol.failures, d.pol.retryAt = false, 0, time.Time{}
	}
	d.publishPolicy()
}

// policyRetry is when a failed policy Apply is due again (zero: none is).
func (d *Daemon) policyRetry() time.Time {
	if !d.pol.dirty {
		return time.Time{}
	}
	return d.pol.retryAt
}
