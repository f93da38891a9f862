package fib

import (
	"context"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/mdlayher/netlink"
	pnl "github.com/switchd/switchd/platform/netlink"
	"golang.org/x/sys/unix"
)

// TestPrivilegedGroupFeed: a group appears in the feed when routes first
// use it, once; an Apply or a resync that changes nothing publishes
// nothing; a next hop down shrinks it, the hardware flags a driver sets
// are taken from its notification (without a resync), and it is deleted
// with its last route.
func TestPrivilegedGroupFeed(t *testing.T) {
	tp := newTopo(t, "grpfeed")
	k, m, tb := monitoredTable(t, tp)
	mustApply(t, tb)
	if ups := k.DrainGroups(); len(ups) != 0 {
		t.Fatalf("groups of an empty namespace: %+v", ups)
	}
	rs := manySet(10, gw4a, gw4b)
	mustSet(t, tb, rs...)
	mustApply(t, tb)
	select {
	case <-k.GroupsUpdated():
	default:
		t.Error("no kick after a group was made")
	}
	ups := k.DrainGroups()
	if len(ups) != 1 || ups[0].Deleted || ups[0].Buckets != 0 ||
		!slices.Equal(ups[0].NextHops, []NextHop{{Gateway: gw4a, Ifindex: tp.a0, Weight: 1}, {Gateway: gw4b, Ifindex: tp.a1, Weight: 1}}) {
		t.Fatalf("after the install: %+v, want one ordinary group over both links", ups)
	}
	id := ups[0].ID
	mustApply(t, tb)
	tb.QueueResync()
	mustApply(t, tb)
	if ups := k.DrainGroups(); len(ups) != 0 {
		t.Errorf("a second Apply and a resync published %+v", ups)
	}

	tb.NextHopDown(gw4a)
	mustApply(t, tb)
	if ups := k.DrainGroups(); len(ups) != 1 || ups[0].ID != id || len(ups[0].NextHops) != 1 || ups[0].NextHops[0].Gateway != gw4b {
		t.Errorf("after NextHopDown: %+v, want group %d via %v alone", ups, id, gw4b)
	}

	// No driver here sets the flags: take the kernel's own message for the
	// group, set them, and hand it to the Monitor as a notification.
	msg := nexthopMessage(t, k, id)
	binary.NativeEndian.PutUint32(msg[4:], binary.NativeEndian.Uint32(msg[4:])|unix.RTNH_F_OFFLOAD|unix.RTNH_F_TRAP)
	var d routeDecoder
	m.take(&d, netlink.Message{Header: netlink.Header{Type: unix.RTM_NEWNEXTHOP}, Data: msg})
	evs, _ := m.Drain()
	for _, ev := range evs {
		tb.OnRouteEvent(ev)
	}
	if ups := k.DrainGroups(); len(ups) != 1 || ups[0].Offload != Offloaded|Trapped {
		t.Errorf("after the flags: %+v, want group %d offloaded and trapping", ups, id)
	}
	if tb.resyncQueued {
		t.Error("a change of hardware flags queued a resync")
	}
	// The AFT view carries them too (what the gNMI AFT renders).
	if gs, _ := k.AFT(); !slices.ContainsFunc(gs, func(g AFTGroup) bool { return g.ID == uint64(id) && g.Offload == Offloaded|Trapped }) {
		t.Errorf("AFT groups %+v: group %d not offloaded and trapping", gs, id)
	}

	for _, r := range rs {
		tb.DeleteRoute(r.Key)
	}
	mustApply(t, tb)
	if ups := k.DrainGroups(); len(ups) != 1 || ups[0].ID != id || !ups[0].Deleted {
		t.Errorf("after the last route went: %+v, want group %d deleted", ups, id)
	}
}

// nexthopMessage returns the kernel's RTM_NEWNEXTHOP for id, from a dump.
func nexthopMessage(t *testing.T, k *Kernel, id uint32) []byte {
	t.Helper()
	c, err := k.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var req pnl.Batch
	appendNexthopDump(&req)
	var out []byte
	err = c.Dump(context.Background(), &req, nil, func(m netlink.Message) error {
		forAttrs(m.Data[nhmsgLen:], func(typ uint16, v []byte) {
			if typ == unix.NHA_ID && binary.NativeEndian.Uint32(v) == id {
				out = slices.Clone(m.Data)
			}
		})
		return nil
	})
	if err != nil || out == nil {
		t.Fatalf("dump nexthops: %v; group %d found: %v", err, id, out != nil)
	}
	return out
}

func TestNexthopOffloadFlags(t *testing.T) {
	for _, c := range []struct {
		flags uint32
		want  Offload
	}{{0, 0}, {unix.RTNH_F_OFFLOAD, Offloaded}, {unix.RTNH_F_TRAP, Trapped}, {unix.RTNH_F_OFFLOAD | unix.RTNH_F_TRAP | unix.RTNH_F_ONLINK, Offloaded | Trapped}} {
		if got := nhOffload(c.flags); got != c.want {
			t.Errorf("nhOffload(%#x) = %v, want %v", c.flags, got, c.want)
		}
	}
}
