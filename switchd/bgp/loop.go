package bgp

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	api "github.com/osrg/gobgp/v4/api"
)

// AS_PATH loops.
//
// GoBGP 3.37 (and 4.8) checks a received path for our own AS in its
// AS_PATH (peer.go handleUpdate, hasOwnASLoop) and, if it is there, marks
// the path rejected and leaves it out of what goes to the Loc-RIB — but the
// path still replaces the peer's previous path for that prefix in the
// Adj-RIB-In. The previous path is never withdrawn from the Loc-RIB
// (osrg/gobgp#2832): it stays a best path, or an ECMP member, until the
// peer sends something else for the prefix, and the BEST watch never says
// a word. That is what left a withdrawn next hop in the kernel: two peers
// announce P; switchd, with the second peer's path as best, advertises it
// to the first; the first withdraws its own P, its best is now the path
// through switchd, and it announces that back (AS_PATH "peer 65001 ..."):
// an implicit withdrawal GoBGP dropped. Which peer's path is best decides
// it, hence "in 5 of 8 runs" and "IPv4, IPv6 or both".
//
// RFC 4271 9.1.2 excludes a looped route from the decision, and the route
// it replaces goes with it; FRR and BIRD treat a loop as a withdrawal.
// GoBGP does that for routes its import policy rejects (server.go
// propagateUpdate turns a reject into a withdrawal of the peer's path), so
// switchd turns GoBGP's own check off (allow-own-as at its maximum) and
// makes the check the first statements of the import policy: a path whose
// AS_PATH holds the local AS of the session it came in on is rejected.
// Left out: a path with our AS more than allowOwnASOff times still meets
// GoBGP's own check; the RFC 4456 ORIGINATOR_ID and CLUSTER_LIST checks
// (iBGP with route reflectors) have the same defect and no switch.

// allowOwnASOff is allow-own-as for every neighbor: GoBGP's own loop check
// fires only above it (the field is 8 bits wide in GoBGP's config).
const allowOwnASOff = 255

// loopStatements returns the import statements that reject looped paths,
// and the defined sets they use: one statement per local AS (the global
// ASN, and each neighbor's local-as), restricted to the neighbors that use
// it when not all of them do.
func loopStatements(asn uint32, neighbors map[netip.Addr]Neighbor) ([]*api.Statement, []*api.DefinedSet) {
	byAS := map[uint32][]netip.Addr{asn: nil}
	for _, addr := range sortedKeys(neighbors) {
		l := cmp.Or(neighbors[addr].LocalAS, asn)
		byAS[l] = append(byAS[l], addr)
	}
	ases := make([]uint32, 0, len(byAS))
	for l := range byAS {
		ases = append(ases, l)
	}
	slices.Sort(ases)
	var sts []*api.Statement
	var sets []*api.DefinedSet
	for _, l := range ases {
		if l == 0 {
			continue // no ASN configured (validation reports it)
		}
		name := fmt.Sprintf("loop/%d", l)
		sets = append(sets, &api.DefinedSet{
			DefinedType: api.DefinedType_DEFINED_TYPE_AS_PATH, Name: name,
			// "_L_" is GoBGP's fast match of an AS_SEQUENCE member; the
			// expression catches L in an AS_SET ("{1,L,2}").
			List: []string{fmt.Sprintf("_%d_", l), fmt.Sprintf(`\{([^}]*,)?%d[,}]`, l)},
		})
		st := &api.Statement{
			Name:       name,
			Conditions: &api.Conditions{AsPathSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: name}},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT},
		}
		if len(byAS) > 1 || l != asn {
			// Some neighbors have a local-as of their own: each AS
			// guards the sessions that use it.
			nset := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: name + "/neighbors"}
			for _, a := range byAS[l] {
				nset.List = append(nset.List, netip.PrefixFrom(a, a.BitLen()).String())
			}
			if len(nset.List) == 0 {
				continue
			}
			sets = append(sets, nset)
			st.Conditions.NeighborSet = &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: nset.Name}
		}
		sts = append(sts, st)
	}
	return sts, sets
}

// guardLoops puts the loop statements first in the import policy.
func (c *compiledPolicy) guardLoops(asn uint32, neighbors map[netip.Addr]Neighbor) {
	sts, sets := loopStatements(asn, neighbors)
	c.sets = append(sets, c.sets...)
	for _, p := range c.policies {
		if p.Name == importPolicyName {
			p.Statements = append(sts, p.Statements...)
		}
	}
}
