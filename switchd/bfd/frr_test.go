package bfd

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
)

// peerCycle runs a's sessions cfgs against a BFD daemon d in b: they come
// Up, on both sides (upAtPeer counts the daemon's Up sessions); the daemon
// killed without a word takes them Down by detection time; started again,
// it brings them back Up.
func peerCycle(t *testing.T, e *Engine, d *daemon, cfgs []PeerConfig, upAtPeer func() (int, error)) {
	t.Helper()
	w := &watcher{e: e, more: d.logTail}
	ks := keys(cfgs)
	waitPeerUp := func(what string) {
		t.Helper()
		w.waitFor(t, what, lastIs(ks, Up, -1))
		var n int
		var err error
		for deadline := time.Now().Add(patience); n != len(cfgs); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the peer has %d sessions Up (%v), want %d\n%s", what, n, err, len(cfgs), d.logTail())
			}
			n, err = upAtPeer()
		}
	}
	waitPeerUp("sessions Up")

	d.stop(t, syscall.SIGKILL)
	w.waitFor(t, "sessions Down after the peer died", lastIs(ks, Down, int(DiagDetectionTimeExpired)))
	for _, s := range e.Sessions() {
		if s.RemoteDiscr != 0 {
			t.Errorf("%v: remote discriminator %x kept after expiry", s.Config.Key(), s.RemoteDiscr)
		}
	}

	d.start(t)
	waitPeerUp("sessions Up again after the peer restarted")
	for _, s := range e.Sessions() {
		if s.UpCount != 2 || s.DownCount != 1 {
			t.Errorf("%v: came Up %d times and went Down %d, want 2 and 1", s.Config.Key(), s.UpCount, s.DownCount)
		}
	}
}

// FRR's bfdd (with the zebra it needs) in b, peering with a's four
// sessions at 300 ms × 3 (a loaded machine must not flap them).
func TestFRRPrivileged(t *testing.T) {
	tp := newTopo(t)
	cfgs := peersOfA(300*time.Millisecond, 3)
	e := newEngine(t, tp.a, cfgs...)

	bfdd, dir := startFRR(t, tp.b, cfgs, 300)

	peerCycle(t, e, bfdd, cfgs, func() (int, error) { return upAtFRR(dir) })
}

// startFRR runs zebra and bfdd in n, peering with the mirror of each of
// cfgs at ms milliseconds × 3, and returns bfdd and the directory of
// their sockets.
func startFRR(t testing.TB, n *ns.NS, cfgs []PeerConfig, ms int) (*daemon, string) {
	t.Helper()
	if _, err := os.Stat("/usr/lib/frr/bfdd"); err != nil {
		t.Skip("FRR is not installed (apt-get install frr)")
	}
	// FRR's daemons run as user frr, which must own the directory.
	dir, err := os.MkdirTemp("", "bfd-frr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var conf strings.Builder
	conf.WriteString("bfd\n")
	for _, c := range cfgs {
		c = mirror(c)
		fmt.Fprintf(&conf, " peer %v", c.Peer)
		if c.Multihop {
			conf.WriteString(" multihop")
		}
		fmt.Fprintf(&conf, " local-address %v", c.Local)
		if c.Interface != "" {
			conf.WriteString(" interface " + c.Interface)
		}
		fmt.Fprintf(&conf, "\n  receive-interval %d\n  transmit-interval %d\n  detect-multiplier 3\n exit\n", ms, ms)
	}
	conf.WriteString("exit\n")
	for name, text := range map[string]string{"zebra.conf": "", "bfdd.conf": conf.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("chown", "-R", "frr:frr", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	zebra := &daemon{ns: n, log: p("zebra.out"), argv: []string{"/usr/lib/frr/zebra", "-f", p("zebra.conf"), "-i", p("zebra.pid"),
		"-z", p("zserv.api"), "--vty_socket", dir, "-A", "127.0.0.1"}}
	bfdd := &daemon{ns: n, log: p("bfdd.out"), argv: []string{"/usr/lib/frr/bfdd", "-f", p("bfdd.conf"), "-i", p("bfdd.pid"),
		"-z", p("zserv.api"), "--vty_socket", dir, "--bfdctl", p("bfdd.sock"), "-A", "127.0.0.1", "--log", "file:" + p("bfdd.log")}}
	zebra.start(t)
	bfdd.start(t)
	return bfdd, dir
}

// upAtFRR counts the sessions Up in the bfdd whose vty socket is in dir.
func upAtFRR(dir string) (int, error) {
	out, err := exec.Command("vtysh", "--vty_socket", dir, "-c", "show bfd peers json").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("vtysh: %v: %s", err, out)
	}
	var peers []struct {
		Peer   string `json:"peer"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(out, &peers); err != nil {
		return 0, fmt.Errorf("vtysh output %q: %v", out, err)
	}
	n := 0
	for _, p := range peers {
		if p.Status == "up" {
			n++
		}
	}
	return n, nil
}
