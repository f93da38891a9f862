package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/host"
	"github.com/switchd/switchd/platform"
	"github.com/switchd/switchd/policy"
	"github.com/switchd/switchd/switchd/bgp"
)

// Fakes of the daemon's components (components.go) for the wiring tests:
// each records the calls the daemon makes, in order, in one shared log,
// so a test can check what happened before what. The daemon's loop runs in
// its own goroutine; everything here is guarded by recorder.mu.

type recorder struct {
	mu      sync.Mutex
	calls   []string
	changed chan struct{} // kicked on every call
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	r.addLocked(format, args...)
	r.mu.Unlock()
}

func (r *recorder) addLocked(format string, args ...any) {
	r.calls = append(r.calls, fmt.Sprintf(format, args...))
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// mark returns the position the next call will have: calls[mark:] is
// what happened since.
func (r *recorder) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// turnEnd marks in the log where a loop turn ended (the loop arms its
// retry timer, fib.Table.NextRetry): what a turn caused is all before it.
// since and waitFor's results leave it out.
const turnEnd = "(turn ends)"

// since returns the calls since mark, turn ends left out.
func (r *recorder) since(mark int) []string {
	return withoutTurnEnds(r.raw(mark))
}

func (r *recorder) raw(mark int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls[mark:])
}

func withoutTurnEnds(calls []string) []string {
	return slices.DeleteFunc(calls, func(c string) bool { return c == turnEnd })
}

// waitFor waits until cond holds for the calls since mark (turn ends
// included) and returns them (left out); after 5 s the test fails,
// showing them.
func (r *recorder) waitFor(t *testing.T, mark int, what string, cond func(calls []string) bool) []string {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		calls := r.raw(mark)
		if cond(calls) {
			return withoutTurnEnds(calls)
		}
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("waiting for %s; calls since:\n  %s", what, strings.Join(calls, "\n  "))
		}
	}
}

// waitTurns waits until n loop turns ended after mark.
func (r *recorder) waitTurns(t *testing.T, mark, n int) []string {
	t.Helper()
	return r.waitFor(t, mark, fmt.Sprintf("%d loop turns", n), func(calls []string) bool {
		return count(calls, turnEnd) >= n
	})
}

// waitTurnAfter waits for call and the end of the turn that made it.
func (r *recorder) waitTurnAfter(t *testing.T, mark int, call string) []string {
	t.Helper()
	return r.waitFor(t, mark, call+" and its turn's end", func(calls []string) bool {
		i := index(calls, call)
		return i >= 0 && slices.Contains(calls[i:], turnEnd)
	})
}

func count(calls []string, call string) int {
	n := 0
	for _, c := range calls {
		if c == call {
			n++
		}
	}
	return n
}

// index is the position of call in calls, or -1.
func index(calls []string, call string) int { return slices.Index(calls, call) }

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// testSpeaker is a BGP speaker whose feeds the test fills.
type testSpeaker struct {
	rec               *recorder
	updates, peerKick chan struct{}
	nbrKick           chan struct{}
	nbrs              []bgp.NeighborState // neighbor states not drained yet
	synced            chan struct{}
	queue             []bgp.Route // learned routes not drained yet
	learned           int
	peerEvs           []bgp.PeerEvent
	nextHops          []netip.Addr
	unreachNbrs       []netip.Addr
	applyErr          error
}

func newTestSpeaker(rec *recorder) *testSpeaker {
	return &testSpeaker{rec: rec, updates: make(chan struct{}, 1), peerKick: make(chan struct{}, 1),
		nbrKick: make(chan struct{}, 1), synced: make(chan struct{})}
}

// learn publishes route changes (no next hops: withdrawn) and peer events
// together, as GoBGP produces them when a session ends. Both are queued
// before either feed kicks, and the route feed kicks first: a loop waiting
// in select wakes for the routes while the session end is already queued,
// the order in which a busy loop may find them.
func (s *testSpeaker) learn(learned int, evs []bgp.PeerEvent, routes ...bgp.Route) {
	s.rec.mu.Lock()
	s.peerEvs = append(s.peerEvs, evs...)
	s.queue = append(s.queue, routes...)
	s.learned = learned
	s.rec.mu.Unlock()
	if len(routes) > 0 {
		kick(s.updates)
	}
	if len(evs) > 0 {
		kick(s.peerKick)
	}
}

func (s *testSpeaker) Updates() <-chan struct{} { return s.updates }
func (s *testSpeaker) DrainSome(buf []bgp.Route, max int) ([]bgp.Route, bool) {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	n := min(max, len(s.queue))
	buf = append(buf, s.queue[:n]...)
	s.queue = s.queue[n:]
	return buf, len(s.queue) > 0
}
func (s *testSpeaker) Learned() int {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	return s.learned
}
func (s *testSpeaker) PeerEvents() <-chan struct{} { return s.peerKick }
func (s *testSpeaker) TakePeerEvents() []bgp.PeerEvent {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	evs := s.peerEvs
	s.peerEvs = nil
	return evs
}
func (s *testSpeaker) Synced() <-chan struct{} { return s.synced }
func (s *testSpeaker) Apply(ctx context.Context, c bgp.Config) error {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	if s.applyErr != nil {
		s.rec.addLocked("bgp.Apply refused")
		return s.applyErr
	}
	var nbs []string
	for _, n := range c.Neighbors {
		nbs = append(nbs, n.Address.String())
	}
	s.rec.addLocked("bgp.Apply neighbors %v", nbs)
	return nil
}
func (s *testSpeaker) SetOriginated(ctx context.Context, owner string, ps []netip.Prefix) error {
	s.rec.add("bgp.SetOriginated %s %v", owner, ps)
	return nil
}
func (s *testSpeaker) SetRestarting() error {
	s.rec.add("bgp.SetRestarting")
	return nil
}

// SetUnreachableNeighbors keeps the list (not in the call log: it follows
// every carrier change and Apply).
func (s *testSpeaker) SetUnreachableNeighbors(addrs []netip.Addr) {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	s.unreachNbrs = slices.Clone(addrs)
}

func (s *testSpeaker) DropNeighbor(ctx context.Context, addr netip.Addr, why string) error {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	s.rec.addLocked("bgp.DropNeighbor %v", addr)
	// The session ends, as GoBGP's does: a peer event, no kick (the
	// carrier handler takes peer events right after).
	s.peerEvs = append(s.peerEvs, bgp.PeerEvent{Neighbor: addr})
	return nil
}
func (s *testSpeaker) NextHops() []netip.Addr {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	return slices.Clone(s.nextHops)
}
func (s *testSpeaker) SetUnreachableNextHops(ctx context.Context, addrs []netip.Addr) error {
	s.rec.add("bgp.SetUnreachableNextHops %v", addrs)
	return nil
}
func (s *testSpeaker) NeighborUpdates() <-chan struct{} { return s.nbrKick }
func (s *testSpeaker) DrainNeighbors() []bgp.NeighborState {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	ns := s.nbrs
	s.nbrs = nil
	return ns
}

// publishNeighbors queues neighbor states and kicks the feed.
func (s *testSpeaker) publishNeighbors(ns ...bgp.NeighborState) {
	s.rec.mu.Lock()
	s.nbrs = append(s.nbrs, ns...)
	s.rec.mu.Unlock()
	kick(s.nbrKick)
}

// testTable is a FIB table that records its inputs.
type testTable struct {
	rec         *recorder
	routes      map[fib.RouteKey]fib.Route
	refuse      map[netip.Prefix]bool
	unreachable []netip.Addr
	stale       int
	tracked     []netip.Addr
}

func newTestTable(rec *recorder) *testTable {
	return &testTable{rec: rec, routes: map[fib.RouteKey]fib.Route{}, refuse: map[netip.Prefix]bool{}}
}

func (f *testTable) SetRoute(r fib.Route) error {
	f.rec.mu.Lock()
	defer f.rec.mu.Unlock()
	if f.refuse[r.Key.Dst] {
		f.rec.addLocked("fib.SetRoute %v refused", r.Key.Dst)
		return errors.New("unusable next hop")
	}
	r.NextHops = slices.Clone(r.NextHops)
	f.routes[r.Key] = r
	f.rec.addLocked("fib.SetRoute %v", r.Key.Dst)
	return nil
}
func (f *testTable) DeleteRoute(k fib.RouteKey) {
	f.rec.mu.Lock()
	defer f.rec.mu.Unlock()
	delete(f.routes, k)
	f.rec.addLocked("fib.DeleteRoute %v", k.Dst)
}
func (f *testTable) route(k fib.RouteKey) (fib.Route, bool) {
	f.rec.mu.Lock()
	defer f.rec.mu.Unlock()
	r, ok := f.routes[k]
	return r, ok
}
func (f *testTable) NextHopDown(gw netip.Addr) { f.rec.add("fib.NextHopDown %v", gw) }
func (f *testTable) NextHopUp(gw netip.Addr)   { f.rec.add("fib.NextHopUp %v", gw) }
func (f *testTable) TrackNextHops(gws []netip.Addr) {
	f.rec.mu.Lock()
	f.tracked = slices.Clone(gws)
	f.rec.mu.Unlock()
}
func (f *testTable) trackedNextHops() []netip.Addr {
	f.rec.mu.Lock()
	defer f.rec.mu.Unlock()
	return slices.Clone(f.tracked)
}
func (f *testTable) UnreachableNextHops() []netip.Addr {
	f.rec.mu.Lock()
	defer f.rec.mu.Unlock()
	return slices.Clone(f.unreachable)
}
func (f *testTable) setUnreachable(a ...netip.Addr) {
	f.rec.mu.Lock()
	f.unreachable = a
	f.rec.mu.Unlock()
}
func (f *testTable) OnRouteEvent(ev fib.RouteEvent) {
	f.rec.add("fib.OnRouteEvent %v", ev.Route.Key.Dst)
}
func (f *testTable) QueueResync() { f.rec.add("fib.QueueResync") }
func (f *testTable) EndOfInputs() { f.rec.add("fib.EndOfInputs") }
func (f *testTable) Apply(ctx context.Context) error {
	f.rec.add("fib.Apply")
	return nil
}
func (f *testTable) More() bool { return false }
func (f *testTable) NextRetry() time.Time {
	f.rec.add(turnEnd)
	return time.Time{}
}
func (f *testTable) InSync() bool          { return true }
func (f *testTable) LastResync() time.Time { return time.Time{} }
func (f *testTable) Stale() int {
	f.rec.mu.Lock()
	defer f.rec.mu.Unlock()
	return f.stale
}

// testMonitor is the kernel route feed.
type testMonitor struct {
	rec    *recorder
	kick   chan struct{}
	events []fib.RouteEvent
	lost   bool
}

func (m *testMonitor) Kick() <-chan struct{} { return m.kick }
func (m *testMonitor) Drain() ([]fib.RouteEvent, bool) {
	m.rec.mu.Lock()
	defer m.rec.mu.Unlock()
	evs, lost := m.events, m.lost
	m.events, m.lost = nil, false
	return evs, lost
}

// publish queues route events (lost: some were dropped) and kicks.
func (m *testMonitor) publish(lost bool, evs ...fib.RouteEvent) {
	m.rec.mu.Lock()
	m.events = append(m.events, evs...)
	m.lost = m.lost || lost
	m.rec.mu.Unlock()
	kick(m.kick)
}

// testLinks is the carrier feed.
type testLinks struct {
	rec       *recorder
	kick      chan struct{}
	events    []platform.CarrierEvent
	noCarrier map[int]platform.CarrierEvent
}

func (l *testLinks) Kick() <-chan struct{} { return l.kick }
func (l *testLinks) Drain() ([]platform.CarrierEvent, error) {
	l.rec.mu.Lock()
	defer l.rec.mu.Unlock()
	evs := l.events
	l.events = nil
	return evs, nil
}
func (l *testLinks) NoCarrier() []platform.CarrierEvent {
	l.rec.mu.Lock()
	defer l.rec.mu.Unlock()
	var out []platform.CarrierEvent
	for _, ev := range l.noCarrier {
		ev.Prefixes = slices.Clone(ev.Prefixes)
		out = append(out, ev)
	}
	return out
}
func (l *testLinks) Close() { l.rec.add("links.Close") }

// publish queues a carrier change, updates what NoCarrier reports, and
// kicks.
func (l *testLinks) publish(ev platform.CarrierEvent) {
	l.rec.mu.Lock()
	l.events = append(l.events, ev)
	if ev.Carrier {
		delete(l.noCarrier, ev.Index)
	} else {
		l.noCarrier[ev.Index] = ev
	}
	l.rec.mu.Unlock()
	kick(l.kick)
}

// testPolicy is the policy engine. It records in a log of its own (rec),
// so the FIB-only call lists the older wiring tests assert stay as they
// were; a test reads both logs, the loop's turn ends being in the main one.
type testPolicy struct {
	rec *recorder
	// failApply is how many Applies fail from now on.
	failApply int
	status    policy.Status
	counters  []policy.RuleCounter
}

func (p *testPolicy) SetIntent(in policy.Intent) error {
	p.rec.add("policy.SetIntent %s", describePolicy(in))
	return nil
}
func (p *testPolicy) SetFailsafe(c policy.FailsafeConfig) error {
	p.rec.add("policy.SetFailsafe neighbors %v tcp %v udp %v gnmi %d", c.Neighbors, c.Extra.TCP, c.Extra.UDP, c.GNMIPort)
	return nil
}
func (p *testPolicy) SetACL(in policy.ACLIntent) error {
	p.rec.add("policy.SetACL %d sets", len(in.Sets))
	return nil
}
func (p *testPolicy) UpsertEndpoint(ep policy.Endpoint) error {
	p.rec.add("policy.UpsertEndpoint %s %s %v %v", ep.ID, ep.Interface, ep.Addrs, ep.Labels)
	return nil
}
func (p *testPolicy) DeleteEndpoint(id string) error {
	p.rec.add("policy.DeleteEndpoint %s", id)
	return nil
}
func (p *testPolicy) QueueResync() { p.rec.add("policy.QueueResync") }
func (p *testPolicy) Apply(ctx context.Context) error {
	p.rec.mu.Lock()
	defer p.rec.mu.Unlock()
	if p.failApply > 0 {
		p.failApply--
		p.status.LastError = errors.New("apply table switchd: netlink receive: operation not permitted")
		p.status.InSync = false
		p.rec.addLocked("policy.Apply failed")
		return p.status.LastError
	}
	p.status.LastError = nil
	p.status.InSync = true
	p.rec.addLocked("policy.Apply")
	return nil
}
func (p *testPolicy) Status() policy.Status {
	p.rec.mu.Lock()
	defer p.rec.mu.Unlock()
	return p.status
}
func (p *testPolicy) Counters() ([]policy.RuleCounter, error) {
	p.rec.mu.Lock()
	defer p.rec.mu.Unlock()
	p.rec.addLocked("policy.Counters")
	return slices.Clone(p.counters), nil
}
func (p *testPolicy) Close() error { return nil }

// failNext makes the next n Applies fail.
func (p *testPolicy) failNext(n int) {
	p.rec.mu.Lock()
	p.failApply = n
	p.rec.mu.Unlock()
}

// describePolicy renders an intent's policies as name, selector and
// ingress rules (action, protocol, ports, peer selector).
func describePolicy(in policy.Intent) string {
	var ps []string
	for _, p := range in.Policies {
		var rules []string
		for _, r := range p.Ingress {
			peer := "any"
			if r.Peer.Selector != nil {
				peer = r.Peer.Selector.String()
			}
			rules = append(rules, fmt.Sprintf("%d %s proto %d ports %v from %s", r.Seq, r.Action, r.Protocol, r.DstPorts, peer))
		}
		ps = append(ps, fmt.Sprintf("%s(%s; %s)", p.Name, p.Selector.String(), strings.Join(rules, "; ")))
	}
	return fmt.Sprintf("default %s %v", in.Default, ps)
}

// testEndpoints is host's endpoint feed.
type testEndpoints struct {
	rec  *recorder
	kick chan struct{}
	evs  []host.EndpointEvent
}

func (e *testEndpoints) EndpointUpdates() <-chan struct{} { return e.kick }
func (e *testEndpoints) DrainEndpoints() []host.EndpointEvent {
	e.rec.mu.Lock()
	defer e.rec.mu.Unlock()
	evs := e.evs
	e.evs = nil
	return evs
}

// publish queues endpoint events and kicks.
func (e *testEndpoints) publish(evs ...host.EndpointEvent) {
	e.rec.mu.Lock()
	e.evs = append(e.evs, evs...)
	e.rec.mu.Unlock()
	kick(e.kick)
}
