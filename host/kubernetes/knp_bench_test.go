package kubernetes

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchd/switchd/host/kubernetes/k8stest"
	"github.com/switchd/switchd/sim/ns"
)

// knp is sigs.k8s.io/kube-network-policies running beside the benchmark's
// loop, in the same namespace against the same API server, as node
// benchThisNode: its table (inet kube-network-policies) is watched with
// nft monitor, so each of its writes has a time.
//
// Its design (v0.8.0, pkg/networkpolicy/controller.go): a fixed handful
// of rules send the first packet of each connection to or from a local
// pod that some policy selects (sets podips-v4/-v6) to an NFQUEUE, where
// the policies are evaluated in user space from the informer caches.
// Every change to a pod, namespace or policy rewrites the whole table
// (add, delete, add in one transaction) with the set recomputed over
// every policy and the local pods it selects.
type knp struct {
	n      *ns.NS
	mu     sync.Mutex
	writes []time.Time // each time the table was written (add table)
	newW   chan struct{}
}

const knpTable = "kube-network-policies"

// knpBinary is the kube-network-policies binary: $SWITCHD_KNP_BIN, built
// with `GOBIN=/tmp/knp go install sigs.k8s.io/kube-network-policies/cmd@v0.8.0`
// (the binary is /tmp/knp/cmd). "" if not set.
func knpBinary() string { return os.Getenv("SWITCHD_KNP_BIN") }

// knpKernel reports whether the kernel has what kube-network-policies'
// rules need: the queue expression (nft_queue), tried in a table of its
// own in n.
func knpKernel(n *ns.NS) error {
	const probe = "table inet knp-probe { chain c { type filter hook postrouting priority 0; queue num 100 bypass; }; }; delete table inet knp-probe"
	if out, err := n.Command(context.Background(), "nft", probe).CombinedOutput(); err != nil {
		return fmt.Errorf("nft queue: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// startKNP runs bin in n with an in-cluster config for s (the token and
// CA in a tmpfs over /run, inside the mount namespace ip netns exec makes)
// and nft monitor beside it; both are stopped by the cleanup.
func startKNP(b *testing.B, n *ns.NS, s *k8stest.Server, bin string) *knp {
	u, err := url.Parse(s.URL)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(k8stest.Token), 0o600); err != nil {
		b.Fatal(err)
	}
	sa := "/run/secrets/kubernetes.io/serviceaccount"
	script := fmt.Sprintf(`mount -t tmpfs tmpfs /run && mkdir -p %[1]s && cp %[2]s/token %[1]s/token && cp %[3]s %[1]s/ca.crt && echo default > %[1]s/namespace && exec %[4]s --hostname-override %[5]s --disable-nri --metrics-bind-address 127.0.0.1:0 --v=0`,
		sa, dir, s.CAFile, bin, benchThisNode)
	k := &knp{n: n, newW: make(chan struct{}, 1)}
	mon := n.Command(context.Background(), "nft", "monitor", "tables")
	out, err := mon.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := mon.Start(); err != nil {
		b.Fatal(err)
	}
	monDone := make(chan struct{})
	go func() {
		defer close(monDone)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "add table inet "+knpTable) {
				k.mu.Lock()
				k.writes = append(k.writes, time.Now())
				k.mu.Unlock()
				select {
				case k.newW <- struct{}{}:
				default:
				}
			}
		}
	}()
	cmd := n.Command(context.Background(), "sh", "-c", script)
	cmd.Env = append(os.Environ(), "KUBERNETES_SERVICE_HOST="+u.Hostname(), "KUBERNETES_SERVICE_PORT="+u.Port())
	logf, err := os.Create(filepath.Join(dir, "knp.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		mon.Process.Kill()
		mon.Wait()
		<-monDone
		logf.Close()
		if b.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "knp.log"))
			b.Logf("kube-network-policies log:\n%s", log)
		}
	})
	return k
}

// waitWrite returns the time of the first table write after t0 for which
// ok (checked against the table as listed then) holds; the limit only
// bounds a benchmark that fails.
func (k *knp) waitWrite(b *testing.B, what string, t0 time.Time, ok func(table string) bool) time.Time {
	b.Helper()
	deadline := time.After(2 * time.Minute)
	seen := 0
	for {
		k.mu.Lock()
		ws := k.writes
		k.mu.Unlock()
		for ; seen < len(ws); seen++ {
			if ws[seen].Before(t0) {
				continue
			}
			if ok == nil || ok(k.list(b)) {
				return ws[seen]
			}
		}
		select {
		case <-k.newW:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			b.Fatalf("kube-network-policies: %s: no table write within 2 minutes", what)
		}
	}
}

func (k *knp) list(b *testing.B) string {
	out, err := k.n.Command(context.Background(), "nft", "list", "table", "inet", knpTable).CombinedOutput()
	if err != nil {
		b.Fatalf("nft list table %s: %v: %s", knpTable, err, out)
	}
	return string(out)
}

var ipv4Addr = regexp.MustCompile(`\b\d+\.\d+\.\d+\.\d+\b`)

// counts are the table's rules and the elements of its sets.
func (k *knp) counts(b *testing.B) (rules, elements int) {
	return countNftRules(b, k.n, knpTable), len(ipv4Addr.FindAllString(k.list(b), -1))
}

// hasAddr reports whether table lists addr.
func hasAddr(addr string) func(string) bool {
	re := regexp.MustCompile(`[^0-9.]` + regexp.QuoteMeta(addr) + `[^0-9.]`)
	return func(table string) bool { return re.MatchString(table) }
}

// waitStarted waits until the table is there; an exited process fails.
func (k *knp) waitStarted(b *testing.B) {
	b.Helper()
	k.waitWrite(b, "start", time.Time{}, nil)
}
