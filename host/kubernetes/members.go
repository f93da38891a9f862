package kubernetes

import (
	"net/netip"
	"slices"

	"github.com/switchd/switchd/policy"
)

// PeerSelectors are the distinct peer selectors of policies, by their
// canonical form: the selectors whose sets need members.
func PeerSelectors(policies []policy.Policy) map[string]policy.Selector {
	out := map[string]policy.Selector{}
	for _, p := range policies {
		for _, r := range slices.Concat(p.Ingress, p.Egress) {
			if r.Peer.Selector != nil {
				out[r.Peer.Selector.String()] = *r.Peer.Selector
			}
		}
	}
	return out
}

// Members are, for each selector, the addresses of the pods it matches
// that are not on this node (local reports whether a pod is: its
// spec.nodeName is this node's, or it is a local endpoint; the engine has
// local endpoints from the endpoints themselves, and a pod of this node
// that is not one yet is no remote member), sorted: what the
// daemon gives the engine as a second source of members
// (policy.Engine.SetMembers), so pods of other nodes are selected with
// no BGP membership routes. Selectors without members are left out.
func Members(sels map[string]policy.Selector, pods []Pod, local func(Pod) bool) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	for _, p := range pods {
		if len(p.Addrs) == 0 || local(p) {
			continue
		}
		for name, s := range sels {
			if s.Matches(p.Labels) {
				out[name] = append(out[name], p.Addrs...)
			}
		}
	}
	for name, as := range out {
		slices.SortFunc(as, netip.Addr.Compare)
		out[name] = slices.Compact(as)
	}
	return out
}
