package bench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/switchd/config/configtest"
)

// Kernel route protocols (rtm_protocol) the receivers mark their routes
// with.
const (
	protoBIRD = 12  // RTPROT_BIRD
	protoFRR  = 186 // RTPROT_BGP, zebra's mark for bgpd's routes
)

// Env is what a receiver is started with: its namespace, a private
// directory, and the session's addresses and AS numbers.
type Env struct {
	NS       *ns.NS
	Dir      string
	Addr     netip.Addr // the receiver's address on the link
	PeerAddr netip.Addr // the source's
	AS       uint32
	PeerAS   uint32
	Bin      Binaries
}

// Binaries are the executables built for the run.
type Binaries struct {
	Switchd  string // `switchd` (github.com/switchd/switchd/switchd)
	GoBGPRIB string // sim/bench/cmd/gobgprib: GoBGP v4.8 alone
	// Profile records CPU profiles: switchd's through its local API
	// socket (Dir/switchd.cpu.pprof, and a heap profile once all routes
	// are in), GoBGP alone's by itself.
	Profile bool
}

// Receiver is one BGP implementation under test.
type Receiver struct {
	Name string
	// Protocol is the kernel route protocol of the routes it installs; 0
	// means it keeps routes in its RIB only and serves the GoBGP API on
	// 127.0.0.1:50051 in its namespace, where progress is read.
	Protocol int
	// PollRIB: progress of a RIB-only receiver is polled with Debian's
	// gobgp command (a GoBGP 3 API, which has no working End-of-RIB
	// watch), not watched over GoBGP v4's API.
	PollRIB bool
	// Needs lists the executables it runs.
	Needs func(Binaries) []string
	Start func(ctx context.Context, e *Env) (*Proc, error)
}

// Proc is a running receiver: the processes it consists of.
type Proc struct {
	cmds []*exec.Cmd
	// ProfileFile is written on Stop if the receiver runs under a profile;
	// ProfileErr says why it is missing or short.
	ProfileFile string
	ProfileErr  error
	// HeapFile, if set, is written by HeapProfile.
	HeapFile string
	// socket is a switchd's local API, for its profiles; cpu records the
	// CPU profile through it.
	socket string
	cpu    *cpuProfiler
}

// PIDs of the receiver's processes.
func (p *Proc) PIDs() []int {
	var pids []int
	for _, c := range p.cmds {
		pids = append(pids, c.Process.Pid)
	}
	return pids
}

// PeakRSS sums VmHWM over the processes.
func (p *Proc) PeakRSS() (uint64, error) {
	var sum uint64
	for _, pid := range p.PIDs() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return 0, fmt.Errorf("peak rss of pid %d: %w", pid, err)
		}
		found := false
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[0] == "VmHWM:" {
				kb, err := strconv.ParseUint(f[1], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("peak rss of pid %d: %q: %w", pid, l, err)
				}
				sum += kb << 10
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("peak rss of pid %d: no VmHWM in /proc/%d/status", pid, pid)
		}
	}
	return sum, nil
}

// Exited reports a process of the receiver that is gone.
func (p *Proc) Exited() error {
	for _, c := range p.cmds {
		if c.ProcessState != nil {
			return fmt.Errorf("%s exited: %v", c.Path, c.ProcessState)
		}
		if err := syscall.Kill(c.Process.Pid, 0); err != nil {
			return fmt.Errorf("%s (pid %d) is gone: %w", strings.Join(c.Args, " "), c.Process.Pid, err)
		}
	}
	return nil
}

// HeapProfile writes the receiver's heap profile to HeapFile, if it has
// one.
func (p *Proc) HeapProfile() error {
	if p.HeapFile == "" || p.socket == "" {
		return nil
	}
	return heapProfile(p.socket, p.HeapFile)
}

// Stop ends the processes: a CPU profile read through the socket is
// finished first; a process that writes its own profile gets SIGTERM (and
// a few seconds to write it); then SIGKILL for everything.
func (p *Proc) Stop() {
	if p.cpu != nil {
		p.ProfileErr = p.cpu.finish(p.ProfileFile)
		p.cpu = nil
	} else if p.ProfileFile != "" && len(p.cmds) > 0 {
		c := p.cmds[0]
		c.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	}
	for i := len(p.cmds) - 1; i >= 0; i-- {
		c := p.cmds[i]
		c.Process.Kill()
		c.Wait()
	}
}

// start runs argv in e.NS with output to Dir/name.log. `ip netns exec`
// execs argv, so the command's PID is the daemon's.
func (e *Env) start(ctx context.Context, p *Proc, name string, argv ...string) error {
	log, err := os.Create(filepath.Join(e.Dir, name+".log"))
	if err != nil {
		return err
	}
	defer log.Close()
	// Not CommandContext: the receiver lives until Stop, not until ctx.
	c := e.NS.Command(context.Background(), argv...)
	c.Stdout, c.Stderr = log, log
	if err := c.Start(); err != nil {
		return fmt.Errorf("start %s in %s: %w", name, e.NS.Name, err)
	}
	p.cmds = append(p.cmds, c)
	return nil
}

func startErr(p *Proc, e *Env, name string, err error) error {
	p.Stop()
	b, _ := os.ReadFile(filepath.Join(e.Dir, name+".log"))
	return fmt.Errorf("%s: %w\n%s", name, err, lastLines(string(b), 20))
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// Receivers is every receiver of the benchmark, in report order.
var Receivers = []Receiver{Switchd, GoBGPRIB, GoBGPd, BIRD, FRR}

// switchdProtocol is the kernel route protocol switchd marks its routes
// with, a documented constant of the product (README, design rules): the
// benchmark counts them as any user would, without importing fib.
const switchdProtocol = 77

// Switchd is `switchd run` with a one-neighbor config (passive: the source
// connects).
var Switchd = Receiver{
	Name:     "switchd",
	Protocol: switchdProtocol,
	Needs:    func(b Binaries) []string { return []string{b.Switchd} },
	Start: func(ctx context.Context, e *Env) (*Proc, error) {
		cfg := filepath.Join(e.Dir, "switchd.json")
		if err := os.WriteFile(cfg, switchdConfig(e), 0o644); err != nil {
			return nil, err
		}
		p := &Proc{}
		sock := filepath.Join(e.Dir, "api.sock")
		if err := e.start(ctx, p, "switchd", e.Bin.Switchd, "run", "--config", cfg, "--socket", sock,
			"--state-dir", filepath.Join(e.Dir, "state"), "--log-level", "warn"); err != nil {
			return nil, err
		}
		if e.Bin.Profile {
			// The profiles come from the daemon's local API, as any
			// user would take them: switchd has no profiling flag.
			p.socket = sock
			p.ProfileFile = filepath.Join(e.Dir, "switchd.cpu.pprof")
			p.HeapFile = filepath.Join(e.Dir, "switchd.heap.pprof")
			p.cpu = startCPUProfiler(sock)
		}
		return p, nil
	},
}

func switchdConfig(e *Env) []byte {
	// Long timers: a loaded benchmark must not end its session.
	return configtest.BGP{ASN: e.AS, RouterID: e.Addr.String(), Neighbors: []configtest.Neighbor{{
		Address: e.PeerAddr.String(), PeerAS: e.PeerAS, Hold: 180, Keepalive: 60, Passive: true,
		Import: configtest.Accept, Export: configtest.Accept,
	}}}.JSON()
}

// GoBGPRIB is GoBGP v4.8 (the version switchd embeds) alone: a BgpServer
// filling its RIB, no FIB (sim/bench/cmd/gobgprib).
var GoBGPRIB = Receiver{
	Name:  "gobgp-4.8-rib",
	Needs: func(b Binaries) []string { return []string{b.GoBGPRIB} },
	Start: func(ctx context.Context, e *Env) (*Proc, error) {
		p := &Proc{}
		argv := []string{e.Bin.GoBGPRIB,
			"--as", strconv.Itoa(int(e.AS)), "--router-id", e.Addr.String(),
			"--peer", e.PeerAddr.String(), "--peer-as", strconv.Itoa(int(e.PeerAS)),
			"--api", "127.0.0.1:50051"}
		if e.Bin.Profile {
			p.ProfileFile = filepath.Join(e.Dir, "gobgp.cpu.pprof")
			argv = append(argv, "--cpuprofile", p.ProfileFile)
		}
		err := e.start(ctx, p, "gobgprib", argv...)
		if err != nil {
			return nil, err
		}
		return p, nil
	},
}

// GoBGPd is Debian's gobgpd (3.10) alone, no FIB.
var GoBGPd = Receiver{
	Name:    "gobgpd-3.10-rib",
	PollRIB: true,
	Needs:   func(Binaries) []string { return []string{"gobgpd"} },
	Start: func(ctx context.Context, e *Env) (*Proc, error) {
		cfg := filepath.Join(e.Dir, "gobgpd.toml")
		conf := fmt.Sprintf(`[global.config]
  as = %d
  router-id = %q
[[neighbors]]
  [neighbors.config]
    neighbor-address = %q
    peer-as = %d
  [neighbors.timers.config]
    hold-time = 180
    keepalive-interval = 60
  [neighbors.transport.config]
    passive-mode = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
`, e.AS, e.Addr, e.PeerAddr, e.PeerAS)
		if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
			return nil, err
		}
		p := &Proc{}
		if err := e.start(ctx, p, "gobgpd", "gobgpd", "-f", cfg, "--api-hosts", "127.0.0.1:50051", "-l", "warn", "--pprof-disable"); err != nil {
			return nil, err
		}
		return p, nil
	},
}

// BIRD is BIRD 2 with the bgp and kernel protocols, in the foreground.
var BIRD = Receiver{
	Name:     "bird2",
	Protocol: protoBIRD,
	Needs:    func(Binaries) []string { return []string{"bird"} },
	Start: func(ctx context.Context, e *Env) (*Proc, error) {
		cfg := filepath.Join(e.Dir, "bird.conf")
		conf := fmt.Sprintf(`log stderr { warning, error, fatal };
router id %s;
protocol device {}
protocol kernel { ipv4 { import none; export all; }; learn off; }
protocol bgp feed {
  local %s as %d;
  neighbor %s as %d;
  passive on;
  hold time 180;
  ipv4 { import all; export none; };
}
`, e.Addr, e.Addr, e.AS, e.PeerAddr, e.PeerAS)
		if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
			return nil, err
		}
		p := &Proc{}
		if err := e.start(ctx, p, "bird", "bird", "-f", "-c", cfg, "-s", filepath.Join(e.Dir, "bird.ctl")); err != nil {
			return nil, err
		}
		return p, nil
	},
}

// FRR is FRR's zebra and bgpd (passive neighbor, no eBGP policy needed).
var FRR = Receiver{
	Name:     "frr",
	Protocol: protoFRR,
	Needs:    func(Binaries) []string { return []string{"/usr/lib/frr/zebra", "/usr/lib/frr/bgpd"} },
	Start: func(ctx context.Context, e *Env) (*Proc, error) {
		// The daemons drop to user frr, which must own their directory.
		u, err := user.Lookup("frr")
		if err != nil {
			return nil, fmt.Errorf("frr: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(e.Dir, uid, gid); err != nil {
			return nil, fmt.Errorf("frr: chown %s: %w", e.Dir, err)
		}
		zconf := filepath.Join(e.Dir, "zebra.conf")
		bconf := filepath.Join(e.Dir, "bgpd.conf")
		if err := os.WriteFile(zconf, []byte("hostname receiver\n"), 0o644); err != nil {
			return nil, err
		}
		conf := fmt.Sprintf(`hostname receiver
router bgp %d
 bgp router-id %s
 no bgp ebgp-requires-policy
 neighbor %s remote-as %d
 neighbor %s passive
 neighbor %s timers 60 180
 address-family ipv4 unicast
  neighbor %s activate
 exit-address-family
`, e.AS, e.Addr, e.PeerAddr, e.PeerAS, e.PeerAddr, e.PeerAddr, e.PeerAddr)
		if err := os.WriteFile(bconf, []byte(conf), 0o644); err != nil {
			return nil, err
		}
		zserv := filepath.Join(e.Dir, "zserv.api")
		p := &Proc{}
		if err := e.start(ctx, p, "zebra", "/usr/lib/frr/zebra", "-u", "frr", "-g", "frr", "-P", "0",
			"-s", "134217728", "-f", zconf, "-i", filepath.Join(e.Dir, "zebra.pid"), "-z", zserv,
			"--vty_socket", e.Dir, "--log", "file:"+filepath.Join(e.Dir, "zebra.file.log")); err != nil {
			return nil, err
		}
		if err := waitFor(ctx, 20*time.Second, func() bool {
			_, err := os.Stat(zserv)
			return err == nil
		}); err != nil {
			return nil, startErr(p, e, "zebra", fmt.Errorf("no %s: %w", zserv, err))
		}
		if err := e.start(ctx, p, "bgpd", "/usr/lib/frr/bgpd", "-u", "frr", "-g", "frr", "-P", "0",
			"-f", bconf, "-i", filepath.Join(e.Dir, "bgpd.pid"), "-z", zserv,
			"--vty_socket", e.Dir, "--log", "file:"+filepath.Join(e.Dir, "bgpd.file.log")); err != nil {
			p.Stop()
			return nil, err
		}
		return p, nil
	},
}

// Missing returns the executables of r that are not installed or built.
func (r Receiver) Missing(b Binaries) []string {
	var miss []string
	for _, x := range r.Needs(b) {
		if x == "" {
			miss = append(miss, r.Name+" binary (not built)")
			continue
		}
		if _, err := exec.LookPath(x); err != nil {
			miss = append(miss, x)
		}
	}
	return miss
}

func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}
