package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
	"github.com/vishvananda/netlink"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/switchd/switchd/gnmi"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
)

const (
	benchLinks       = 20               // veths the daemon renders, beside lo
	benchSubscribers = 100              // half on the local socket, half over TLS
	benchWindow      = 20 * time.Second // each CPU measurement
	benchPort        = 50071
	clockTicks       = 100 // USER_HZ: /proc's unit of CPU time on Linux
)

// BenchmarkPrivilegedGNMISampleCPU runs the built switchd binary with
// benchLinks veths and measures its CPU time (utime+stime from
// /proc/PID/stat, so the subscribers in this process are not counted)
// over benchWindow idle, then over benchWindow with benchSubscribers
// Subscribe RPCs in SAMPLE mode at 1 s on every interface's counters.
// The subscribers are split between the local socket and the TLS
// listener, each of which admits gnmi.DefaultMaxSubscribes. It reports
// both as a share of one core and their ratio; with
// SWITCHD_BENCH_CPUPROFILE=FILE it then profiles the daemon over one more
// loaded window. Run it once:
//
//	go test -run '^$' -bench BenchmarkPrivilegedGNMISampleCPU -benchtime 1x -timeout 10m ./switchd/daemon/
func BenchmarkPrivilegedGNMISampleCPU(b *testing.B) {
	ns.Privileged(b)
	if os.Getenv("SWITCHD_TEST_NETNS") == "" {
		b.Skip("needs ns.TestMain's private namespace")
	}
	bin := simtest.Build(b, "github.com/switchd/switchd/switchd")
	peer := ns.NewT(b, "gbench")
	cur, err := ns.Current()
	if err != nil {
		b.Fatal(err)
	}
	defer cur.Close()
	for i := range benchLinks {
		name := fmt.Sprintf("gb%d", i)
		if err := ns.Veth(cur, name, peer, fmt.Sprintf("e%d", i)); err != nil {
			b.Fatal(err)
		}
		// Deleted here, at once: the peer namespace's deletion takes its
		// veths away only later, and the next run (-count) adds them again.
		b.Cleanup(func() {
			if l, err := netlink.LinkByName(name); err == nil {
				netlink.LinkDel(l)
			}
		})
	}
	dir := b.TempDir()
	cfg := filepath.Join(dir, "switchd.json")
	if err := os.WriteFile(cfg, benchConfig(b, dir), 0o600); err != nil {
		b.Fatal(err)
	}
	sock := filepath.Join(dir, "gnmi.sock")
	pid := startSwitchd(b, bin, "run", "--config", cfg, "--socket", filepath.Join(dir, "switchd.sock"),
		"--state-dir", dir, "--gnmi-socket", sock, "--log-level", "warn")

	local, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer local.Close()
	waitFor(b, "every veth's counters in the daemon's tree", func() error {
		n, err := countUpdates(gpb.NewGNMIClient(local), "/interfaces/interface[name=*]/state/counters/in-pkts")
		if err == nil && n < benchLinks+1 {
			err = fmt.Errorf("%d interfaces, want %d", n, benchLinks+1)
		}
		return err
	})
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(filepath.Join(dir, gnmi.SelfSignedCert)); err != nil || !pool.AppendCertsFromPEM(pem) {
		b.Fatalf("the daemon's certificate: %v", err)
	}
	remote, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", benchPort),
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "localhost"})))
	if err != nil {
		b.Fatal(err)
	}
	defer remote.Close()

	for range b.N {
		// The daemon settles (BGP and nft setup, first samples) first.
		time.Sleep(5 * time.Second)
		idle := cpuTicks(b, pid, benchWindow)

		ctx, cancel := context.WithCancel(context.Background())
		var updates atomic.Int64
		var wg sync.WaitGroup
		synced := make(chan error, benchSubscribers)
		for i := range benchSubscribers {
			cc, sctx := local, ctx
			if i%2 == 1 {
				cc = remote
				sctx = metadata.AppendToOutgoingContext(ctx, "username", "viewer", "password", gnmiViewerPW)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				sampleCounters(sctx, gpb.NewGNMIClient(cc), &updates, synced)
			}()
		}
		for range benchSubscribers {
			if err := <-synced; err != nil {
				cancel()
				wg.Wait()
				b.Fatalf("a subscriber: %v", err)
			}
		}
		time.Sleep(2 * time.Second)
		before := updates.Load()
		loaded := cpuTicks(b, pid, benchWindow)
		got := updates.Load() - before
		if out := os.Getenv("SWITCHD_BENCH_CPUPROFILE"); out != "" {
			// Another window, profiled: the profile's own cost stays out
			// of the figures.
			profileDaemon(b, filepath.Join(dir, "switchd.sock"), out)
		}
		cancel()
		wg.Wait()

		// A subscriber that stopped receiving would make the load look
		// light: every one gets each sample (or all but the window's
		// edges).
		want := int64(benchSubscribers*(benchLinks+1)) * int64(benchWindow/time.Second)
		if got < want*9/10 {
			b.Fatalf("%d counter updates over %v, want about %d", got, benchWindow, want)
		}
		share := func(ticks int) float64 { return float64(ticks) / clockTicks / benchWindow.Seconds() * 100 }
		b.ReportMetric(share(idle), "idle-cpu-%")
		b.ReportMetric(share(loaded), "loaded-cpu-%")
		b.ReportMetric(float64(loaded)/float64(max(idle, 1)), "cpu-ratio")
		b.ReportMetric(float64(got)/benchWindow.Seconds(), "updates/s")
	}
}

// profileDaemon writes a CPU profile of the daemon over benchWindow,
// taken from its API socket, to out.
func profileDaemon(b *testing.B, sock, out string) {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	r, err := c.Get(fmt.Sprintf("http://switchd/debug/pprof/profile?seconds=%d", int(benchWindow.Seconds())))
	if err != nil {
		b.Fatal(err)
	}
	defer r.Body.Close()
	f, err := os.Create(out)
	if err == nil {
		_, err = io.Copy(f, r.Body)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		b.Fatal(err)
	}
}

// benchConfig is BGP with no neighbors, the TLS listener on benchPort
// with one read-only user, and the state dir.
func benchConfig(b *testing.B, dir string) []byte {
	var doc map[string]any
	if err := json.Unmarshal(ecmpConfig(nil), &doc); err != nil {
		b.Fatal(err)
	}
	hash, err := gnmi.HashPassword(gnmiViewerPW)
	if err != nil {
		b.Fatal(err)
	}
	doc["openconfig-system:system"] = map[string]any{
		"grpc-servers": map[string]any{"grpc-server": []any{map[string]any{"name": "gnmi", "config": map[string]any{"name": "gnmi", "port": benchPort}}}},
		"aaa": map[string]any{"authentication": map[string]any{"users": map[string]any{"user": []any{map[string]any{
			"username": "viewer", "config": map[string]any{"username": "viewer", "password-hashed": hash, "role": "viewer"}}}}}},
	}
	doc["switchd:switchd"] = map[string]any{"config": map[string]any{"state-dir": dir}}
	out, err := json.Marshal(doc)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// startSwitchd runs the binary and, at cleanup, ends it by its PID
// (SIGTERM, then SIGKILL if it does not exit).
func startSwitchd(b *testing.B, bin string, args ...string) int {
	cmd := exec.Command(bin, args...)
	log, err := os.Create(filepath.Join(b.TempDir(), "switchd.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		log.Close()
	})
	return cmd.Process.Pid
}

// cpuTicks is the CPU time (user and system, in clock ticks) process pid
// uses over d.
func cpuTicks(b *testing.B, pid int, d time.Duration) int {
	read := func() int {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			b.Fatal(err)
		}
		// Fields after the command's closing parenthesis start at the
		// state, field 3; utime and stime are fields 14 and 15.
		f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
		u, err1 := strconv.Atoi(f[11])
		s, err2 := strconv.Atoi(f[12])
		if err := errors.Join(err1, err2); err != nil {
			b.Fatal(err)
		}
		return u + s
	}
	start := read()
	time.Sleep(d)
	return read() - start
}

// sampleCounters subscribes in SAMPLE mode at 1 s to every interface's
// counters, sends its sync (or error) on synced once, and counts the
// in-pkts updates until ctx ends.
func sampleCounters(ctx context.Context, c gpb.GNMIClient, updates *atomic.Int64, synced chan<- error) {
	p, err := ygot.StringToStructuredPath("/interfaces/interface[name=*]/state/counters")
	if err == nil {
		var sub gpb.GNMI_SubscribeClient
		sub, err = c.Subscribe(ctx)
		if err == nil {
			err = sub.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
				Mode: gpb.SubscriptionList_STREAM, Encoding: gpb.Encoding_JSON_IETF,
				Subscription: []*gpb.Subscription{{Path: p, Mode: gpb.SubscriptionMode_SAMPLE, SampleInterval: uint64(time.Second)}},
			}}})
		}
		for err == nil {
			var r *gpb.SubscribeResponse
			r, err = sub.Recv()
			if r.GetSyncResponse() {
				synced <- nil
				synced = nil
			}
			for _, u := range r.GetUpdate().GetUpdate() {
				if e := u.GetPath().GetElem(); len(e) > 0 && e[len(e)-1].GetName() == "in-pkts" {
					updates.Add(1)
				}
			}
		}
	}
	if synced != nil {
		synced <- err
	}
}

// countUpdates is the number of leaves a Get of path answers.
func countUpdates(c gpb.GNMIClient, path string) (int, error) {
	p, err := ygot.StringToStructuredPath(path)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{p}, Encoding: gpb.Encoding_JSON_IETF})
	n := 0
	for _, nt := range r.GetNotification() {
		n += len(nt.GetUpdate())
	}
	return n, err
}
