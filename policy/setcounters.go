package policy

import (
	"fmt"
	"maps"
	"slices"
)

// elementCounters reads the counters of the elements of the desired sets
// that have them (Set.Counter), reported as RuleCounters under the set's
// name (Chain) and the element's ID; a set the kernel does not hold yet
// has none. An element is reported only when the
// kernel's comment names it as the desired element does, so a counter is
// never credited to an element it was not counting for.
func (t *Table) elementCounters() ([]RuleCounter, error) {
	tbl := t.nftTable()
	var out []RuleCounter
	for _, name := range slices.Sorted(maps.Keys(t.sets)) {
		st := t.sets[name]
		if !st.wanted || !st.def.Counter || st.have == nil {
			continue
		}
		kes, err := t.conn.GetSetElements(st.def.nftSet(tbl))
		if err != nil {
			t.closeConn()
			return nil, fmt.Errorf("read counters of set %s: %w", name, err)
		}
		// An interval's start carries its comment and counter: the
		// desired elements by start key.
		ids := make(map[string][]string, len(st.want))
		for _, w := range st.want {
			ids[string(w.Key)] = append(ids[string(w.Key)], w.ID)
		}
		for _, ke := range kes {
			if ke.IntervalEnd || ke.Counter == nil || ke.Comment == "" || !slices.Contains(ids[string(ke.Key)], ke.Comment) {
				continue
			}
			out = append(out, RuleCounter{Chain: name, ID: ke.Comment, Packets: ke.Counter.Packets, Bytes: ke.Counter.Bytes})
		}
	}
	return out, nil
}
