// Package daemon wires switchd's components together: the validated intent
// from the config file feeds the BGP speaker and the FIB; routes the
// speaker learns flow into the FIB; a local API reports state.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/host/docker"
	"github.com/switchd/switchd/platform"
	"github.com/switchd/switchd/policy"
	"github.com/switchd/switchd/switchd/bgp"
	"github.com/switchd/switchd/switchd/config"
)

// Options configure a daemon run.
type Options struct {
	ConfigPath string
	// Socket is the unix socket of the local API (status today; the CNI
	// plugin's requests later).
	Socket   string
	StateDir string
	Logger   *slog.Logger
	// ResyncInterval is how often the FIB is compared with a fresh kernel
	// dump, repairing anything changed behind switchd's back.
	ResyncInterval time.Duration
	// CountersInterval is how often the ACL entries' counters are read
	// into the status (default 10 s; only while ACLs are configured).
	CountersInterval time.Duration
	// State, if not nil, takes the OpenConfig state tree (the gNMI
	// server's cache): the daemon renders its components' feeds into it
	// (state.go). Nil: nothing is rendered.
	State StatePublisher
	// StateInterval is how often interface counters and /system are
	// sampled into the state tree (default 1 s).
	StateInterval time.Duration
	// HashPolicy overrides the config's ECMP hash (/switchd/config/
	// ecmp-hash-policy, default L4; fib_multipath_hash_policy for IPv4 and
	// IPv6); -1 leaves the kernel's setting alone.
	HashPolicy *int
	// GNMISocket is the local gNMI socket (root only, no TLS). With it, or
	// with a listener in the config (/system/grpc-servers), the daemon
	// runs a gNMI server, its state publisher unless State is given
	// (gnmi.go).
	GNMISocket string
	// PlatformRoot is where platform detection reads the machine
	// (ONIE's machine.conf, /sys, /proc): "/" if empty; tests give a
	// fake tree (testdata/platform).
	PlatformRoot string
	// DockerSocket, if set, serves Docker's network and IPAM driver there
	// (docker.DefaultSocket is where dockerd looks); needs IPAM pools.
	DockerSocket string
	// SmallHeapGOGC is the GC percent while the live heap is small (an
	// idle host: memory.go); <= 0 keeps Go's default of 100.
	SmallHeapGOGC int
}

// resilientIdle is how long a resilient group's bucket must be idle before
// a next hop that came back takes it over, so returning paths do not
// break flows that are running.
const resilientIdle = 30 * time.Second

// setHashPolicy sets the kernel's ECMP hash: Options.HashPolicy if given,
// else the config's.
func setHashPolicy(opts Options, configured int) {
	policy := configured
	if opts.HashPolicy != nil {
		policy = *opts.HashPolicy
	}
	if policy < 0 {
		return
	}
	if err := platform.SetMultipathHashPolicy(nil, policy); err != nil {
		opts.Logger.Warn("ECMP hash policy not set", "policy", policy, "err", err)
	}
}

// Daemon is one running switchd: wiring. Its loop goroutine owns the FIB
// table and the route maps; everything else reaches them through channels
// or the status board. It talks to its components through the interfaces
// of components.go, so tests run it on fakes.
type Daemon struct {
	opts Options
	log  *slog.Logger
	components
	// unreachable are the BGP next hops the FIB cannot resolve or that lie
	// on a link without carrier, as last told to the speaker (nht.go).
	unreachable []netip.Addr

	intent    *config.Intent
	workloads *workloads // nil unless pools or VMs are configured
	// statics holds the config's routes by key; the FIB's desired set is
	// these, the routes learned over BGP (the speaker keeps that set; fib
	// keeps the routes) and workload routes.
	statics map[fib.RouteKey]fib.Route
	// bgpRoutes turns the speaker's learned routes into FIB routes
	// (bgpfib.go).
	bgpRoutes *bgpFIB
	// again asks the loop for another Apply at once: the last one was cut
	// short (fib.Table.More) to let urgent work in.
	again chan struct{}
	// reloads asks for the config file to be read again (SIGHUP).
	reloads <-chan os.Signal
	// pol is the loop's bookkeeping of the policy engine (policy.go).
	pol policyLoop
	// groups is the membership of groups carried in BGP (membership.go).
	groups groupMembers

	// neighbors are the speaker's neighbors as its feed last told (the
	// loop's; the status publishes copies).
	neighbors map[netip.Addr]NeighborStatus
	status    statusBoard  // status.go
	st        stateLoop    // the state tree (state.go)
	g         *gnmiServe   // nil: no gNMI (gnmi.go)
	met       *metricsLoop // Prometheus (metrics.go)
	ifl       ifLoop       // the interface reconciler's (interfaces.go)
	bfdl      bfdLoop      // BFD sessions' (bfd.go)

	dockerDrv *docker.Driver // nil: no Docker driver (docker.go)
	kube      kubeLoop       // cluster mode (kubernetes.go)
}

// Run loads the config, starts the components and serves until ctx is done
// or SIGTERM/SIGINT arrives. SIGHUP reloads the config file: a valid file is
// applied as a difference, an invalid one is reported and changes nothing.
// Routes stay in the kernel when Run returns, so traffic keeps flowing
// while switchd restarts.
func Run(ctx context.Context, opts Options) error {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ResyncInterval == 0 {
		opts.ResyncInterval = 30 * time.Second
	}
	if opts.CountersInterval == 0 {
		opts.CountersInterval = 10 * time.Second
	}
	intent, running, err := config.LoadJSON(opts.ConfigPath)
	if err != nil {
		return err
	}
	g, err := newGNMI(&opts, intent, running)
	if err != nil {
		return err
	}
	defer g.Close()
	// The loaded config's garbage goes before the components allocate
	// what they keep, which then packs into fewer pages.
	releaseStartupMemory()
	if opts.StateDir != "" {
		if err := os.MkdirAll(opts.StateDir, 0o750); err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
	}
	setHashPolicy(opts, intent.Dataplane.HashPolicy)
	if err := platform.SetSysctls("/", platform.RouterSysctls); err != nil {
		opts.Logger.Warn("router sysctls not set", "err", err)
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	d := newDaemon(opts)
	d.reloads = hup
	d.g = g
	defer d.met.close()
	c, closeComponents, err := newComponents(ctx, opts, intent, d.urgent)
	if err != nil {
		return err
	}
	defer closeComponents()
	d.attach(c)
	defer func() {
		if d.links != nil { // it may have been replaced (links.go)
			d.links.Close()
		}
	}()
	defer func() {
		if d.workloads != nil {
			d.workloads.m.Close() // endpoints stay in the kernel
		}
	}()
	if err := d.start(ctx, intent); err != nil {
		return err
	}
	g.serveLocal(d)
	d.gnmiConfigured(intent, 0)

	if opts.Socket != "" {
		api, err := d.serveAPI(opts.Socket)
		if err != nil {
			return err
		}
		defer api.Close()
	}
	if opts.DockerSocket != "" {
		stopDocker, err := d.serveDocker(opts.DockerSocket)
		if err != nil {
			return fmt.Errorf("docker driver: %w", err)
		}
		defer stopDocker()
	}
	if intent.Kubernetes.Enabled {
		if err := d.startKubernetes(ctx, intent.Kubernetes); err != nil {
			return fmt.Errorf("kubernetes: %w", err)
		}
	}
	releaseStartupMemory()
	tuneGC(opts.SmallHeapGOGC)
	d.log.Info("switchd running", "config", opts.ConfigPath, "asn", intent.BGP.ASN, "router-id", intent.BGP.RouterID)
	return d.loop(ctx)
}

func newDaemon(opts Options) *Daemon {
	d := &Daemon{
		opts:      opts,
		log:       opts.Logger,
		statics:   make(map[fib.RouteKey]fib.Route),
		neighbors: make(map[netip.Addr]NeighborStatus),
		again:     make(chan struct{}, 1),
		st:        newStateLoop(opts.State),
	}
	d.met = newMetricsLoop(d)
	return d
}

// attach connects the daemon to its components.
func (d *Daemon) attach(c components) {
	d.components = c
	d.bgpRoutes = newBGPFIB(c.speaker, c.table, d.log)
	d.bgpRoutes.memb = &d.groups
}

// newComponents builds and starts the real components, in the order their
// feeds need, and returns a function that stops them. The FIB calls
// interrupt between batches of a long Apply.
func newComponents(ctx context.Context, opts Options, intent *config.Intent, interrupt func() bool) (c components, closeAll func(), err error) {
	var closers []func()
	closeAll = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	c.setHashPolicy = func(policy int) { setHashPolicy(opts, policy) }
	// The monitor subscribes before the table's first dump, so no change
	// in between is missed.
	// It also reports other owners' routes: fib resolves recursive BGP
	// next hops (iBGP, loopback peering) through them.
	fk, err := fib.Open(nil)
	if err != nil {
		return c, nil, fmt.Errorf("fib: %w", err)
	}
	closers = append(closers, fk.Close)
	monitor, err := fk.NewMonitor(fib.MainTable, fib.WithNextHopResolution())
	if err != nil {
		return c, nil, fmt.Errorf("route monitor: %w", err)
	}
	closers = append(closers, monitor.Close)
	c.monitor = monitor
	c.newLinks = func() (linkMonitor, error) {
		m, err := platform.NewLinkMonitor(nil)
		if err != nil {
			return nil, err // not a nil *LinkMonitor in an interface
		}
		return m, nil
	}
	if c.links, err = c.newLinks(); err != nil {
		return c, nil, fmt.Errorf("link monitor: %w", err)
	}
	if c.ifaces, err = openInterfaces(); err != nil {
		return c, nil, err
	}
	closers = append(closers, c.ifaces.Close) // what it configured stays
	// The sweep hold keeps routes a previous switchd left in the kernel
	// until BGP has handed over everything (End-of-RIB from every peer, or
	// the sync timeout): unchanged routes are then never deleted and added
	// again, and traffic keeps flowing through a restart.
	fibOpts := []fib.Opt{
		fib.WithLogger(opts.Logger.With("component", "fib")),
		fib.WithSweepHold(),
		fib.WithInterrupt(interrupt),
		fib.WithNextHopResolution(),
	}
	if b := intent.Dataplane.ResilientBuckets; b > 0 {
		fibOpts = append(fibOpts, fib.WithResilientGroups(b, resilientIdle))
	}
	if opts.State != nil {
		fibOpts = append(fibOpts, fib.WithUpdates()) // the AFT's changes (state.go)
	}
	table := fk.NewTable(fib.MainTable, fibOpts...)
	closers = append(closers, table.Close)
	c.table = table
	sp := bgp.New(bgp.WithLogger(opts.Logger.With("component", "bgp")))
	if err := sp.Start(ctx); err != nil {
		c.links.Close()
		return c, nil, fmt.Errorf("start bgp: %w", err)
	}
	closers = append(closers, sp.Stop)
	c.speaker = sp
	// Policy touches the kernel only in Apply: the first one adopts the
	// table a previous run left, after start has given it every input.
	pe := policy.NewEngine(nil, policy.WithLogger(opts.Logger.With("component", "policy")))
	closers = append(closers, func() { pe.Close() }) // the table stays in the kernel
	// Anti-spoofing is always on: a workload sends from its own addresses
	// (IPv6 has no rp_filter to enforce it), as every endpoint record says.
	if err := pe.SetAntiSpoof(true); err != nil {
		return c, nil, fmt.Errorf("policy: anti-spoofing: %w", err)
	}
	c.policy = pe
	if c.bfd, err = newBFD(opts.Logger); err != nil {
		return c, nil, fmt.Errorf("bfd: %w", err)
	}
	closers = append(closers, func() { c.bfd.Close() }) // AdminDown to every peer: not a failure
	if opts.State != nil {
		ls, err := platform.NewLinkStatsReader(nil)
		if err != nil {
			return c, nil, err
		}
		closers = append(closers, func() { ls.Close() })
		c.linkStats = ls
	}
	return c, closeAll, nil
}

// start brings the components to the config: workloads and statics into
// the FIB, the first Apply adopting what a previous run left, then the
// intent.
func (d *Daemon) start(ctx context.Context, intent *config.Intent) error {
	if err := d.startWorkloads(intent.Workloads); err != nil {
		return err
	}
	if d.workloads != nil {
		d.takeWorkloads()
		// Recorded now, announced by the first Apply with the config's.
		d.announceWorkloads(ctx)
	}
	if d.endpoints != nil {
		// Every endpoint a previous run left is in policy before its
		// first Apply adopts the table, so none loses its elements.
		d.onEndpoints()
	}
	// Interfaces first: their addresses are the connected routes statics
	// and BGP next hops resolve through. Addresses of a previous run are
	// adopted.
	d.setInterfaces(intent)
	d.applyInterfaces(ctx)
	if err := d.setStatics(intent); err != nil {
		return err
	}

	// Adopt what a previous switchd left: the first Apply dumps the table.
	// Routes of ours that nothing local wants (BGP's) mean this is a
	// restart with forwarding state intact, which BGP tells its peers.
	d.table.QueueResync()
	d.applyFIB(ctx)
	if n := d.table.Stale(); n > 0 {
		d.log.Info("adopted routes of a previous run; restarting gracefully", "routes", n)
		if err := d.speaker.SetRestarting(); err != nil {
			return fmt.Errorf("bgp restart mode: %w", err)
		}
	}
	if err := d.applyIntent(ctx, intent); err != nil {
		return err
	}
	// The first policy Apply adopts what a previous run left, with every
	// input given; a failure is retried by the loop.
	d.resyncPolicy()
	d.applyMembership(ctx)
	d.applyPolicy(ctx)
	return nil
}

// applyIntent hands a validated intent to the components. BGP goes first:
// it validates its part as a whole and rejects it before changing anything.
func (d *Daemon) applyIntent(ctx context.Context, in *config.Intent) error {
	if err := d.speaker.Apply(ctx, in.BGP); err != nil {
		return fmt.Errorf("apply bgp config: %w", err)
	}
	if d.workloads != nil {
		if d.intent != nil && (!slices.Equal(d.intent.Workloads.Pools, in.Workloads.Pools) || !slices.Equal(d.intent.Workloads.StaticPrefixes, in.Workloads.StaticPrefixes)) {
			d.log.Warn("IPAM pool and static-prefix changes take effect when switchd restarts")
		}
		if err := d.workloads.setVMs(ctx, in.Workloads.VMs); err != nil {
			d.log.Error("configured VMs", "err", err)
		}
	}
	if err := d.setStatics(in); err != nil {
		return err
	}
	// Config refused a bad policy, so this only changes desired state; the
	// loop's turn applies it.
	d.setPolicy(in)
	d.setInterfaces(in) // likewise
	d.setBFD(ctx, in)
	if d.intent != nil {
		if in.Dataplane.HashPolicy != d.intent.Dataplane.HashPolicy {
			d.setHashPolicy(in.Dataplane.HashPolicy)
		}
		if in.Dataplane.ResilientBuckets != d.intent.Dataplane.ResilientBuckets {
			d.log.Warn("resilient-ecmp-buckets changes take effect when switchd restarts")
		}
	}
	d.setMetrics(in.Metrics)
	d.intent = in
	d.tellUnreachableNeighbors()
	d.status.update(func(st *Status) {
		st.BGP.ASN = in.BGP.ASN
		st.BGP.RouterID = in.BGP.RouterID.String()
	})
	d.publishBGPGlobal(in)
	return nil
}

// setStatics makes the config's static and aggregate routes desired,
// touching only those that changed.
func (d *Daemon) setStatics(in *config.Intent) error {
	want := make(map[fib.RouteKey]fib.Route, len(in.Routes))
	for _, r := range in.Routes {
		r.Key.Priority = StaticRouteMetric
		r.Normalize()
		want[r.Key] = r
	}
	down := d.bfdDownGateways() // withheld while BFD is down (bfd_static.go)
	for k, r := range want {
		old, ok := d.statics[k]
		if err := d.putStatic(r, ok && old.Equal(r), down); err != nil {
			return fmt.Errorf("static route %v: %w", k, err)
		}
	}
	for k := range d.statics {
		if _, ok := want[k]; !ok {
			d.dropStatic(k)
		}
	}
	d.statics = want
	return nil
}

func (d *Daemon) reload(ctx context.Context) {
	defer releaseStartupMemory()
	in, running, err := config.LoadJSON(d.opts.ConfigPath)
	if err != nil {
		d.log.Error("config reload rejected; running config unchanged", "config", d.opts.ConfigPath, "err", err)
		return
	}
	if err := d.applyIntent(ctx, in); err != nil {
		d.log.Error("config reload failed", "err", err)
		return
	}
	if d.g != nil {
		d.g.running = running
	}
	d.gnmiConfigured(in, 0)
	d.log.Info("config reloaded", "config", d.opts.ConfigPath)
}

// socketDir makes sure the API socket's directory exists and no stale
// socket from a previous run blocks the listener.
func socketDir(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
