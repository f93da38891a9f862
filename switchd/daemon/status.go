package daemon

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/switchd/switchd/policy"
	"github.com/switchd/switchd/switchd/bgp"
)

// statusBoard is the daemon's status as the loop last saw it: built from
// what the loop consumed of the feeds (route counts kept as bgpFIB, the
// statics and the workload path take and drop routes; the FIB's sync state
// after each Apply; neighbors from the speaker's neighbor feed), never by
// walking tables or asking GoBGP per request. The loop is the
// only writer: it copies the current value, changes the copy and swaps it
// in, so readers (the API's goroutines) take a consistent value without
// waiting for the loop.
type statusBoard struct {
	cur atomic.Pointer[Status]
	// kubeFailures, in cluster mode, counts the Kubernetes API requests
	// that got no answer (kubernetes.go). A lost API server sends the loop
	// nothing to publish on, so read asks it (it is safe for concurrent
	// use) rather than show a count a tick old.
	kubeFailures atomic.Pointer[func() int]
}

// read is the status for its readers: the last published, with the
// counts that change without a feed read now.
func (b *statusBoard) read() Status {
	st := b.load()
	if f := b.kubeFailures.Load(); f != nil && st.Kubernetes != nil {
		ks := *st.Kubernetes // published values are shared: copy
		ks.RequestFailures = (*f)()
		st.Kubernetes = &ks
	}
	return st
}

// load returns the last published status; its slices and maps are shared
// and must not be changed.
func (b *statusBoard) load() Status {
	if st := b.cur.Load(); st != nil {
		return *st
	}
	return Status{}
}

// update publishes a changed copy of the status. Only the loop goroutine
// calls it; f must replace, not modify, slices and maps it changes.
func (b *statusBoard) update(f func(*Status)) {
	st := b.load()
	f(&st)
	b.cur.Store(&st)
}

// publishFIB records the FIB's state after an Apply.
func (d *Daemon) publishFIB(applyErr error) {
	fs := FIBStatus{
		Routes:     d.bgpRoutes.routes() + len(d.statics) + d.workloads.routes(),
		InSync:     d.table.InSync(),
		LastResync: d.table.LastResync(),
		Stale:      d.table.Stale(),
	}
	hw := d.offloadCounts()
	fs.Offloaded, fs.Trapped, fs.OffloadFailed = hw.Offloaded, hw.Trapped, hw.Failed
	if applyErr != nil {
		fs.LastError = applyErr.Error()
	}
	d.status.update(func(st *Status) { st.FIB = fs })
	d.publishAFT(false)
	d.publishFIBStatus()
}

// publishPolicy records the policy engine's state after an Apply.
func (d *Daemon) publishPolicy() {
	es := d.policy.Status()
	ps := PolicyStatus{
		InSync:       es.InSync,
		Chains:       es.Chains,
		Rules:        es.Rules,
		Sets:         es.Sets,
		Elements:     es.Elements,
		Endpoints:    es.Endpoints,
		Profiles:     es.Profiles,
		LastApply:    time.Now(),
		FailsafeKept: es.FailsafeKept,
	}
	if es.LastError != nil {
		ps.LastError = es.LastError.Error()
	}
	d.status.update(func(st *Status) {
		ps.ACLEntries = st.Policy.ACLEntries // readACLCounters' own
		st.Policy = ps
	})
	d.publishPolicyStatus()
}

// readACLCounters reads the ACL entries' counters from the kernel into
// the status, while ACLs are configured. A failed read keeps the last
// counters (the next tick tries again).
func (d *Daemon) readACLCounters() {
	if d.intent == nil || len(d.intent.ACL.Sets) == 0 {
		if len(d.status.load().Policy.ACLEntries) > 0 {
			d.status.update(func(st *Status) { st.Policy.ACLEntries = nil })
		}
		d.publishACLState(nil)
		return
	}
	rcs, err := d.policy.Counters()
	if err != nil {
		d.log.Warn("ACL counters not read", "err", err)
		return
	}
	var es []ACLEntryStatus
	cs := policy.ACLCounters(rcs)
	d.publishACLState(cs)
	for _, c := range cs {
		es = append(es, ACLEntryStatus{Set: c.Set.Name, Type: c.Set.Type.String(), Seq: c.Seq,
			MatchedPackets: c.Packets, MatchedOctets: c.Octets})
	}
	d.status.update(func(st *Status) { st.Policy.ACLEntries = es })
}

// onNeighbors takes the speaker's neighbor feed into the status, and
// reports whether unnumbered peers changed (unnumbered.go).
func (d *Daemon) onNeighbors(ctx context.Context) bool {
	changed := d.speaker.DrainNeighbors()
	if len(changed) == 0 {
		return false
	}
	d.publishNeighborState(changed)
	before := d.linkPeers()
	for _, n := range changed {
		if n.Removed {
			delete(d.neighbors, n.Address)
			continue
		}
		d.neighbors[n.Address] = neighborStatus(n)
	}
	list := make([]NeighborStatus, 0, len(d.neighbors))
	for _, a := range slices.SortedFunc(maps.Keys(d.neighbors), netip.Addr.Compare) {
		list = append(list, d.neighbors[a])
	}
	d.status.update(func(st *Status) { st.BGP.Neighbors = list })
	return d.onLinkPeers(ctx, before)
}

func neighborStatus(n bgp.NeighborState) NeighborStatus {
	ns := NeighborStatus{
		Address:                n.Address.String(),
		PeerAS:                 n.PeerAS,
		State:                  string(n.State),
		LastError:              n.LastError,
		EstablishedTransitions: n.EstablishedTransitions,
		Received:               familyCounts(n.PrefixesReceived),
		Accepted:               familyCounts(n.PrefixesAccepted),
	}
	if !n.EstablishedSince.IsZero() {
		t := n.EstablishedSince
		ns.EstablishedSince = &t
	}
	return ns
}

func familyCounts(m map[bgp.Family]uint64) map[string]uint64 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]uint64, len(m))
	for f, n := range m {
		out[f.String()] = n
	}
	return out
}
