package policy

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/switchd/switchd/sim/ns"
)

// large is the table of the large tests: 1,000 rules in a chain the
// forward hook jumps to, and 50,000 elements: 25,000 addresses in a hash
// set and 25,000 /30 prefixes in an interval set.
func large(t testing.TB, tb *Table) {
	t.Helper()
	rules := make([]ChainRule, 1000)
	for i := range rules {
		rules[i] = tcpPort(uint16(1000 + i))
	}
	must(t, tb.SetSet(Set{Name: "big", KeyType: nftables.TypeIPAddr}))
	must(t, tb.SetSet(Set{Name: "ranges", KeyType: nftables.TypeIPAddr, Interval: true}))
	must(t, tb.SetChain(Chain{Name: "acl", Rules: append(rules, saddrIn("big"), saddrIn("ranges"))}))
	must(t, tb.SetChain(Chain{Name: "forward", Hook: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter,
		Policy: &accept, Rules: []ChainRule{jumpTo("acl")}}))
	es := make([]Element, 25000)
	for i := range es {
		es[i] = elem4(i)
	}
	must(t, tb.AddElements("big", es...))
	for i := range es {
		a := netip.AddrFrom4([4]byte{172, byte(i >> 13), byte(i >> 5), byte(i << 3)})
		es[i] = Prefix(netip.PrefixFrom(a, 30))
	}
	must(t, tb.AddElements("ranges", es...))
}

func TestPrivilegedLargeApply(t *testing.T) {
	n := ns.NewT(t, "pol-large")
	k := newKernel(t, n, DefaultName)
	tb := NewTable(n.Net())
	defer tb.Close()
	large(t, tb)
	ctx := context.Background()
	start := time.Now()
	must(t, tb.Apply(ctx))
	t.Logf("apply from empty: %v, %d messages", time.Since(start), tb.Messages())
	if h := k.handles(); len(h["acl"]) != 1002 {
		t.Errorf("acl: %d rules, want 1002", len(h["acl"]))
	}
	if got := len(k.elements("big")); got != 25000 {
		t.Errorf("big: %d elements, want 25000", got)
	}
	if got := len(k.elements("ranges")); got != 50000 {
		t.Errorf("ranges: %d kernel elements, want 50000 (25,000 ranges)", got)
	}

	// What a periodic resync costs at 50,000 elements: with nothing
	// committed since (the generation id matches), after someone else's
	// commit to another table (the notifications name nothing of ours),
	// after someone deleted one element of ours (that set is read again),
	// and with the notifications lost (everything is read).
	resync := func(what string, wantFull, wantSets int) {
		t.Helper()
		full, sets := tb.fullReads, tb.setsRead
		start := time.Now()
		tb.QueueResync()
		must(t, tb.Apply(ctx))
		t.Logf("resync at 50,000 elements, %s: %v, %d messages", what, time.Since(start), tb.Messages())
		if tb.fullReads-full != wantFull || tb.setsRead-sets != wantSets {
			t.Errorf("resync, %s: %d full reads, %d sets read; want %d, %d", what, tb.fullReads-full, tb.setsRead-sets, wantFull, wantSets)
		}
	}
	resync("after our own large apply", 0, 0)
	resync("generation unchanged", 0, 0)
	k.nft("add", "table", "inet", "other")
	resync("after a commit to another table", 0, 0)
	k.nft("delete", "element", "inet", DefaultName, "big", "{ 10.0.0.7 }")
	resync("after a foreign element delete", 0, 1)
	if got := len(k.elements("big")); got != 25000 {
		t.Errorf("big: %d elements after the repair, want 25000", got)
	}
	k.nft("add", "table", "inet", "another")
	tb.ev.full = true // as after a notification overflow
	resync("notifications lost", 1, 2)
}

// TestPrivilegedLongKeysChunked fills sets whose elements are too long for
// 2,000 to fit in one message: iifname . ipv6_addr (32-byte keys) and a
// verdict map with long chain names.
func TestPrivilegedLongKeysChunked(t *testing.T) {
	n := ns.NewT(t, "pol-long")
	k := newKernel(t, n, DefaultName)
	tb := NewTable(n.Net())
	defer tb.Close()
	must(t, tb.SetSet(Set{Name: "spoof6", KeyType: nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIP6Addr)}))
	must(t, tb.SetSet(Set{Name: "ifmap", KeyType: nftables.TypeIFName, Verdict: true}))
	chain := "workload-policy-chain-with-a-long-name"
	must(t, tb.SetChain(Chain{Name: chain, Rules: []ChainRule{tcpPort(80)}}))
	var spoof, jumps []Element
	for i := 0; i < 6000; i++ {
		ifn := IfName(fmt.Sprintf("tap%06d", i))
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0xd, 0xb8, 15: byte(i), 14: byte(i >> 8)})
		spoof = append(spoof, Element{Key: Concat(ifn, a.AsSlice())})
		jumps = append(jumps, Element{Key: ifn, Jump: chain})
	}
	must(t, tb.AddElements("spoof6", spoof...))
	must(t, tb.AddElements("ifmap", jumps...))
	must(t, tb.Apply(context.Background()))
	if got := len(k.elements("spoof6")); got != 6000 {
		t.Errorf("spoof6: %d elements, want 6000", got)
	}
	if got := len(k.elements("ifmap")); got != 6000 {
		t.Errorf("ifmap: %d elements, want 6000", got)
	}
}

// BenchmarkApplyFromEmpty is a first Apply of 1,000 rules and 50,000
// elements into an empty namespace: time, and peak heap as MiB.
func BenchmarkApplyFromEmpty(b *testing.B) {
	ctx := context.Background()
	var peak uint64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		n := ns.NewT(b, fmt.Sprintf("pol-bench%d", i))
		tb := NewTable(n.Net())
		large(b, tb)
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		stop := sampleHeap(&peak)
		b.StartTimer()
		must(b, tb.Apply(ctx))
		b.StopTimer()
		stop()
		if peak > before.HeapAlloc {
			peak -= before.HeapAlloc
		}
		tb.Close()
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// sampleHeap records the largest live heap seen until stop is called.
func sampleHeap(peak *uint64) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	*peak = 0
	go func() {
		defer close(finished)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			*peak = max(*peak, m.HeapAlloc)
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() { close(done); <-finished }
}

// BenchmarkMembershipChange adds or deletes one element of a set that
// holds 50,000, from the call to the kernel's ack; p50 and p99 per Apply.
func BenchmarkMembershipChange(b *testing.B) {
	n := ns.NewT(b, "pol-member")
	tb := NewTable(n.Net())
	defer tb.Close()
	large(b, tb)
	must(b, tb.SetSet(Set{Name: "more", KeyType: nftables.TypeIPAddr}))
	es := make([]Element, 50000)
	for i := range es {
		es[i] = Element{Key: netip.AddrFrom4([4]byte{11, byte(i >> 16), byte(i >> 8), byte(i)}).AsSlice()}
	}
	must(b, tb.AddElements("more", es...))
	ctx := context.Background()
	must(b, tb.Apply(ctx))
	tb.QueueResync()
	must(b, tb.Apply(ctx)) // drains the notifications of the large apply
	e := elem4(1 << 20)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if i%2 == 0 {
			must(b, tb.AddElements("more", e))
		} else {
			must(b, tb.DeleteElements("more", e))
		}
		must(b, tb.Apply(ctx))
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	if tb.Messages() != 1 {
		b.Errorf("one membership change sent %d messages, want 1", tb.Messages())
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkResync is a periodic drift check (QueueResync + Apply) of the
// large table (1,000 rules, 50,000 elements) with nothing to repair: when
// no transaction committed since our last Apply (the generation id
// matches), and when the notifications were lost (a full read).
func BenchmarkResync(b *testing.B) {
	for _, foreignCommit := range []bool{false, true} {
		b.Run(fmt.Sprintf("foreignCommit=%v", foreignCommit), func(b *testing.B) {
			n := ns.NewT(b, fmt.Sprintf("pol-resync-%v", foreignCommit))
			tb := NewTable(n.Net())
			defer tb.Close()
			large(b, tb)
			ctx := context.Background()
			must(b, tb.Apply(ctx))
			tb.QueueResync()
			must(b, tb.Apply(ctx)) // drains the notifications of the large apply
			reads := tb.fullReads
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if foreignCommit {
					b.StopTimer()
					tb.kgen, tb.ev.full = 0, true // as after lost notifications
					b.StartTimer()
				}
				tb.QueueResync()
				must(b, tb.Apply(ctx))
			}
			if want := map[bool]int{false: 0, true: b.N}[foreignCommit]; tb.fullReads-reads != want {
				b.Errorf("%d full reads, want %d", tb.fullReads-reads, want)
			}
		})
	}
}
