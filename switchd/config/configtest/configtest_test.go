package configtest_test

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/switchd/switchd/switchd/bgp"
	"github.com/switchd/switchd/switchd/config"
	"github.com/switchd/switchd/switchd/config/configtest"
)

// TestConfigIsValid: what the helper writes is a config switchd accepts,
// and every field arrives where the test that set it expects it.
func TestConfigIsValid(t *testing.T) {
	c := configtest.BGP{ASN: 65001, RouterID: "10.0.0.1", Multipath: true, GracefulRestart: true,
		Families: []configtest.Family{configtest.IPv4Unicast, configtest.IPv6Unicast},
		Neighbors: []configtest.Neighbor{
			{Address: "10.0.0.2", PeerAS: 65002, Description: "A", Families: []configtest.Family{configtest.IPv4Unicast},
				Hold: 9, Keepalive: 3, ConnectRetry: 1, Passive: true, Import: configtest.Accept, Export: configtest.Reject},
			{Address: "fd00::2", PeerAS: 65003, Families: []configtest.Family{configtest.IPv6Unicast}},
		}}
	in, err := config.Parse(c.JSON(), "test.json")
	if err != nil {
		t.Fatal(err)
	}
	b := in.BGP
	if b.ASN != 65001 || b.RouterID != netip.MustParseAddr("10.0.0.1") || !b.Multipath.Enabled || !b.Multipath.MultipleAS || !b.GracefulRestart.Enabled {
		t.Errorf("global: %+v", b)
	}
	if len(b.Neighbors) != 2 {
		t.Fatalf("neighbors: %+v", b.Neighbors)
	}
	i := slices.IndexFunc(b.Neighbors, func(n bgp.Neighbor) bool { return n.Address == netip.MustParseAddr("10.0.0.2") })
	if i < 0 {
		t.Fatalf("neighbor 10.0.0.2 missing: %+v", b.Neighbors)
	}
	n := b.Neighbors[i]
	if n.PeerAS != 65002 || n.Description != "A" || !n.Passive || n.Timers.HoldTime != 9*time.Second ||
		n.Timers.Keepalive != 3*time.Second || n.Timers.ConnectRetry != time.Second ||
		!slices.Equal(n.Families, []bgp.Family{bgp.IPv4Unicast}) ||
		n.Import.Default != bgp.Accept || n.Export.Default != bgp.Reject {
		t.Errorf("neighbor 10.0.0.2: %+v", n)
	}
}
