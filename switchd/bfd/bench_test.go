package bfd

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
)

// The CPU of 100 sessions at 50 ms × 3, Up, as a share of one core:
// 100 single-hop IPv4 sessions over a veth between two namespaces. The
// window is BFD_BENCH_SECONDS (default 10) of wall time after every
// session is Up and done polling; CPU is getrusage(RUSAGE_SELF), user +
// system (a veth delivers in the sender's context, so each side pays for
// part of the other's receiving). Run with -benchtime=1x:
//
//	go test -run XXX -bench Sessions100 -benchtime=1x ./switchd/bfd/

// BenchmarkPrivilegedSessions100At50ms runs two engines in this process;
// the figure per engine is half the process's.
func BenchmarkPrivilegedSessions100At50ms(b *testing.B) {
	na, nb, ca, cb := benchPairs(b, 100)
	ea, eb := newEngine(b, na, ca...), newEngine(b, nb, cb...)
	waitSteady(b, ea, eb)
	for range b.N {
		m := measure(b, ea, func() time.Duration { return cpuTime(b) })
		share := m.share / 2
		b.ReportMetric(100*share, "%core/engine")
		b.ReportMetric(m.packets, "packets/s/engine")
		b.ReportMetric(m.turns, "turns/s/engine")
		b.Logf("engine vs engine, 100 sessions at 50 ms x 3: %.2f %% of a core per engine over %v; %.0f packets/s and %.0f loop turns/s each",
			100*share, m.wall.Round(time.Millisecond), m.packets, m.turns)
	}
	checkSteady(b, ea)
}

// BenchmarkPrivilegedSessions100At50msFRR runs one engine against FRR's
// bfdd and reports both CPU shares (bfdd's from /proc/PID/stat, 10 ms
// resolution).
func BenchmarkPrivilegedSessions100At50msFRR(b *testing.B) {
	na, nb, ca, _ := benchPairs(b, 100)
	e := newEngine(b, na, ca...)
	bfdd, _ := startFRR(b, nb, ca, 50)
	waitSteady(b, e)
	for range b.N {
		m := measure(b, e, func() time.Duration { return cpuTime(b) })
		f := measure(b, e, func() time.Duration { return procCPU(b, bfdd.cmd.Process.Pid) })
		b.ReportMetric(100*m.share, "%core/engine")
		b.ReportMetric(100*f.share, "%core/bfdd")
		b.Logf("engine vs FRR bfdd, 100 sessions at 50 ms x 3: engine %.2f %% of a core (%.0f packets/s, %.0f loop turns/s), bfdd %.2f %% (the window after)",
			100*m.share, m.packets, m.turns, 100*f.share)
	}
	checkSteady(b, e)
}

// benchPairs links two namespaces by a veth with n addresses on each end
// (10.1.0.i and 10.1.1.i) and returns the sessions of each side at 50 ms.
func benchPairs(b *testing.B, n int) (na, nb *ns.NS, ca, cb []PeerConfig) {
	na, nb = ns.NewT(b, "bfdb-a"), ns.NewT(b, "bfdb-b")
	if err := ns.Veth(na, "eth0", nb, "eth0"); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, 1, 0, byte(i + 1)})
		p := netip.AddrFrom4([4]byte{10, 1, 1, byte(i + 1)})
		if err := na.AddAddr("eth0", netip.PrefixFrom(a, 16)); err != nil {
			b.Fatal(err)
		}
		if err := nb.AddAddr("eth0", netip.PrefixFrom(p, 16)); err != nil {
			b.Fatal(err)
		}
		c := PeerConfig{Peer: p, Local: a, Interface: "eth0", DesiredMinTx: 50 * time.Millisecond, RequiredMinRx: 50 * time.Millisecond, DetectMult: 3}
		ca, cb = append(ca, c), append(cb, mirror(c))
	}
	return na, nb, ca, cb
}

// waitSteady waits until every session of es is Up and done polling.
func waitSteady(b *testing.B, es ...*Engine) {
	for _, e := range es {
		for deadline := time.Now().Add(patience); ; time.Sleep(100 * time.Millisecond) {
			steady := true
			for _, s := range e.Sessions() {
				steady = steady && s.State == Up && !s.Polling
			}
			if steady {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("sessions not Up:%s", describe(e.Sessions()))
			}
		}
	}
	b.ResetTimer()
}

// checkSteady fails if a session left Up during the run or a packet was
// dropped.
func checkSteady(b *testing.B, e *Engine) {
	b.StopTimer()
	for _, s := range e.Sessions() {
		if s.State != Up || s.UpCount != 1 {
			b.Errorf("%v: %v, up %d times during the run", s.Config.Key(), s.State, s.UpCount)
		}
	}
	if st := e.Stats(); st != (Stats{}) {
		b.Errorf("drops: %+v", st)
	}
}

type measured struct {
	wall                  time.Duration
	share, packets, turns float64 // CPU/wall; per second
}

// measure samples cpu and e's packet and loop-turn counters around the
// window.
func measure(b *testing.B, e *Engine, cpu func() time.Duration) measured {
	pkts := func() (n uint64) {
		for _, s := range e.Sessions() {
			n += s.TxPackets + s.RxPackets
		}
		return n
	}
	turns := func() uint64 {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.wakes
	}
	wall, share, rates := window(cpu, pkts, turns)
	return measured{wall: wall, share: share, packets: rates[0], turns: rates[1]}
}

// window samples cpu and counters around BFD_BENCH_SECONDS (default 10)
// of wall time: the CPU share and each counter's rate per second.
func window(cpu func() time.Duration, counters ...func() uint64) (wall time.Duration, share float64, rates []float64) {
	w := 10 * time.Second
	if s, err := strconv.Atoi(os.Getenv("BFD_BENCH_SECONDS")); err == nil && s > 0 {
		w = time.Duration(s) * time.Second
	}
	c0 := make([]uint64, len(counters))
	for i, c := range counters {
		c0[i] = c()
	}
	u0, t0 := cpu(), time.Now()
	time.Sleep(w)
	u1, t1 := cpu(), time.Now()
	wall = t1.Sub(t0)
	for i, c := range counters {
		rates = append(rates, float64(c()-c0[i])/wall.Seconds())
	}
	return wall, float64(u1-u0) / float64(wall), rates
}

// cpuTime is this process's user plus system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(fmt.Errorf("getrusage: %w", err))
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is process pid's user plus system CPU time (clock ticks of
// 10 ms).
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// pid (comm) state ... utime and stime are fields 14 and 15, the
	// 12th and 13th after the comm's closing parenthesis.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}
