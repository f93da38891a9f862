package bgp

import (
	"net/netip"
	"slices"
	"sync"

	api "github.com/osrg/gobgp/v3/api"
)

// routeTable turns GoBGP's best-path events into whole routes for fib.
//
// GoBGP's BEST watch sends, per destination that changed, its whole new
// best set: with multipath on, every path that ties with the best (a
// withdrawn destination arrives as one path with IsWithdraw set); with
// multipath off, the one new best (or its withdrawal). So each event
// replaces a destination's candidates; nothing is merged.
//
// Which candidates become next hops is decided here, not in GoBGP:
// GoBGP 3.37 ignores allow-multiple-as and maximum-paths (it parses them
// and never reads them) and always treats paths with AS_PATHs of equal
// length as equal, i.e. it is always "relaxed". So Multipath.MultipleAS
// == false is enforced by keeping only candidates whose AS_PATH equals the
// best one's, and MaxPaths by truncation.
//
// Callbacks run on GoBGP's watch goroutine; Drain runs on the consumer's.
// mu guards everything.
type routeTable struct {
	mu      sync.Mutex // guards the fields below
	gen     uint64     // watch generation; events of older watches are dropped
	stopped bool
	mp      Multipath
	own     map[netip.Addr]struct{} // our addresses: never a next hop
	dests   map[netip.Prefix][]candidate
	drained map[netip.Prefix][]netip.Addr // what the last Drains handed out
	dirty   map[netip.Prefix]struct{}
	kick    chan struct{}
}

func newRouteTable() *routeTable {
	return &routeTable{
		own:     make(map[netip.Addr]struct{}),
		dests:   make(map[netip.Prefix][]candidate),
		drained: make(map[netip.Prefix][]netip.Addr),
		dirty:   make(map[netip.Prefix]struct{}),
		kick:    make(chan struct{}, 1),
	}
}

func (t *routeTable) signalLocked() {
	if len(t.dirty) == 0 {
		return
	}
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// newGeneration forgets every destination (a new GoBGP RIB starts empty)
// and returns the generation the next watch must carry.
func (t *routeTable) newGeneration() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	for p := range t.dests {
		t.dirty[p] = struct{}{}
	}
	clear(t.dests)
	t.signalLocked()
	return t.gen
}

// configure sets the multipath selection and our own addresses; a change
// re-evaluates every destination.
func (t *routeTable) configure(mp Multipath, own []netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	changed := t.mp != mp
	t.mp = mp
	for _, a := range own {
		if _, ok := t.own[a]; !ok {
			t.own[a] = struct{}{}
			changed = true
		}
	}
	if changed {
		t.markAllLocked()
	}
}

// addOwn records an address of ours seen as a session's local address.
func (t *routeTable) addOwn(gen uint64, a netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped || gen != t.gen || !a.IsValid() || a.IsUnspecified() {
		return
	}
	if _, ok := t.own[a]; ok {
		return
	}
	t.own[a] = struct{}{}
	t.markAllLocked()
}

func (t *routeTable) markAllLocked() {
	for p := range t.dests {
		t.dirty[p] = struct{}{}
	}
	t.signalLocked()
}

func (t *routeTable) stop() {
	t.mu.Lock()
	t.stopped = true
	t.mu.Unlock()
}

type pathUpdate struct {
	prefix   netip.Prefix
	c        candidate
	withdraw bool
}

// onPaths handles one BEST event of generation gen.
func (t *routeTable) onPaths(gen uint64, ups []pathUpdate) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped || gen != t.gen {
		return
	}
	// Every destination in the event gets exactly the candidates the event
	// lists for it.
	seen := make(map[netip.Prefix]bool, len(ups))
	for _, u := range ups {
		if !seen[u.prefix] {
			seen[u.prefix] = true
			delete(t.dests, u.prefix)
		}
		if !u.withdraw {
			t.dests[u.prefix] = append(t.dests[u.prefix], u.c)
		}
		t.dirty[u.prefix] = struct{}{}
	}
	t.signalLocked()
}

// nextHopsLocked is the ECMP set of a destination: learned candidates only,
// not via ourselves, AS_PATH equal to the best's unless MultipleAS, at most
// MaxPaths, sorted.
func (t *routeTable) nextHopsLocked(cands []candidate) []netip.Addr {
	if len(cands) == 0 || cands[0].local {
		// We originate it and GoBGP prefers local paths: not a learned route.
		return nil
	}
	var nhs []netip.Addr
	var bestPath string
	for _, c := range cands {
		if c.local || !c.nextHop.IsValid() {
			continue
		}
		if _, ours := t.own[c.nextHop]; ours {
			continue
		}
		if len(nhs) == 0 {
			bestPath = c.asPath
		} else {
			if !t.mp.Enabled {
				break
			}
			if !t.mp.MultipleAS && c.asPath != bestPath {
				continue
			}
		}
		if t.mp.MaxPaths > 0 && uint32(len(nhs)) >= t.mp.MaxPaths {
			break
		}
		if !slices.Contains(nhs, c.nextHop) {
			nhs = append(nhs, c.nextHop)
		}
	}
	slices.SortFunc(nhs, netip.Addr.Compare)
	return nhs
}

// drain returns every destination whose next-hop set differs from what
// the previous drains returned.
func (t *routeTable) drain() []Route {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Route
	for p := range t.dirty {
		nhs := t.nextHopsLocked(t.dests[p])
		if slices.Equal(nhs, t.drained[p]) {
			continue
		}
		out = append(out, Route{Prefix: p, NextHops: nhs})
		if len(nhs) == 0 {
			delete(t.drained, p)
		} else {
			t.drained[p] = nhs
		}
	}
	clear(t.dirty)
	slices.SortFunc(out, func(a, b Route) int { return comparePrefix(a.Prefix, b.Prefix) })
	return out
}

// watchCallback returns the function GoBGP calls with events of watch
// generation gen. It decodes (copies) and hands over; no GoBGP object is
// kept.
func (t *routeTable) watchCallback(gen uint64, bad func(error)) func(*api.WatchEventResponse) {
	return func(r *api.WatchEventResponse) {
		switch ev := r.Event.(type) {
		case *api.WatchEventResponse_Table:
			ups := make([]pathUpdate, 0, len(ev.Table.Paths))
			for _, p := range ev.Table.Paths {
				prefix, c, withdraw, ok, err := pathFromAPI(p)
				if err != nil {
					bad(err)
					continue
				}
				if ok {
					ups = append(ups, pathUpdate{prefix: prefix, c: c, withdraw: withdraw})
				}
			}
			if len(ups) > 0 {
				t.onPaths(gen, ups)
			}
		case *api.WatchEventResponse_Peer:
			if tr := ev.Peer.GetPeer().GetTransport(); tr != nil {
				if a, err := netip.ParseAddr(tr.LocalAddress); err == nil {
					t.addOwn(gen, a.Unmap())
				}
			}
		}
	}
}
