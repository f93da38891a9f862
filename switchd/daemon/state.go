package daemon

import (
	"cmp"
	"context"
	"net/netip"
	"os"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/gnmi"
	"github.com/switchd/switchd/host"
	"github.com/switchd/switchd/platform"
	"github.com/switchd/switchd/policy"
	"github.com/switchd/switchd/switchd/bgp"
	"github.com/switchd/switchd/switchd/config"
	"github.com/switchd/switchd/switchd/daemon/state"
)

// StatePublisher takes the rendered state tree as gNMI notifications:
// the gNMI server (*gnmi.Server fits), which keeps them in its cache. See
// state.Publisher.
type StatePublisher = state.Publisher

// defaultStateInterval is how often interface counters and /system are
// sampled: every second, as SONiC polls port counters, so a 1 s SAMPLE
// subscription sees each change. An interface whose sample did not
// change costs ~1 µs (BenchmarkLinksSample).
const defaultStateInterval = time.Second

// linkStats reads every link's state and counters
// (*platform.LinkStatsReader).
type linkStats interface {
	Read(ctx context.Context) ([]platform.LinkStats, error)
}

// stateLoop is the loop's side of the state tree: nil tree, no
// publisher, nothing rendered.
type stateLoop struct {
	tree   *state.Tree
	system *state.SystemSampler
	// lastErr is the last publishing error logged, so a publisher that
	// keeps failing is logged once, not every second.
	lastErr string
	// aft renders fib's kernel view (nil: not served); aftTried says
	// whether serving it was set up (at the first Apply, aft.go's
	// startAFT).
	aft      *state.AFT
	aftTable aftTable
	aftTried bool
	// plat is the machine and its ports' offload (platform.go).
	plat platformLoop
}

func newStateLoop(p StatePublisher) stateLoop {
	if p == nil {
		return stateLoop{}
	}
	return stateLoop{tree: state.New(p), system: state.NewSystemSampler("/", os.Getpid())}
}

// stateErr logs a publishing error unless it is the one logged last.
func (d *Daemon) stateErr(what string, err error) {
	if err == nil {
		return
	}
	if msg := err.Error(); msg != d.st.lastErr {
		d.st.lastErr = msg
		d.log.Warn("state tree not published", "what", what, "err", err)
	}
}

// publishNeighborState renders the neighbors the speaker's feed reported
// changed.
func (d *Daemon) publishNeighborState(changed []bgp.NeighborState) {
	if d.st.tree == nil || len(changed) == 0 {
		return
	}
	d.stateErr("bgp neighbors", d.st.tree.Neighbors(changed))
}

// publishBGPGlobal renders the BGP global state of a config.
func (d *Daemon) publishBGPGlobal(in *config.Intent) {
	if d.st.tree == nil {
		return
	}
	d.stateErr("bgp global", d.st.tree.BGPGlobal(in.BGP.ASN, in.BGP.RouterID))
}

// publishEndpointState renders host's endpoint events.
func (d *Daemon) publishEndpointState(evs []host.EndpointEvent) {
	if d.st.tree == nil || len(evs) == 0 {
		return
	}
	d.stateErr("endpoints", d.st.tree.Endpoints(evs))
	d.publishIPAM()
}

// publishACLState renders the ACL entries' counters (nil: no ACLs).
func (d *Daemon) publishACLState(cs []policy.ACLEntryCounter) {
	if d.st.tree == nil {
		return
	}
	d.stateErr("acl", d.st.tree.ACL(cs))
}

// sampleState reads the interfaces' counters and the system's state into
// the tree (every StateInterval).
func (d *Daemon) sampleState(ctx context.Context) {
	if d.st.tree == nil {
		return
	}
	d.sampleLinks(ctx)
	d.publishAFT(true)
	d.samplePlatform()
	if d.bfd != nil {
		d.publishBFD() // packet counters
	}
	s, err := d.st.system.Sample(time.Now())
	if err != nil {
		d.stateErr("system", err)
		return
	}
	d.stateErr("system", d.st.tree.System(s))
}

// sampleLinks reads every link into the tree: on the sample interval
// and on the link monitor's news, so an oper change is published at once.
func (d *Daemon) sampleLinks(ctx context.Context) {
	if d.st.tree == nil || d.linkStats == nil {
		return
	}
	ls, err := d.linkStats.Read(ctx)
	if err != nil {
		d.stateErr("interfaces", err)
		return
	}
	d.stateErr("interfaces", d.st.tree.Links(ls))
	d.samplePortOffloads(ls)
}

// stateTicker is the sample interval's ticker; a nil channel and a no-op
// stop without a state tree.
func (d *Daemon) stateTicker() (<-chan time.Time, func()) {
	if d.st.tree == nil {
		return nil, func() {}
	}
	t := time.NewTicker(cmp.Or(d.opts.StateInterval, defaultStateInterval))
	return t.C, t.Stop
}

// aftTable is what the AFT needs of the FIB (*fib.Table, made with
// fib.WithUpdates when the state tree is on).
type aftTable interface {
	View() fib.RouteView
	DrainUpdates() []fib.RouteUpdate
}

// sourceServer is a publisher that serves subtrees walked on demand
// (*gnmi.Server).
type sourceServer interface {
	AddSource(prefix *gpb.Path, src gnmi.Source) error
}

// startAFT serves the AFT from fib's view, if the publisher serves
// sources and the FIB has a view: the gNMI server walks the view, so a
// million routes are not copied into its cache.
func (d *Daemon) startAFT() {
	d.st.aftTried = true
	srv, ok := d.opts.State.(sourceServer)
	t, ok2 := d.table.(aftTable)
	if d.st.tree == nil || !ok || !ok2 {
		return
	}
	v := t.View()
	a := state.NewAFT(v, v, d.opts.State, state.AFTOptions{Origin: routeOrigin, Ifname: state.Ifnames(),
		Hardware: d.detectPlatform().hasASIC()})
	if err := srv.AddSource(state.AFTPrefix(), a); err != nil {
		d.log.Warn("AFT not served", "err", err)
		return
	}
	d.st.aft, d.st.aftTable = a, t
}

// routeOrigin is the origin-protocol of a route of switchd's: by its
// metric for BGP and static routes; of the host's, a blackhole is a
// workload block (an aggregate of its /32s and /128s), the rest are
// workload routes.
func routeOrigin(r fib.AFTRoute) string {
	switch {
	case r.Metric == BGPRouteMetric:
		return "BGP"
	case r.Metric == StaticRouteMetric:
		return "STATIC"
	case r.Type == fib.Blackhole:
		return "LOCAL_AGGREGATE"
	}
	return "DIRECTLY_CONNECTED"
}

// publishAFT publishes what the FIB's route feed reports changed in the
// kernel since the last Apply, and the groups and next hops if routes
// changed or sample is set (the group feed needs no drain: the groups
// are compared whole, and a driver's offload flags are seen at the next
// sample).
func (d *Daemon) publishAFT(sample bool) {
	if !d.st.aftTried {
		d.startAFT()
	}
	if d.st.aft == nil {
		return
	}
	us := d.st.aftTable.DrainUpdates()
	if len(us) > 0 || sample {
		// Next hops and groups before the routes that name them.
		d.stateErr("aft groups", d.st.aft.Groups())
	}
	d.stateErr("aft", d.st.aft.Routes(us))
}

// publishFIBStatus renders the status board's FIB part.
func (d *Daemon) publishFIBStatus() {
	if d.st.tree == nil {
		return
	}
	f := d.status.load().FIB
	d.stateErr("fib status", d.st.tree.FIB(state.FIBStatus{InSync: f.InSync, Routes: f.Routes,
		NexthopGroups: d.st.aft.GroupCount(), Stale: f.Stale, LastResync: f.LastResync, LastError: f.LastError,
		Offloaded: f.Offloaded, Trapped: f.Trapped, OffloadFailed: f.OffloadFailed}))
}

// publishPolicyStatus renders the status board's policy part.
func (d *Daemon) publishPolicyStatus() {
	if d.st.tree == nil {
		return
	}
	p := d.status.load().Policy
	d.stateErr("policy status", d.st.tree.Policy(state.PolicyStatus{InSync: p.InSync, Chains: p.Chains,
		Rules: p.Rules, Sets: p.Sets, Elements: p.Elements, Endpoints: p.Endpoints, LastApply: p.LastApply,
		LastError: p.LastError}))
}

// publishIPAM renders the IPAM blocks this host holds and how many
// addresses each has given to endpoints.
func (d *Daemon) publishIPAM() {
	if d.st.tree == nil || d.workloads == nil || d.workloads.m == nil {
		return
	}
	var pools []netip.Prefix
	if d.intent != nil {
		for _, p := range d.intent.Workloads.Pools {
			pools = append(pools, p.Prefix)
		}
	}
	eps := d.workloads.m.List()
	var bs []state.IPAMBlock
	for _, b := range d.workloads.m.Blocks() {
		blk := state.IPAMBlock{Prefix: b}
		for _, p := range pools {
			if p.Overlaps(b) && p.Bits() <= b.Bits() {
				blk.Pool = p
			}
		}
		for _, ep := range eps {
			for _, a := range ep.Addrs() {
				if b.Contains(a) {
					blk.Allocated++
				}
			}
		}
		bs = append(bs, blk)
	}
	d.stateErr("ipam", d.st.tree.IPAMBlocks(bs))
}
