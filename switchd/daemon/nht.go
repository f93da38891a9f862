package daemon

import (
	"context"
	"slices"
)

// trackNextHops is next-hop tracking between the speaker and the FIB: the
// FIB keeps the speaker's next hops under resolution (and those declared
// unreachable, whose paths the speaker no longer reports), and the
// speaker stops using and advertising paths via the ones that do not
// resolve. Called after every Apply, when the FIB has re-resolved what
// changed; the speaker's policy is touched only when the set changes.
func (d *Daemon) trackNextHops(ctx context.Context) {
	d.table.TrackNextHops(append(d.speaker.NextHops(), d.unreachable...))
	un := d.table.UnreachableNextHops()
	if slices.Equal(un, d.unreachable) {
		return
	}
	if err := d.speaker.SetUnreachableNextHops(ctx, un); err != nil {
		d.log.Warn("bgp next-hop tracking", "unreachable", un, "err", err)
		return // tried again after the next Apply
	}
	d.unreachable = un
}
