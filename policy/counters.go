package policy

import (
	"fmt"
	"maps"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// RuleCounter is what the counter of one of our rules has seen.
type RuleCounter struct {
	Chain   string
	ID      string // ChainRule.ID
	Packets uint64
	Bytes   uint64
}

// Counters reads the counters of the desired rules that have one (an
// expr.Counter among their expressions), matched to the kernel's rules by
// identity, so a rule's counter survives edits elsewhere in its chain and
// switchd restarts; then the counters of the elements of sets with
// Set.Counter, by element ID (elementCounters). It reads the kernel (rules,
// and the elements of those sets only) and is called from the goroutine
// that owns the Table.
func (t *Table) Counters() ([]RuleCounter, error) {
	if err := t.dial(); err != nil {
		return nil, fmt.Errorf("read counters of table %s: %w", t.name, err)
	}
	tbl := t.nftTable()
	var out []RuleCounter
	for _, name := range slices.Sorted(maps.Keys(t.chains)) {
		c := t.chains[name]
		byID := map[string]*ChainRule{}
		for i := range c.Rules {
			id, _ := c.Rules[i].identity()
			byID[id] = &c.Rules[i]
		}
		rs, err := t.conn.GetRules(tbl, &nftables.Chain{Name: name, Table: tbl})
		if err != nil {
			t.closeConn()
			return nil, fmt.Errorf("read counters of chain %s: %w", name, err)
		}
		for _, r := range rs {
			want := byID[ruleIdentity(r.UserData)]
			if want == nil {
				continue
			}
			for _, e := range r.Exprs {
				if ctr, ok := e.(*expr.Counter); ok {
					out = append(out, RuleCounter{Chain: name, ID: want.ID, Packets: ctr.Packets, Bytes: ctr.Bytes})
					break
				}
			}
		}
	}
	ecs, err := t.elementCounters()
	return append(out, ecs...), err
}
