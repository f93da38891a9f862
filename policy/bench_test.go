package policy

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

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
// holds 50,000, from the call to the kernel's ack; p50 and p99 per change.
// Beside switchd's Table, in the same run and each in its own namespace,
// the two designs the issue compares it with:
//
//   - impl=nft-process: the same table, changed by running `nft add
//     element` / `nft delete element` once per change (an agent that
//     shells out);
//   - impl=rule-per-endpoint: one `ip saddr X accept` rule per endpoint
//     in a chain of 50,000, rewritten on each change (flush and re-add
//     every rule in one transaction, as iptables-restore style agents
//     do).
//
// The baselines are slow: each makes at most nftProcessOps or
// rulePerEndpointOps changes whatever b.N is.
//
// Compare them with `benchstat -col /impl`.
func BenchmarkMembershipChange(b *testing.B) {
	b.Run("impl=switchd", benchMembershipSwitchd)
	b.Run("impl=nft-process", benchMembershipNftProcess)
	b.Run("impl=rule-per-endpoint", benchMembershipRulePerEndpoint)
}

// member50k is the large table plus set "more" with 50,000 addresses
// 11.0.0.0 up, applied in a new namespace; the Table is drained of the
// apply's notifications.
func member50k(b *testing.B, name string) (*ns.NS, *Table) {
	n := ns.NewT(b, name)
	tb := NewTable(n.Net())
	b.Cleanup(func() { tb.Close() })
	large(b, tb)
	must(b, tb.SetSet(Set{Name: "more", KeyType: nftables.TypeIPAddr}))
	must(b, tb.AddElements("more", endpointAddrs(50000)...))
	ctx := context.Background()
	must(b, tb.Apply(ctx))
	tb.QueueResync()
	must(b, tb.Apply(ctx)) // drains the notifications of the large apply
	return n, tb
}

// endpointAddrs are n addresses from 11.0.0.0 up, as elements.
func endpointAddrs(n int) []Element {
	es := make([]Element, n)
	for i := range es {
		es[i] = Element{Key: netip.AddrFrom4([4]byte{11, byte(i >> 16), byte(i >> 8), byte(i)}).AsSlice()}
	}
	return es
}

func benchMembershipSwitchd(b *testing.B) {
	_, tb := member50k(b, "pol-member")
	ctx := context.Background()
	e := elem4(1 << 20)
	timeOps(b, b.N, func(i int) {
		if i%2 == 0 {
			must(b, tb.AddElements("more", e))
		} else {
			must(b, tb.DeleteElements("more", e))
		}
		must(b, tb.Apply(ctx))
	})
	if tb.Messages() != 1 {
		b.Errorf("one membership change sent %d messages, want 1", tb.Messages())
	}
}

// benchMembershipNftProcess runs nft once per change on the thread
// switched into the namespace (so the child starts there, without an
// `ip netns exec` in between). The exit of nft is the kernel's ack.
func benchMembershipNftProcess(b *testing.B) {
	n, _ := member50k(b, "pol-member-nft")
	e := netip.AddrFrom4([4]byte(elem4(1 << 20).Key)).String()
	ops := min(b.N, nftProcessOps)
	total := timeOps(b, ops, func(i int) {
		op := map[bool]string{true: "add", false: "delete"}[i%2 == 0]
		must(b, n.Do(func() error {
			out, err := exec.Command("nft", op, "element", "inet", DefaultName, "more", "{ "+e+" }").CombinedOutput()
			if err != nil {
				return fmt.Errorf("nft %s element %s: %w: %s", op, e, err, out)
			}
			return nil
		}))
	})
	b.ReportMetric(float64(total.Nanoseconds())/float64(ops), "ns/op")
	// The changes reached the kernel: the element is there after an odd
	// number of them.
	if got, want := len(newKernel(b, n, DefaultName).elements("more")), 50000+ops%2; got != want {
		b.Errorf("set more has %d elements after %d nft changes, want %d", got, ops, want)
	}
}

// The baselines take 0.1 s (nft-process) and 1 s (rule-per-endpoint) per
// change on the 2-core test VM: they make at most this many whatever b.N
// is, and report ns/op over those.
const (
	nftProcessOps      = 500
	rulePerEndpointOps = 30
)

// benchMembershipRulePerEndpoint keeps a table of its own with a forward
// chain of one rule per endpoint and rewrites the chain on each change:
// the rules (expressions built once, as an agent keeps its state) are
// marshalled and sent after a flush of the chain, one transaction.
func benchMembershipRulePerEndpoint(b *testing.B) {
	n := ns.NewT(b, "pol-member-rpe")
	c, err := nftables.New(nftables.WithNetNSFd(n.Fd()), nftables.AsLasting(),
		nftables.WithSockOptions(func(c *netlink.Conn) error {
			if err := c.SetWriteBuffer(sockBuf); err != nil {
				return err
			}
			return c.SetReadBuffer(sockBuf)
		}))
	must(b, err)
	b.Cleanup(func() { c.CloseLasting() })
	tbl := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "rpe"})
	ch := c.AddChain(&nftables.Chain{Table: tbl, Name: "forward", Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	var rules [][]expr.Any
	for _, e := range endpointAddrs(50000) {
		rules = append(rules, saddrAccept(e.Key))
	}
	extra := saddrAccept(elem4(1 << 20).Key)
	rewrite := func(withExtra bool) error {
		c.FlushChain(ch)
		for _, r := range rules {
			c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: r})
		}
		if withExtra {
			c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: extra})
		}
		return c.Flush()
	}
	must(b, rewrite(false))
	ops := min(b.N, rulePerEndpointOps)
	total := timeOps(b, ops, func(i int) { must(b, rewrite(i%2 == 0)) })
	b.ReportMetric(float64(total.Nanoseconds())/float64(ops), "ns/op")
	rs, err := c.GetRules(tbl, ch)
	must(b, err)
	if want := 50000 + ops%2; len(rs) != want {
		b.Errorf("chain has %d rules after %d rewrites, want %d", len(rs), ops, want)
	}
}

// saddrAccept is `ip saddr A accept`, the rule-per-endpoint design's rule.
func saddrAccept(a []byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}

// timeOps resets the timer, runs op(0..n-1), timing each from call to
// return, reports their p50 and p99 in µs and returns their total.
func timeOps(b *testing.B, n int, op func(i int)) time.Duration {
	lat := make([]time.Duration, 0, n)
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < n; i++ {
		start := time.Now()
		op(i)
		d := time.Since(start)
		lat = append(lat, d)
		total += d
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	return total
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
