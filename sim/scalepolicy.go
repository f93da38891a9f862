package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A generated fabric's workload policy (Scale.PolicyGroups): default
// DENY, groups g1..gG (ids 1..G, selector grp == "gK") whose membership
// travels in BGP, every workload labelled into one group, and per group
// a policy letting its own group and the next (K+1, G+1 being 1) in:
// ICMP, ICMPv6 and TCP to PolicyPort. So a pair of workloads on any two
// hosts is allowed or denied by membership learned from the fabric, and
// with G ≥ 3 some pairs are denied one way and allowed the other.

// ScaleGroupLabel is the label key a generated policy selects on.
const ScaleGroupLabel = "grp"

// scaleGroup is the group (1-based) of workload i (1-based) of host h of
// a fabric with perHost workloads per host: round robin over the
// workloads' index across the fabric, so consecutive hosts, and thus
// every rack, hold every group once there are enough workloads.
func scaleGroup(h, i, perHost, groups int) int { return ((h-1)*perHost+i-1)%groups + 1 }

func groupName(k int) string     { return fmt.Sprintf("g%d", k) }
func groupSelector(k int) string { return fmt.Sprintf(`%s == "%s"`, ScaleGroupLabel, groupName(k)) }

// ScalePolicy is the workload policy of groups groups, a config fragment
// to merge into every host's config (Topology.PolicyTree).
func ScalePolicy(groups int) map[string]any {
	var gs, ps []any
	for k := 1; k <= groups; k++ {
		name := groupName(k)
		gs = append(gs, map[string]any{"name": name,
			"config": map[string]any{"name": name, "id": k, "selector": groupSelector(k)}})
		peers := []int{k}
		if groups > 1 {
			peers = append(peers, k%groups+1)
		}
		var rules []any
		for j, peer := range peers {
			for n, proto := range []string{"ICMP", "ICMPV6", "TCP"} {
				seq := 10*(j+1) + n
				cfg := map[string]any{"sequence-id": seq, "action": "ALLOW", "protocol": proto, "peer-selector": groupSelector(peer)}
				if proto == "TCP" {
					cfg["destination-port"] = []any{PolicyPort}
				}
				rules = append(rules, map[string]any{"sequence-id": seq, "config": cfg})
			}
		}
		ps = append(ps, map[string]any{"name": name,
			"config":        map[string]any{"name": name, "order": 100, "selector": groupSelector(k)},
			"ingress-rules": map[string]any{"ingress-rule": rules}})
	}
	// Default DENY holds for egress too: the groups' workloads send
	// anything, ingress policy decides.
	ps = append(ps, map[string]any{"name": "egress",
		"config": map[string]any{"name": "egress", "order": 1000, "selector": "has(" + ScaleGroupLabel + ")",
			"direction": []any{"EGRESS"}},
		"egress-rules": map[string]any{"egress-rule": []any{map[string]any{"sequence-id": 10,
			"config": map[string]any{"sequence-id": 10, "action": "ALLOW"}}}}})
	return map[string]any{"switchd:switchd": map[string]any{"workload-policy": map[string]any{
		"config":   map[string]any{"default-action": "DENY"},
		"groups":   map[string]any{"group": gs},
		"policies": map[string]any{"policy": ps},
	}}}
}

// workloadGroup is w's group number under a generated policy, 0 if it
// has none.
func workloadGroup(w Workload) int {
	k, err := strconv.Atoi(strings.TrimPrefix(w.Label(ScaleGroupLabel), "g"))
	if err != nil {
		return 0
	}
	return k
}

// ScaleAllowed says whether the generated policy of groups groups lets
// from reach to: to's group is from's, or the one before it.
func ScaleAllowed(from, to Workload, groups int) bool {
	a, b := workloadGroup(from), workloadGroup(to)
	return a > 0 && b > 0 && (a == b || a == b%groups+1)
}

// SamplePolicyPairs picks n ordered pairs of distinct workloads the
// policy allows (allow true) or denies, at random from rng; it gives up
// after 100 n draws (a policy may deny nothing).
func SamplePolicyPairs(ws []Workload, groups, n int, allow bool, rng *rand.Rand) [][2]Workload {
	var out [][2]Workload
	for try := 0; len(out) < n && try < 100*n; try++ {
		p := SamplePairs(ws, 1, rng)
		if len(p) == 1 && ScaleAllowed(p[0][0], p[0][1], groups) == allow {
			out = append(out, p[0])
		}
	}
	return out
}

// PolicyCheck is what ScaleRun found of the generated policy.
type PolicyCheck struct {
	Allowed, Denied int // sampled pairs probed with TCP, each IPv4 and IPv6
	// Enforced is how long after the last workload was attached every
	// allowed pair's TCP connection had first succeeded (remote members
	// in every set the pairs need); Median the median of those times.
	Enforced, Median time.Duration
	// Let lists denied probes that connected; Blocked allowed probes that
	// never did.
	Let, Blocked []string
	Nft          NftCounts // summed over the hosts
	NftMax       NftCounts // the largest host's
	Hosts        int
}

// NftCounts is the size of switchd's nftables table in one namespace, as
// nft lists it.
type NftCounts struct{ Chains, Rules, Sets, Elements int }

func (c *NftCounts) add(o NftCounts) {
	c.Chains, c.Rules, c.Sets, c.Elements = c.Chains+o.Chains, c.Rules+o.Rules, c.Sets+o.Sets, c.Elements+o.Elements
}

func (c NftCounts) String() string {
	return fmt.Sprintf("%d chains, %d rules, %d sets and maps with %d elements", c.Chains, c.Rules, c.Sets, c.Elements)
}

// NftCounts counts the chains, rules, sets (verdict maps included) and
// their elements of switchd's table in the node's namespace.
func (f *Fabric) NftCounts(ctx context.Context, node string) (NftCounts, error) {
	objs, err := f.NftObjects(ctx, node, "list", "table", "inet", "switchd")
	var c NftCounts
	if err != nil {
		return c, err
	}
	for _, o := range objs {
		switch {
		case o["chain"] != nil:
			c.Chains++
		case o["rule"] != nil:
			c.Rules++
		}
		for _, k := range []string{"set", "map"} {
			if s, ok := o[k].(map[string]any); ok {
				c.Sets++
				el, _ := s["elem"].([]any)
				c.Elements += len(el)
			}
		}
	}
	return c, nil
}

// probeResult is one pair's TCP probes, both families.
type probeResult struct {
	pair [2]Workload
	err  error
	at   time.Duration // after the start, when it first succeeded
}

// connectPairs connects each pair over IPv4 and IPv6 to PolicyPort, 16
// at once, each probe waiting at most timeout. A pair's error is its
// first failure.
func (f *Fabric) connectPairs(pairs [][2]Workload, timeout time.Duration) []error {
	errs := make([]error, len(pairs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, p := range pairs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			for _, fam := range []int{4, 6} {
				if err := f.ConnectWorkload(p[0], p[1], fam, PolicyPort, timeout); err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errs
}

// waitAllowed probes the allowed pairs in rounds until each has connected
// over both families once, or ctx ends; it returns each pair's result,
// its time counted from since.
func (f *Fabric) waitAllowed(ctx context.Context, pairs [][2]Workload, since time.Time) []probeResult {
	res := make([]probeResult, len(pairs))
	left := make([]int, len(pairs))
	for i, p := range pairs {
		res[i].pair, left[i] = p, i
	}
	for len(left) > 0 {
		ps := make([][2]Workload, len(left))
		for j, i := range left {
			ps[j] = pairs[i]
		}
		errs := f.connectPairs(ps, time.Second)
		now := time.Since(since)
		var next []int
		for j, i := range left {
			if res[i].err = errs[j]; errs[j] == nil {
				res[i].at = now
			} else {
				next = append(next, i)
			}
		}
		left = next
		if len(left) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return res
		// Rounds apart: the probes must leave the daemons the CPU.
		case <-time.After(500 * time.Millisecond):
		}
	}
	return res
}

// listenAll listens on PolicyPort in each workload; the function returned
// closes the listeners.
func (f *Fabric) listenAll(ws []Workload) (func(), error) {
	var cs []func() error
	closeAll := func() {
		for _, c := range cs {
			c()
		}
	}
	for _, w := range ws {
		l, err := f.ListenWorkload(w, PolicyPort)
		if err != nil {
			closeAll()
			return nil, err
		}
		cs = append(cs, l.Close)
	}
	return closeAll, nil
}

// policyProbe is ScaleRun's check of the generated policy: begun as soon
// as the workloads are attached, beside the wait for the FIBs, so that
// it times the policy's enforcement rather than the wait.
type policyProbe struct {
	allowed, denied [][2]Workload
	cancel          context.CancelFunc
	done            chan struct{}
	res             []probeResult
	closeListeners  func()
	err             error
}

// startPolicy samples the pairs, listens in their destinations and
// starts connecting the allowed pairs until each has connected once.
func (r ScaleRun) startPolicy(ctx context.Context, f *Fabric, ws []Workload, attached time.Time, rng *rand.Rand) *policyProbe {
	p := &policyProbe{
		allowed: SamplePolicyPairs(ws, r.PolicyGroups, r.PolicyPairs, true, rng),
		denied:  SamplePolicyPairs(ws, r.PolicyGroups, r.PolicyPairs, false, rng),
		done:    make(chan struct{}),
	}
	ctx, p.cancel = context.WithTimeout(ctx, r.Timeout)
	var dst []Workload
	seen := map[string]bool{}
	for _, q := range append(append([][2]Workload{}, p.allowed...), p.denied...) {
		if k := workloadKey(q[1]); !seen[k] {
			seen[k] = true
			dst = append(dst, q[1])
		}
	}
	if p.closeListeners, p.err = f.listenAll(dst); p.err != nil {
		close(p.done)
		return p
	}
	go func() {
		defer close(p.done)
		p.res = f.waitAllowed(ctx, p.allowed, attached)
	}()
	return p
}

// stop ends the probes and closes the listeners.
func (p *policyProbe) stop() {
	p.cancel()
	<-p.done
	if p.closeListeners != nil {
		p.closeListeners()
	}
}

// finishPolicy waits for the allowed pairs, then probes the denied ones
// and counts every host's table; an allowed pair that never connected or
// a denied one not dropped is an error.
func (r ScaleRun) finishPolicy(ctx context.Context, f *Fabric, rep *ScaleReport, p *policyProbe) error {
	<-p.done
	if p.err != nil {
		return fmt.Errorf("policy: %w", p.err)
	}
	pc := &PolicyCheck{Allowed: len(p.allowed), Denied: len(p.denied)}
	rep.Policy = pc
	var ats []time.Duration
	for _, x := range p.res {
		if x.err != nil {
			pc.Blocked = append(pc.Blocked, x.err.Error())
		} else {
			ats = append(ats, x.at)
		}
	}
	slices.Sort(ats)
	if len(ats) > 0 {
		pc.Enforced, pc.Median = ats[len(ats)-1], ats[len(ats)/2]
	}
	r.logf("policy: %d of %d allowed pairs connected on tcp/%d over IPv4 and IPv6, the last %v after the last workload was attached (median %v)",
		len(ats), len(p.allowed), PolicyPort, pc.Enforced.Round(time.Millisecond), pc.Median.Round(time.Millisecond))
	if len(pc.Blocked) > 0 {
		return fmt.Errorf("policy: %d of %d allowed pairs never connected: %s", len(pc.Blocked), len(p.allowed),
			strings.Join(pc.Blocked[:min(5, len(pc.Blocked))], "; "))
	}
	start := time.Now()
	pc.Let = f.probeDenied(p.denied)
	r.logf("policy: %d denied pairs × IPv4, IPv6 probed on tcp/%d in %v: %d not dropped",
		len(p.denied), PolicyPort, time.Since(start).Round(time.Millisecond), len(pc.Let))
	if len(pc.Let) > 0 {
		return fmt.Errorf("policy: %d of %d denied probes not dropped: %s", len(pc.Let), 2*len(p.denied),
			strings.Join(pc.Let[:min(5, len(pc.Let))], "; "))
	}
	for _, n := range f.hostNodes() {
		c, err := f.NftCounts(ctx, n.Name)
		if err != nil {
			return fmt.Errorf("policy: %w", err)
		}
		pc.Nft.add(c)
		pc.Hosts++
		if c.Rules+c.Elements > pc.NftMax.Rules+pc.NftMax.Elements {
			pc.NftMax = c
		}
	}
	r.logf("policy: nftables over %d hosts: %v; the largest host: %v", pc.Hosts, pc.Nft, pc.NftMax)
	return nil
}

// deniedTimeout is how long a denied probe waits for a connection that
// must not come.
const deniedTimeout = 2 * time.Second

// probeDenied connects each pair, IPv4 and IPv6, once (a probe that must
// fail is not retried), 16 at once, and returns the probes that were not
// dropped: a connection, a refusal (the SYN reached the workload) or any
// error but the timeout of a dropped SYN.
func (f *Fabric) probeDenied(pairs [][2]Workload) []string {
	return eachProbe(pairs, func(p [2]Workload, fam int) string {
		err := f.ConnectWorkload(p[0], p[1], fam, PolicyPort, deniedTimeout)
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			return ""
		case err != nil:
			return err.Error()
		}
		return fmt.Sprintf("tcp %s to %s over IPv%d connected", workloadKey(p[0]), workloadKey(p[1]), fam)
	})
}

// labelChurn gives churn workloads (jobs: host, name) labels of the
// generated policy's groups, round robin, so that their membership
// comes and goes in BGP too. It runs before the jobs: addWorkload reads
// the labels.
func (f *Fabric) labelChurn(jobs [][2]string, groups int) error {
	for i, j := range jobs {
		n, err := f.node(j[0])
		if err != nil {
			return err
		}
		if n.Workloads == nil {
			n.Workloads = map[string]map[string]string{}
		}
		n.Workloads[j[1]] = map[string]string{ScaleGroupLabel: groupName(i%groups + 1)}
	}
	return nil
}
