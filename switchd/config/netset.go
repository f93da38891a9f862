package config

import (
	"fmt"
	"slices"

	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/policy"
)

// networkSets translates /switchd/workload-policy/network-sets into
// policy.NetworkSets: labelled prefixes that peer selectors match beside
// the endpoints. Labels are checked as endpoint labels are (a label no
// selector could match is refused); a set without prefixes is refused too,
// since it would silently match nothing.
func (t *translator) networkSets(wp *oc.Switchd_WorkloadPolicy) []policy.NetworkSet {
	var out []policy.NetworkSet
	for _, name := range sortedKeys(wp.NetworkSet) {
		ns := wp.NetworkSet[name]
		before := len(t.list)
		p := wpPath.child("network-sets").entry("network-set", []kv{{"name", name}})
		set := policy.NetworkSet{Name: name}
		lp := p.child("config").child("prefix")
		for _, s := range ns.Prefix {
			if pfx, ok := t.prefix(s, lp); ok && !slices.Contains(set.Prefixes, pfx) {
				set.Prefixes = append(set.Prefixes, pfx)
			}
		}
		if len(ns.Prefix) == 0 {
			t.add(lp, fmt.Sprintf("network set %s has no prefix: it would match nothing", name))
		}
		slices.SortFunc(set.Prefixes, comparePrefix)
		for _, k := range sortedKeys(ns.Label) {
			v := ns.Label[k].GetValue()
			if err := policy.CheckLabel(k, v); err != nil {
				t.add(p.child("labels").entry("label", []kv{{"key", k}}).child("config"), err.Error())
				continue
			}
			if set.Labels == nil {
				set.Labels = map[string]string{}
			}
			set.Labels[k] = v
		}
		if len(t.list) == before {
			out = append(out, set)
		}
	}
	return out
}
