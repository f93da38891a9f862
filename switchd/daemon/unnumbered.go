package daemon

import (
	"context"
	"net/netip"
	"slices"
)

// The peers of unnumbered BGP neighbors given by interface are discovered
// by the speaker: the config does not name them, so the failsafe rules
// that keep BGP open to the neighbors (policy's bgp-peers sets) take the
// link-local addresses the neighbor feed reports on top of the config's.

// linkPeers are the neighbors the feed reports by link-local address
// (with their interface as zone), sorted.
func (d *Daemon) linkPeers() []netip.Addr {
	var out []netip.Addr
	for a := range d.neighbors {
		if a.Zone() != "" {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// withLinkPeers adds the link peers to the failsafe neighbors, sorted and
// without zone (the rules match addresses), each once.
func withLinkPeers(nbs, peers []netip.Addr) []netip.Addr {
	if len(peers) == 0 {
		return nbs
	}
	out := slices.Clone(nbs)
	for _, a := range peers {
		out = append(out, a.WithZone(""))
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// onLinkPeers gives the failsafe rules and the BFD sessions of interface
// neighbors (bfd_unnumbered.go) the link peers when the neighbor feed
// changed them (setPolicy and setBFD change nothing else for the same
// intent), and reports whether it did.
func (d *Daemon) onLinkPeers(ctx context.Context, before []netip.Addr) bool {
	if d.intent == nil || slices.Equal(before, d.linkPeers()) {
		return false
	}
	d.setPolicy(d.intent)
	d.setBFD(ctx, d.intent)
	return true
}
