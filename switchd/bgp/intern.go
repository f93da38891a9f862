package bgp

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// Interning for the route table (routes.go): candidate sets, next-hop
// selections and community lists are few compared with prefixes (the
// paths of one UPDATE share their attributes), so each distinct value is
// stored once and prefixes hold its index.

// internTable interns immutable values by an encoding of them: equal
// values get one index, kept while referenced. Index 0 is the empty value
// and is never stored.
type internTable[T any] struct {
	sets  []interned[T]
	index map[string]uint32 // encoding → index
	free  []uint32
}

type interned[T any] struct {
	val  T
	key  string
	refs uint32
}

func (s *internTable[T]) get(i uint32) (v T) {
	if i == 0 {
		return v
	}
	return s.sets[i].val
}

// lookup finds the value encoded as k.
func (s *internTable[T]) lookup(k []byte) (uint32, bool) {
	i, ok := s.index[string(k)]
	return i, ok
}

// add stores v, encoded as k, without a reference: the caller takes one.
func (s *internTable[T]) add(k []byte, v T) uint32 {
	if s.index == nil {
		s.index = make(map[string]uint32)
		s.sets = make([]interned[T], 1) // index 0: the empty value
	}
	e := interned[T]{val: v, key: string(k)}
	var i uint32
	if n := len(s.free); n > 0 {
		i, s.free = s.free[n-1], s.free[:n-1]
		s.sets[i] = e
	} else {
		i = uint32(len(s.sets))
		s.sets = append(s.sets, e)
	}
	s.index[e.key] = i
	return i
}

func (s *internTable[T]) ref(i uint32) {
	if i != 0 {
		s.sets[i].refs++
	}
}

// unref drops a reference and reports whether it was the last; the caller
// then releases what the value holds and calls forget. Two steps, not one
// returning the value: every drained route drops one, and copying a value
// out (a selection is three slices) on each call showed in profiles.
func (s *internTable[T]) unref(i uint32) (last bool) {
	if i == 0 {
		return false
	}
	e := &s.sets[i]
	e.refs--
	return e.refs == 0
}

// forget removes the value at i, which unref reported unreferenced.
func (s *internTable[T]) forget(i uint32) {
	e := &s.sets[i]
	delete(s.index, e.key)
	*e = interned[T]{}
	s.free = append(s.free, i)
}

// candSets interns candidate sets. Each caches the index of its next-hop
// selection under the current selection rules.
type candSets struct {
	internTable[candSet]
	last uint32 // the most recently interned set: an UPDATE's paths come in a row
}

type candSet struct {
	cands []candidate // immutable
	nh    uint32      // 0: not computed; else 1 + selection index under the current rules
}

func (s *candSets) cands(c uint32) []candidate { return s.get(c).cands }

// intern returns the index of the set equal to c, with one more reference.
func (s *candSets) intern(c []candidate, buf *[]byte) uint32 {
	if len(c) == 0 {
		return 0
	}
	if s.last != 0 && slices.Equal(s.sets[s.last].val.cands, c) {
		s.sets[s.last].refs++
		return s.last
	}
	k := (*buf)[:0]
	for _, x := range c {
		k = append(k, 0)
		if x.local {
			k[len(k)-1] = 1
		}
		k = appendAddrKey(k, x.nextHop)
		k = appendAddrKey(k, x.src)
		k = binary.AppendUvarint(k, uint64(x.id))
		k = appendStringKey(k, x.asPath)
		k = appendStringKey(k, x.comm)
	}
	*buf = k
	i, ok := s.lookup(k)
	if !ok {
		i = s.add(k, candSet{cands: slices.Clone(c)})
	}
	s.sets[i].refs++
	s.last = i
	return i
}

func (s *candSets) unref(c uint32, nhs *nhSets) {
	if !s.internTable.unref(c) {
		return
	}
	if nh := s.sets[c].val.nh; nh != 0 {
		nhs.unref(nh - 1)
	}
	s.forget(c)
	if s.last == c {
		s.last = 0
	}
}

// forgetNextHops drops every cached selection; call it when the selection
// rules changed (after marking every prefix dirty).
func (s *candSets) forgetNextHops(nhs *nhSets) {
	for i := range s.sets {
		if cs := &s.sets[i].val; cs.nh != 0 {
			nhs.unref(cs.nh - 1)
			cs.nh = 0
		}
	}
}

// selection is what a candidate set yields under the selection rules:
// the ECMP next hops and the paths behind them. Slices are immutable:
// they are handed out in Routes.
type selection struct {
	addrs []netip.Addr
	paths []Path
	comms []uint32 // the commSets index of each path's communities
}

// nhSets interns selections; it holds a reference on the community lists
// of their paths.
type nhSets struct {
	internTable[selection]
	comms commSets
}

// intern returns the index of the selection of next hops addrs and paths
// picked, without a reference: the caller takes one.
func (s *nhSets) intern(addrs []netip.Addr, picked []candidate, buf *[]byte) uint32 {
	if len(addrs) == 0 {
		return 0
	}
	k := (*buf)[:0]
	for _, x := range addrs {
		k = appendAddrKey(k, x)
	}
	for _, c := range picked {
		k = appendAddrKey(k, c.nextHop)
		k = appendStringKey(k, c.comm)
	}
	*buf = k
	if i, ok := s.lookup(k); ok {
		return i
	}
	sel := selection{addrs: slices.Clone(addrs), paths: make([]Path, len(picked)), comms: make([]uint32, len(picked))}
	for j, c := range picked {
		sel.comms[j] = s.comms.intern(c.comm)
		sel.paths[j] = Path{NextHop: c.nextHop, Communities: s.comms.get(sel.comms[j])}
	}
	return s.add(k, sel)
}

// route is the Route of prefix p with selection i. It reads the selection
// in place: every drained route is made here, and copying the selection
// out first (get) showed in profiles.
func (s *nhSets) route(p netip.Prefix, i uint32) Route {
	if i == 0 {
		return Route{Prefix: p}
	}
	sel := &s.sets[i].val
	return Route{Prefix: p, NextHops: sel.addrs, Paths: sel.paths}
}

func (s *nhSets) unref(i uint32) {
	if !s.internTable.unref(i) {
		return
	}
	for _, c := range s.sets[i].val.comms {
		s.comms.unref(c)
	}
	s.forget(i)
}

// commSets interns community lists by their encoding as the watch
// delivers it (pathDecoder.comm), decoded once per distinct list.
type commSets struct {
	internTable[*Communities]
}

// intern returns the index of the list encoded as raw, with one more
// reference; 0 for none.
func (s *commSets) intern(raw string) uint32 {
	if raw == "" {
		return 0
	}
	i, ok := s.index[raw]
	if !ok {
		i = s.add([]byte(raw), decodeCommunities(raw))
	}
	s.ref(i)
	return i
}

func (s *commSets) unref(i uint32) {
	if s.internTable.unref(i) {
		s.forget(i)
	}
}

// appendAddrKey appends an unambiguous encoding of a (length first).
func appendAddrKey(k []byte, a netip.Addr) []byte {
	n := len(k)
	k = append(k, 0)
	k, _ = a.AppendBinary(k)
	k[n] = byte(len(k) - n - 1)
	return k
}

// appendStringKey appends s, length first.
func appendStringKey(k []byte, s string) []byte {
	k = binary.AppendUvarint(k, uint64(len(s)))
	return append(k, s...)
}
