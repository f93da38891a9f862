package policy

import (
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
)

// Network sets (Intent.NetworkSets) are prefixes, not addresses, so a peer
// selector has a second pair of sets beside sel4-/sel6-: seln4-/seln6-,
// interval sets holding the merged prefixes of the network sets it
// selects. Each peer-selector rule is compiled twice, once per set kind
// (ruleCompiler.compile), so both pairs exist, empty or not, for as long
// as the selector is used: a network set change is element changes only.
//
// The selector sets stay hash sets because an interval set refuses
// overlapping and touching ranges: consecutive endpoint addresses would
// have to be merged, and one endpoint change could rewrite its
// neighbours' elements.

// selectorNetSetName is the interval set of the network-set prefixes of
// family f that selector s matches.
func selectorNetSetName(f family, s string) string {
	return fmt.Sprintf("seln%d-%s", f, shortHash(s))
}

// netSetDef is the definition of selector s's network-set set of family f.
func netSetDef(f family, s string) Set {
	return Set{Name: selectorNetSetName(f, s), KeyType: f.keyType(), Interval: true}
}

// setNetSets makes the network-set sets of every used selector hold the
// prefixes of the network sets it matches, touching only sets whose
// elements change. Records of sets no longer used (deleted with their
// selector) are dropped.
func (w *workload) setNetSets() error {
	want := map[string][]Element{}
	for s, ss := range w.sels {
		var all []netip.Prefix
		for _, n := range w.intent.NetworkSets {
			if ss.sel.Matches(n.Labels) {
				all = append(all, n.Prefixes...)
			}
		}
		for _, f := range []family{fam4, fam6} {
			var es []Element
			for _, r := range cidrRanges(f, all, nil) {
				es = append(es, Element{Key: addrKey(r.first), KeyEnd: addrKey(r.last)})
			}
			want[selectorNetSetName(f, s)] = es
		}
	}
	for name := range w.netElems {
		if _, ok := want[name]; !ok {
			delete(w.netElems, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		es, old := want[name], w.netElems[name]
		if reflect.DeepEqual(es, old) {
			continue
		}
		// The old ranges leave and the new ones come in one transaction;
		// the Table sends only the difference.
		if err := w.tb.DeleteElements(name, old...); err != nil {
			return fmt.Errorf("network sets: %w", err)
		}
		if err := w.tb.AddElements(name, es...); err != nil {
			return fmt.Errorf("network sets: %w", err)
		}
		if len(es) == 0 {
			delete(w.netElems, name)
		} else {
			w.netElems[name] = es
		}
	}
	return nil
}

// onlyNetSetsDiffer reports whether a and b differ in their network sets
// alone: then only the elements of the network-set sets change.
func onlyNetSetsDiffer(a, b Intent) bool {
	a.NetworkSets, b.NetworkSets = nil, nil
	return reflect.DeepEqual(a, b)
}

// netSetSets defines selector s's network-set sets (both families).
func (w *workload) netSetSets(s string) error {
	for _, f := range []family{fam4, fam6} {
		if err := w.tb.SetSet(netSetDef(f, s)); err != nil {
			return fmt.Errorf("workload policy: %w", err)
		}
	}
	return nil
}
