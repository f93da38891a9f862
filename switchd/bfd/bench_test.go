package bfd

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
)

// BenchmarkPrivilegedSessions100At50ms measures the CPU of 100 sessions at
// 50 ms × 3, Up, as a share of one core: two engines in two namespaces
// over a veth, 100 single-hop IPv4 sessions each, in this process. The
// window is BFD_BENCH_SECONDS (default 10) of wall time after every
// session is Up and done polling; CPU is getrusage(RUSAGE_SELF), user +
// system, halved for one engine. Run with -benchtime=1x.
func BenchmarkPrivilegedSessions100At50ms(b *testing.B) {
	const n = 100
	window := 10 * time.Second
	if s, err := strconv.Atoi(os.Getenv("BFD_BENCH_SECONDS")); err == nil && s > 0 {
		window = time.Duration(s) * time.Second
	}
	na, nb := ns.NewT(b, "bfdb-a"), ns.NewT(b, "bfdb-b")
	if err := ns.Veth(na, "eth0", nb, "eth0"); err != nil {
		b.Fatal(err)
	}
	var ca, cb []PeerConfig
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
	ea, eb := newEngine(b, na, ca...), newEngine(b, nb, cb...)
	steady := func(e *Engine) bool {
		for _, s := range e.Sessions() {
			if s.State != Up || s.Polling {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(patience); !steady(ea) || !steady(eb); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("sessions not Up:%s", describe(ea.Sessions()))
		}
	}
	packets := func() (n uint64) {
		for _, s := range ea.Sessions() {
			n += s.TxPackets + s.RxPackets
		}
		return n
	}
	b.ResetTimer()
	for range b.N {
		p0, u0, t0, w0 := packets(), cpuTime(b), time.Now(), ea.wakeCount()
		time.Sleep(window)
		p1, u1, t1, w1 := packets(), cpuTime(b), time.Now(), ea.wakeCount()
		wall := t1.Sub(t0)
		share := float64(u1-u0) / float64(wall) / 2
		b.ReportMetric(100*share, "%core/engine")
		b.ReportMetric(float64(p1-p0)/wall.Seconds(), "packets/s/engine")
		b.ReportMetric(float64(w1-w0)/wall.Seconds(), "wakeups/s/engine")
		b.Logf("100 sessions at 50 ms x 3: %.2f %% of a core per engine over %v (both engines %.2f %%), %.0f packets/s and %.0f loop turns/s each",
			100*share, wall.Round(time.Millisecond), 200*share, float64(p1-p0)/wall.Seconds(), float64(w1-w0)/wall.Seconds())
	}
	b.StopTimer()
	for _, s := range ea.Sessions() {
		if s.State != Up || s.UpCount != 1 {
			b.Errorf("%v: %v, up %d times during the run", s.Config.Key(), s.State, s.UpCount)
		}
	}
	if st := ea.Stats(); st != (Stats{}) {
		b.Errorf("drops: %+v", st)
	}
}

func (e *Engine) wakeCount() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.wakes
}

// cpuTime is the process's user plus system CPU time.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(fmt.Errorf("getrusage: %w", err))
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
