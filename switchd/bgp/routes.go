package bgp

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
)

// routeTable turns GoBGP's best-path events into whole routes for fib.
//
// GoBGP's best-path watch (v4.8, OnBestPath) sends, per destination that
// changed: with multipath off, the one new best (or its withdrawal), which
// replaces the destination's candidate; with multipath on, the change of
// its multipath set (members that left, as withdrawals, then members that
// joined or changed), merged into the candidates (mergeLocked); the first
// event of a watch (its RIB dump) has each destination's whole set.
//
// Which candidates become next hops is decided here, not in GoBGP:
// GoBGP (3.37 and 4.8) ignores allow-multiple-as and maximum-paths (it parses them
// and never reads them) and always treats paths with AS_PATHs of equal
// length as equal, i.e. it is always "relaxed". So Multipath.MultipleAS
// == false is enforced by keeping only candidates whose AS_PATH equals the
// best one's, and MaxPaths by truncation.
//
// Memory: this table holds one entry per prefix of the RIB, so an entry is
// one uint32 in maps without pointers, which the GC does not scan: IPv4
// keyed by the address in one map per prefix length, IPv6 by 16 address
// bytes and the length. The entry is the index of an interned, refcounted
// candidate set (few: the paths of one UPDATE share their attributes),
// which caches the index of its interned next-hop set under the current
// selection; equal sets have equal indices, so drains compare indices.
// What the previous drains handed out is not kept: for a prefix that is
// not dirty it is the next-hop set of its candidates by construction
// (every change of candidates or of the selection marks the prefix
// dirty), so it is remembered only while a prefix is dirty, in the dirty
// list, which lists dirty keys in the order they turned dirty.
//
// Callbacks run on GoBGP's watch goroutine; Drain runs on the consumer's.
// mu guards everything.
type routeTable struct {
	mu      sync.Mutex // guards the fields below
	gen     uint64     // watch generation; events of older watches are dropped
	delta   bool       // GoBGP runs multipath: events are deltas of each prefix's set
	stopped bool
	mp      Multipath
	own     map[netip.Addr]struct{} // our addresses: never a next hop
	zones   linkZones               // interfaces of link-local next hops (unnumbered.go); not guarded by mu
	v4      [33]map[uint32]uint32   // by prefix length: address → entry
	v6      map[[17]byte]uint32     // key6 → entry
	dirty4  []dirty4                // dirty IPv4 prefixes from dirty4[head4:]
	dirty6  []dirty6                // dirty IPv6 prefixes from dirty6[head6:]
	head4   int
	head6   int
	learned int // prefixes whose last drained next-hop set is not empty
	kick    chan struct{}

	cands candSets
	nhs   nhSets

	// Scratch space.
	candBuf []candidate
	pickBuf []candidate
	nhBuf   []netip.Addr
	keyBuf  []byte
	seen    map[netip.Prefix]struct{}
}

// An entry is a prefix's candidate set index (0: none), with dirtyBit set
// while the prefix is in a dirty list. A clean entry without candidates is
// deleted.
const dirtyBit = 1 << 31

// dirty4 and dirty6 are dirty prefixes with the next-hop set index the
// drains handed out before they changed.
type dirty4 struct {
	key uint64 // addr<<8 | bits
	out uint32
}

type dirty6 struct {
	key [17]byte // key6
	out uint32
}

func prefix4(k uint64) netip.Prefix {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], uint32(k>>8))
	return netip.PrefixFrom(netip.AddrFrom4(a), int(k&0xff))
}

func key6(p netip.Prefix) (k [17]byte) {
	a := p.Addr().As16()
	copy(k[:], a[:])
	k[16] = byte(p.Bits())
	return k
}

func prefix6(k [17]byte) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom16([16]byte(k[:16])), int(k[16]))
}

func addr4(p netip.Prefix) uint32 {
	a := p.Addr().As4()
	return binary.BigEndian.Uint32(a[:])
}

func (t *routeTable) get(p netip.Prefix) uint32 {
	if p.Addr().Is4() {
		return t.v4[p.Bits()][addr4(p)]
	}
	return t.v6[key6(p)]
}

func (t *routeTable) put(p netip.Prefix, e uint32) {
	if !p.Addr().Is4() {
		t.v6[key6(p)] = e
		return
	}
	m := t.v4[p.Bits()]
	if m == nil {
		m = make(map[uint32]uint32)
		t.v4[p.Bits()] = m
	}
	m[addr4(p)] = e
}

func (t *routeTable) dirtyLen() int {
	return len(t.dirty4) - t.head4 + len(t.dirty6) - t.head6
}

func newRouteTable() *routeTable {
	return &routeTable{
		own:  make(map[netip.Addr]struct{}),
		v6:   make(map[[17]byte]uint32),
		kick: make(chan struct{}, 1),
	}
}

func (t *routeTable) signalLocked() {
	if t.dirtyLen() == 0 {
		return
	}
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// markLocked makes *e, the entry of p, dirty, remembering what the drains
// handed out for it (computed from its candidates under the current
// selection, which must not have changed yet). The caller stores *e.
func (t *routeTable) markLocked(p netip.Prefix, e *uint32) {
	if *e&dirtyBit != 0 {
		return
	}
	nh := t.nextHopsLocked(*e)
	t.nhs.ref(nh)
	*e |= dirtyBit
	if p.Addr().Is4() {
		t.dirty4 = append(t.dirty4, dirty4{key: uint64(addr4(p))<<8 | uint64(p.Bits()), out: nh})
	} else {
		t.dirty6 = append(t.dirty6, dirty6{key: key6(p), out: nh})
	}
}

// eachLocked calls f for every entry and stores what f leaves in it.
func (t *routeTable) eachLocked(f func(p netip.Prefix, e *uint32)) {
	for bits, m := range t.v4 {
		for a, e := range m {
			f(prefix4(uint64(a)<<8|uint64(bits)), &e)
			m[a] = e
		}
	}
	for k, e := range t.v6 {
		f(prefix6(k), &e)
		t.v6[k] = e
	}
}

// newGeneration forgets every destination (a new GoBGP RIB starts empty)
// and returns the generation the next watch must carry; multipath is
// GoBGP's setting for it.
func (t *routeTable) newGeneration(multipath bool) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	t.delta = multipath
	t.eachLocked(func(p netip.Prefix, e *uint32) {
		t.markLocked(p, e)
		t.cands.unref(*e&^dirtyBit, &t.nhs)
		*e = dirtyBit
	})
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
	t.cands.forgetNextHops(&t.nhs)
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
	t.cands.forgetNextHops(&t.nhs)
	t.signalLocked()
}

// markAllLocked makes every destination dirty; call it before the
// selection changes.
func (t *routeTable) markAllLocked() {
	t.eachLocked(t.markLocked)
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
	// should it not, a prefix already listed earlier in the event gets its
	// candidates extended, not replaced.
	if t.seen != nil {
		clear(t.seen)
	}
	for i := 0; i < len(ups); {
		p := ups[i].prefix
		j := i
		for j < len(ups) && ups[j].prefix == p {
			j++
		}
		e := t.get(p)
		t.markLocked(p, &e)
		old := e &^ dirtyBit
		var cands []candidate
		switch {
		case t.delta:
			cands = t.mergeLocked(t.cands.cands(old), ups[i:j])
		default:
			cands = t.candBuf[:0]
			for _, u := range ups[i:j] {
				if !u.withdraw {
					cands = append(cands, u.c)
				}
			}
			t.candBuf = cands
			if t.listedBefore(ups, i) {
				cands = append(slices.Clone(t.cands.cands(old)), cands...)
			}
		}
		c := t.cands.intern(cands, &t.keyBuf)
		t.cands.unref(old, &t.nhs)
		t.put(p, c|dirtyBit)
		i = j
	}
	t.signalLocked()
}

// mergeLocked applies a multipath delta of one prefix to its candidates
// old (not modified): GoBGP v4.8 with multipath sends, per changed prefix,
// the members that left its multipath set (withdrawals) and those that
// joined or changed (dst.GetMultiBestPathDiff), each known by its source
// and ADD-PATH id. A changed member keeps its place; new ones go last, so
// the first candidate is the longest-standing member, the one
// selectLocked compares AS_PATHs with (GoBGP's members tie on every
// criterion it compares).
func (t *routeTable) mergeLocked(old []candidate, ups []pathUpdate) []candidate {
	cands := append(t.candBuf[:0], old...)
	for _, u := range ups {
		k := slices.IndexFunc(cands, func(c candidate) bool { return c.src == u.c.src && c.id == u.c.id })
		switch {
		case k >= 0 && u.withdraw:
			cands = slices.Delete(cands, k, k+1)
		case k >= 0:
			cands[k] = u.c
		case !u.withdraw:
			cands = append(cands, u.c)
		}
	}
	t.candBuf = cands
	return cands
}

// listedBefore reports whether ups[i].prefix occurs in ups[:i]; a set
// for long events keeps this linear.
func (t *routeTable) listedBefore(ups []pathUpdate, i int) bool {
	p := ups[i].prefix
	if len(ups) <= 32 {
		for _, u := range ups[:i] {
			if u.prefix == p {
				return true
			}
		}
		return false
	}
	if t.seen == nil {
		t.seen = make(map[netip.Prefix]struct{})
	}
	if _, ok := t.seen[p]; ok {
		return true
	}
	t.seen[p] = struct{}{}
	return false
}

// nextHopsLocked is the index of the ECMP set of candidate set c, cached
// in the set: learned candidates only, not via ourselves, AS_PATH equal to
// the best's unless MultipleAS, at most MaxPaths, sorted.
func (t *routeTable) nextHopsLocked(c uint32) uint32 {
	if c == 0 {
		return 0
	}
	cs := &t.cands.sets[c].val
	if cs.nh != 0 {
		return cs.nh - 1
	}
	addrs, picked := t.selectLocked(cs.cands)
	nh := t.nhs.intern(addrs, picked, &t.keyBuf)
	t.nhs.ref(nh)
	cs.nh = nh + 1
	return nh
}

func (t *routeTable) selectLocked(cands []candidate) (addrs []netip.Addr, picked []candidate) {
	if len(cands) == 0 || slices.ContainsFunc(cands, func(c candidate) bool { return c.local }) {
		// We originate it and GoBGP prefers local paths: not a learned route.
		return nil, nil
	}
	nhs, picked := t.nhBuf[:0], t.pickBuf[:0]
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
		picked = append(picked, c)
	}
	// Paths are a set, like next hops: GoBGP's order among equals and a
	// second path with the same next hop and communities change nothing.
	// Most routes have one path: nothing to sort.
	if len(picked) > 1 {
		slices.SortFunc(nhs, netip.Addr.Compare)
		slices.SortFunc(picked, func(a, b candidate) int {
			if c := a.nextHop.Compare(b.nextHop); c != 0 {
				return c
			}
			return strings.Compare(a.comm, b.comm)
		})
		picked = slices.CompactFunc(picked, func(a, b candidate) bool { return a.nextHop == b.nextHop && a.comm == b.comm })
	}
	t.nhBuf, t.pickBuf = nhs, picked
	return nhs, picked
}

// drainEach calls f, under the lock, for up to max (0: no limit) dirty
// destinations whose next-hop set differs from what the previous drains
// handed out, and reports whether dirty destinations are left. f must not
// call back into the table.
func (t *routeTable) drainEach(max int, f func(Route)) (more bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for t.head4 < len(t.dirty4) {
		if max > 0 && n >= max {
			t.dirty4, t.head4 = compactDirty(t.dirty4, t.head4)
			t.signalLocked()
			return true
		}
		d := t.dirty4[t.head4]
		t.head4++
		m, a := t.v4[d.key&0xff], uint32(d.key>>8)
		c := m[a] &^ dirtyBit
		if t.settleLocked(prefix4(d.key), c, d.out, f) {
			n++
		}
		if c == 0 {
			delete(m, a)
		} else {
			m[a] = c
		}
	}
	t.dirty4, t.head4 = resetDirty(t.dirty4), 0
	for t.head6 < len(t.dirty6) {
		if max > 0 && n >= max {
			t.dirty6, t.head6 = compactDirty(t.dirty6, t.head6)
			t.signalLocked()
			return true
		}
		d := t.dirty6[t.head6]
		t.head6++
		c := t.v6[d.key] &^ dirtyBit
		if t.settleLocked(prefix6(d.key), c, d.out, f) {
			n++
		}
		if c == 0 {
			delete(t.v6, d.key)
		} else {
			t.v6[d.key] = c
		}
	}
	t.dirty6, t.head6 = resetDirty(t.dirty6), 0
	return false
}

// resetDirty empties a drained dirty list, giving a large one's memory
// back (a full table load leaves one with a million keys).
func resetDirty[K any](s []K) []K {
	if cap(s) > 1<<16 {
		return nil
	}
	return s[:0]
}

// compactDirty drops the drained head of a dirty list once it is most of
// the list, so a list that the watch keeps ahead of the drains does not
// grow without bound.
func compactDirty[K any](s []K, head int) ([]K, int) {
	if head < 4096 || head < len(s)/2 {
		return s, head
	}
	return s[:copy(s, s[head:])], 0
}

// settleLocked settles dirty prefix p, with candidate set c, whose
// next-hop set out was handed out before: it calls f if the set differs
// now, and reports whether it did.
func (t *routeTable) settleLocked(p netip.Prefix, c, out uint32, f func(Route)) bool {
	nh := t.nextHopsLocked(c)
	t.nhs.unref(out)
	if nh == out {
		return false
	}
	switch {
	case out == 0:
		t.learned++
	case nh == 0:
		t.learned--
	}
	f(t.nhs.route(p, nh))
	return true
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

// bestPaths returns the OnBestPath callback of watch generation gen. It
// decodes (copies) and hands over; no GoBGP object is kept. GoBGP calls
// it from one goroutine per watch, so its scratch space needs no lock.
func (t *routeTable) bestPaths(gen uint64) func([]*apiutil.Path) {
	var ups []pathUpdate
	var dec pathDecoder
	return func(paths []*apiutil.Path) {
		ups = ups[:0]
		for _, p := range paths {
			if prefix, c, ok := dec.decode(p); ok {
				c.nextHop = t.zones.zone(c.nextHop, p.PeerAddress)
				ups = append(ups, pathUpdate{prefix: prefix, c: c, withdraw: p.Withdrawal})
			}
		}
		if len(ups) > 0 {
			t.onPaths(gen, ups)
		}
	}
}

// onPeer takes a session's local address from a peer event of generation
// gen as one of ours.
func (t *routeTable) onPeer(gen uint64, ev *apiutil.WatchEventMessage_PeerEvent) {
	if a := ev.Peer.Transport.LocalAddress; a.IsValid() {
		t.addOwn(gen, a.Unmap().WithZone(""))
	}
}
