package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/switchd/bgp"
)

var rpPath = path{{name: "routing-policy"}}

// routingPolicy translates /routing-policy: prefix sets and policy
// definitions whose statements match a prefix set (ANY or INVERT) and
// accept or reject. Anything else in a statement is refused by name, so a
// policy never silently does less than it says.
func (t *translator) routingPolicy(rp *oc.RoutingPolicy, c *bgp.Config) {
	if rp == nil {
		return
	}
	if ds := rp.DefinedSets; ds != nil {
		if len(ds.NeighborSet) > 0 {
			t.add(rpPath.child("defined-sets").child("neighbor-sets"), "neighbor sets are not supported (apply policies per neighbor or peer group)")
		}
		if len(ds.TagSet) > 0 {
			t.add(rpPath.child("defined-sets").child("tag-sets"), "tag sets are not supported")
		}
		if ds.BgpDefinedSets != nil {
			t.add(rpPath.child("defined-sets").child("bgp-defined-sets"), "BGP defined sets (communities, AS paths) are not supported")
		}
		for _, name := range sortedKeys(ds.PrefixSet) {
			t.prefixSet(ds.PrefixSet[name], name, c)
		}
	}
	for _, name := range sortedKeys(rp.PolicyDefinition) {
		pd := rp.PolicyDefinition[name]
		pp := rpPath.child("policy-definitions").entry("policy-definition", []kv{{"name", name}})
		pol := bgp.Policy{Name: name}
		if pd.Statement != nil {
			for _, st := range pd.Statement.Values() {
				if s, ok := t.statement(st, pp.child("statements").entry("statement", []kv{{"name", st.GetName()}}), c); ok {
					pol.Statements = append(pol.Statements, s)
				}
			}
		}
		c.Policies = append(c.Policies, pol)
	}
}

func (t *translator) prefixSet(ps *oc.RoutingPolicy_DefinedSets_PrefixSet, name string, c *bgp.Config) {
	p := rpPath.child("defined-sets").child("prefix-sets").entry("prefix-set", []kv{{"name", name}})
	set := bgp.PrefixSet{Name: name}
	keys := make([]oc.RoutingPolicy_DefinedSets_PrefixSet_Prefix_Key, 0, len(ps.Prefix))
	for k := range ps.Prefix {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].IpPrefix != keys[j].IpPrefix {
			return keys[i].IpPrefix < keys[j].IpPrefix
		}
		return keys[i].MasklengthRange < keys[j].MasklengthRange
	})
	for _, k := range keys {
		ep := p.child("prefixes").entry("prefix", []kv{{"ip-prefix", k.IpPrefix}, {"masklength-range", k.MasklengthRange}})
		pfx, ok := t.prefix(k.IpPrefix, ep.child("config").child("ip-prefix"))
		if !ok {
			continue
		}
		switch ps.Mode {
		case oc.PrefixSet_Mode_IPV4:
			if !pfx.Addr().Is4() {
				t.add(ep.child("config").child("ip-prefix"), fmt.Sprintf("%v in a prefix set of mode IPV4", pfx))
				continue
			}
		case oc.PrefixSet_Mode_IPV6:
			if !pfx.Addr().Is6() {
				t.add(ep.child("config").child("ip-prefix"), fmt.Sprintf("%v in a prefix set of mode IPV6", pfx))
				continue
			}
		}
		r := bgp.PrefixRange{Prefix: pfx, MinLen: pfx.Bits(), MaxLen: pfx.Bits()}
		if k.MasklengthRange != "exact" {
			lo, hi, found := strings.Cut(k.MasklengthRange, "..")
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if !found || err1 != nil || err2 != nil {
				t.add(ep.child("config").child("masklength-range"), fmt.Sprintf("masklength-range %q: want \"exact\" or \"min..max\"", k.MasklengthRange))
				continue
			}
			if a < pfx.Bits() || b > pfx.Addr().BitLen() || a > b {
				t.add(ep.child("config").child("masklength-range"), fmt.Sprintf("masklength-range %s must lie within %d..%d for %v", k.MasklengthRange, pfx.Bits(), pfx.Addr().BitLen(), pfx))
				continue
			}
			r.MinLen, r.MaxLen = a, b
		}
		set.Prefixes = append(set.Prefixes, r)
	}
	c.PrefixSets = append(c.PrefixSets, set)
}

func (t *translator) statement(st *oc.RoutingPolicy_PolicyDefinition_Statement, sp path, c *bgp.Config) (bgp.Statement, bool) {
	before := len(t.list)
	s := bgp.Statement{Name: st.GetName()}
	if cd := st.Conditions; cd != nil {
		cp := sp.child("conditions")
		switch {
		case cd.BgpConditions != nil:
			t.add(cp.child("bgp-conditions"), "BGP conditions are not supported (match-prefix-set is)")
		case cd.MatchNeighborSet != nil:
			t.add(cp.child("match-neighbor-set"), "match-neighbor-set is not supported: apply the policy to the neighbors instead")
		case cd.MatchTagSet != nil, cd.MatchInterface != nil, cd.CallPolicy != nil,
			cd.InstallProtocolEq != oc.PolicyTypes_INSTALL_PROTOCOL_TYPE_UNSET:
			t.add(cp, "only match-prefix-set conditions are supported")
		}
		if m := cd.MatchPrefixSet; m != nil {
			mp := cp.child("match-prefix-set").child("config")
			s.PrefixSet = m.GetPrefixSet()
			if s.PrefixSet == "" {
				t.add(mp.child("prefix-set"), "match-prefix-set names no prefix set")
			} else if !hasPrefixSet(c, s.PrefixSet) {
				t.add(mp.child("prefix-set"), fmt.Sprintf("prefix set %q is not defined", s.PrefixSet))
			}
			s.Invert = m.MatchSetOptions == oc.PolicyTypes_MatchSetOptionsRestrictedType_INVERT
		}
	}
	if a := st.Actions; a != nil {
		if a.BgpActions != nil || a.SetTag != nil {
			t.add(sp.child("actions"), "only policy-result actions are supported")
		}
		switch a.PolicyResult {
		case oc.RoutingPolicy_PolicyResultType_ACCEPT_ROUTE:
			s.Result = bgp.Accept
		case oc.RoutingPolicy_PolicyResultType_REJECT_ROUTE:
			s.Result = bgp.Reject
		}
	}
	return s, len(t.list) == before
}

func hasPrefixSet(c *bgp.Config, name string) bool {
	for _, ps := range c.PrefixSets {
		if ps.Name == name {
			return true
		}
	}
	return false
}

func hasPolicy(c *bgp.Config, name string) bool {
	for _, p := range c.Policies {
		if p.Name == name {
			return true
		}
	}
	return false
}

// applyPolicy fills a neighbor's import and export chains from its own
// apply-policy, leaf by leaf falling back to its peer group's.
//
// A route no policy decides is rejected unless default-import-policy or
// default-export-policy says ACCEPT_ROUTE: REJECT_ROUTE is OpenConfig's
// default for both, and RFC 8212 asks the same of eBGP, so that a speaker
// configured without policies is not a transit between its peers.
func (t *translator) applyPolicy(n *oc.NetworkInstance_Protocol_Bgp_Neighbor, pg *oc.NetworkInstance_Protocol_Bgp_PeerGroup, np path, c *bgp.Config, nb *bgp.Neighbor) {
	var na oc.NetworkInstance_Protocol_Bgp_Neighbor_ApplyPolicy
	var ga oc.NetworkInstance_Protocol_Bgp_PeerGroup_ApplyPolicy
	if n.ApplyPolicy != nil {
		na = *n.ApplyPolicy
	}
	if pg != nil && pg.ApplyPolicy != nil {
		ga = *pg.ApplyPolicy
	}
	ap := np.child("apply-policy").child("config")
	chain := func(nl, gl []string, nd, gd oc.E_RoutingPolicy_DefaultPolicyType, dir string) bgp.PolicyChain {
		var ch bgp.PolicyChain
		ch.Policies = nl
		if nl == nil {
			ch.Policies = gl
		}
		for _, name := range ch.Policies {
			if !hasPolicy(c, name) {
				t.add(ap.child(dir+"-policy"), fmt.Sprintf("policy %q is not defined under /routing-policy", name))
			}
		}
		d := nd
		if d == oc.RoutingPolicy_DefaultPolicyType_UNSET {
			d = gd
		}
		ch.Default = bgp.Reject
		if d == oc.RoutingPolicy_DefaultPolicyType_ACCEPT_ROUTE {
			ch.Default = bgp.Accept
		}
		return ch
	}
	nb.Import = chain(na.ImportPolicy, ga.ImportPolicy, na.DefaultImportPolicy, ga.DefaultImportPolicy, "import")
	nb.Export = chain(na.ExportPolicy, ga.ExportPolicy, na.DefaultExportPolicy, ga.DefaultExportPolicy, "export")
}

// gracefulRestart is the neighbor's override of the global graceful
// restart, leaf by leaf from the neighbor or else its peer group; nil when
// neither says anything.
func gracefulRestart(global bgp.GracefulRestart, n *oc.NetworkInstance_Protocol_Bgp_Neighbor_GracefulRestart, g *oc.NetworkInstance_Protocol_Bgp_PeerGroup_GracefulRestart) *bgp.GracefulRestart {
	if n == nil && g == nil {
		return nil
	}
	var nv oc.NetworkInstance_Protocol_Bgp_Neighbor_GracefulRestart
	var gv oc.NetworkInstance_Protocol_Bgp_PeerGroup_GracefulRestart
	if n != nil {
		nv = *n
	}
	if g != nil {
		gv = *g
	}
	out := global
	pickB := func(a, b *bool, d *bool) {
		if a != nil {
			*d = *a
		} else if b != nil {
			*d = *b
		}
	}
	pickT := func(a, b *uint16, d *time.Duration) {
		if a != nil {
			*d = seconds(*a)
		} else if b != nil {
			*d = seconds(*b)
		}
	}
	pickB(nv.Enabled, gv.Enabled, &out.Enabled)
	pickB(nv.HelperOnly, gv.HelperOnly, &out.HelperOnly)
	pickT(nv.RestartTime, gv.RestartTime, &out.RestartTime)
	pickT(nv.StaleRoutesTime, gv.StaleRoutesTime, &out.StaleRoutesTime)
	return &out
}

// globalGR translates bgp/global/graceful-restart.
func (t *translator) globalGR(g *oc.NetworkInstance_Protocol_Bgp_Global_GracefulRestart, gp path, c *bgp.Config) {
	if g == nil {
		return
	}
	// The speaker's validation bounds the timers (bgp.FieldRestartTime).
	c.GracefulRestart = bgp.GracefulRestart{
		Enabled:         g.GetEnabled(),
		HelperOnly:      g.GetHelperOnly(),
		RestartTime:     seconds(g.GetRestartTime()),
		StaleRoutesTime: seconds(g.GetStaleRoutesTime()),
	}
}
