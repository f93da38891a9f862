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
// Memory: this table holds one entry per prefix of the RIB, so it is kept
// small (a million prefixes cost ~60 MB). Candidate and next-hop slices are
// immutable once stored and shared between prefixes that have equal ones
// (paths of one UPDATE share their attributes), so most prefixes cost no
// allocation of their own. What the previous drains handed out is not kept:
// for a prefix that is not dirty it is nextHopsLocked(dests[p]) by
// construction (every change of dests or of the selection marks the prefix
// dirty), so it is computed, and remembered in dirty, only when a prefix
// becomes dirty.
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
	dirty   map[netip.Prefix]dirtyDest
	event   uint64 // counts onPaths calls, for dirtyDest.event
	learned int    // prefixes whose last drained next-hop set is not empty
	kick    chan struct{}

	// Scratch space and one-entry caches that let equal slices be shared.
	candBuf  []candidate
	lastCand []candidate
	nhBuf    []netip.Addr
	lastNH   []netip.Addr
}

// dirtyDest is a prefix whose candidates or selection changed since the
// last drain.
type dirtyDest struct {
	out   []netip.Addr // next hops the drains handed out before it changed
	event uint64       // the last onPaths that listed it
}

func newRouteTable() *routeTable {
	return &routeTable{
		own:   make(map[netip.Addr]struct{}),
		dests: make(map[netip.Prefix][]candidate),
		dirty: make(map[netip.Prefix]dirtyDest),
		kick:  make(chan struct{}, 1),
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

// markLocked makes p dirty, remembering what the drains handed out for it
// (computed from its candidates under the current selection, which must
// not have changed yet). It returns the dirty entry.
func (t *routeTable) markLocked(p netip.Prefix) dirtyDest {
	if d, ok := t.dirty[p]; ok {
		return d
	}
	d := dirtyDest{out: t.nextHopsLocked(t.dests[p])}
	t.dirty[p] = d
	return d
}

// newGeneration forgets every destination (a new GoBGP RIB starts empty)
// and returns the generation the next watch must carry.
func (t *routeTable) newGeneration() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	for p := range t.dests {
		t.markLocked(p)
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
	for _, a := range own {
		if _, ok := t.own[a]; !ok {
			changed = true
		}
	}
	if !changed {
		return
	}
	t.markAllLocked()
	t.mp = mp
	for _, a := range own {
		t.own[a] = struct{}{}
	}
	t.signalLocked()
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
	t.markAllLocked()
	t.own[a] = struct{}{}
	t.signalLocked()
}

// markAllLocked makes every destination dirty; call it before the
// selection changes.
func (t *routeTable) markAllLocked() {
	for p := range t.dests {
		t.markLocked(p)
	}
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
	// lists for it. GoBGP lists a destination's paths one after another;
	// should it not, the dirty entry's event number tells that the prefix
	// was already listed and its candidates are extended, not replaced.
	t.event++
	for i := 0; i < len(ups); {
		p := ups[i].prefix
		j := i
		cands := t.candBuf[:0]
		for ; j < len(ups) && ups[j].prefix == p; j++ {
			if !ups[j].withdraw {
				cands = append(cands, ups[j].c)
			}
		}
		t.candBuf = cands
		d := t.markLocked(p)
		if d.event == t.event {
			cands = append(slices.Clone(t.dests[p]), cands...)
		} else {
			d.event = t.event
			t.dirty[p] = d
		}
		if len(cands) == 0 {
			delete(t.dests, p)
		} else {
			t.dests[p] = t.shareCands(cands)
		}
		i = j
	}
	t.signalLocked()
}

// shareCands returns an immutable slice equal to c: the previous one if
// that is equal (consecutive prefixes of one UPDATE), else a copy.
func (t *routeTable) shareCands(c []candidate) []candidate {
	if !slices.Equal(c, t.lastCand) {
		t.lastCand = slices.Clone(c)
	}
	return t.lastCand
}

// shareNextHops is shareCands for next-hop sets.
func (t *routeTable) shareNextHops(nhs []netip.Addr) []netip.Addr {
	if len(nhs) == 0 {
		return nil
	}
	if !slices.Equal(nhs, t.lastNH) {
		t.lastNH = slices.Clone(nhs)
	}
	return t.lastNH
}

// nextHopsLocked is the ECMP set of a destination: learned candidates only,
// not via ourselves, AS_PATH equal to the best's unless MultipleAS, at most
// MaxPaths, sorted. The result is shared and must not be modified.
func (t *routeTable) nextHopsLocked(cands []candidate) []netip.Addr {
	if len(cands) == 0 || cands[0].local {
		// We originate it and GoBGP prefers local paths: not a learned route.
		return nil
	}
	nhs := t.nhBuf[:0]
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
	t.nhBuf = nhs
	return t.shareNextHops(nhs)
}

// drainEach calls f, under the lock, for up to max (0: no limit) dirty
// destinations whose next-hop set differs from what the previous drains
// handed out, and reports whether dirty destinations are left. f must not
// call back into the table.
func (t *routeTable) drainEach(max int, f func(Route)) (more bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for p, d := range t.dirty {
		if max > 0 && n >= max {
			t.signalLocked()
			return true
		}
		delete(t.dirty, p)
		nhs := t.nextHopsLocked(t.dests[p])
		if slices.Equal(nhs, d.out) {
			continue
		}
		switch {
		case len(d.out) == 0:
			t.learned++
		case len(nhs) == 0:
			t.learned--
		}
		n++
		f(Route{Prefix: p, NextHops: nhs})
	}
	return false
}

// drain returns every destination whose next-hop set differs from what
// the previous drains returned, sorted by prefix.
func (t *routeTable) drain() []Route {
	var out []Route
	t.drainEach(0, func(r Route) { out = append(out, r) })
	slices.SortFunc(out, func(a, b Route) int { return comparePrefix(a.Prefix, b.Prefix) })
	return out
}

// learnedCount is the number of prefixes the drains handed out with next
// hops and did not withdraw since.
func (t *routeTable) learnedCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.learned
}

// watchCallback returns the function GoBGP calls with events of watch
// generation gen. It decodes (copies) and hands over; no GoBGP object is
// kept. GoBGP calls it from one goroutine per watch, so its scratch space
// needs no lock.
func (t *routeTable) watchCallback(gen uint64, bad func(error)) func(*api.WatchEventResponse) {
	var ups []pathUpdate
	var dec pathDecoder
	return func(r *api.WatchEventResponse) {
		switch ev := r.Event.(type) {
		case *api.WatchEventResponse_Table:
			ups = ups[:0]
			for _, p := range ev.Table.Paths {
				prefix, c, withdraw, ok, err := dec.decode(p)
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
