package daemon

import (
	"cmp"
	"context"
	"os"
	"time"

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
