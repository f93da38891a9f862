package daemon

import (
	"context"
	"net/netip"
	"slices"
)

// trackNextHops is next-hop tracking between the speaker, the FIB and the
// links. A next hop is unreachable when the FIB cannot resolve it (a
// recursive next hop no route covers) or when it lies on a link without
// carrier (a third-party next hop on a dead link: the session it came
// over may well be alive on another link). The FIB keeps the speaker's
// next hops under resolution, and those declared unreachable, whose paths
// the speaker no longer reports; the speaker stops using and advertising
// paths via the unreachable ones. Called after every Apply, when the FIB
// has re-resolved what changed; the speaker's policy is touched only when
// the set changes.
func (d *Daemon) trackNextHops(ctx context.Context) {
	tracked := append(d.speaker.NextHops(), d.unreachable...)
	d.table.TrackNextHops(tracked)
	un := d.table.UnreachableNextHops()
	if d.links != nil {
		for _, l := range d.links.NoCarrier() {
			for _, nh := range tracked {
				if onLink(l.Prefixes, nh) {
					un = append(un, nh)
				}
			}
		}
	}
	slices.SortFunc(un, netip.Addr.Compare)
	un = slices.Compact(un)
	if slices.Equal(un, d.unreachable) {
		return
	}
	if err := d.speaker.SetUnreachableNextHops(ctx, un); err != nil {
		d.log.Warn("bgp next-hop tracking", "unreachable", un, "err", err)
		return // tried again after the next Apply
	}
	d.unreachable = un
}
