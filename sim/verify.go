package sim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchd/switchd/host/endpointapi"
)

// The verifier: what every node's kernel FIB must hold, derived from the
// plan and the hosts' endpoint lists alone, compared exactly (every route
// switchd installed, every next hop) with what the kernel holds.

// Nexthop is one path of a route: a gateway through an interface, or the
// interface alone for a device route.
type Nexthop struct {
	Dev string
	Gw  netip.Addr // zero for a device route
}

func (n Nexthop) String() string {
	if !n.Gw.IsValid() {
		return "dev " + n.Dev
	}
	return n.Gw.String() + "@" + n.Dev
}

// FIBEntry is a route of a FIB: a blackhole, or its next hops (sorted).
type FIBEntry struct {
	Blackhole bool
	Nexthops  []Nexthop
}

func (e FIBEntry) String() string {
	if e.Blackhole {
		return "blackhole"
	}
	s := make([]string, len(e.Nexthops))
	for i, n := range e.Nexthops {
		s[i] = n.String()
	}
	return "via " + strings.Join(s, ", ")
}

func (e FIBEntry) equal(o FIBEntry) bool {
	return e.Blackhole == o.Blackhole && slices.Equal(e.Nexthops, o.Nexthops)
}

// FIB is one node's routes by destination.
type FIB map[netip.Prefix]FIBEntry

func sortNexthops(ns []Nexthop) {
	slices.SortFunc(ns, func(a, b Nexthop) int {
		return cmp.Or(strings.Compare(a.Dev, b.Dev), a.Gw.Compare(b.Gw))
	})
}

// CompareFIB returns every difference between want and got, sorted, each a
// line naming the prefix: missing, unexpected, or with other next hops.
func CompareFIB(want, got FIB) []string {
	var diffs []string
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%v missing (want %v)", p, w))
		case !w.equal(g):
			diffs = append(diffs, fmt.Sprintf("%v %v, want %v", p, g, w))
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("%v unexpected (%v)", p, g))
		}
	}
	slices.Sort(diffs)
	return diffs
}

// HostState is what a host's endpoint API reports: its IPAM blocks and its
// endpoints, the inputs of its FIB and of everyone's routes to it.
type HostState struct {
	Blocks    []netip.Prefix
	Endpoints []endpointapi.Endpoint
}

// HostStates asks every switchd host for its blocks and endpoints.
func (f *Fabric) HostStates(ctx context.Context) (map[string]HostState, error) {
	out := map[string]HostState{}
	var mu sync.Mutex
	var errs []error
	f.eachNode(f.hostNodes(), 32, func(n *NodeInfo) {
		l, err := f.endpointClient(n.Name).List(ctx)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.Name, err))
			return
		}
		out[n.Name] = HostState{Blocks: l.Blocks, Endpoints: l.Endpoints}
	})
	return out, errors.Join(errs...)
}

// eachNode runs fn for each of nodes, at most parallel at once.
func (f *Fabric) eachNode(nodes []*NodeInfo, parallel int, fn func(n *NodeInfo)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	for _, n := range nodes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(n)
		}()
	}
	wg.Wait()
}

// ExpectedFIBs computes every switchd node's FIB from the plan, the hosts'
// state and the links that are down (by index in Topology.Links).
//
// A node's routes to another node's prefixes (loopbacks; a host's blocks)
// go through every neighbor on a shortest AS path to it, as eBGP with
// multipath chooses: a path never holds the receiver's AS twice (so the
// spines, sharing one AS, never learn each other's), and hosts are no
// transit (they export only their own prefixes). A host also has a
// blackhole per block it owns and a device route per endpoint address.
func (f *Fabric) ExpectedFIBs(hosts map[string]HostState, down map[int]bool) map[string]FIB {
	out := map[string]FIB{}
	for _, n := range f.nodes {
		if n.Kind == Switchd {
			out[n.Name] = FIB{}
		}
	}
	for _, o := range f.nodes {
		own := []netip.Prefix{netip.PrefixFrom(o.Loopback4, 32), netip.PrefixFrom(o.Loopback6, 128)}
		own = append(own, hosts[o.Name].Blocks...)
		for name, via := range f.pathsTo(o, down) {
			fib := out[name]
			if fib == nil {
				continue
			}
			for _, p := range own {
				var nh []Nexthop
				for _, i := range via {
					gw := i.Peer4
					if p.Addr().Is6() {
						gw = i.Peer6
					}
					nh = append(nh, Nexthop{Dev: i.Name, Gw: gw})
				}
				sortNexthops(nh)
				fib[p] = FIBEntry{Nexthops: nh}
			}
		}
	}
	for name, st := range hosts {
		fib := out[name]
		if fib == nil {
			continue
		}
		for _, b := range st.Blocks {
			fib[b] = FIBEntry{Blackhole: true}
		}
		for _, e := range st.Endpoints {
			for _, a := range e.Addrs() {
				fib[netip.PrefixFrom(a, a.BitLen())] = FIBEntry{Nexthops: []Nexthop{{Dev: e.HostIface}}}
			}
		}
	}
	return out
}

// pathsTo returns, for every node that learns origin's prefixes, the
// interfaces of its best paths (breadth first over live links: each node's
// distance is final when it is first reached).
func (f *Fabric) pathsTo(origin *NodeInfo, down map[int]bool) map[string][]*Interface {
	type reach struct {
		dist int
		ases []uint32 // one best path's ASes, origin's first
	}
	seen := map[string]*reach{origin.Name: {0, []uint32{origin.ASN}}}
	via := map[string][]*Interface{}
	queue := []*NodeInfo{origin}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		ru := seen[u.Name]
		if u != origin && u.Role == Host {
			continue
		}
		for _, i := range u.Interfaces {
			if down[i.Link] {
				continue
			}
			v := f.byName[i.Peer]
			if v == origin || slices.Contains(ru.ases, v.ASN) {
				continue
			}
			back := peerInterface(v, i.Link)
			switch rv := seen[v.Name]; {
			case rv == nil:
				seen[v.Name] = &reach{ru.dist + 1, append(slices.Clone(ru.ases), v.ASN)}
				via[v.Name] = []*Interface{back}
				queue = append(queue, v)
			case rv.dist == ru.dist+1:
				via[v.Name] = append(via[v.Name], back)
			}
		}
	}
	return via
}

func peerInterface(n *NodeInfo, link int) *Interface {
	for _, i := range n.Interfaces {
		if i.Link == link {
			return i
		}
	}
	return nil
}

// KernelFIB reads the routes the node's daemon installed (main table, its
// protocol) as a FIB.
func (f *Fabric) KernelFIB(node string) (FIB, error) {
	rs, err := f.Routes(node)
	if err != nil {
		return nil, err
	}
	links, err := f.Namespace(node).Handle().LinkList()
	if err != nil {
		return nil, fmt.Errorf("links of %s: %w", node, err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	nh := func(idx int, gw []byte) Nexthop {
		n := Nexthop{Dev: names[idx]}
		if a, ok := netip.AddrFromSlice(gw); ok {
			n.Gw = a.Unmap()
		}
		if n.Dev == "" {
			n.Dev = fmt.Sprintf("if%d", idx)
		}
		return n
	}
	fib := FIB{}
	for _, r := range rs {
		if r.Dst == nil {
			continue
		}
		a, _ := netip.AddrFromSlice(r.Dst.IP)
		ones, _ := r.Dst.Mask.Size()
		p := netip.PrefixFrom(a.Unmap(), ones)
		e := fib[p]
		if r.Type == unix.RTN_BLACKHOLE {
			e.Blackhole = true
		} else if len(r.MultiPath) > 0 {
			for _, m := range r.MultiPath {
				e.Nexthops = append(e.Nexthops, nh(m.LinkIndex, m.Gw))
			}
		} else {
			// IPv6 ECMP routes may come as one route per next hop.
			e.Nexthops = append(e.Nexthops, nh(r.LinkIndex, r.Gw))
		}
		sortNexthops(e.Nexthops)
		fib[p] = e
	}
	return fib, nil
}

// FIBReport sums up one comparison of every switchd node's FIB.
type FIBReport struct {
	Nodes  int
	Routes int // expected routes, all nodes
	// Diffs holds each differing node's differences.
	Diffs map[string][]string
	// PrefixDiffs counts the routes missing or unexpected, over all
	// nodes: the rest of Diffs is next hops (a missing ECMP member, say).
	PrefixDiffs int
}

// Exact says whether every FIB held exactly what it must.
func (r *FIBReport) Exact() bool { return len(r.Diffs) == 0 }

func (r *FIBReport) String() string {
	if r.Exact() {
		return fmt.Sprintf("%d nodes, %d routes: every FIB exact", r.Nodes, r.Routes)
	}
	var names []string
	for n := range r.Diffs {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d nodes' FIBs differ:", len(names), r.Nodes)
	for k, n := range names {
		if k == 10 {
			b.WriteString("\n  ...")
			break
		}
		d := r.Diffs[n]
		fmt.Fprintf(&b, "\n  %s: %d differences: %s", n, len(d), strings.Join(d[:min(3, len(d))], "; "))
	}
	return b.String()
}

// VerifyFIBs compares every switchd node's kernel FIB with ExpectedFIBs,
// links in down being down.
func (f *Fabric) VerifyFIBs(ctx context.Context, down map[int]bool) (*FIBReport, error) {
	hosts, err := f.HostStates(ctx)
	if err != nil {
		return nil, err
	}
	want := f.ExpectedFIBs(hosts, down)
	r := &FIBReport{Nodes: len(want), Diffs: map[string][]string{}}
	var mu sync.Mutex
	var errs []error
	var nodes []*NodeInfo
	for name, w := range want {
		r.Routes += len(w)
		nodes = append(nodes, f.byName[name])
	}
	f.eachNode(nodes, 8, func(n *NodeInfo) {
		got, err := f.KernelFIB(n.Name)
		var d []string
		pd := 0
		if err == nil {
			d = CompareFIB(want[n.Name], got)
			pd = prefixDiffs(want[n.Name], got)
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
		} else if len(d) > 0 {
			r.Diffs[n.Name] = d
			r.PrefixDiffs += pd
		}
	})
	return r, errors.Join(errs...)
}

// WaitFIBsExact repeats VerifyFIBs until every FIB is exact or ctx ends;
// then the error holds the last differences.
func (f *Fabric) WaitFIBsExact(ctx context.Context, down map[int]bool) (*FIBReport, error) {
	for {
		start := time.Now()
		r, err := f.VerifyFIBs(ctx, down)
		if err == nil && r.Exact() {
			return r, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = errors.New(r.String())
			}
			return r, fmt.Errorf("fabric %s: FIBs not exact: %w: %w", f.Prefix, ctx.Err(), err)
		// Idle twice as long as a check took: on a big fabric the
		// checks must leave the daemons most of the CPU.
		case <-time.After(max(100*time.Millisecond, 2*time.Since(start))):
		}
	}
}

// prefixDiffs counts the destinations in one of want and got only.
func prefixDiffs(want, got FIB) int {
	n := 0
	for p := range want {
		if _, ok := got[p]; !ok {
			n++
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			n++
		}
	}
	return n
}

// diffSet is every difference of the report, as "node: difference".
func (r *FIBReport) diffSet() map[string]bool {
	m := map[string]bool{}
	for n, ds := range r.Diffs {
		for _, d := range ds {
			m[n+": "+d] = true
		}
	}
	return m
}

// diffsWithin says whether every difference of the report is in before.
func (r *FIBReport) diffsWithin(before map[string]bool) bool {
	for n, ds := range r.Diffs {
		for _, d := range ds {
			if !before[n+": "+d] {
				return false
			}
		}
	}
	return true
}
