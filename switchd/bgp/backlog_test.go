package bgp

import (
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
)

// TestPrivilegedBacklogLeftToNextSession: a session that dies with
// UPDATEs still queued for its neighbor leaves nothing behind for the next
// one. GoBGP 4.8 queued the dead session's error behind that backlog, and
// the drain at each state change takes only what its queue's goroutine
// happens to hand over at that instant (about one item): the next session's
// send loop replayed the old backlog, met the error and stopped without a
// word. Its neighbor then received nothing more, not even keepalives (a
// host's session to a restarted leaf in the scale run, silent until the
// leaf's hold timer ended it 90 s later).
//
// A sends to B (a child process) and B relays to C. B stops reading
// (SIGSTOP) while A changes what it originates, so A's queue to B grows;
// B is killed and started again, A changes its routes once more, and C
// must end up with exactly A's last routes via B.
func TestPrivilegedBacklogLeftToNextSession(t *testing.T) {
	ns.Privileged(t)
	// Small socket buffers in the test's namespace: a peer that does not
	// read blocks its sender after a few UPDATEs.
	for _, f := range []string{"/proc/sys/net/ipv4/tcp_wmem", "/proc/sys/net/ipv4/tcp_rmem"} {
		old, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("4096 4096 4096"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.WriteFile(f, old, 0o644) })
	}
	// Hold times longer than the test's patience: a silent session must
	// not be healed by its hold timer before the check.
	slow := Timers{ConnectRetry: time.Second, HoldTime: 240 * time.Second, Keepalive: 80 * time.Second}
	nb := func(addr, local string, as uint32) Neighbor {
		n := peer(addr, local, as)
		n.Timers = slow
		return n
	}
	sets := func(base, n int) []netip.Prefix {
		out := make([]netip.Prefix, n)
		for i := range out {
			out[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(base), byte(i / 256), byte(i % 256)}), 32)
		}
		return out
	}
	aCfg := Config{ASN: 65001, RouterID: ip("10.0.0.1"), ListenAddresses: []netip.Addr{ip("127.0.0.1")},
		Neighbors: []Neighbor{nb("127.0.0.2", "127.0.0.1", 65002)}, Originate: sets(1, 200)}
	bSpec := childSpec{Config: Config{ASN: 65002, RouterID: ip("10.0.0.2"), ListenAddresses: []netip.Addr{ip("127.0.0.2")},
		Neighbors: []Neighbor{nb("127.0.0.1", "127.0.0.2", 65001), nb("127.0.0.3", "127.0.0.2", 65003)}}}
	cCfg := Config{ASN: 65003, RouterID: ip("10.0.0.3"), ListenAddresses: []netip.Addr{ip("127.0.0.3")},
		Neighbors: []Neighbor{nb("127.0.0.2", "127.0.0.3", 65002)}}
	sp := speakers(t, aCfg, cCfg)
	a, c := sp[0], sp[1]
	rc := newRIB(c)
	b := startChildProc(t, bSpec)
	rc.waitRoute(t, aCfg.Originate[0], ip("127.0.0.2"))

	// B stops reading; A's changes pile up in its queue to B.
	if err := b.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		aCfg.Originate = sets(2+i%2, 200)
		if err := a.Apply(t.Context(), aCfg); err != nil {
			t.Fatal(err)
		}
	}
	b.Signal(syscall.SIGKILL)
	b.Wait()
	waitNotEstablished(t, a, "127.0.0.2")

	// What A originates now reaches B only through the next session.
	final := sets(9, 5)
	aCfg.Originate = final
	if err := a.Apply(t.Context(), aCfg); err != nil {
		t.Fatal(err)
	}
	startChildProc(t, bSpec)
	waitEstablished(t, a, "127.0.0.2")
	for _, p := range final {
		rc.waitRoute(t, p, ip("127.0.0.2"))
	}
	// And nothing of the old backlog stays at C.
	rc.drainOnce(500 * time.Millisecond)
	var stale []string
	for p, nhs := range rc.routes {
		if len(nhs) > 0 && !slices.Contains(final, p) {
			stale = append(stale, p.String())
		}
	}
	if len(stale) > 0 {
		t.Errorf("C still has %d routes A no longer originates: %s", len(stale), strings.Join(stale[:min(5, len(stale))], ", "))
	}
	if st := neighborState(t, a, ip("127.0.0.2")); st.State != StateEstablished {
		t.Errorf("A's session to B: %v", st.State)
	}
}
