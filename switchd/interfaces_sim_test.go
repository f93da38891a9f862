package main

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/switchd/switchd/platform"
	"github.com/switchd/switchd/sim"
)

// checkConfiguredAddresses: on every switchd node of f, the addresses the
// simulator's plan gives its interfaces (sim.Fabric.Addresses) are exactly
// the addresses switchd owns (tagged with platform.AddrProtocol): the
// simulator assigns none of them, switchd applies them from /interfaces.
func checkConfiguredAddresses(t *testing.T, f *sim.Fabric) {
	t.Helper()
	for _, n := range f.Nodes() {
		if n.Kind != sim.Switchd {
			continue
		}
		owned, err := platform.OwnedAddrs(context.Background(), f.Namespace(n.Name).Net())
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][]netip.Prefix{}
		for _, ia := range f.Addresses(n) {
			want[ia.Name] = ia.Addrs
		}
		for name, ps := range want {
			got := slices.Clone(owned[name])
			slices.SortFunc(got, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
			if !slices.Equal(got, ps) {
				t.Errorf("%s: %s carries %v as switchd's, want %v from its config", n.Name, name, owned[name], ps)
			}
		}
		for name := range owned {
			if _, ok := want[name]; !ok {
				t.Errorf("%s: switchd owns %v on %s, which its config does not name", n.Name, owned[name], name)
			}
		}
	}
}
