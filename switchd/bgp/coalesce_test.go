package bgp

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/switchd/switchd/sim/ns"
)

// A neighbor must be left with a prefix's newest best path, however fast
// the best changes. GoBGP 4.8 coalesces the UPDATEs queued for a neighbor
// and keeps the last of each (prefix, local path-id); without ADD-PATH two
// paths of one prefix (the old best and the new, from different
// neighbors) have different path-ids but are one route on the wire, and
// the packers emit them in attribute-hash order, so the neighbor kept the
// old one about half the time (a fabric host lost a leaf from an ECMP set
// for good: the leaf went on announcing its first, longer path through a
// spine). switchd/bgp/gobgp/PATCHES.md has the fix.
//
// The hub learns each prefix the long way (AS_PATH of two) and then, in
// flaps, the short way; its best changes between the two many times
// within one batch of its sends to the receiver, which must end with the
// short path for every prefix.
func TestPrivilegedBestChangeLastOnTheWire(t *testing.T) {
	ns.Privileged(t)
	const n, flaps = 400, 4
	prefixes := make([]netip.Prefix, n)
	for i := range prefixes {
		prefixes[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 60, byte(i >> 8), byte(i)}), 32)
	}
	const hub, long, short, recv, origin = "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"
	passive := func(addr, local string, as uint32) Neighbor {
		nb := peer(addr, local, as)
		nb.Passive = true // no connection collisions
		return nb
	}
	mp := Multipath{Enabled: true}
	cfg := func(as uint32, id, listen string, nbs ...Neighbor) Config {
		return Config{ASN: as, RouterID: ip(id), Multipath: mp, ListenAddresses: []netip.Addr{ip(listen)}, Neighbors: nbs}
	}
	origCfg := cfg(65102, "10.0.0.5", origin, passive(long, origin, 65100))
	origCfg.Originate = prefixes
	shortCfg := cfg(65101, "10.0.0.3", short, passive(hub, short, 65001))
	sp := speakers(t,
		cfg(65001, "10.0.0.1", hub, peer(long, hub, 65100), peer(short, hub, 65101), peer(recv, hub, 65200)),
		cfg(65100, "10.0.0.2", long, passive(hub, long, 65001), peer(origin, long, 65102)),
		shortCfg,
		cfg(65200, "10.0.0.4", recv, passive(hub, recv, 65001)),
		origCfg,
	)
	h, s, r := sp[0], sp[2], sp[3]
	waitEstablished(t, h, long, short, recv)
	waitASPaths(t, r, prefixes, []uint32{65001, 65100, 65102}, "before the flaps")

	// Whether both paths of a prefix end up in one batch depends on how
	// the flaps' UPDATEs meet the hub's sends: about 10 ms apart on this
	// machine, and never when they are so close that the short speaker
	// coalesces its own announcement and withdrawal. So the gap sweeps.
	on := shortCfg
	on.Originate = prefixes
	for _, gap := range []time.Duration{2, 4, 6, 8, 10, 12, 15, 20, 25, 30} {
		gap *= time.Millisecond
		for range flaps {
			for _, c := range []Config{on, shortCfg} {
				if err := s.Apply(t.Context(), c); err != nil {
					t.Fatal(err)
				}
				time.Sleep(gap)
			}
		}
		if err := s.Apply(t.Context(), on); err != nil {
			t.Fatal(err)
		}
		what := fmt.Sprintf("flaps %v apart", gap)
		waitASPaths(t, h, prefixes, []uint32{65101}, "the hub, "+what)
		waitASPaths(t, r, prefixes, []uint32{65001, 65101}, "the receiver, "+what)
	}
}

// waitASPaths waits until s's best path of every prefix has AS_PATH want,
// and fails naming the prefixes that do not.
func waitASPaths(t *testing.T, s *Speaker, prefixes []netip.Prefix, want []uint32, what string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		wrong := wrongASPaths(t, s, prefixes, fmt.Sprint(want))
		if len(wrong) == 0 {
			return
		}
		if time.Now().After(deadline) {
			ex := wrong
			if len(ex) > 5 {
				ex = ex[:5]
			}
			t.Fatalf("%s: %d of %d prefixes' best AS_PATH is not %v after %v, e.g. %v", what, len(wrong), len(prefixes), want, patience, ex)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// wrongASPaths lists the prefixes whose best path in s's Loc-RIB is missing
// or has an AS_PATH other than want (formatted as fmt.Sprint([]uint32)).
func wrongASPaths(t *testing.T, s *Speaker, prefixes []netip.Prefix, want string) []string {
	t.Helper()
	got := make(map[netip.Prefix]string, len(prefixes))
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	err := srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: bgp.RF_IPv4_UC},
		func(nlri bgp.NLRI, paths []*apiutil.Path) {
			pfx, ok := nlri.(*bgp.IPAddrPrefix)
			if !ok {
				return
			}
			for _, p := range paths {
				if !p.Best {
					continue
				}
				var as []uint32
				for _, a := range p.Attrs {
					if ap, ok := a.(*bgp.PathAttributeAsPath); ok {
						for _, seg := range ap.Value {
							as = append(as, seg.GetAS()...)
						}
					}
				}
				got[pfx.Prefix.Masked()] = fmt.Sprint(as)
			}
		})
	if err != nil {
		t.Fatalf("list paths: %v", err)
	}
	var wrong []string
	for _, p := range prefixes {
		if g, ok := got[p]; !ok || g != want {
			wrong = append(wrong, fmt.Sprintf("%v: %q", p, g))
		}
	}
	return wrong
}
