package fib

import (
	"cmp"
	"encoding/binary"
	"net/netip"
)

// rkey is a RouteKey packed for the Table's maps: no pointers (a
// netip.Prefix carries one for its zone), so a million keys cost the GC
// nothing to scan and hash and compare as plain memory.
type rkey struct {
	hi, lo   uint64 // the address; an IPv4 one in the low 32 bits of lo
	table    uint32
	priority uint32
	bits     uint8
	tos      uint8
	v6       bool
}

// keyOf packs a normalized key (Validate rejects zones, negative
// tables and metrics).
func keyOf(k RouteKey) rkey {
	a := k.Dst.Addr()
	rk := rkey{table: uint32(k.Table), priority: uint32(k.Priority), bits: uint8(k.Dst.Bits()), tos: k.TOS}
	if a.Is4() {
		b := a.As4()
		rk.lo = uint64(binary.BigEndian.Uint32(b[:]))
	} else {
		b := a.As16()
		rk.hi, rk.lo = binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
		rk.v6 = true
	}
	return rk
}

func (k rkey) routeKey() RouteKey {
	var a netip.Addr
	if k.v6 {
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], k.hi)
		binary.BigEndian.PutUint64(b[8:], k.lo)
		a = netip.AddrFrom16(b)
	} else {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(k.lo))
		a = netip.AddrFrom4(b)
	}
	return RouteKey{Table: int(k.table), Dst: netip.PrefixFrom(a, int(k.bits)), TOS: k.tos, Priority: int(k.priority)}
}

// compareRKey orders keys by table, address (IPv4 first), prefix length,
// TOS and metric.
func compareRKey(a, b rkey) int {
	if a.table != b.table {
		return cmp.Compare(a.table, b.table)
	}
	if a.v6 != b.v6 {
		if a.v6 {
			return 1
		}
		return -1
	}
	return cmp.Or(
		cmp.Compare(a.hi, b.hi),
		cmp.Compare(a.lo, b.lo),
		cmp.Compare(a.bits, b.bits),
		cmp.Compare(a.tos, b.tos),
		cmp.Compare(a.priority, b.priority),
	)
}

// state is what the Table keeps of a route besides its key: the desired
// or the kernel's type and next hops. Next-hop slices are shared: a
// desired route's with its interned set, a kernel route's with the
// desired route it was written from or with the others of its dump.
type state struct {
	nhs     []NextHop
	set     uint32 // desired: the interned set (Table.intern)
	nhg     uint32 // kernel: the nexthop group the route uses
	typ     RouteType
	offload Offload
	regroup bool // kernel: its group is of the wrong kind (Route.regroup)
}

func stateOf(r Route) state {
	return state{nhs: r.NextHops, set: r.set, nhg: r.nhg, typ: r.Type, offload: r.offload, regroup: r.regroup}
}

func (s state) route(k RouteKey) Route {
	return Route{Key: k, Type: s.typ, NextHops: s.nhs, offload: s.offload, nhg: s.nhg, set: s.set, regroup: s.regroup}
}

// sameState is sameRoute for two states of one key.
func sameState(want, have state) bool {
	if want.typ != have.typ || len(want.nhs) != len(have.nhs) || have.regroup {
		return false
	}
	for i, w := range want.nhs {
		h := have.nhs[i]
		if w.Gateway != h.Gateway || w.Weight != h.Weight || (w.Ifindex != 0 && w.Ifindex != h.Ifindex) {
			return false
		}
	}
	return true
}

// entry is all the Table keeps of one key: the desired route and the
// kernel's, side by side in one map slot, so that a route costs one key
// and one hash per lookup instead of one of each per view.
type entry struct {
	knhs  []NextHop // kernel: next hops (shared, as state.nhs)
	dset  *nhSet    // desired: the interned set (nil: not unicast)
	knhg  uint32    // kernel: the nexthop group the route uses
	dtyp  RouteType // desired: type
	ktyp  RouteType // kernel: type
	koff  Offload   // kernel: hardware state
	flags uint8     // eWant, eKernel, eRegroup
}

const (
	eWant    = 1 << iota // a route is desired
	eKernel              // the kernel holds a route of switchd's
	eRegroup             // kernel: its group is of the wrong kind
	eSeen                // in the dump a resync is taking in (Table.resync)
)

func (e *entry) wanted() bool   { return e.flags&eWant != 0 }
func (e *entry) inKernel() bool { return e.flags&eKernel != 0 }

// want is the desired half as a state.
func (e *entry) want() state {
	st := state{typ: e.dtyp}
	if e.dset != nil {
		st.nhs, st.set = e.dset.nhs, e.dset.id
	}
	return st
}

// wantEff is the desired half with the next hops the kernel should get
// (nhSet.eff: without the gateways NextHopDown marked).
func (e *entry) wantEff() state {
	st := state{typ: e.dtyp}
	if e.dset != nil {
		st.nhs, st.set = e.dset.eff, e.dset.id
	}
	return st
}

// have is the kernel half as a state.
func (e *entry) have() state {
	return state{nhs: e.knhs, nhg: e.knhg, typ: e.ktyp, offload: e.koff, regroup: e.flags&eRegroup != 0}
}

func (e *entry) setWant(typ RouteType, s *nhSet) {
	e.dtyp, e.dset = typ, s
	e.flags |= eWant
}

func (e *entry) clearWant() {
	e.dtyp, e.dset = 0, nil
	e.flags &^= eWant
}

// setHave sets the kernel half from a kernel route's state.
func (e *entry) setHave(st state) {
	e.knhs, e.knhg, e.ktyp, e.koff = st.nhs, st.nhg, st.typ, st.offload
	e.flags |= eKernel
	if st.regroup {
		e.flags |= eRegroup
	} else {
		e.flags &^= eRegroup
	}
}

func (e *entry) clearHave() {
	e.knhs, e.knhg, e.ktyp, e.koff = nil, 0, 0, 0
	e.flags &^= eKernel | eRegroup
}

// empty reports an entry with neither half: it leaves the map.
func (e *entry) empty() bool { return e.flags&(eWant|eKernel) == 0 }
