package sim

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
)

const usage = `usage: switchd sim COMMAND

  up [--topology FILE] [--prefix P] [--switchd PATH] [--timeout D]
                        build the fabric (default: the demo topology), wait for BGP
  up --hosts N [--leaves L] [--spines S] [--workloads W] [--policy-groups G]
                        a generated fabric: racks of hosts dual-homed to leaf pairs
  status                sessions and routes per node
  exec NODE -- CMD...   run CMD in NODE's network namespace
  matrix                every host's loopback pings every other host's (IPv4, IPv6);
                        with a topology policy, an allow/deny matrix of tcp/5432
                        and ping between labelled workloads
  down                  tear the fabric down (also leftovers of crashed runs)
`

// Main implements `switchd sim ...`; args start after "sim". It returns
// the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var err error
	code := 1
	switch args[0] {
	case "up":
		code, err = cmdUp(ctx, args[1:], stdout, stderr, log)
	case "status":
		code, err = cmdStatus(ctx, args[1:], stdout)
	case "exec":
		if len(args) > 1 && (args[1] == "-h" || args[1] == "--help") {
			fmt.Fprintln(stdout, "usage: switchd sim exec NODE -- CMD [ARG...]")
			return 0
		}
		code, err = cmdExec(ctx, args[1:], stdout, stderr)
	case "matrix":
		code, err = cmdMatrix(ctx, args[1:], stdout)
	case "down":
		code, err = cmdDown(ctx, args[1:], stdout, log)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "switchd sim: unknown command %q\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0 // -h: the flag package printed the usage
	}
	if err != nil {
		fmt.Fprintf(stderr, "switchd sim %s: %v\n", args[0], err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func noArgs(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return nil
}

func cmdUp(ctx context.Context, args []string, stdout, stderr io.Writer, log *slog.Logger) (int, error) {
	fs := flag.NewFlagSet("sim up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	topoFile := fs.String("topology", "", "topology file (YAML); default: the built-in demo fabric")
	prefix := fs.String("prefix", "", "namespace name prefix; default: a fresh "+"swd<hex>")
	switchd := fs.String("switchd", "", "switchd binary run on switchd nodes; default: this binary")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait for BGP to converge")
	perHost := fs.Int("workloads", 2, "container workloads to attach to each host with IPAM pools")
	bfdEvery := fs.Duration("bfd", 0, "BFD between switchd nodes at this interval × 3 (e.g. 100ms); 0: off")
	unnumbered := fs.Bool("unnumbered", false, "spine-leaf links get no IPv4 or global IPv6 address: BGP unnumbered over link-local addresses")
	var sc Scale
	fs.IntVar(&sc.Hosts, "hosts", 0, "generate a fabric of this many hosts (racks behind leaf pairs) instead of a topology file")
	fs.IntVar(&sc.Leaves, "leaves", 0, "with --hosts: leaves (even); default a pair per 20 hosts")
	fs.IntVar(&sc.Spines, "spines", 0, "with --hosts: spines; default one per 12 leaves, 2 to 8")
	fs.IntVar(&sc.PolicyGroups, "policy-groups", 0, "with --hosts: a default-deny workload policy with this many groups, workloads labelled into them round robin")
	if err := noArgs(fs, args); err != nil {
		return 2, err
	}
	topo := Default()
	if sc.Hosts > 0 {
		if *topoFile != "" {
			return 2, errors.New("--hosts and --topology exclude each other")
		}
		var err error
		sc.Workloads = *perHost
		if topo, err = ScaleTopology(sc); err != nil {
			return 1, err
		}
		if !flagSet(fs, "timeout") {
			*timeout = scaleTimeout(len(topo.Nodes))
		}
	} else if *topoFile != "" {
		var err error
		if topo, err = LoadTopology(*topoFile); err != nil {
			return 1, err
		}
	}
	if dir, err := CurrentRunDir(); err != nil {
		return 1, err
	} else if dir != "" {
		f, err := Load(dir)
		if err != nil {
			return 1, fmt.Errorf("a fabric is up in %s; run switchd sim down", dir)
		}
		return 1, fmt.Errorf("fabric %s is up; run switchd sim down", f.Prefix)
	}
	if *switchd == "" {
		exe, err := os.Executable()
		if err != nil {
			return 1, fmt.Errorf("find switchd binary: %w", err)
		}
		*switchd = exe
	}
	f, err := New(topo, Options{Prefix: *prefix, SwitchdBinary: *switchd, Logger: log, Unnumbered: *unnumbered, BFD: *bfdEvery})
	if err != nil {
		return 1, err
	}
	fmt.Fprintf(stdout, "fabric %s (%s): %d nodes, %d links; run dir %s\n",
		f.Prefix, topo.Name, len(f.nodes), len(topo.Links), f.RunDir)
	if err := f.Up(ctx); err != nil {
		return 1, err
	}
	if err := SetCurrent(f); err != nil {
		return 1, err
	}
	fmt.Fprintf(stdout, "waiting up to %v for BGP to converge...\n", *timeout)
	wctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	werr := WaitConverged(wctx, f)
	st, _ := f.Status(ctx)
	printStatus(stdout, f, st)
	if werr != nil {
		return 1, fmt.Errorf("%w\nthe fabric stays up for inspection; switchd sim down removes it", werr)
	}
	fmt.Fprintf(stdout, "fabric %s converged\n", f.Prefix)
	if *perHost > 0 && f.hasWorkloadHosts() && topo.Lean {
		return upScaleWorkloads(ctx, stdout, f, *perHost)
	}
	if *perHost > 0 && f.hasWorkloadHosts() {
		ws, err := f.AddWorkloads(ctx, *perHost)
		if err != nil {
			return 1, fmt.Errorf("attach workloads: %w", err)
		}
		fmt.Fprintf(stdout, "\n%d workloads attached through the hosts' endpoint API:\n", len(ws))
		printWorkloads(stdout, ws)
	}
	return 0, nil
}

// currentFabric loads the fabric the CLI works on, for a command that
// takes no arguments; on error it returns the exit code to use.
func currentFabric(cmd string, args []string) (*Fabric, int, error) {
	if err := noArgs(flag.NewFlagSet(cmd, flag.ContinueOnError), args); err != nil {
		return nil, 2, err
	}
	f, err := LoadCurrent()
	if err != nil {
		return nil, 1, err
	}
	return f, 0, nil
}

func cmdStatus(ctx context.Context, args []string, stdout io.Writer) (int, error) {
	f, code, err := currentFabric("sim status", args)
	if err != nil {
		return code, err
	}
	defer f.Close()
	st, err := f.Status(ctx)
	if err != nil {
		return 1, err
	}
	fmt.Fprintf(stdout, "fabric %s (%s), run dir %s\n", f.Prefix, f.Topology.Name, f.RunDir)
	printStatus(stdout, f, st)
	printManagement(stdout, f)
	if ws, err := f.Workloads(ctx); err != nil {
		fmt.Fprintf(stdout, "workloads: %v\n", err)
	} else if len(ws) > 0 && f.Topology.Lean {
		fmt.Fprintf(stdout, "\n%d workloads on %d hosts\n", len(ws), len(f.hostNodes()))
	} else if len(ws) > 0 {
		fmt.Fprintln(stdout)
		printWorkloads(stdout, ws)
	}
	if !Converged(st) {
		fmt.Fprintln(stdout, notConvergedLine(st))
		return 1, nil
	}
	fmt.Fprintln(stdout, "converged")
	return 0, nil
}

func printStatus(w io.Writer, f *Fabric, st []NodeStatus) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tKIND\tASN\tPID\tBGP\tROUTES\tLOOPBACKS\tSTATE")
	for _, s := range st {
		v4, v6 := f.Loopbacks(s.Name)
		state := s.state()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d/%d\t%d\t%s %s\t%s\n",
			s.Name, s.Role, s.Kind, s.ASN, s.PID, s.SessionsUp, s.SessionsTotal, s.Routes, v4, v6, state)
	}
	tw.Flush()
}

func cmdExec(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	if len(args) < 2 {
		return 2, errors.New("usage: switchd sim exec NODE -- CMD [ARG...]")
	}
	node, argv := args[0], args[1:]
	if argv[0] == "--" {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		return 2, errors.New("usage: switchd sim exec NODE -- CMD [ARG...]")
	}
	f, err := LoadCurrent()
	if err != nil {
		return 1, err
	}
	defer f.Close()
	// Not tied to ctx: an interactive command handles ^C itself.
	cmd, err := f.Command(context.WithoutCancel(ctx), node, argv...)
	if err != nil {
		return 1, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), nil
		}
		return 1, err
	}
	return 0, nil
}

func cmdMatrix(ctx context.Context, args []string, stdout io.Writer) (int, error) {
	f, code, err := currentFabric("sim matrix", args)
	if err != nil {
		return code, err
	}
	defer f.Close()
	fmt.Fprintln(stdout, "host loopbacks:")
	m := f.Matrix(ctx)
	m.Print(stdout)
	failed, total := m.Failures(), len(m.Results)
	ws, err := f.Workloads(ctx)
	if err != nil {
		return 1, err
	}
	if f.Topology.PolicyTree != nil {
		// Workload policy denies some pings on purpose: show what it
		// allows between labelled workloads instead of counting denials
		// as failures.
		lw := Labelled(ws)
		if len(lw) < 2 {
			return 1, errNoLabels
		}
		fmt.Fprintf(stdout, "workload policy (%s), IPv4:\n", f.Topology.Policy)
		pm, err := f.WorkloadPolicyMatrix(ctx, lw)
		if err != nil {
			return 1, err
		}
		pm.Print(stdout)
	} else if len(ws) > 1 {
		fmt.Fprintln(stdout, "workloads:")
		wm := f.WorkloadMatrix(ctx, ws)
		wm.Print(stdout)
		failed, total = failed+wm.Failures(), total+len(wm.Results)
	}
	if failed > 0 {
		return 1, fmt.Errorf("%d of %d pings failed", failed, total)
	}
	return 0, nil
}

func cmdDown(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) (int, error) {
	fs := flag.NewFlagSet("sim down", flag.ContinueOnError)
	if err := noArgs(fs, args); err != nil {
		return 2, err
	}
	var errs []error
	cur, err := CurrentRunDir()
	if err != nil {
		errs = append(errs, err)
	}
	if cur != "" {
		if f, err := Load(cur); err != nil {
			errs = append(errs, err)
		} else {
			f.log = log
			if err := f.Down(ctx); err != nil {
				errs = append(errs, err)
			} else {
				fmt.Fprintf(stdout, "fabric %s down\n", f.Prefix)
			}
		}
	}
	// Leftovers of crashed runs.
	gone, err := Cleanup(ctx, RunRoot, log)
	if err != nil {
		errs = append(errs, err)
	}
	for _, p := range gone {
		fmt.Fprintf(stdout, "removed leftovers of fabric %s\n", p)
	}
	os.Remove(CurrentFile())
	if cur == "" && len(gone) == 0 && len(errs) == 0 {
		fmt.Fprintln(stdout, "no fabric was up")
	}
	return 0, errors.Join(errs...)
}

// Matrix is the result of pinging every pair of hosts.
type Matrix struct {
	Nodes   []string
	Results map[MatrixKey]error
}

// MatrixKey is one ping: From's loopback to To's, over Family 4 or 6.
type MatrixKey struct {
	From, To string
	Family   int
}

// Matrix pings from every host's loopback to every other host's, over IPv4
// and IPv6 (all nodes if the topology has no hosts).
func (f *Fabric) Matrix(ctx context.Context) *Matrix {
	var nodes []string
	for _, n := range f.nodes {
		if n.Role == Host {
			nodes = append(nodes, n.Name)
		}
	}
	if len(nodes) == 0 {
		nodes = f.names()
	}
	return pingMatrix(nodes, func(a, b string, fam int) error { return f.Ping(ctx, a, b, fam) })
}

// pingMatrix runs ping for every ordered pair of labels and both families,
// 16 at a time.
func pingMatrix(labels []string, ping func(a, b string, fam int) error) *Matrix {
	m := &Matrix{Nodes: labels, Results: map[MatrixKey]error{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, fam := range []int{4, 6} {
		for _, a := range labels {
			for _, b := range labels {
				if a == b {
					continue
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					sem <- struct{}{}
					err := ping(a, b, fam)
					<-sem
					mu.Lock()
					m.Results[MatrixKey{a, b, fam}] = err
					mu.Unlock()
				}()
			}
		}
	}
	wg.Wait()
	return m
}

// Failures counts the pings that got no reply.
func (m *Matrix) Failures() int {
	n := 0
	for _, err := range m.Results {
		if err != nil {
			n++
		}
	}
	return n
}

// Print writes one table per family: rows ping from, columns ping to.
func (m *Matrix) Print(w io.Writer) {
	for _, fam := range []int{4, 6} {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "IPv%d from\\to\t%s\n", fam, strings.Join(m.Nodes, "\t"))
		for _, a := range m.Nodes {
			row := []string{a}
			for _, b := range m.Nodes {
				cell := "-"
				if a != b {
					cell = "ok"
					if m.Results[MatrixKey{a, b, fam}] != nil {
						cell = "FAIL"
					}
				}
				row = append(row, cell)
			}
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	for _, fam := range []int{4, 6} {
		for _, a := range m.Nodes {
			for _, b := range m.Nodes {
				if err := m.Results[MatrixKey{a, b, fam}]; err != nil {
					fmt.Fprintf(w, "FAIL %v\n", err)
				}
			}
		}
	}
}
