package sim

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// WorkloadParallel is how many endpoint API calls a generated fabric's
// workloads are attached with at once, across the hosts.
const WorkloadParallel = 16

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// scaleTimeout is how long sim up waits for a generated fabric of n nodes:
// the paced start takes a while per node on a loaded machine.
func scaleTimeout(nodes int) time.Duration {
	return 2*time.Minute + time.Duration(nodes)*time.Second
}

// upScaleWorkloads attaches perHost workloads to every host of a generated
// fabric at once and reports the rate, then waits for every FIB to hold
// them (Verify).
func upScaleWorkloads(ctx context.Context, w io.Writer, f *Fabric, perHost int) (int, error) {
	start := time.Now()
	ws, err := f.AddWorkloadsParallel(ctx, perHost, WorkloadParallel)
	d := time.Since(start)
	fmt.Fprintf(w, "%d workloads attached in %v (%.1f/s, %d API calls at once)\n",
		len(ws), d.Round(time.Millisecond), float64(len(ws))/d.Seconds(), WorkloadParallel)
	if err != nil {
		return 1, fmt.Errorf("attach workloads: %w", err)
	}
	vctx, cancel := context.WithTimeout(ctx, scaleTimeout(len(f.nodes)))
	defer cancel()
	r, err := f.WaitFIBsExact(vctx, nil)
	if err != nil {
		return 1, err
	}
	fmt.Fprintf(w, "every FIB exact (%d nodes, %d routes) %v after the last workload\n",
		r.Nodes, r.Routes, time.Since(start.Add(d)).Round(time.Millisecond))
	return 0, nil
}

// notConvergedLine is sim status's last line for a fabric that is not
// converged: how many nodes, and the first few with what they lack.
func notConvergedLine(st []NodeStatus) string {
	var bad []string
	n := 0
	for _, s := range st {
		if s.Converged() {
			continue
		}
		n++
		if len(bad) == 5 {
			continue
		}
		bad = append(bad, fmt.Sprintf("%s (%s)", s.Name, s.state()))
	}
	more := ""
	if n > len(bad) {
		more = ", ..."
	}
	return fmt.Sprintf("not converged: %d of %d nodes: %s%s", n, len(st), strings.Join(bad, ", "), more)
}

// state says in a few words what is wrong with the node, or "ok".
func (s *NodeStatus) state() string {
	switch {
	case !s.Running:
		return "not running"
	case s.Err != "":
		return s.Err
	case s.SessionsUp < s.SessionsTotal:
		return fmt.Sprintf("sessions %d/%d up", s.SessionsUp, s.SessionsTotal)
	case len(s.Missing) > 0:
		return fmt.Sprintf("%d loopbacks unreachable", len(s.Missing))
	}
	return "ok"
}
