package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"

	api "github.com/osrg/gobgp/v4/api"
	"google.golang.org/protobuf/proto"
)

// Routing policy: per-neighbor import and export chains of prefix-set
// policies, compiled into GoBGP's policy model.
//
// GoBGP 4.8 (as 3.37) evaluates the import policy of a peer that is not a
// route-server client only at the global RIB (server.go propagateUpdate:
// ApplyPolicy(peer.TableID()) with TableID "global"); per-peer import
// assignments exist only for route-server clients. Export policies are
// global too for such peers. So each direction compiles to one global
// policy, "switchd-import" or "switchd-export", whose statements carry a
// neighbor-set condition naming the one neighbor they belong to: the
// statements of each neighbor's chain, in order, then a last statement for
// the chain's default. Routes from or to neighbors without a chain match
// nothing and take the global default, accept. Import rejects drop the
// path before best-path selection, so a rejected prefix never reaches the
// BEST watch and Drain.
//
// A neighbor with FilterMembership gets, first in both directions, a
// statement rejecting routes with the membership marker (membership.go):
// they are neither sent to it nor taken from it, whatever its chains say.
//
// GoBGP prefix sets hold one address family; a switchd prefix set with
// both is split in two, and each statement becomes one GoBGP statement
// per family, restricted to it by an afi-safi-in condition (so an INVERT
// match of the IPv4 half never catches IPv6 routes).

const (
	importPolicyName = "switchd-import"
	exportPolicyName = "switchd-export"
	// membershipSetName is the large-community set of the membership
	// marker, which a neighbor's FilterMembership matches.
	membershipSetName = "membership-marker"
)

// validatePolicies checks prefix sets and policies as a whole.
func validatePolicies(sets []PrefixSet, policies []Policy) (map[string]PrefixSet, map[string]Policy, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	setm := make(map[string]PrefixSet, len(sets))
	for _, ps := range sets {
		if ps.Name == "" {
			bad("prefix-set: name is empty")
			continue
		}
		if _, dup := setm[ps.Name]; dup {
			bad("prefix-set %q: defined twice", ps.Name)
			continue
		}
		var norm []PrefixRange
		for _, r := range ps.Prefixes {
			p := r.Prefix
			bits := p.Addr().BitLen()
			switch {
			case !p.IsValid() || p.Addr().Zone() != "" || p.Addr().Is4In6():
				bad("prefix-set %q: prefix %v: want a plain IPv4 or IPv6 prefix", ps.Name, p)
				continue
			case p != p.Masked():
				bad("prefix-set %q: prefix %v: host bits set (did you mean %v?)", ps.Name, p, p.Masked())
				continue
			}
			if r.MinLen == 0 && r.MaxLen == 0 {
				r.MinLen, r.MaxLen = p.Bits(), p.Bits()
			}
			if r.MinLen < p.Bits() || r.MaxLen > bits || r.MinLen > r.MaxLen {
				bad("prefix-set %q: prefix %v: masklength range %d..%d must lie within %d..%d", ps.Name, p, r.MinLen, r.MaxLen, p.Bits(), bits)
				continue
			}
			norm = append(norm, r)
		}
		setm[ps.Name] = PrefixSet{Name: ps.Name, Prefixes: norm}
	}
	polm := make(map[string]Policy, len(policies))
	for _, pol := range policies {
		if pol.Name == "" {
			bad("policy: name is empty")
			continue
		}
		if _, dup := polm[pol.Name]; dup {
			bad("policy %q: defined twice", pol.Name)
			continue
		}
		for i, st := range pol.Statements {
			if st.PrefixSet != "" {
				if _, ok := setm[st.PrefixSet]; !ok {
					bad("policy %q: statement %d (%s): prefix-set %q is not defined", pol.Name, i, st.Name, st.PrefixSet)
				}
			} else if st.Invert {
				bad("policy %q: statement %d (%s): invert without a prefix-set", pol.Name, i, st.Name)
			}
			if st.Result < ResultNone || st.Result > Reject {
				bad("policy %q: statement %d (%s): unknown result %d", pol.Name, i, st.Name, int(st.Result))
			}
		}
		polm[pol.Name] = pol
	}
	return setm, polm, errors.Join(errs...)
}

// compiledPolicy is the GoBGP form of every neighbor's chains.
type compiledPolicy struct {
	sets     []*api.DefinedSet
	policies []*api.Policy // switchd-import, switchd-export
}

func (c *compiledPolicy) equal(o *compiledPolicy) bool {
	if c == nil || o == nil {
		return c == o
	}
	return slices.EqualFunc(c.sets, o.sets, func(a, b *api.DefinedSet) bool { return proto.Equal(a, b) }) &&
		slices.EqualFunc(c.policies, o.policies, func(a, b *api.Policy) bool { return proto.Equal(a, b) })
}

// empty reports whether no neighbor has a chain: nothing to install.
func (c *compiledPolicy) empty() bool {
	for _, p := range c.policies {
		if len(p.Statements) > 0 {
			return false
		}
	}
	return true
}

func prefixSetName(name string, f Family) string { return fmt.Sprintf("%s/%s", name, f) }
func neighborSetName(a netip.Addr) string        { return "neighbor/" + a.String() }

func compilePolicy(sets map[string]PrefixSet, policies map[string]Policy, neighbors map[netip.Addr]Neighbor) *compiledPolicy {
	c := &compiledPolicy{}
	// Only the sets some chain uses: the family halves present.
	usedSets := map[string]bool{}
	have := map[string]map[Family]bool{}
	filtered := false // some neighbor filters membership routes
	imp := &api.Policy{Name: importPolicyName}
	exp := &api.Policy{Name: exportPolicyName}
	for _, addr := range sortedKeys(neighbors) {
		n := neighbors[addr]
		nset := false
		for _, ch := range []struct {
			c   PolicyChain
			pol *api.Policy
			dir string
		}{{n.Import, imp, "in"}, {n.Export, exp, "out"}} {
			if len(ch.c.Policies) == 0 && ch.c.Default == ResultNone && !n.FilterMembership {
				continue
			}
			nset = true
			nbCond := &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: neighborSetName(addr)}
			if n.FilterMembership {
				// First, so no chain can accept what the knob keeps out.
				ch.pol.Statements = append(ch.pol.Statements, membershipStatement(fmt.Sprintf("%s/%s/membership", addr, ch.dir), nbCond))
				filtered = true
			}
			for _, pname := range ch.c.Policies {
				for i, st := range policies[pname].Statements {
					base := fmt.Sprintf("%s/%s/%s/%d", addr, ch.dir, pname, i)
					if st.PrefixSet == "" {
						ch.pol.Statements = append(ch.pol.Statements, statement(base, nbCond, nil, nil, st.Result))
						continue
					}
					usedSets[st.PrefixSet] = true
					for _, f := range []Family{IPv4Unicast, IPv6Unicast} {
						if have[st.PrefixSet] == nil {
							have[st.PrefixSet] = familiesOf(sets[st.PrefixSet])
						}
						var ps *api.MatchSet
						switch {
						case have[st.PrefixSet][f] && st.Invert:
							ps = &api.MatchSet{Type: api.MatchSet_TYPE_INVERT, Name: prefixSetName(st.PrefixSet, f)}
						case have[st.PrefixSet][f]:
							ps = &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: prefixSetName(st.PrefixSet, f)}
						case st.Invert:
							// Nothing of this family is in the set: every
							// route of it is "not in the set".
						default:
							continue // nothing of this family can match
						}
						ch.pol.Statements = append(ch.pol.Statements,
							statement(base+"/"+f.String(), nbCond, ps, []*api.Family{f.api()}, st.Result))
					}
				}
			}
			def := ch.c.Default
			if def == ResultNone && len(ch.c.Policies) == 0 {
				// Only the membership filter: the rest takes the global
				// default, as without a chain.
				continue
			}
			if def == ResultNone {
				def = Accept
			}
			ch.pol.Statements = append(ch.pol.Statements, statement(fmt.Sprintf("%s/%s/default", addr, ch.dir), nbCond, nil, nil, def))
		}
		if nset {
			bits := 32
			if addr.Is6() {
				bits = 128
			}
			c.sets = append(c.sets, &api.DefinedSet{
				DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: neighborSetName(addr),
				List: []string{netip.PrefixFrom(addr, bits).String()},
			})
		}
	}
	if filtered {
		c.sets = append(c.sets, &api.DefinedSet{
			DefinedType: api.DefinedType_DEFINED_TYPE_LARGE_COMMUNITY, Name: membershipSetName,
			List: []string{fmt.Sprintf("^[0-9]+:0:%d$", MembershipMarker)},
		})
	}
	names := make([]string, 0, len(usedSets))
	for n := range usedSets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, f := range []Family{IPv4Unicast, IPv6Unicast} {
			ds := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: prefixSetName(name, f)}
			for _, r := range sets[name].Prefixes {
				if familyOf(r.Prefix.Addr()) != f {
					continue
				}
				ds.Prefixes = append(ds.Prefixes, &api.Prefix{
					IpPrefix: r.Prefix.String(), MaskLengthMin: uint32(r.MinLen), MaskLengthMax: uint32(r.MaxLen),
				})
			}
			if len(ds.Prefixes) > 0 {
				c.sets = append(c.sets, ds)
			}
		}
	}
	c.policies = []*api.Policy{imp, exp}
	return c
}

func familiesOf(ps PrefixSet) map[Family]bool {
	m := map[Family]bool{}
	for _, r := range ps.Prefixes {
		m[familyOf(r.Prefix.Addr())] = true
	}
	return m
}

// membershipStatement rejects, for the neighbor nb names, every route
// carrying the membership marker ASN:0:1 of any ASN.
func membershipStatement(name string, nb *api.MatchSet) *api.Statement {
	st := statement(name, nb, nil, nil, Reject)
	st.Conditions.LargeCommunitySet = &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: membershipSetName}
	return st
}

func statement(name string, nb, ps *api.MatchSet, fams []*api.Family, r PolicyResult) *api.Statement {
	st := &api.Statement{
		Name:       name,
		Conditions: &api.Conditions{NeighborSet: nb, PrefixSet: ps, AfiSafiIn: fams},
		Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_UNSPECIFIED},
	}
	switch r {
	case Accept:
		st.Actions.RouteAction = api.RouteAction_ROUTE_ACTION_ACCEPT
	case Reject:
		st.Actions.RouteAction = api.RouteAction_ROUTE_ACTION_REJECT
	}
	return st
}

// applyPolicyLocked installs want if it differs from what runs, then
// re-evaluates what was received (soft reset in) and sent (soft reset
// out) under the new policy: no session resets.
func (s *Speaker) applyPolicyLocked(ctx context.Context, base *compiledPolicy) error {
	s.policyBase = base
	want := s.withNHTLocked(base) // nht.go
	if want.equal(s.policy) || (s.policy == nil && want.empty()) {
		return nil
	}
	req := &api.SetPoliciesRequest{DefinedSets: want.sets, Policies: want.policies}
	if err := s.srv.SetPolicies(ctx, req); err != nil {
		return fmt.Errorf("set routing policy: %w", err)
	}
	if s.policy == nil {
		// First install: assign the two policies to the global RIB once;
		// later changes replace their statements under the same names.
		for _, a := range []struct {
			dir  api.PolicyDirection
			name string
		}{{api.PolicyDirection_POLICY_DIRECTION_IMPORT, importPolicyName}, {api.PolicyDirection_POLICY_DIRECTION_EXPORT, exportPolicyName}} {
			err := s.srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
				Name: "global", Direction: a.dir, Policies: []*api.Policy{{Name: a.name}},
				DefaultAction: api.RouteAction_ROUTE_ACTION_ACCEPT,
			}})
			if err != nil {
				return fmt.Errorf("assign %s policy: %w", a.name, err)
			}
		}
	}
	s.policy = want
	if len(s.peers) == 0 {
		return nil
	}
	if err := s.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: "all", Soft: true, Direction: api.ResetPeerRequest_DIRECTION_BOTH}); err != nil {
		return fmt.Errorf("re-evaluate routes under the new policy (soft reset): %w", err)
	}
	return nil
}
