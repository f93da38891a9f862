package daemon

import (
	"net/netip"

	"github.com/switchd/switchd/fib"
)

// A static route whose every gateway's BFD session failed is taken out of
// the FIB's desired set, and put back when one of them is Up again.
// fib's NextHopDown leaves a route whose only next hop is down alone,
// because for BGP the withdrawals follow and a covering route then takes
// the traffic; nothing follows for a static, so without this the route
// would keep sending into the broken path and hide any less specific
// route or other source that could carry the traffic.

// bfdDownGateways are the gateways of failed sessions that protect static
// next hops (nil if none).
func (d *Daemon) bfdDownGateways() map[netip.Addr]bool {
	var out map[netip.Addr]bool
	for k := range d.bfdl.failed {
		if s, ok := d.bfdl.want[k]; ok && s.Static {
			if out == nil {
				out = make(map[netip.Addr]bool)
			}
			out[s.Peer] = true
		}
	}
	return out
}

// allBFDDown reports whether every next hop of r is a gateway in down: a
// route with a next hop that BFD does not watch (or none: a blackhole)
// always stays.
func allBFDDown(r fib.Route, down map[netip.Addr]bool) bool {
	if len(down) == 0 || len(r.NextHops) == 0 {
		return false
	}
	for _, nh := range r.NextHops {
		if !down[nh.Gateway.WithZone("")] {
			return false
		}
	}
	return true
}

// putStatic makes static route r desired, or withholds it while every
// gateway of it is BFD-down. same tells that the FIB already has r unless
// withheld (it is unchanged in the config).
func (d *Daemon) putStatic(r fib.Route, same bool, down map[netip.Addr]bool) error {
	k := r.Key
	if allBFDDown(r, down) {
		if !d.bfdl.withheld[k] {
			d.log.Warn("static route withheld: BFD is down to every gateway", "route", k)
			d.table.DeleteRoute(k)
			if d.bfdl.withheld == nil {
				d.bfdl.withheld = make(map[fib.RouteKey]bool)
			}
			d.bfdl.withheld[k] = true
		}
		return nil
	}
	if same && !d.bfdl.withheld[k] {
		return nil
	}
	if d.bfdl.withheld[k] {
		d.log.Info("static route back: BFD is up to a gateway", "route", k)
		delete(d.bfdl.withheld, k)
	}
	return d.table.SetRoute(r)
}

// dropStatic takes static route k, gone from the config, out of the FIB.
func (d *Daemon) dropStatic(k fib.RouteKey) {
	if !d.bfdl.withheld[k] {
		d.table.DeleteRoute(k)
	}
	delete(d.bfdl.withheld, k)
}

// bfdStatics withholds or restores the config's static routes after their
// gateways' BFD sessions changed.
func (d *Daemon) bfdStatics() {
	down := d.bfdDownGateways()
	if len(down) == 0 && len(d.bfdl.withheld) == 0 {
		return
	}
	for _, r := range d.statics {
		if err := d.putStatic(r, true, down); err != nil {
			d.log.Warn("static route not restored", "route", r.Key, "err", err)
		}
	}
}
