package state

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/switchd/switchd/models/oc"
)

// TestStatusJSON: switchd's own status (fib, policy, IPAM blocks) as
// JSON_IETF, every leaf set through the generated schema; a block no
// longer held is deleted, and an unchanged status publishes nothing.
func TestStatusJSON(t *testing.T) {
	pub := &fakePublisher{}
	tr := New(pub).WithClock(func() time.Time { return t0 })
	if err := tr.FIB(FIBStatus{InSync: true, Routes: 12, NexthopGroups: 2, LastResync: t0, LastError: "", Offloaded: 10, Trapped: 1, OffloadFailed: 2}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Policy(PolicyStatus{InSync: false, Chains: 5, Rules: 40, Sets: 3, Elements: 9, Endpoints: 2,
		LastApply: t0, LastError: "netlink: busy"}); err != nil {
		t.Fatal(err)
	}
	blocks := []IPAMBlock{
		{Prefix: netip.MustParsePrefix("10.244.1.0/26"), Pool: netip.MustParsePrefix("10.244.0.0/16"), Allocated: 3},
		{Prefix: netip.MustParsePrefix("fd00:244:1::/64"), Pool: netip.MustParsePrefix("fd00:244::/48"), Allocated: 1},
	}
	if err := tr.IPAMBlocks(blocks); err != nil {
		t.Fatal(err)
	}
	dev := &oc.Device{}
	for _, n := range pub.ns {
		setLeaves(t, dev, n)
	}
	pub.ns = nil
	got := rfc7951(t, dev.GetSwitchd())
	want := compact(`{
	  "switchd:state": {
	    "fib": {"in-sync": true, "routes": "12", "nexthop-groups": "2", "stale": "0",
	      "last-resync": "2026-11-30T07:00:00Z", "last-error": "", "offloaded": "10", "trapped": "1", "offload-failed": "2"},
	    "policy": {"in-sync": false, "chains": "5", "rules": "40", "sets": "3", "elements": "9",
	      "endpoints": "2", "last-apply": "2026-11-30T07:00:00Z", "last-error": "netlink: busy"}},
	  "switchd:ipam": {"blocks": {"block": [
	    {"prefix": "10.244.1.0/26", "state": {"prefix": "10.244.1.0/26", "pool": "10.244.0.0/16", "allocated": "3", "capacity": "64"}},
	    {"prefix": "fd00:244:1::/64", "state": {"prefix": "fd00:244:1::/64", "pool": "fd00:244::/48", "allocated": "1",
	      "capacity": "18446744073709551615"}}]}}
	}`)
	if got != want {
		t.Errorf("status\n got %s\nwant %s", got, want)
	}
	if err := tr.FIB(FIBStatus{InSync: true, Routes: 12, NexthopGroups: 2, LastResync: t0, Offloaded: 10, Trapped: 1, OffloadFailed: 2}); err != nil {
		t.Fatal(err)
	}
	if len(pub.ns) != 0 {
		t.Errorf("an unchanged FIB status published %v", pub.ns)
	}
	if err := tr.IPAMBlocks(blocks[:1]); err != nil {
		t.Fatal(err)
	}
	_, dels := pub.take()
	if !slices.Equal(dels, []string{"switchd/ipam/blocks/block[prefix=fd00:244:1::/64]"}) {
		t.Errorf("deletes %q, want the IPv6 block", dels)
	}
}
