package daemon

import (
	"context"
	"net/netip"
	"time"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/host"
	"github.com/switchd/switchd/platform"
	"github.com/switchd/switchd/policy"
	"github.com/switchd/switchd/switchd/bgp"
)

// What the daemon needs of each component: the loop and its handlers use
// only these, so the wiring can be tested with small fakes and without
// root (wiring_test.go). newComponents builds the real ones.

// speaker is the BGP speaker (*bgp.Speaker).
type speaker interface {
	bgpSource // learned routes: Updates, DrainSome, Learned (bgpfib.go)
	PeerEvents() <-chan struct{}
	TakePeerEvents() []bgp.PeerEvent
	Synced() <-chan struct{}
	Apply(ctx context.Context, c bgp.Config) error
	SetOriginated(ctx context.Context, owner string, ps []netip.Prefix) error
	membershipSpeaker // SetMembership (membership.go)
	SetRestarting() error
	DropNeighbor(ctx context.Context, addr netip.Addr, why string) error
	SetUnreachableNeighbors(addrs []netip.Addr)
	NextHops() []netip.Addr
	SetUnreachableNextHops(ctx context.Context, addrs []netip.Addr) error
	NeighborUpdates() <-chan struct{}
	DrainNeighbors() []bgp.NeighborState
}

// fibTable is the kernel FIB (*fib.Table); the loop goroutine owns it.
type fibTable interface {
	fibSink // SetRoute, DeleteRoute (bgpfib.go)
	NextHopDown(gw netip.Addr)
	NextHopUp(gw netip.Addr)
	TrackNextHops(gws []netip.Addr)
	UnreachableNextHops() []netip.Addr
	OnRouteEvent(ev fib.RouteEvent)
	QueueResync()
	EndOfInputs()
	Apply(ctx context.Context) error
	More() bool
	NextRetry() time.Time
	InSync() bool
	LastResync() time.Time
	Stale() int
}

// routeMonitor is the kernel route feed (*fib.Monitor).
type routeMonitor interface {
	Kick() <-chan struct{}
	Drain() (events []fib.RouteEvent, resync bool)
}

// linkMonitor is the carrier feed (*platform.LinkMonitor).
type linkMonitor interface {
	Kick() <-chan struct{}
	Drain() ([]platform.CarrierEvent, error)
	NoCarrier() []platform.CarrierEvent
	Close()
}

// policyEngine is forwarding control (*policy.Engine): the loop goroutine
// owns it. The Set and endpoint calls change desired state only; Apply is
// the one call that writes the kernel (one nftables transaction).
type policyEngine interface {
	SetIntent(in policy.Intent) error
	SetFailsafe(c policy.FailsafeConfig) error
	SetACL(in policy.ACLIntent) error
	UpsertEndpoint(ep policy.Endpoint) error
	DeleteEndpoint(id string) error
	membersEngine     // SetMembers (membership.go)
	kubeMembersEngine // AddMembers, RemoveMembers (kubernetes.go)
	QueueResync()
	Apply(ctx context.Context) error
	Status() policy.Status
	// Counters reads the rules' counters from the kernel.
	Counters() ([]policy.RuleCounter, error)
	Close() error
}

// endpointFeed is host's endpoint feed (*host.Manager): endpoints added,
// updated and removed, with their addresses and labels.
type endpointFeed interface {
	EndpointUpdates() <-chan struct{}
	DrainEndpoints() []host.EndpointEvent
}

// components are what a Daemon runs on.
type components struct {
	speaker speaker
	table   fibTable
	monitor routeMonitor
	// links is nil if no link monitor could be had; newLinks makes a new
	// one when a subscription fails.
	links    linkMonitor
	newLinks func() (linkMonitor, error)
	// setHashPolicy sets the kernel's ECMP hash (-1: leave it alone).
	setHashPolicy func(policy int)
	policy        policyEngine
	// endpoints is nil until workloads start, which make it their
	// Manager's feed (tests give a fake instead).
	endpoints endpointFeed
	// linkStats is nil unless the state tree is on (Options.State).
	linkStats linkStats
	// ifaces applies /interfaces (interfaces.go); nil in tests that do
	// not configure interfaces.
	ifaces ifaceReconciler
	// bfd runs the BFD sessions (bfd.go); nil in tests without BFD.
	bfd bfdEngine
}

// Compile-time checks that the real components fit.
var (
	_ speaker      = (*bgp.Speaker)(nil)
	_ fibTable     = (*fib.Table)(nil)
	_ routeMonitor = (*fib.Monitor)(nil)
	_ linkMonitor  = (*platform.LinkMonitor)(nil)
	_ policyEngine = (*policy.Engine)(nil)
	_ endpointFeed = (*host.Manager)(nil)
	_ linkStats    = (*platform.LinkStatsReader)(nil)
)
