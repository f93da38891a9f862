package daemon

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/switchd/bgp"
)

// BGPRouteMetric is the kernel metric of routes learned over BGP. Static
// routes from the config use StaticRouteMetric and so win over a BGP route
// to the same prefix, as their administrative distance says they should.
const (
	BGPRouteMetric    = 20
	StaticRouteMetric = 1
)

// How BGP changes reach the kernel. GoBGP reports best paths one path per
// event, so while a table arrives the loop would otherwise wake for a
// handful of routes at a time and pay a whole Apply (plan, sendmsg, ack)
// for each handful. Instead the first change after a quiet bgpWindow is
// written at once (a lone withdrawal is not delayed), and changes that
// follow within bgpWindow of the last Apply are gathered and written
// together when the window ends, or at once when bgpMinApply of them are
// waiting. bgpBatch bounds the routes one take hands to fib, so that
// other events (a link going down, a route changed behind our back) wait
// for at most one batch while a full table arrives.
const (
	bgpWindow   = 2 * time.Millisecond
	bgpMinApply = 4096
	bgpBatch    = 16384
)

// bgpSource is what the bridge reads of the speaker (*bgp.Speaker).
type bgpSource interface {
	Updates() <-chan struct{}
	DrainSome(buf []bgp.Route, max int) ([]bgp.Route, bool)
	Learned() int
}

// fibSink is what the bridge writes of the FIB (*fib.Table).
type fibSink interface {
	SetRoute(fib.Route) error
	DeleteRoute(fib.RouteKey)
}

// bgpFIB is the bridge from the speaker's learned routes to the FIB's
// desired set: it decides the kernel route of each prefix (metric, one
// next hop per ECMP path), keeps count of the routes fib refused, and
// holds changes back for the batching window. It belongs to the daemon's
// loop goroutine; the loop selects on updates and windowEnd and tells it
// when the FIB is applied.
type bgpFIB struct {
	src bgpSource
	dst fibSink
	log *slog.Logger
	now func() time.Time

	// rejected holds the prefixes fib refused (not programmable), so the
	// status count leaves them out.
	rejected map[netip.Prefix]struct{}
	// buf and nhs are reused by take (fib copies what it keeps).
	buf []bgp.Route
	nhs []fib.NextHop
	ifs ifindexes // interfaces of unnumbered next hops (bgpfib_unnumbered.go)
	// memb takes the membership routes, which the FIB never gets
	// (membership.go); nil: none.
	memb *groupMembers
	// lastApply is when the last Apply started; held counts the changes
	// handed to fib since, held back for a batching window while holding.
	lastApply time.Time
	held      int
	holding   bool
	flush     *time.Timer
}

func newBGPFIB(src bgpSource, dst fibSink, log *slog.Logger) *bgpFIB {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &bgpFIB{src: src, dst: dst, log: log, now: time.Now, flush: t,
		rejected: make(map[netip.Prefix]struct{}), ifs: newIfindexes()}
}

// updates is the speaker's signal, or nil while a batching window holds
// changes back: the speaker gathers them meanwhile.
func (b *bgpFIB) updates() <-chan struct{} {
	if b.holding {
		return nil
	}
	return b.src.Updates()
}

// windowEnd fires when a batching window ends.
func (b *bgpFIB) windowEnd() <-chan time.Time { return b.flush.C }

// onUpdates takes a batch of the speaker's changes and reports whether the
// FIB should be applied now; false opens (or extends) a window in which
// the changes wait, because the FIB was written less than bgpWindow ago.
func (b *bgpFIB) onUpdates() (applyNow bool) {
	n, more := b.take()
	since := b.now().Sub(b.lastApply)
	if more || b.held+n >= bgpMinApply || since >= bgpWindow {
		return true
	}
	b.held += n
	b.holding = true
	b.flush.Reset(bgpWindow - since)
	return false
}

// onWindowEnd takes what gathered while the window held; the FIB is to be
// applied.
func (b *bgpFIB) onWindowEnd() {
	b.holding = false
	b.take()
}

// applying is told that a FIB Apply starts: held changes go with it, and
// the window has nothing left to wait for.
func (b *bgpFIB) applying() {
	b.lastApply = b.now()
	b.held = 0
	if b.holding {
		b.flush.Stop()
		b.holding = false
	}
}

// routes is the number of BGP routes the FIB has taken.
func (b *bgpFIB) routes() int {
	n := b.src.Learned() - len(b.rejected)
	if b.memb != nil {
		n -= b.memb.count()
	}
	return n
}

// take moves up to bgpBatch of the speaker's changed prefixes into the
// FIB's desired set: one kernel route per prefix with every ECMP next hop,
// deleted when the prefix has none left. It returns how many it took and
// whether more are left (the speaker then signals Updates again).
func (b *bgpFIB) take() (n int, more bool) {
	b.buf, more = b.src.DrainSome(b.buf[:0], bgpBatch)
	n = len(b.buf)
	b.ifs.reset()
	for _, br := range b.buf {
		key := fib.RouteKey{Table: fib.MainTable, Dst: br.Prefix.Masked(), Priority: BGPRouteMetric}
		if b.memb != nil {
			if member, fresh := b.memb.take(br); member {
				if fresh {
					b.dst.DeleteRoute(key) // it may have been an ordinary route
				}
				continue
			}
		}
		if len(br.NextHops) == 0 {
			delete(b.rejected, key.Dst)
			b.dst.DeleteRoute(key)
			continue
		}
		// The speaker hands out sorted, distinct next hops, so the route
		// is in normal form already; SetRoute copies the slice.
		nhs := b.nhs[:0]
		for _, nh := range br.NextHops {
			nhs = append(nhs, b.ifs.nextHop(nh))
		}
		b.nhs = nhs
		r := fib.Route{Key: key, Type: fib.Unicast, NextHops: nhs}
		if err := b.dst.SetRoute(r); err != nil {
			// A path the kernel cannot take (say, a next hop of an
			// unusable kind) drops that route only.
			b.log.Warn("bgp route not programmable", "route", r, "err", err)
			b.rejected[key.Dst] = struct{}{}
			continue
		}
		delete(b.rejected, key.Dst)
	}
	clear(b.buf) // drop references to the speaker's slices
	return n, more
}
