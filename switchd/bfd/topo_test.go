package bfd

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	pnl "github.com/switchd/switchd/platform/netlink"
	"github.com/switchd/switchd/sim/ns"
)

func TestMain(m *testing.M) { ns.TestMain(m) }

// patience bounds every wait for something expected to happen; the
// machine may be loaded, and no assertion is about speed.
const patience = 60 * time.Second

// topo is two namespaces, a (ours) and b (the peer), linked directly
// (eth0: 10.0.0.1/fd00::1 — 10.0.0.2/fd00::2) and through a router r
// (a's r0 10.0.1.1/fd01::1, b's r0 10.0.2.1/fd02::1), so that a packet
// sent with TTL 255 arrives with 255 on the direct link and 254 through r.
type topo struct {
	a, b, r *ns.NS
}

func newTopo(t *testing.T) *topo {
	t.Helper()
	tp := &topo{a: ns.NewT(t, "bfd-a"), b: ns.NewT(t, "bfd-b"), r: ns.NewT(t, "bfd-r")}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ns.Veth(tp.a, "eth0", tp.b, "eth0"))
	must(ns.Veth(tp.a, "r0", tp.r, "a"))
	must(ns.Veth(tp.b, "r0", tp.r, "b"))
	for _, x := range []struct {
		n     *ns.NS
		link  string
		addrs string
	}{
		{tp.a, "eth0", "10.0.0.1/24 fd00::1/64"}, {tp.b, "eth0", "10.0.0.2/24 fd00::2/64"},
		{tp.a, "r0", "10.0.1.1/24 fd01::1/64"}, {tp.r, "a", "10.0.1.254/24 fd01::254/64"},
		{tp.b, "r0", "10.0.2.1/24 fd02::1/64"}, {tp.r, "b", "10.0.2.254/24 fd02::254/64"},
	} {
		for _, p := range strings.Fields(x.addrs) {
			must(x.n.AddAddr(x.link, netip.MustParsePrefix(p)))
		}
	}
	must(tp.r.Net().WriteSysctls(pnl.Sysctl{Path: "net/ipv4/ip_forward", Value: "1"},
		pnl.Sysctl{Path: "net/ipv6/conf/all/forwarding", Value: "1"}))
	for _, r := range []struct {
		n   *ns.NS
		dst string
		via string
	}{
		{tp.a, "10.0.2.0/24", "10.0.1.254"}, {tp.a, "fd02::/64", "fd01::254"},
		{tp.b, "10.0.1.0/24", "10.0.2.254"}, {tp.b, "fd01::/64", "fd02::254"},
	} {
		if _, err := r.n.Run(t.Context(), "ip", "route", "add", r.dst, "via", r.via); err != nil {
			t.Fatal(err)
		}
	}
	return tp
}

// peersOfA are a's four sessions with b: single hop on the direct link
// and multihop through r, IPv4 and IPv6.
func peersOfA(tx time.Duration, mult uint8) []PeerConfig {
	return []PeerConfig{
		{Peer: mustAddr("10.0.0.2"), Local: mustAddr("10.0.0.1"), Interface: "eth0", DesiredMinTx: tx, RequiredMinRx: tx, DetectMult: mult},
		{Peer: mustAddr("fd00::2"), Local: mustAddr("fd00::1"), Interface: "eth0", DesiredMinTx: tx, RequiredMinRx: tx, DetectMult: mult},
		{Peer: mustAddr("10.0.2.1"), Local: mustAddr("10.0.1.1"), Multihop: true, DesiredMinTx: tx, RequiredMinRx: tx, DetectMult: mult},
		{Peer: mustAddr("fd02::1"), Local: mustAddr("fd01::1"), Multihop: true, DesiredMinTx: tx, RequiredMinRx: tx, DetectMult: mult},
	}
}

// mirror is cfg seen from b.
func mirror(c PeerConfig) PeerConfig {
	c.Peer, c.Local = c.Local, c.Peer
	return c
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// newEngine starts an engine in n, closed at the test's end.
func newEngine(t testing.TB, n *ns.NS, peers ...PeerConfig) *Engine {
	t.Helper()
	e, err := New(WithNetNS(n.Net()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	for _, p := range peers {
		if err := e.AddPeer(p); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// watcher collects an engine's state changes.
type watcher struct {
	e    *Engine
	seen []Change
	// more adds to a failure's message (the peer's log).
	more func() string
}

// waitFor waits until cond holds for the changes seen so far, failing
// after patience.
func (w *watcher) waitFor(t *testing.T, what string, cond func([]Change) bool) {
	t.Helper()
	deadline := time.After(patience)
	for {
		w.seen = append(w.seen, w.e.Drain()...)
		if cond(w.seen) {
			return
		}
		select {
		case <-w.e.Updates():
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			var more string
			if w.more != nil {
				more = w.more()
			}
			t.Fatalf("%s: not within %v; changes %v; sessions %v\n%s", what, patience, w.seen, describe(w.e.Sessions()), more)
		}
	}
}

// lastIs holds when the last change of each key went to want (with diag,
// unless diag is -1).
func lastIs(keys []Key, want State, diag int) func([]Change) bool {
	return func(cs []Change) bool {
		last := map[Key]Change{}
		for _, c := range cs {
			last[c.Peer] = c
		}
		for _, k := range keys {
			c, ok := last[k]
			if !ok || c.New != want || (diag >= 0 && c.Diag != Diag(diag)) {
				return false
			}
		}
		return true
	}
}

func keys(cfgs []PeerConfig) []Key {
	var ks []Key
	for _, c := range cfgs {
		ks = append(ks, c.Key())
	}
	return ks
}

func describe(ss []Session) string {
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "\n  %v: %v remote %v diag %v, tx %v detect %v, rx %d tx %d", s.Config.Key(), s.State, s.RemoteState,
			s.LocalDiag, s.TxInterval, s.DetectionTime, s.RxPackets, s.TxPackets)
	}
	return b.String()
}

// daemon is a peer's process, run in the foreground in its namespace
// so that the test holds its PID: stopped by PID, reaped, and killed at
// the test's end whatever happens.
type daemon struct {
	ns   *ns.NS
	argv []string
	log  string // stdout and stderr go here
	cmd  *exec.Cmd
}

func (d *daemon) start(t testing.TB) {
	t.Helper()
	if d.cmd == nil {
		t.Cleanup(func() { d.stop(t, syscall.SIGKILL) })
	}
	f, err := os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Not CommandContext: the test's context ends before its cleanups.
	d.cmd = d.ns.Command(context.Background(), d.argv...)
	d.cmd.Stdout, d.cmd.Stderr = f, f
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", d.argv[0], err)
	}
}

// stop sends sig to the daemon (`ip netns exec` execs it, so the PID is
// the daemon's) and waits for it to exit.
func (d *daemon) stop(t testing.TB, sig syscall.Signal) {
	if d.cmd == nil || d.cmd.Process == nil || d.cmd.ProcessState != nil {
		return
	}
	syscall.Kill(d.cmd.Process.Pid, sig)
	d.cmd.Wait()
}

// logTail is the end of the daemon's log, for failure messages.
func (d *daemon) logTail() string {
	b, _ := os.ReadFile(d.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
