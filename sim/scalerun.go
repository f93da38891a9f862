package sim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ScaleRun is the scale check of a generated fabric that is up and
// converged: workloads attached at once across the hosts, every FIB
// compared exactly, a sampled reachability matrix, then churn (workloads
// added and deleted on random hosts, a leaf killed and restarted, a spine
// link failed and restored), every FIB exact again after each. With a
// generated policy (PolicyGroups) the pinged pairs are pairs it allows,
// and sampled pairs it allows and denies are probed with TCP
// (scalepolicy.go).
type ScaleRun struct {
	Workloads int    // per host
	Pairs     int    // sampled workload pairs, each pinged over IPv4 and IPv6
	Churn     int    // workloads added, then deleted, on random hosts
	Seed      uint64 // of the random choices
	// PolicyGroups is the fabric's generated policy's group count
	// (Scale.PolicyGroups), 0 for none; PolicyPairs how many pairs it
	// allows, and how many it denies, are probed on tcp/PolicyPort.
	PolicyGroups, PolicyPairs int
	// Timeout bounds each wait for convergence.
	Timeout time.Duration
	// Started is when the fabric's Up began: convergence counts from it.
	Started time.Time
	// Logf reports each step and figure as it is measured.
	Logf func(format string, args ...any)
}

// ScaleReport holds what a ScaleRun measured.
type ScaleReport struct {
	Workloads   int
	SetupRate   float64         // workloads per second attached across the fabric
	Steps       []ScaleStep     // each wait for the FIBs, in order
	Unreachable []string        // sampled pings that failed
	Converged   time.Duration   // Started to sessions up and loopbacks reachable
	Idle, RSS   Memory          // before and after the workloads
	Routes      int             // expected routes over all nodes with the workloads
	Policy      *PolicyCheck    // with a generated policy
	before      map[string]bool // the differences the last step left (FIBReport.diffSet)
	// Inexact lists the steps after which some FIB never became exact
	// (every route there, some next hops not): Run goes on and returns
	// them as its error at the end.
	Inexact []error
}

// ScaleStep is one change and how long the FIBs took to follow it.
type ScaleStep struct {
	Name string
	// Routes: until every node had every route (next hops aside);
	// Settled: until no difference was left but those there before the
	// change (which a FIB that is never exact keeps); Exact: until every
	// FIB was exact, 0 if it never was.
	Routes, Settled, Exact time.Duration
}

// Settle is how long the FIBs may take to become exact once every route
// is there (ECMP members still arriving).
var Settle = time.Minute

// waitFIBs waits after a change made at since until every FIB is exact,
// recording the step; an error that is not an inexactError ends the run.
func (r ScaleRun) waitFIBs(ctx context.Context, f *Fabric, rep *ScaleReport, name string, since time.Time, down map[int]bool) error {
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	st := ScaleStep{Name: name}
	for {
		start := time.Now()
		fr, err := f.VerifyFIBs(ctx, down)
		if err == nil && fr.PrefixDiffs == 0 && st.Routes == 0 {
			st.Routes = time.Since(since)
		}
		if err == nil && st.Settled == 0 && fr.diffsWithin(rep.before) {
			st.Settled = time.Since(since)
		}
		if err == nil && fr.Exact() {
			st.Exact = time.Since(since)
			rep.Steps, rep.Routes, rep.before = append(rep.Steps, st), fr.Routes, nil
			r.logf("%s: every route in %v, every FIB exact in %v; %v", name, st.Routes.Round(time.Millisecond), st.Exact.Round(time.Millisecond), fr)
			return nil
		}
		if err == nil && st.Routes > 0 && time.Since(since) > max(st.Routes, st.Settled)+Settle {
			rep.Steps, rep.Routes, rep.before = append(rep.Steps, st), fr.Routes, fr.diffSet()
			e := inexactError{fmt.Errorf("%s: every route in %v, settled in %v (only differences there before it), but not exact %v later: %v",
				name, st.Routes.Round(time.Millisecond), st.Settled.Round(time.Millisecond), Settle, fr)}
			rep.Inexact = append(rep.Inexact, e)
			r.logf("%v", e)
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("%v", fr)
			}
			return fmt.Errorf("%s: FIBs not exact: %w: %w", name, ctx.Err(), err)
		// Idle twice as long as a check took: on a big fabric the
		// checks must leave the daemons most of the CPU.
		case <-time.After(max(100*time.Millisecond, 2*time.Since(start))):
		}
	}
}

type inexactError struct{ error }

func (r ScaleRun) logf(format string, a ...any) {
	if r.Logf != nil {
		r.Logf(format, a...)
	}
}

// Run runs the check; it stops at the first step that fails, but goes on
// after FIBs that hold every route with some next hops wrong (Inexact),
// and returns those at the end.
func (r ScaleRun) Run(ctx context.Context, f *Fabric) (*ScaleReport, error) {
	rep, err := r.run(ctx, f)
	if err == nil && len(rep.Inexact) > 0 {
		err = fmt.Errorf("FIBs not exact after %d steps: %w", len(rep.Inexact), errors.Join(rep.Inexact...))
	}
	return rep, err
}

func (r ScaleRun) run(ctx context.Context, f *Fabric) (*ScaleReport, error) {
	logf := r.logf
	rng := rand.New(rand.NewPCG(r.Seed, r.Seed^0x5ca1e))
	rep := &ScaleReport{}
	wait := func(what string, since time.Time, down map[int]bool) error {
		return r.waitFIBs(ctx, f, rep, what, since, down)
	}

	wctx, cancel := context.WithTimeout(ctx, r.Timeout)
	err := WaitConverged(wctx, f)
	cancel()
	if err != nil {
		return rep, err
	}
	rep.Converged = time.Since(r.Started)
	logf("converged (sessions up, loopbacks reachable) %v after the start", rep.Converged.Round(time.Millisecond))
	if err := wait("fabric up", r.Started, nil); err != nil {
		return rep, err
	}
	if rep.Idle, err = f.Memory(); err != nil {
		return rep, err
	}
	logf("memory idle: %v", rep.Idle)

	start := time.Now()
	ws, err := f.AddWorkloadsParallel(ctx, r.Workloads, WorkloadParallel)
	d := time.Since(start)
	rep.Workloads, rep.SetupRate = len(ws), float64(len(ws))/d.Seconds()
	logf("workloads: %d attached in %v: %.1f/s (%d endpoint API calls at once across %d hosts)",
		len(ws), d.Round(time.Millisecond), rep.SetupRate, WorkloadParallel, len(f.hostNodes()))
	if err != nil {
		return rep, fmt.Errorf("attach workloads: %w", err)
	}
	var pol *policyProbe
	if r.PolicyGroups > 0 {
		pol = r.startPolicy(ctx, f, ws, start.Add(d), rng)
		defer pol.stop()
	}
	if err = wait("workloads attached", start.Add(d), nil); err != nil {
		return rep, err
	}
	if pol != nil {
		if err := r.finishPolicy(ctx, f, rep, pol); err != nil {
			return rep, err
		}
	}
	if rep.RSS, err = f.Memory(); err != nil {
		return rep, err
	}
	logf("memory with workloads: %v", rep.RSS)

	pairs, which := SamplePairs(ws, r.Pairs, rng), "pairs"
	if r.PolicyGroups > 0 {
		pairs, which = SamplePolicyPairs(ws, r.PolicyGroups, r.Pairs, true, rng), "pairs the policy allows"
	}
	start = time.Now()
	rep.Unreachable = f.Reach(ctx, pairs)
	logf("reachability: %d %s × IPv4, IPv6 in %v: %d failed", len(pairs), which, time.Since(start).Round(time.Millisecond), len(rep.Unreachable))
	if len(rep.Unreachable) > 0 {
		return rep, fmt.Errorf("%d of %d sampled pings failed: %s", len(rep.Unreachable), 2*len(pairs),
			strings.Join(rep.Unreachable[:min(5, len(rep.Unreachable))], "; "))
	}

	// Churn: workloads c1... on random hosts, added, then deleted.
	hosts := f.hostNodes()
	var jobs [][2]string
	for i := 1; i <= r.Churn; i++ {
		jobs = append(jobs, [2]string{hosts[rng.IntN(len(hosts))].Name, fmt.Sprintf("c%d", i)})
	}
	if r.PolicyGroups > 0 {
		if err := f.labelChurn(jobs, r.PolicyGroups); err != nil {
			return rep, err
		}
	}
	start = time.Now()
	if _, err := f.runWorkloadJobs(ctx, jobs, WorkloadParallel, func(h, w string) (*Workload, error) { return f.addWorkload(ctx, h, w) }); err != nil {
		return rep, fmt.Errorf("churn: add: %w", err)
	}
	d = time.Since(start)
	logf("churn: %d workloads added on random hosts in %v", len(jobs), d.Round(time.Millisecond))
	if err = wait("churn: workloads added", start.Add(d), nil); err != nil {
		return rep, err
	}
	start = time.Now()
	if _, err := f.runWorkloadJobs(ctx, jobs, WorkloadParallel, func(h, w string) (*Workload, error) { return nil, f.DelWorkload(ctx, h, w) }); err != nil {
		return rep, fmt.Errorf("churn: delete: %w", err)
	}
	d = time.Since(start)
	logf("churn: %d workloads deleted in %v", len(jobs), d.Round(time.Millisecond))
	if err = wait("churn: workloads deleted", start.Add(d), nil); err != nil {
		return rep, err
	}

	// A leaf killed outright and started again: its peers keep its routes
	// (graceful restart) and it adopts its own.
	leaf := f.firstOfRole(Leaf)
	start = time.Now()
	if err := f.Kill(leaf.Name, syscall.SIGKILL); err != nil {
		return rep, err
	}
	for f.Running(leaf.Name) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if err := f.Start(leaf.Name); err != nil {
		return rep, err
	}
	wctx, cancel = context.WithTimeout(ctx, r.Timeout)
	err = WaitConverged(wctx, f)
	cancel()
	if err != nil {
		return rep, fmt.Errorf("%s killed and restarted: %w", leaf.Name, err)
	}
	if err = wait(leaf.Name+" killed (SIGKILL), restarted and converged", start, nil); err != nil {
		return rep, err
	}

	// A spine link failed: the leaf's end set down (its peer loses carrier).
	i := leaf.Interfaces[0]
	down := map[int]bool{i.Link: true}
	start = time.Now()
	if err := f.SetLink(leaf.Name, i.Name, false); err != nil {
		return rep, err
	}
	if err = wait(fmt.Sprintf("link %s-%s down", leaf.Name, i.Peer), start, down); err != nil {
		return rep, err
	}
	start = time.Now()
	if err := f.SetLink(leaf.Name, i.Name, true); err != nil {
		return rep, err
	}
	if err = wait(fmt.Sprintf("link %s-%s up again", leaf.Name, i.Peer), start, nil); err != nil {
		return rep, err
	}
	return rep, nil
}

func (f *Fabric) firstOfRole(r Role) *NodeInfo {
	for _, n := range f.nodes {
		if n.Role == r {
			return n
		}
	}
	return nil
}

// SetLink sets the node's interface up or down.
func (f *Fabric) SetLink(node, iface string, up bool) error {
	h := f.Namespace(node)
	if h == nil {
		return fmt.Errorf("link %s on %s: no namespace", iface, node)
	}
	l, err := h.Handle().LinkByName(iface)
	if err == nil {
		if up {
			err = h.Handle().LinkSetUp(l)
		} else {
			err = h.Handle().LinkSetDown(l)
		}
	}
	if err != nil {
		return fmt.Errorf("link %s on %s up=%v: %w", iface, node, up, err)
	}
	return nil
}

// Reach pings each pair over IPv4 and IPv6, from inside the first
// workload's namespace, 16 at a time, and returns the failures. A ping is
// tried three times: a loaded machine may drop one.
func (f *Fabric) Reach(ctx context.Context, pairs [][2]Workload) []string {
	return eachProbe(pairs, func(p [2]Workload, fam int) string {
		var err error
		for try := 0; try < 3; try++ {
			if err = f.PingWorkload(ctx, p[0], p[1], fam); err == nil {
				return ""
			}
		}
		return err.Error()
	})
}

// eachProbe runs probe for each pair and family (IPv4, IPv6), 16 at a
// time, and returns what the probes said went wrong ("" for nothing).
func eachProbe(pairs [][2]Workload, probe func(p [2]Workload, fam int) string) []string {
	var mu sync.Mutex
	var out []string
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, p := range pairs {
		for _, fam := range []int{4, 6} {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if msg := probe(p, fam); msg != "" {
					mu.Lock()
					out = append(out, msg)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	return out
}

// Memory is the fabric's memory as the kernel counts it, in KiB, summed
// over the running switchd daemons, by role: resident (VmRSS, which
// counts the binary's image every node shares in the page cache) and
// private anonymous (RssAnon, what each node costs on its own).
type Memory struct {
	RSS, Anon             uint64
	RSSByRole, AnonByRole map[Role]uint64
	Count                 map[Role]int
}

func (m Memory) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "switchd RSS %.1f MiB (anon %.1f MiB) total", float64(m.RSS)/1024, float64(m.Anon)/1024)
	for _, r := range []Role{Spine, Leaf, Host} {
		if c := float64(m.Count[r]); c > 0 {
			fmt.Fprintf(&b, ", %s avg %.1f (anon %.1f) MiB", r, float64(m.RSSByRole[r])/1024/c, float64(m.AnonByRole[r])/1024/c)
		}
	}
	return b.String()
}

// Memory reads every running switchd daemon's VmRSS and RssAnon.
func (f *Fabric) Memory() (Memory, error) {
	m := Memory{RSSByRole: map[Role]uint64{}, AnonByRole: map[Role]uint64{}, Count: map[Role]int{}}
	for _, n := range f.nodes {
		if n.Kind != Switchd || !f.Running(n.Name) {
			continue
		}
		p := fmt.Sprintf("/proc/%d/status", f.PID(n.Name))
		rss, err := ProcKiB(p, "VmRSS")
		if err != nil {
			return m, fmt.Errorf("memory of %s: %w", n.Name, err)
		}
		anon, err := ProcKiB(p, "RssAnon")
		if err != nil {
			return m, fmt.Errorf("memory of %s: %w", n.Name, err)
		}
		m.RSS += rss
		m.Anon += anon
		m.RSSByRole[n.Role] += rss
		m.AnonByRole[n.Role] += anon
		m.Count[n.Role]++
	}
	return m, nil
}

// MemAvailable is the machine's MemAvailable (/proc/meminfo), in KiB: its
// drop over a run counts the kernel's share too (namespaces, veths, routes,
// sockets), which no process's RSS shows.
func MemAvailable() (uint64, error) { return ProcKiB("/proc/meminfo", "MemAvailable") }

// ProcKiB reads a "Name:   123 kB" line of a /proc file (status,
// smaps_rollup, meminfo).
func ProcKiB(path, name string) (uint64, error) {
	key := name + ":"
	fh, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			fs := strings.Fields(rest)
			if len(fs) == 0 {
				break
			}
			return strconv.ParseUint(fs[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}
