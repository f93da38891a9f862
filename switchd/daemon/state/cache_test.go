package state

import (
	"slices"
	"strings"
	"testing"

	"github.com/openconfig/gnmi/cache"
	"github.com/openconfig/gnmi/ctree"
	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/switchd/switchd/platform"
	"github.com/switchd/switchd/switchd/bgp"
)

// cachePublisher publishes into the gnmi library's cache, which the gNMI
// server serves from: it sets the target, as the server will.
type cachePublisher struct{ c *cache.Cache }

func (p cachePublisher) Update(n *gpb.Notification) error {
	n.Prefix.Target = "switchd"
	return p.c.GnmiUpdate(n)
}

// cached lists the cache's leaves under the first element of root as
// path=value.
func cached(t *testing.T, c *cache.Cache, root string) []string {
	t.Helper()
	var out []string
	err := c.Query("switchd", []string{root}, func(_ []string, _ *ctree.Leaf, v any) error {
		n := v.(*gpb.Notification)
		for _, u := range n.GetUpdate() {
			out = append(out, PathString(n.GetPrefix(), u.GetPath())+"="+ValueText(u.GetVal()))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func hasLeaf(leaves []string, path, val string) bool { return slices.Contains(leaves, path+"="+val) }

func under(leaves []string, prefix string) []string {
	var out []string
	for _, l := range leaves {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// TestTreeIntoCache: what the Tree publishes is accepted by the gnmi
// cache (no stale or malformed notification), changes replace leaves,
// and its deletions remove leaves and subtrees there.
func TestTreeIntoCache(t *testing.T) {
	c := cache.New([]string{"switchd"})
	tr := New(cachePublisher{c})
	a := swp1()
	if err := tr.Links([]platform.LinkStats{a}); err != nil {
		t.Fatal(err)
	}
	const ifp = "interfaces/interface[name=swp1]"
	addr := ifp + "/subinterfaces/subinterface[index=0]/ipv4/addresses/address[ip=10.0.0.1]/state/prefix-length"
	got := cached(t, c, "interfaces")
	if !hasLeaf(got, ifp+"/state/oper-status", "UP") || !hasLeaf(got, ifp+"/state/counters/in-pkts", "10") || !hasLeaf(got, addr, "31") {
		t.Fatalf("cache after the first sample: %v", got)
	}

	a.Counters.RxPackets, a.Addrs = 99, a.Addrs[1:]
	if err := tr.Links([]platform.LinkStats{a}); err != nil {
		t.Fatal(err)
	}
	got = cached(t, c, "interfaces")
	if !hasLeaf(got, ifp+"/state/counters/in-pkts", "99") || len(under(got, ifp+"/subinterfaces/subinterface[index=0]/ipv4")) != 0 {
		t.Errorf("cache after in-pkts moved and the IPv4 address went: %v", got)
	}

	n := established()
	if err := tr.Neighbors([]bgp.NeighborState{n}); err != nil {
		t.Fatal(err)
	}
	n.Removed = true
	if err := tr.Links(nil); err != nil {
		t.Fatal(err)
	}
	if err := tr.Neighbors([]bgp.NeighborState{n}); err != nil {
		t.Fatal(err)
	}
	if got := cached(t, c, "interfaces"); len(got) != 0 {
		t.Errorf("cache after the interface went: %v", got)
	}
	if got := cached(t, c, "network-instances"); len(got) != 0 {
		t.Errorf("cache after the neighbor went: %v", got)
	}
}
