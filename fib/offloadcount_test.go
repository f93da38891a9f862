package fib

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"

	pnl "github.com/switchd/switchd/platform/netlink"
)

// TestOffloadCountsFromMessages: crafted route messages with each
// hardware flag, decoded by ParseRouteMessage and handed to a Table as
// a Monitor would, move the Table's counts and show in its AFT view
// (Lookup and Walk); a route gone from the kernel leaves the counts.
func TestOffloadCountsFromMessages(t *testing.T) {
	r1 := route("198.51.100.0/24", 0, ip("192.0.2.1"))
	r2 := route("203.0.113.0/24", 0, ip("192.0.2.1"))
	for _, r := range []*Route{&r1, &r2} {
		r.Normalize()
	}
	fake := &fakeDataplane{}
	tb := newTable(MainTable, withDataplane(fake))
	mustSet(t, tb, r1, r2)
	mustApply(t, tb)
	msg := func(r Route, flags uint32) RouteEvent {
		t.Helper()
		var m pnl.Batch
		appendRoute(&m, opReplace, r, 0, Protocol)
		data := m.Bytes()[unix.NLMSG_HDRLEN:]
		binary.NativeEndian.PutUint32(data[8:], flags)
		ev, ok := ParseRouteMessage(data)
		if !ok || ev.foreign {
			t.Fatalf("%v: not decoded as switchd's (%v)", r.Key.Dst, ok)
		}
		return ev
	}
	check := func(step string, want OffloadCounts, want1 Offload) {
		t.Helper()
		if got := tb.OffloadCounts(); got != want {
			t.Errorf("%s: counts %+v, want %+v", step, got, want)
		}
		if a, ok := tb.View().Lookup(r1.Key.Dst); !ok || a.Offload != want1 {
			t.Errorf("%s: AFT route %v %+v, want offload %v", step, ok, a, want1)
		}
		seen := 0
		tb.View().Walk(func(rs []AFTRoute) error {
			for _, a := range rs {
				if a.Prefix == r1.Key.Dst && a.Offload == want1 {
					seen++
				}
			}
			return nil
		})
		if seen != 1 {
			t.Errorf("%s: walk found r1 with %v %d times", step, want1, seen)
		}
	}
	check("none", OffloadCounts{}, 0)
	tb.OnRouteEvent(msg(r1, unix.RTM_F_OFFLOAD|unix.RTM_F_TRAP))
	tb.OnRouteEvent(msg(r2, unix.RTM_F_OFFLOAD))
	check("offloaded", OffloadCounts{Offloaded: 2, Trapped: 1}, Offloaded|Trapped)
	tb.OnRouteEvent(msg(r1, unix.RTM_F_OFFLOAD_FAILED))
	check("failed", OffloadCounts{Offloaded: 1, Failed: 1}, OffloadFailed)
	// The same flags again count once.
	tb.OnRouteEvent(msg(r1, unix.RTM_F_OFFLOAD_FAILED))
	check("again", OffloadCounts{Offloaded: 1, Failed: 1}, OffloadFailed)
	del := msg(r2, 0)
	del.Deleted = true
	tb.OnRouteEvent(del)
	check("r2 deleted", OffloadCounts{Failed: 1}, OffloadFailed)
	// Another owner's route is not switchd's to count.
	var m pnl.Batch
	appendRoute(&m, opReplace, r2, 0, 186)
	data := m.Bytes()[unix.NLMSG_HDRLEN:]
	binary.NativeEndian.PutUint32(data[8:], unix.RTM_F_OFFLOAD)
	if ev, ok := ParseRouteMessage(data); !ok || !ev.foreign {
		t.Errorf("a route of protocol 186: decoded %v, foreign %v", ok, ev.foreign)
	}
}
