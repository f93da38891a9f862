package bgp

import (
	"context"
	"net/netip"
	"slices"

	api "github.com/osrg/gobgp/v4/api"
	"google.golang.org/protobuf/proto"
)

// Next-hop tracking. A path whose BGP next hop the FIB cannot reach (no
// route resolves it: the peer's loopback is gone, its link is dead) must
// neither be used nor advertised. GoBGP 4.8 (as 3.37) marks such paths only
// when zebra reports next-hop state (IsNexthopInvalid), so the speaker does it
// with policy instead: the unreachable next hops form the first statement
// of the global import policy, which rejects paths via them, and a soft
// reset re-evaluates the Adj-RIB-In (GoBGP keeps received paths before
// import policy), so the paths leave the Loc-RIB, the watch and every
// peer's Adj-RIB-Out, and come back when the next hop is reachable again.
//
// The FIB decides reachability; the daemon passes it on: it tracks the
// next hops the speaker reports (NextHops) plus those it has declared
// unreachable, whose paths the speaker no longer reports.

const nhtStatementName = "switchd-nht"

// NextHops returns the distinct next hops of the paths the speaker
// currently selects (every prefix's ECMP set), sorted.
func (s *Speaker) NextHops() []netip.Addr {
	t := s.routes
	t.mu.Lock()
	var out []netip.Addr
	for i := range t.nhs.sets {
		for _, a := range t.nhs.sets[i].val.addrs {
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	t.mu.Unlock()
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// SetUnreachableNextHops makes paths via the given next hops unusable:
// rejected at import and so not installed, not selected and not
// advertised, until a later call no longer lists them.
func (s *Speaker) SetUnreachableNextHops(ctx context.Context, addrs []netip.Addr) error {
	addrs = slices.Clone(addrs)
	slices.SortFunc(addrs, netip.Addr.Compare)
	addrs = slices.Compact(addrs)
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Equal(addrs, s.unreachable) {
		return nil
	}
	s.log.Info("bgp next-hop tracking: paths via unreachable next hops are not used", "unreachable", addrs)
	s.unreachable = addrs
	if s.running == nil || s.stopped {
		return nil // the first Apply installs it
	}
	return s.applyPolicyLocked(ctx, s.policyBase)
}

// withNHTLocked returns c with the next-hop tracking statement first in
// the import policy (c itself if no next hop is unreachable).
func (s *Speaker) withNHTLocked(c *compiledPolicy) *compiledPolicy {
	if len(s.unreachable) == 0 || c == nil {
		return c
	}
	list := make([]string, len(s.unreachable))
	for i, a := range s.unreachable {
		list[i] = netip.PrefixFrom(a, a.BitLen()).String()
	}
	st := &api.Statement{
		Name:       nhtStatementName,
		Conditions: &api.Conditions{NextHopInList: list},
		Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT},
	}
	out := &compiledPolicy{sets: c.sets}
	for _, p := range c.policies {
		if p.Name == importPolicyName {
			p = proto.Clone(p).(*api.Policy)
			p.Statements = append([]*api.Statement{st}, p.Statements...)
		}
		out.policies = append(out.policies, p)
	}
	return out
}
