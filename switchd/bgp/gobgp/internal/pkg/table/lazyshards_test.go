// switchd patch: tests of the lazily allocated shards (PATCHES.md). GoBGP's
// own tests are not carried; these cover only what the patch changes.

package table

import (
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

func allocatedShards(t *Table) int {
	n := 0
	for range t.destinations.allocated() {
		n++
	}
	return n
}

func testPrefix(i int) bgp.NLRI {
	nlri, err := bgp.NewIPAddrPrefix(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32))
	if err != nil {
		panic(err)
	}
	return nlri
}

var testPeer = &PeerInfo{
	AS:      65001,
	ID:      netip.MustParseAddr("192.0.2.1"),
	Address: netip.MustParseAddr("192.0.2.1"),
}

func testPath(nlri bgp.NLRI, withdraw bool) *Path {
	nh, err := bgp.NewPathAttributeNextHop(netip.MustParseAddr("192.0.2.1"))
	if err != nil {
		panic(err)
	}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(0), nh}
	return NewPath(bgp.RF_IPv4_UC, testPeer, bgp.PathNLRI{NLRI: nlri}, withdraw, attrs, time.Now(), false)
}

// An empty table holds no shard and answers every read as empty; what it
// costs is its slots, not 2048 maps and locks (~196 KB before the patch).
func TestEmptyTableAllocatesNoShard(t *testing.T) {
	tbl := NewTable(slog.New(slog.DiscardHandler), bgp.RF_IPv4_UC)
	if n := allocatedShards(tbl); n != 0 {
		t.Fatalf("new table has %d shards, want 0", n)
	}
	p := testPrefix(1)
	if d := tbl.GetDestination(p); d != nil {
		t.Errorf("GetDestination on an empty table = %v", d)
	}
	if d := tbl.SelectDestination(p, DestinationSelectOption{}); d != nil {
		t.Errorf("SelectDestination on an empty table = %v", d)
	}
	if n := len(tbl.GetDestinations()) + len(tbl.Bests(GLOBAL_RIB_NAME, 0)); n != 0 {
		t.Errorf("empty table lists %d destinations and bests", n)
	}
	if n := allocatedShards(tbl); n != 0 {
		t.Errorf("reads made %d shards, want 0", n)
	}

	const tables = 64
	keep := make([]*Table, tables)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range keep {
		keep[i] = NewTable(nil, bgp.RF_IPv4_UC)
	}
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(keep)
	// 2048 eight-byte slots and the table's own fields; a shard per slot
	// would be 12 times this.
	per := (after.TotalAlloc - before.TotalAlloc) / tables
	t.Logf("an empty table allocates %d bytes", per)
	if per > 24<<10 {
		t.Errorf("an empty table allocates %d bytes, want <= %d", per, 24<<10)
	}
}

// A route makes the shard it lands in and no other; withdrawing it leaves
// the shard (they are never freed) but nothing in it.
func TestShardsAllocatedByRoutes(t *testing.T) {
	adj := NewAdjRib(slog.New(slog.DiscardHandler), []bgp.Family{bgp.RF_IPv4_UC})
	tbl := adj.table[bgp.RF_IPv4_UC]
	fams := []bgp.Family{bgp.RF_IPv4_UC}

	adj.Update([]*Path{testPath(testPrefix(0), false)})
	if n := allocatedShards(tbl); n != 1 {
		t.Fatalf("one route made %d shards, want 1", n)
	}

	const routes = 5000
	shards := map[uint32]bool{}
	paths := make([]*Path, 0, routes)
	for i := range routes {
		shards[shardIndex(testPrefix(i))] = true
		paths = append(paths, testPath(testPrefix(i), false))
	}
	adj.Update(paths)
	if got, want := allocatedShards(tbl), len(shards); got != want {
		t.Errorf("%d routes made %d shards, want %d (their distinct shards)", routes, got, want)
	}
	if got := adj.Count(fams); got != routes {
		t.Errorf("Count = %d, want %d", got, routes)
	}
	if got := len(adj.PathList(fams, false)); got != routes {
		t.Errorf("PathList has %d paths, want %d", got, routes)
	}
	for i := range routes {
		if tbl.GetDestination(testPrefix(i)) == nil {
			t.Fatalf("route %d not found", i)
		}
	}

	withdrawals := make([]*Path, 0, routes)
	for i := range routes {
		withdrawals = append(withdrawals, testPath(testPrefix(i), true))
	}
	adj.Update(withdrawals)
	if got := adj.Count(fams); got != 0 {
		t.Errorf("Count after withdrawing all = %d, want 0", got)
	}
	if got := len(tbl.GetDestinations()); got != 0 {
		t.Errorf("%d destinations left after withdrawing all", got)
	}
	if got, want := allocatedShards(tbl), len(shards); got != want {
		t.Errorf("after withdrawing all, %d shards, want %d (kept)", got, want)
	}
}

// Writers racing for a shard nobody has made yet must end up in one shard:
// a shard made twice would lose the routes written into the loser.
func TestConcurrentFirstRoutesShareOneShard(t *testing.T) {
	// Prefixes that all fall into one shard.
	var same []bgp.NLRI
	want := shardIndex(testPrefix(0))
	for i := 0; len(same) < 32; i++ {
		if p := testPrefix(i); shardIndex(p) == want {
			same = append(same, p)
		}
	}
	for round := range 200 {
		tbl := NewTable(slog.New(slog.DiscardHandler), bgp.RF_IPv4_UC)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, p := range same {
			wg.Go(func() {
				<-start
				tbl.update(testPath(p, false))
			})
		}
		close(start)
		wg.Wait()
		if n := allocatedShards(tbl); n != 1 {
			t.Fatalf("round %d: %d shards, want 1", round, n)
		}
		var missing []string
		for _, p := range same {
			if tbl.GetDestination(p) == nil {
				missing = append(missing, p.String())
			}
		}
		if len(missing) > 0 {
			t.Fatalf("round %d: %d of %d routes lost: %v", round, len(missing), len(same), missing)
		}
	}
}

// What ListPeer pays per neighbor and family (AdjRib.Count) at a host's,
// a leaf's and a route reflector's sizes, and what a new table costs.
func BenchmarkAdjRibCount(b *testing.B) {
	for _, routes := range []int{0, 100, 100_000} {
		b.Run(fmt.Sprintf("routes=%d", routes), func(b *testing.B) {
			fams := []bgp.Family{bgp.RF_IPv4_UC}
			adj := NewAdjRib(slog.New(slog.DiscardHandler), fams)
			paths := make([]*Path, 0, routes)
			for i := range routes {
				paths = append(paths, testPath(testPrefix(i), false))
			}
			adj.Update(paths)
			b.ReportAllocs()
			for b.Loop() {
				if n := adj.Count(fams); n != routes {
					b.Fatalf("Count = %d, want %d", n, routes)
				}
			}
		})
	}
}

func BenchmarkNewTable(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		NewTable(nil, bgp.RF_IPv4_UC)
	}
}

// The Loc-RIB's write path at the BGP to FIB benchmark's size.
func BenchmarkTableUpdate100k(b *testing.B) {
	const routes = 100_000
	paths := make([]*Path, 0, routes)
	for i := range routes {
		paths = append(paths, testPath(testPrefix(i), false))
	}
	b.ReportAllocs()
	for b.Loop() {
		tbl := NewTable(slog.New(slog.DiscardHandler), bgp.RF_IPv4_UC)
		for _, p := range paths {
			tbl.update(p)
		}
	}
}
