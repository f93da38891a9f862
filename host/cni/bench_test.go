package cni

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchd/switchd/host"
	"github.com/switchd/switchd/host/endpointapi"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
	"github.com/vishvananda/netlink"
)

// benchSeq numbers workloads across all runs, so names never repeat.
var benchSeq atomic.Int64

// BenchmarkEndpointSetup compares container endpoint setup side by side:
// switchd through its daemon API (in-process client → unix socket →
// handler → Manager), switchd through cnitool and the real switchd binary
// installed as the plugin (built from ./switchd, or SWITCHD_CNI_BIN),
// the same with a minimal binary around cni.Main (what the plugin costs
// without the daemon binary's start), and the CNI reference plugins ptp +
// host-local through cnitool. Every iteration creates the workload's
// named netns first, the same for all, as a runtime does before ADD, and
// serial runs also report adds/s, the rate without it; IPv4 only (ptp's
// IPv6 waits for DAD). Run with -benchtime 500x for the 500 workloads of
// the issue.
func BenchmarkEndpointSetup(b *testing.B) {
	ns.Privileged(b)
	ctx := context.Background()
	v4only := host.Pool{Prefix: netip.MustParsePrefix("10.40.0.0/16")}
	setups := []struct {
		name  string
		setup func(b *testing.B) func(i int64, wl *ns.NS) error
	}{
		{"api", func(b *testing.B) func(int64, *ns.NS) error {
			d := newDaemon(b, v4only)
			return func(i int64, wl *ns.NS) error {
				_, err := d.client.AddContainer(ctx, endpointapi.ContainerAdd{ContainerID: fmt.Sprintf("bench%d", i), Netns: wl.Path()})
				return err
			}
		}},
		{"cnitool-switchd", func(b *testing.B) func(int64, *ns.NS) error {
			tool, plugin := cnitool(b), switchdPlugin(b)
			d := newDaemon(b, v4only)
			net := netName(b, "bsw")
			dir := netconf(b, map[string]any{"cniVersion": "1.1.0", "name": net, "type": "switchd", "socket": d.socket})
			return func(_ int64, wl *ns.NS) error {
				_, err := runCnitool(ctx, b, tool, dir, plugin, "add", net, wl.Path())
				return err
			}
		}},
		{"cnitool-cnimain", func(b *testing.B) func(int64, *ns.NS) error {
			if os.Getenv("SWITCHD_CNI_BIN") != "" {
				b.Skip("SWITCHD_CNI_BIN replaces the minimal plugin binary")
			}
			tool, plugin := cnitool(b), buildPlugin(b)
			d := newDaemon(b, v4only)
			net := netName(b, "bmain")
			dir := netconf(b, map[string]any{"cniVersion": "1.1.0", "name": net, "type": "switchd", "socket": d.socket})
			return func(_ int64, wl *ns.NS) error {
				_, err := runCnitool(ctx, b, tool, dir, plugin, "add", net, wl.Path())
				return err
			}
		}},
		{"cnitool-ptp", func(b *testing.B) func(int64, *ns.NS) error {
			tool := cnitool(b)
			ptp := goBin(b, "ptp", "github.com/containernetworking/plugins/plugins/main/ptp@v1.7.1")
			hl := goBin(b, "host-local", "github.com/containernetworking/plugins/plugins/ipam/host-local@v1.7.1")
			net := netName(b, "bptp")
			dir := netconf(b, map[string]any{"cniVersion": "1.0.0", "name": net, "type": "ptp", "ipMasq": false,
				"ipam": map[string]any{"type": "host-local", "dataDir": b.TempDir(),
					"ranges": [][]map[string]string{{{"subnet": "10.50.0.0/16"}}}, "routes": []map[string]string{{"dst": "0.0.0.0/0"}}}})
			path := filepath.Dir(ptp) + string(filepath.ListSeparator) + filepath.Dir(hl)
			return func(_ int64, wl *ns.NS) error {
				_, err := runCnitool(ctx, b, tool, dir, path, "add", net, wl.Path())
				return err
			}
		}},
	}
	for _, s := range setups {
		for _, parallel := range []bool{false, true} {
			name := s.name
			if parallel {
				name += "-parallel"
			}
			b.Run(name, func(b *testing.B) {
				add := s.setup(b)
				var mu sync.Mutex
				var made []*ns.NS
				b.Cleanup(func() {
					for _, n := range made {
						n.Delete()
					}
				})
				// The kernel dismantles the namespaces of the previous row
				// in the background (and holds the RTNL lock for it):
				// start once it is done.
				settle(b)
				var inAdd atomic.Int64 // ns spent in add, summed over callers
				one := func() error {
					i := benchSeq.Add(1)
					wl, err := ns.New(fmt.Sprintf("%s-b%d", ns.RunPrefix(), i))
					if err != nil {
						return err
					}
					mu.Lock()
					made = append(made, wl)
					mu.Unlock()
					start := time.Now()
					err = add(i, wl)
					inAdd.Add(int64(time.Since(start)))
					return err
				}
				b.ResetTimer()
				if !parallel {
					for b.Loop() {
						if err := one(); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					// As a runtime starting many pods at once: 4 per CPU.
					b.SetParallelism(4)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := one(); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "endpoints/s")
				if !parallel {
					// Without the runtime's netns creation: the ADD alone.
					b.ReportMetric(float64(b.N)/time.Duration(inAdd.Load()).Seconds(), "adds/s")
				}
			})
		}
	}
}

// switchdPlugin returns a CNI_PATH dir holding the real switchd binary as
// "switchd" (SWITCHD_CNI_BIN, or built from ./switchd once per run).
func switchdPlugin(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("SWITCHD_CNI_BIN")
	if bin == "" {
		bin = simtest.SwitchdBinary(t)
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(abs, filepath.Join(dir, "switchd")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// BenchmarkPluginStart is the start of each plugin binary the cnitool
// rows run, with CNI_COMMAND=VERSION (parse nothing, talk to no one): the
// fixed cost of a process per CNI call.
func BenchmarkPluginStart(b *testing.B) {
	bins := []struct{ name, path string }{
		{"switchd", filepath.Join(switchdPlugin(b), "switchd")},
	}
	if os.Getenv("SWITCHD_CNI_BIN") == "" {
		bins = append(bins, struct{ name, path string }{"cnimain", filepath.Join(buildPlugin(b), "switchd")})
	}
	bins = append(bins,
		struct{ name, path string }{"ptp", goBin(b, "ptp", "github.com/containernetworking/plugins/plugins/main/ptp@v1.7.1")},
		struct{ name, path string }{"host-local", goBin(b, "host-local", "github.com/containernetworking/plugins/plugins/ipam/host-local@v1.7.1")},
		struct{ name, path string }{"cnitool", cnitool(b)})
	for _, x := range bins {
		b.Run(x.name, func(b *testing.B) {
			for b.Loop() {
				c := exec.Command(x.path)
				c.Env = append(os.Environ(), "CNI_COMMAND=VERSION")
				c.Stdin = strings.NewReader("{}")
				if out, err := c.CombinedOutput(); err != nil && x.name != "cnitool" {
					b.Fatalf("%s: %v: %s", x.path, err, out)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/start")
		})
	}
}

// settle waits, up to a minute, until the kernel is done with the
// previous row: its namespaces are dismantled in the background, with
// little CPU but holding the RTNL lock across RCU grace periods, which
// stalls every Add of the next row. It waits for the CPUs to be 80 % idle
// and for ten RTNL-taking requests (setting lo up, a no-op) in a row to
// finish within a millisecond.
func settle(b *testing.B) {
	b.Helper()
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		b.Fatal(err)
	}
	idle := func() (idle, total uint64) {
		data, err := os.ReadFile("/proc/stat")
		if err != nil {
			return 0, 0
		}
		line, _, _ := strings.Cut(string(data), "\n")
		for i, f := range strings.Fields(line)[1:] {
			var v uint64
			fmt.Sscan(f, &v)
			total += v
			if i == 3 || i == 4 { // idle, iowait
				idle += v
			}
		}
		return idle, total
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		i0, t0 := idle()
		fast := 0
		for fast < 10 && time.Now().Before(deadline) {
			start := time.Now()
			if err := netlink.LinkSetUp(lo); err != nil {
				b.Fatal(err)
			}
			if time.Since(start) < time.Millisecond {
				fast++
			} else {
				fast = 0
			}
			time.Sleep(50 * time.Millisecond)
		}
		i1, t1 := idle()
		if fast == 10 && t1 > t0 && (i1-i0)*100 >= (t1-t0)*80 {
			return
		}
	}
	b.Logf("kernel not settled after a minute; measuring anyway")
}
