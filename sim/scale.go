package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"
)

// Scale describes a generated fabric: racks of hosts, each rack behind a
// pair of leaves (every host dual-homed to both, as real racks are), every
// leaf linked to every spine. Zero Leaves and Spines are sized from Hosts
// (ScaleLeaves, ScaleSpines).
type Scale struct {
	Hosts  int
	Leaves int // even: one pair per rack
	Spines int
	// PolicyGroups, if not 0, gives every host the generated workload
	// policy of that many groups (ScalePolicy: default DENY) and labels
	// each host's first Workloads workloads (w1...) into the groups.
	PolicyGroups int
	Workloads    int
}

// RackSize is how many hosts a generated rack holds when the leaves are
// sized from the host count: a common top-of-rack fan-out, small enough
// that a leaf's sessions (two per host) stay well below a spine's.
const RackSize = 20

// Generated ASNs (RFC 6996 private 4-byte ASNs, RFC 7938 style): all
// spines share one AS, so a leaf never learns a path back through another
// spine; each leaf and each host has one of its own.
const (
	ScaleSpineASN = 4200000000
	scaleLeafASN  = 4200001000 // + leaf number
	scaleHostASN  = 4200100000 // + host number
)

// ScaleTimers are longer than DefaultTimers: hundreds of daemons on two
// cores can starve one for tens of seconds (30 s hold timers expired at
// 250 hosts on a loaded machine, and each drop made more work for all),
// which must not cost it its sessions. A dead peer is still seen at once
// (its TCP session ends), a link down too (switchd watches its links).
var ScaleTimers = Timers{Hold: 90, Keepalive: 30, ConnectRetry: 2}

// ScaleLeaves is the leaf count for n hosts: a pair per RackSize hosts.
func ScaleLeaves(hosts int) int { return 2 * max(1, (hosts+RackSize-1)/RackSize) }

// ScaleSpines is the spine count for a number of leaves: one per 12
// leaves, at least 2 (a spine may fail) and at most 8.
func ScaleSpines(leaves int) int { return min(8, max(2, (leaves+11)/12)) }

// ScaleTopology generates the topology of s. Nodes are named spineN,
// leafN, hostN; rack r (1-based) is leaf 2r-1 and 2r and its hosts, hosts
// spread over the racks as evenly as the count allows, in order. The
// nodes run lean (Topology.Lean).
func ScaleTopology(s Scale) (*Topology, error) {
	if s.Hosts < 1 {
		return nil, fmt.Errorf("scale: %d hosts: want at least 1", s.Hosts)
	}
	if s.Leaves == 0 {
		s.Leaves = ScaleLeaves(s.Hosts)
	}
	if s.Spines == 0 {
		s.Spines = ScaleSpines(s.Leaves)
	}
	if s.Leaves < 2 || s.Leaves%2 != 0 {
		return nil, fmt.Errorf("scale: %d leaves: want an even number, at least 2 (a pair per rack)", s.Leaves)
	}
	if s.Spines < 1 {
		return nil, fmt.Errorf("scale: %d spines: want at least 1", s.Spines)
	}
	racks := s.Leaves / 2
	if s.Hosts < racks {
		return nil, fmt.Errorf("scale: %d hosts for %d racks: want at least one host per rack", s.Hosts, racks)
	}
	if s.PolicyGroups < 0 || s.PolicyGroups >= 1<<31 {
		return nil, fmt.Errorf("scale: %d policy groups: want 0 (no policy) to 2^31-1", s.PolicyGroups)
	}
	tm := ScaleTimers
	t := &Topology{
		Name:   fmt.Sprintf("scale-%dh-%dl-%ds", s.Hosts, s.Leaves, s.Spines),
		Timers: &tm,
		Lean:   true,
	}
	if s.PolicyGroups > 0 {
		t.Name += fmt.Sprintf("-%dg", s.PolicyGroups)
		t.Policy = fmt.Sprintf("generated: default DENY, %d groups", s.PolicyGroups)
		t.PolicyTree = ScalePolicy(s.PolicyGroups)
	}
	for i := 1; i <= s.Spines; i++ {
		t.Nodes = append(t.Nodes, Node{Name: fmt.Sprintf("spine%d", i), Role: Spine, ASN: ScaleSpineASN})
	}
	for i := 1; i <= s.Leaves; i++ {
		t.Nodes = append(t.Nodes, Node{Name: fmt.Sprintf("leaf%d", i), Role: Leaf, ASN: uint32(scaleLeafASN + i)})
	}
	for l := 1; l <= s.Leaves; l++ {
		for sp := 1; sp <= s.Spines; sp++ {
			t.Links = append(t.Links, Link{A: fmt.Sprintf("leaf%d", l), B: fmt.Sprintf("spine%d", sp)})
		}
	}
	for h := 1; h <= s.Hosts; h++ {
		name := fmt.Sprintf("host%d", h)
		n := Node{Name: name, Role: Host, ASN: uint32(scaleHostASN + h)}
		if s.PolicyGroups > 0 && s.Workloads > 0 {
			n.Workloads = map[string]map[string]string{}
			for i := 1; i <= s.Workloads; i++ {
				n.Workloads[fmt.Sprintf("w%d", i)] = map[string]string{
					ScaleGroupLabel: groupName(scaleGroup(h, i, s.Workloads, s.PolicyGroups))}
			}
		}
		t.Nodes = append(t.Nodes, n)
		r := rackOf(h, s.Hosts, racks)
		t.Links = append(t.Links,
			Link{A: name, B: fmt.Sprintf("leaf%d", 2*r-1)},
			Link{A: name, B: fmt.Sprintf("leaf%d", 2*r)})
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

// rackOf is the rack (1-based) of host h of n, over racks racks: blocks of
// consecutive hosts, the first n%racks racks one host larger.
func rackOf(h, n, racks int) int {
	per, extra := n/racks, n%racks
	i := h - 1
	if i < extra*(per+1) {
		return i/(per+1) + 1
	}
	return extra + (i-extra*(per+1))/per + 1
}

// StartPace bounds how many daemons start at once in Up (Options): a node
// counts as starting until its control socket exists, so that hundreds of
// BGP speakers neither start nor open their sessions in the same second.
const StartPace = 8

// waitStarted blocks until at most limit of the given nodes are still
// without a control socket; it gives up on a node after timeout (Up then
// carries on, and WaitConverged reports the node).
func (f *Fabric) waitStarted(ctx context.Context, starting *[]*NodeInfo, limit int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for len(*starting) > limit && ctx.Err() == nil {
		left := (*starting)[:0]
		for _, n := range *starting {
			if !fileExists(n.Socket) && f.Running(n.Name) && time.Now().Before(deadline) {
				left = append(left, n)
			}
		}
		*starting = left
		if len(left) > limit {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// AddWorkloadsParallel gives every switchd host perHost workloads named
// w1, w2... through its endpoint API, as a CNI plugin would, hosts
// working at once (at most parallel requests in flight across the
// fabric, each host's in order). It returns what was attached, and the
// errors joined.
func (f *Fabric) AddWorkloadsParallel(ctx context.Context, perHost, parallel int) ([]Workload, error) {
	var jobs [][2]string
	for i := 1; i <= perHost; i++ {
		for _, n := range f.hostNodes() {
			jobs = append(jobs, [2]string{n.Name, fmt.Sprintf("w%d", i)})
		}
	}
	return f.runWorkloadJobs(ctx, jobs, parallel, func(h, w string) (*Workload, error) { return f.addWorkload(ctx, h, w) })
}

// runWorkloadJobs runs job for each (host, workload) pair, at most
// parallel at once and never two on one host at once (a CNI runtime
// serialises its calls per container, not per host, but the order per
// host keeps the names' IPAM order deterministic).
func (f *Fabric) runWorkloadJobs(ctx context.Context, jobs [][2]string, parallel int, job func(h, w string) (*Workload, error)) ([]Workload, error) {
	var (
		mu   sync.Mutex
		out  []Workload
		errs []error
		wg   sync.WaitGroup
	)
	perHost := map[string][]string{}
	var order []string
	for _, j := range jobs {
		if perHost[j[0]] == nil {
			order = append(order, j[0])
		}
		perHost[j[0]] = append(perHost[j[0]], j[1])
	}
	sem := make(chan struct{}, max(1, parallel))
	for _, h := range order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, w := range perHost[h] {
				if ctx.Err() != nil {
					return
				}
				sem <- struct{}{}
				wl, err := job(h, w)
				<-sem
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else if wl != nil {
					out = append(out, *wl)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return out, errors.Join(errs...)
}

// hostNodes lists the switchd hosts, in topology order.
func (f *Fabric) hostNodes() []*NodeInfo {
	var hs []*NodeInfo
	for _, n := range f.nodes {
		if n.Kind == Switchd && n.Role == Host {
			hs = append(hs, n)
		}
	}
	return hs
}

// SamplePairs picks n ordered pairs of distinct workloads at random (with
// repetition once n exceeds the pairs there are), from rng.
func SamplePairs(ws []Workload, n int, rng *rand.Rand) [][2]Workload {
	if len(ws) < 2 {
		return nil
	}
	out := make([][2]Workload, 0, n)
	for len(out) < n {
		a, b := rng.IntN(len(ws)), rng.IntN(len(ws)-1)
		if b >= a {
			b++
		}
		out = append(out, [2]Workload{ws[a], ws[b]})
	}
	return out
}

// LeanEnv is added to a lean node's switchd environment: one P per
// daemon, since hundreds share two cores and each P carries caches of its
// own (mcache, GC work buffers).
var LeanEnv = []string{"GOMAXPROCS=1"}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
