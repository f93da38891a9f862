package fib

// OffloadCounts counts switchd's routes in the kernel by the hardware
// flags a switchdev driver set on them (a route may count in more than
// one: offloaded and trapping).
type OffloadCounts struct {
	Offloaded, Trapped, Failed int
}

// move counts a route whose flags went from old to new.
func (c *OffloadCounts) move(old, new Offload) {
	if old == new {
		return
	}
	c.add(old, -1)
	c.add(new, 1)
}

func (c *OffloadCounts) add(o Offload, n int) {
	if o&Offloaded != 0 {
		c.Offloaded += n
	}
	if o&Trapped != 0 {
		c.Trapped += n
	}
	if o&OffloadFailed != 0 {
		c.Failed += n
	}
}

// OffloadCounts returns the counts of switchd's routes in the kernel by
// hardware flag, kept as the kernel view changes (no walk). Like every
// Table method it belongs to the Table's owner.
func (t *Table) OffloadCounts() OffloadCounts { return t.hw }

// ParseRouteMessage decodes a kernel route message (rtmsg and its
// attributes, after the netlink header) as a Monitor does, hardware
// flags included; Deleted is the caller's to set (the message type is in
// the header). For tools and tests holding a message no Monitor read:
// the flags a switchdev driver sets cannot be made on a kernel without
// one, so tests set them in a message the kernel gave.
func ParseRouteMessage(data []byte) (RouteEvent, bool) {
	var d routeDecoder
	kr, ok := d.decode(data)
	if !ok {
		return RouteEvent{}, false
	}
	return RouteEvent{Route: kr.route, foreign: kr.protocol != Protocol}, true
}
