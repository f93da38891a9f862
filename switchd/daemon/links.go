package daemon

import (
	"context"
	"net/netip"

	"github.com/switchd/switchd/switchd/bgp"
)

// Fast external failover. A BGP session to a directly connected neighbor
// cannot outlive the carrier of the link it runs over, but BGP alone
// notices only when the hold timer expires (seconds to minutes), and
// GoBGP then treats the expiry as a graceful restart and keeps the paths
// for the restart time: a fabric kept advertising and using a dead link
// for ~37 s. So the daemon watches carrier (platform.LinkMonitor) and
// ends every session whose neighbor address lies in a connected prefix
// of a link that lost it, withdrawing its paths at once (as FRR's
// fast-external-failover does, for iBGP over the link too: its address
// is unreachable just the same). The fib stops using the neighbor as a
// next hop first (the speaker's peer event), then the withdrawals follow
// and the neighbor's routes are no longer advertised.

// takeCarrierEvents drops the sessions of neighbors on links that lost
// carrier. A failed subscription is replaced, so failover keeps working.
func (d *Daemon) takeCarrierEvents(ctx context.Context) {
	evs, err := d.links.Drain()
	if err != nil {
		d.log.Error("link monitor failed; subscribing again", "err", err)
		d.links.Close()
		if d.links, err = d.newLinks(); err != nil {
			d.log.Error("link monitor unavailable: sessions over dead links end only by their hold timer", "err", err)
			d.links = nil
		}
	}
	if len(evs) > 0 {
		d.tellUnreachableNeighbors()
	}
	for _, ev := range evs {
		if ev.Carrier {
			continue
		}
		// The kernel removes nexthop objects, and routes over them, of a
		// link that goes down or loses carrier without telling anyone:
		// the FIB must look again.
		d.table.QueueResync()
		if d.intent == nil {
			continue
		}
		for _, nb := range neighborsOn(d.intent.BGP.Neighbors, ev.Name, ev.Prefixes) {
			if err := d.speaker.DropNeighbor(ctx, nb, "carrier lost on "+ev.Name); err != nil {
				d.log.Warn("fast external failover", "neighbor", nb, "interface", ev.Name, "err", err)
			}
		}
	}
}

// tellUnreachableNeighbors gives the speaker the neighbors on links
// without carrier now: its initial update (Synced) does not wait for them,
// so a router restarting with a link down does not keep its peers on
// stale routes through that link until the sync timeout.
func (d *Daemon) tellUnreachableNeighbors() {
	if d.links == nil || d.intent == nil {
		return
	}
	var nbs []netip.Addr
	for _, l := range d.links.NoCarrier() {
		nbs = append(nbs, neighborsOn(d.intent.BGP.Neighbors, l.Name, l.Prefixes)...)
	}
	d.speaker.SetUnreachableNeighbors(nbs)
}

// neighborsOn lists the enabled neighbors on link name with the given
// connected prefixes; an unnumbered one (its interface is the link) by its
// address with the link as zone, as the speaker knows it.
func neighborsOn(ns []bgp.Neighbor, name string, prefixes []netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for _, n := range ns {
		switch {
		case n.Enabled && n.Interface != "" && n.Interface == name:
			out = append(out, n.Address.WithZone(name))
		case n.Enabled && onLink(prefixes, n.Address):
			out = append(out, n.Address)
		}
	}
	return out
}

// onLink reports whether a lies in one of prefixes (a link's connected
// prefixes) and is not the link's own address.
func onLink(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) && p.Addr() != a {
			return true
		}
	}
	return false
}

// linkKick is the link monitor's signal; nil (never ready) without one.
func (d *Daemon) linkKick() <-chan struct{} {
	if d.links == nil {
		return nil
	}
	return d.links.Kick()
}
