package state

import (
	"weak"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// interner hands out one *gpb.Path per leaf path relative to its
// subtree, one *gpb.TypedValue per scalar value, one *gpb.Update per
// such path and value, and one *gpb.PathElem per element of a subtree's
// path, so that many like subtrees (a host's workload veths: the same 27
// leaves, mostly the same values) share them, in the Tree and in the
// gNMI cache that keeps the published notifications. All are read-only
// once published: the cache and its readers never change a stored path,
// value or update.
//
// Entries are weak: a path or value no published leaf uses any more is
// collected, and its entry swept once the table has doubled since the
// last sweep. Its methods should only be called from one goroutine (the
// Tree's).
type interner struct {
	paths   map[string]weak.Pointer[gpb.Path]
	elems   map[string]weak.Pointer[gpb.PathElem]
	vals    map[scalar]weak.Pointer[gpb.TypedValue]
	updates map[pathValue]weak.Pointer[gpb.Update]
	// sweepAt is the table size (paths and vals) at which dead entries
	// are swept next.
	sweepAt int
}

// pathValue is an update's interned path and value, weak, so that an
// update's entry keeps neither alive.
type pathValue struct {
	p weak.Pointer[gpb.Path]
	v weak.Pointer[gpb.TypedValue]
}

// scalar is a TypedValue's value, for the scalar kinds.
type scalar struct {
	kind uint8
	n    uint64
	s    string
}

const (
	kindUint = iota + 1
	kindInt
	kindBool
	kindString
)

// maxShared bounds the numbers interned: indexes, MTUs, prefix lengths
// and an idle interface's counters repeat; a busy one's counters are new
// at every sample, and an entry for each would cost more than it saves.
const maxShared = 1 << 16

// minSweep is the table size below which nothing is swept.
const minSweep = 256

func newInterner() *interner {
	return &interner{paths: map[string]weak.Pointer[gpb.Path]{}, elems: map[string]weak.Pointer[gpb.PathElem]{},
		vals: map[scalar]weak.Pointer[gpb.TypedValue]{}, updates: map[pathValue]weak.Pointer[gpb.Update]{},
		sweepAt: minSweep}
}

// size is the number of entries, live or not.
func (in *interner) size() int {
	return len(in.paths) + len(in.elems) + len(in.vals) + len(in.updates)
}

// prefix replaces the elements of a subtree's path by the ones
// interned for their text: the interface element of an interface's
// subtrees (state, counters, hardware) is one, and "interfaces" one for
// all.
func (in *interner) prefix(elems []*gpb.PathElem) {
	for i, e := range elems {
		k := pathString(elems[i : i+1])
		if w := in.elems[k].Value(); w != nil {
			elems[i] = w
			continue
		}
		in.elems[k] = weak.Make(e)
		in.grown()
	}
}

// update returns the update interned for u's path and value, u itself
// the first time. u's path and value must be interned already.
func (in *interner) update(u *gpb.Update) *gpb.Update {
	k := pathValue{weak.Make(u.GetPath()), weak.Make(u.GetVal())}
	if w := in.updates[k].Value(); w != nil {
		return w
	}
	in.updates[k] = weak.Make(u)
	in.grown()
	return u
}

// path returns the path interned for k (the text of p), p itself the
// first time.
func (in *interner) path(k string, p *gpb.Path) *gpb.Path {
	if q := in.paths[k].Value(); q != nil {
		return q
	}
	in.paths[k] = weak.Make(p)
	in.grown()
	return p
}

// value returns the value interned for v's scalar, v itself the first
// time; shared says whether it is interned (not when v is not a scalar
// or too large a number).
func (in *interner) value(v *gpb.TypedValue) (_ *gpb.TypedValue, shared bool) {
	var k scalar
	switch x := v.GetValue().(type) {
	case *gpb.TypedValue_UintVal:
		if x.UintVal > maxShared {
			return v, false
		}
		k = scalar{kind: kindUint, n: x.UintVal}
	case *gpb.TypedValue_IntVal:
		if x.IntVal > maxShared || x.IntVal < -maxShared {
			return v, false
		}
		k = scalar{kind: kindInt, n: uint64(x.IntVal)}
	case *gpb.TypedValue_BoolVal:
		k = scalar{kind: kindBool}
		if x.BoolVal {
			k.n = 1
		}
	case *gpb.TypedValue_StringVal:
		k = scalar{kind: kindString, s: x.StringVal}
	default:
		return v, false
	}
	if w := in.vals[k].Value(); w != nil {
		return w, true
	}
	in.vals[k] = weak.Make(v)
	in.grown()
	return v, true
}

// grown sweeps the entries whose path or value was collected, once the
// tables have doubled since the last sweep.
func (in *interner) grown() {
	if in.size() < in.sweepAt {
		return
	}
	sweep(in.paths)
	sweep(in.elems)
	sweep(in.vals)
	sweep(in.updates)
	in.sweepAt = max(minSweep, 2*in.size())
}

// sweep deletes the entries of m whose value was collected.
func sweep[K comparable, V any](m map[K]weak.Pointer[V]) {
	for k, w := range m {
		if w.Value() == nil {
			delete(m, k)
		}
	}
}
