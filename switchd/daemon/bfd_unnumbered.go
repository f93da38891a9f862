package daemon

import (
	"net/netip"

	"github.com/switchd/switchd/switchd/config"
)

// BFD for BGP neighbors given by interface: the config has a template
// per neighbor (config.BFDSession.Discover: its interface and timers),
// since no config names the peer's link-local address; the speaker finds
// it and its neighbor feed reports the neighbor under it (fe80::x%IF).
// setBFD runs each template as the session to that address, so the
// session starts when the peer is discovered, moves when its address
// changes and goes with the neighbor (onLinkPeers calls setBFD whenever
// the feed's link peers change); a failure holds the neighbor under the
// name the speaker has for it.

// bfdSessions are the sessions to run for in: the config's, each template
// made the session to its interface's discovered peer, and left out
// while there is none.
func (d *Daemon) bfdSessions(in *config.Intent) []config.BFDSession {
	out := make([]config.BFDSession, 0, len(in.BFD))
	for _, s := range in.BFD {
		if !s.Discover {
			out = append(out, s)
			continue
		}
		peer, ok := d.discoveredPeer(s.Interface, in)
		if !ok {
			continue
		}
		s.Peer = peer.WithZone("")
		s.Neighbors = []netip.Addr{peer}
		out = append(out, s)
	}
	return out
}

// discoveredPeer is the link peer the neighbor feed reports on interface
// ifname, leaving out neighbors the config names by address there (those
// have sessions of their own).
func (d *Daemon) discoveredPeer(ifname string, in *config.Intent) (netip.Addr, bool) {
	for _, a := range d.linkPeers() { // sorted: the lowest, if ever several
		if a.Zone() != ifname || configuredNeighbor(in, a) {
			continue
		}
		return a, true
	}
	return netip.Addr{}, false
}

// configuredNeighbor reports whether the config names neighbor a (a
// link-local address with its interface as zone) by its address.
func configuredNeighbor(in *config.Intent, a netip.Addr) bool {
	for _, nb := range in.BGP.Neighbors {
		if nb.Interface == a.Zone() && nb.Address.WithZone(a.Zone()) == a {
			return true
		}
	}
	return false
}
