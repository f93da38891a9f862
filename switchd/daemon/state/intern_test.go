package state

import (
	"runtime"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/switchd/switchd/platform"
)

// TestInternShared: two workload veths published share the paths of
// their leaves, the updates whose values are alike, the "interfaces"
// element of their prefixes, and each its interface element between
// its state and its counters; a value only one has is its own.
func TestInternShared(t *testing.T) {
	pub := &fakePublisher{}
	tr := New(pub)
	if err := tr.Links([]platform.LinkStats{workloadVeth(1), workloadVeth(2)}); err != nil {
		t.Fatal(err)
	}
	// leaf is the update at a leaf path (relative to its subtree) of the
	// interface's subtree under prefix.
	leaf := func(prefix, rel string) *gpb.Update {
		t.Helper()
		for _, n := range pub.ns {
			if pathString(n.GetPrefix().GetElem()) != prefix {
				continue
			}
			for _, u := range n.GetUpdate() {
				if pathString(u.GetPath().GetElem()) == rel {
					return u
				}
			}
		}
		t.Fatalf("no %s/%s published", prefix, rel)
		return nil
	}
	if1, if2 := "interfaces/interface[name=swa00000000001]", "interfaces/interface[name=swa00000000002]"
	if a, b := leaf(if1, "state/oper-status"), leaf(if2, "state/oper-status"); a != b {
		t.Errorf("oper-status UP of two interfaces: updates %p and %p, want one", a, b)
	}
	if a, b := leaf(if1, "state/ifindex"), leaf(if2, "state/ifindex"); a.GetPath() != b.GetPath() || a.GetVal() == b.GetVal() {
		t.Errorf("ifindex of two interfaces: paths %p and %p (want one), values %p and %p (want two)",
			a.GetPath(), b.GetPath(), a.GetVal(), b.GetVal())
	}
	prefixes := map[string]*gpb.Path{}
	for _, n := range pub.ns {
		prefixes[pathString(n.GetPrefix().GetElem())] = n.GetPrefix()
	}
	st, ctr, st2 := prefixes[if1], prefixes[if1+"/state/counters"], prefixes[if2]
	if st == nil || ctr == nil || st2 == nil {
		t.Fatalf("published prefixes: %v", prefixes)
	}
	if st.Elem[0] != st2.Elem[0] || st.Elem[1] != ctr.Elem[1] || st.Elem[1] == st2.Elem[1] {
		t.Errorf("prefix elements: interfaces %p %p (want one), interface %p in state and %p in counters (want one), %p in the other's",
			st.Elem[0], st2.Elem[0], st.Elem[1], ctr.Elem[1], st2.Elem[1])
	}
}

// TestInternSwept: what no published leaf uses any more is collected and
// its entries swept, so interning what comes and goes (workloads, busy
// counters' small values) does not grow without bound.
func TestInternSwept(t *testing.T) {
	tr := New(discard{})
	ls := make([]platform.LinkStats, 300)
	for i := range ls {
		ls[i] = workloadVeth(i)
		ls[i].MTU = uint32(1000 + i) // a value of its own for each
	}
	if err := tr.Links(ls); err != nil {
		t.Fatal(err)
	}
	live := tr.intern.size()
	if err := tr.Links(nil); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	tr.intern.sweepAt = 0 // sweep at the next entry
	if err := tr.Links([]platform.LinkStats{workloadVeth(0)}); err != nil {
		t.Fatal(err)
	}
	if n := tr.intern.size(); n >= live/4 {
		t.Errorf("interned entries: %d with 300 interfaces, %d with them gone and one new, want under %d", live, n, live/4)
	}
}
