package host

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/switchd/switchd/fib"
)

// The Manager's feeds: what it wants of the rest of switchd, published as
// it changes and taken by whoever wires the Manager in (the daemon), each
// as a 1-buffered kick channel plus a drain of everything changed since
// the last drain, coalesced. Two feeds, because they have two consumers:
//
//   - routes: the desired host routes (a /32 and /128 per endpoint through
//     its host-side interface, a blackhole per owned block) and the
//     prefixes to originate (the owned blocks plus a host prefix for each
//     address outside them in a static prefix), for fib and BGP;
//   - endpoints: endpoints added, updated and removed, with their
//     addresses and labels, for policy.
//
// The Manager publishes with its lock held, so the feeds carry changes in
// the order it made them (an address released before its next holder's
// route is published); a drain never calls back into the Manager.

// RouteChanges is what DrainRoutes returns. A key is in Set or Del, not
// both: the latest change of each wins.
type RouteChanges struct {
	Set []fib.Route    // sorted by destination
	Del []fib.RouteKey // sorted by destination
	// Originate is the whole set of prefixes to originate, sorted; valid
	// when OriginateChanged.
	Originate        []netip.Prefix
	OriginateChanged bool
}

// EndpointEventType says what happened to an endpoint.
type EndpointEventType int

const (
	EndpointAdded EndpointEventType = iota + 1
	// EndpointUpdated: the endpoint is there before and after, changed (or
	// removed and added again between two drains).
	EndpointUpdated
	EndpointRemoved
)

func (t EndpointEventType) String() string {
	switch t {
	case EndpointAdded:
		return "added"
	case EndpointUpdated:
		return "updated"
	case EndpointRemoved:
		return "removed"
	}
	return "unknown"
}

// EndpointEvent is an endpoint as it is after the change (as it was, for
// EndpointRemoved): ID, kind, interface names, netns path, addresses,
// labels. Its Labels map is the event's own.
type EndpointEvent struct {
	Type     EndpointEventType
	Endpoint Endpoint
}

type routeChange struct {
	r   fib.Route
	del bool
}

// feeds holds what was published and not drained yet.
type feeds struct {
	routeKick chan struct{}
	epKick    chan struct{}

	mu         sync.Mutex // guards the fields below
	routes     map[fib.RouteKey]routeChange
	originate  []netip.Prefix
	origChange bool
	eps        map[string]EndpointEvent
}

func newFeeds() *feeds {
	return &feeds{
		routeKick: make(chan struct{}, 1),
		epKick:    make(chan struct{}, 1),
		routes:    map[fib.RouteKey]routeChange{},
		eps:       map[string]EndpointEvent{},
	}
}

func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (f *feeds) publishRoutes(set []fib.Route, del []fib.RouteKey) {
	if len(set) == 0 && len(del) == 0 {
		return
	}
	f.mu.Lock()
	for _, k := range del {
		f.routes[k] = routeChange{del: true}
	}
	for _, r := range set {
		f.routes[r.Key] = routeChange{r: r}
	}
	f.mu.Unlock()
	kick(f.routeKick)
}

// publishOriginate takes the whole set of prefixes to originate; the
// caller publishes only changes.
func (f *feeds) publishOriginate(ps []netip.Prefix) {
	f.mu.Lock()
	f.originate, f.origChange = slices.Clone(ps), true
	f.mu.Unlock()
	kick(f.routeKick)
}

// publishEndpoint coalesces ev with what is pending for the endpoint, so
// that a drain sees the change from the last drain's point of view.
func (f *feeds) publishEndpoint(ev EndpointEvent) {
	ev.Endpoint.Labels = maps.Clone(ev.Endpoint.Labels)
	f.mu.Lock()
	defer f.mu.Unlock()
	id := ev.Endpoint.ID
	if prev, ok := f.eps[id]; ok {
		switch {
		case prev.Type == EndpointAdded && ev.Type == EndpointRemoved:
			delete(f.eps, id) // never seen: nothing to tell
			return
		case prev.Type == EndpointAdded:
			ev.Type = EndpointAdded // still new to the reader
		case prev.Type == EndpointRemoved && ev.Type == EndpointAdded:
			ev.Type = EndpointUpdated // the reader has the old one
		}
	}
	f.eps[id] = ev
	kick(f.epKick)
}

func (f *feeds) drainRoutes() RouteChanges {
	f.mu.Lock()
	var c RouteChanges
	for k, rc := range f.routes {
		if rc.del {
			c.Del = append(c.Del, k)
		} else {
			c.Set = append(c.Set, rc.r)
		}
	}
	clear(f.routes)
	c.Originate, c.OriginateChanged = f.originate, f.origChange
	f.originate, f.origChange = nil, false
	f.mu.Unlock()
	slices.SortFunc(c.Set, func(a, b fib.Route) int { return comparePrefix(a.Key.Dst, b.Key.Dst) })
	slices.SortFunc(c.Del, func(a, b fib.RouteKey) int { return comparePrefix(a.Dst, b.Dst) })
	return c
}

func (f *feeds) drainEndpoints() []EndpointEvent {
	f.mu.Lock()
	out := make([]EndpointEvent, 0, len(f.eps))
	for _, ev := range f.eps {
		out = append(out, ev)
	}
	clear(f.eps)
	f.mu.Unlock()
	if len(out) == 0 {
		return nil
	}
	slices.SortFunc(out, func(a, b EndpointEvent) int { return strings.Compare(a.Endpoint.ID, b.Endpoint.ID) })
	return out
}

// RouteUpdates signals (coalesced) that DrainRoutes has something new.
func (m *Manager) RouteUpdates() <-chan struct{} { return m.feeds.routeKick }

// DrainRoutes returns the changes of the desired host routes and of the
// prefixes to originate since the previous drain. The first drain after
// NewManager holds the whole set.
func (m *Manager) DrainRoutes() RouteChanges { return m.feeds.drainRoutes() }

// EndpointUpdates signals (coalesced) that DrainEndpoints has something
// new.
func (m *Manager) EndpointUpdates() <-chan struct{} { return m.feeds.epKick }

// DrainEndpoints returns, sorted by ID, one event per endpoint that changed
// since the previous drain. The first drain after NewManager reports every
// endpoint it adopted from the state directory as added.
func (m *Manager) DrainEndpoints() []EndpointEvent { return m.feeds.drainEndpoints() }
