package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
)

func TestMain(m *testing.M) { ns.TestMain(m) }

// Environment knobs of the benchmark:
//
//	SWITCHD_BENCH_N=100000,1000000   sizes (default both)
//	SWITCHD_BENCH_RECEIVERS=switchd,bird2   receivers (default all)
//	SWITCHD_BENCH_SWITCHD=/path      a prebuilt switchd instead of building one
//	SWITCHD_BENCH_POLL=1             find the end by dumping the FIB every 50 ms
//	                                 instead of counting notifications (a cross-check)
//	SWITCHD_BENCH_PROFILE=DIR        CPU profiles of switchd (read from its API
//	                                 socket, with a heap profile) and GoBGP alone,
//	                                 copied to DIR (changes timings)
const (
	envN         = "SWITCHD_BENCH_N"
	envReceivers = "SWITCHD_BENCH_RECEIVERS"
	envSwitchd   = "SWITCHD_BENCH_SWITCHD"
	envProfile   = "SWITCHD_BENCH_PROFILE"
	envPoll      = "SWITCHD_BENCH_POLL"
)

// BenchmarkBGPToFIB announces N prefixes to each receiver, a fresh one
// (and fresh namespaces) per iteration, and reports the time from session
// Established until all N are in the kernel FIB (RIB for GoBGP alone),
// the rate, and the receiver's peak RSS. Run with -benchtime=1x (each
// iteration takes seconds); the figures are means over b.N.
func BenchmarkBGPToFIB(b *testing.B) {
	ns.Privileged(b)
	sizes := []int{100_000, 1_000_000}
	if v := os.Getenv(envN); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				b.Fatalf("%s=%q: %q is not a positive number", envN, v, f)
			}
			sizes = append(sizes, n)
		}
	}
	var want map[string]bool
	if v := os.Getenv(envReceivers); v != "" {
		want = map[string]bool{}
		for _, f := range strings.Split(v, ",") {
			want[strings.TrimSpace(f)] = true
		}
	}
	for _, r := range Receivers {
		if want != nil && !want[r.Name] {
			continue
		}
		b.Run("receiver="+r.Name, func(b *testing.B) {
			bin := binaries(b, r)
			if miss := r.Missing(bin); len(miss) > 0 {
				b.Skipf("receiver %s: missing %s", r.Name, strings.Join(miss, ", "))
			}
			for _, n := range sizes {
				b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
					benchReceiver(b, r, bin, n)
				})
			}
		})
	}
}

var iteration int

func benchReceiver(b *testing.B, r Receiver, bin Binaries, n int) {
	var sum Result
	for i := 0; i < b.N; i++ {
		iteration++
		// Let the previous receiver's teardown settle: it is not what we
		// measure.
		time.Sleep(time.Second)
		res, err := run(context.Background(), r, bin, n, strconv.Itoa(iteration), os.Getenv(envProfile) != "", os.Getenv(envPoll) != "")
		if err != nil {
			b.Fatal(err)
		}
		if res.Profile != "" {
			saveProfile(b, res, i)
		}
		b.Logf("%s n=%d: %.3f s (%.0f routes/s), source done writing at %.3f s, peak RSS %.1f MiB%s",
			r.Name, n, res.Elapsed.Seconds(), res.RoutesPerSecond(), res.Written.Seconds(),
			float64(res.PeakRSS)/(1<<20), map[bool]string{true: " (notifications lost: end found by dump polling)"}[res.Lost])
		if len(res.Deciles) > 0 {
			var d []string
			for _, t := range res.Deciles {
				d = append(d, fmt.Sprintf("%.2f", t.Seconds()))
			}
			b.Logf("%s n=%d: seconds to 10%%, 20%%, ... 100%% in the FIB: %s", r.Name, n, strings.Join(d, " "))
		}
		sum.Elapsed += res.Elapsed
		sum.PeakRSS += res.PeakRSS
	}
	mean := sum.Elapsed.Seconds() / float64(b.N)
	b.ReportMetric(0, "ns/op") // setup and teardown dominate it; see s/op
	b.ReportMetric(mean, "s/op")
	b.ReportMetric(float64(n)/mean, "routes/s")
	b.ReportMetric(float64(sum.PeakRSS)/float64(b.N)/(1<<20), "peak-rss-MiB")
}

func saveProfile(b *testing.B, res Result, i int) {
	dir := os.Getenv(envProfile)
	os.MkdirAll(dir, 0o755)
	dst := filepath.Join(dir, fmt.Sprintf("%s-n%d-%d.cpu.pprof", res.Receiver, res.N, i))
	data, err := os.ReadFile(res.Profile)
	if err == nil {
		err = os.WriteFile(dst, data, 0o644)
	}
	if err != nil {
		b.Errorf("save profile: %v", err)
		return
	}
	heap := filepath.Join(filepath.Dir(res.Profile), "switchd.heap.pprof")
	if data, err := os.ReadFile(heap); err == nil {
		hdst := strings.Replace(dst, ".cpu.", ".heap.", 1)
		if err := os.WriteFile(hdst, data, 0o644); err == nil {
			b.Logf("heap profile: %s", hdst)
		}
	}
	os.RemoveAll(filepath.Dir(res.Profile))
	b.Logf("CPU profile: %s", dst)
}

// binaries builds what r needs from this module (once per process).
func binaries(b testing.TB, r Receiver) Binaries {
	bin := Binaries{Profile: os.Getenv(envProfile) != ""}
	switch r.Name {
	case Switchd.Name:
		if p := os.Getenv(envSwitchd); p != "" {
			bin.Switchd = p
		} else {
			bin.Switchd = simtest.SwitchdBinary(b)
		}
	case GoBGPRIB.Name:
		bin.GoBGPRIB = simtest.Build(b, "github.com/switchd/switchd/sim/bench/cmd/gobgprib")
	}
	return bin
}
