package kubernetes

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/switchd/switchd/host/cni"
	"github.com/switchd/switchd/host/kubernetes/k8stest"
	"github.com/switchd/switchd/policy"
	"github.com/switchd/switchd/sim/ns"
)

// Scale of BenchmarkPrivilegedClusterPolicy: the 500 pods per
// node (this node and one other) and 1,000 NetworkPolicies.
const (
	benchNamespaces = 10
	benchPolicies   = 1000
	benchPodsNode   = 500
	benchThisNode   = "node1"
)

// BenchmarkPrivilegedClusterPolicy is issue 14's benchmark against a real
// kube-apiserver (k8stest, in a namespace of its own) with the real
// nftables table there: the daemon's cluster-mode path (onKubernetes:
// Watcher → Compile → Engine.SetIntent; pods of this node as endpoints,
// of other nodes through MemberIndex → AddMembers/RemoveMembers; one
// Apply per drain) runs in a loop goroutine, and b.N times each:
//
//   - policy: a NetworkPolicy created (or, every other time, deleted),
//     from the API call to the Apply of the table that has it (or not);
//   - pod: a pod of the other node created with its status.podIP set
//     (two API calls, as a kubelet), from the first call to the Apply that
//     put its address in its peer selectors' sets.
//
// The rule count (the table's, read back with nft) is reported with 250
// and with 500 pods per node: it follows the policies, not the pods.
//
//	go test -run '^$' -bench PrivilegedClusterPolicy -benchtime 100x -timeout 30m ./host/kubernetes/
func BenchmarkPrivilegedClusterPolicy(b *testing.B) {
	ns.Privileged(b)
	n := ns.NewT(b, "k8sbench")
	s := k8stest.StartWith(b, k8stest.Options{Netns: n})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rc := s.Config()
	rc.QPS, rc.Burst = 2000, 2000
	c, err := kubernetes.NewForConfig(rc)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	benchObjects(b, c, 0, benchPodsNode/2)
	b.Logf("API objects: %d namespaces, %d policies, %d pods per node in %v", benchNamespaces, benchPolicies, benchPodsNode/2, time.Since(start))

	w, err := NewWatcher(s.Config(), nil, 0)
	if err != nil {
		b.Fatal(err)
	}
	e := policy.NewEngine(n.Net())
	b.Cleanup(func() { e.Close() })
	l := &benchLoop{w: w, e: e, x: NewMemberIndex(), eps: map[string]bool{}, applied: make(chan benchApplied, 1024)}
	start = time.Now()
	w.Start(ctx)
	done := make(chan struct{})
	go func() { defer close(done); l.run(ctx, b) }()
	defer func() { cancel(); <-done }()
	a := l.waitFor(b, "first sync", func(a benchApplied) bool { return len(a.policies) == benchPolicies })
	b.Logf("first sync (list, compile, %d endpoints, apply): %v", benchPodsNode/2, time.Since(start))
	metrics := map[string]float64{} // reported at the end: ResetTimer drops them
	counts := func(pods int, st policy.Status) {
		rules := countNftRules(b, n, "switchd")
		b.Logf("%d pods per node: %d rules (nft: %d), %d sets, %d elements", pods, st.Rules, rules, st.Sets, st.Elements)
		metrics[fmt.Sprintf("rules-%dpods", pods)] = float64(rules)
		metrics[fmt.Sprintf("elements-%dpods", pods)] = float64(st.Elements)
	}
	counts(benchPodsNode/2, a.status)
	var k *knp
	switch bin := knpBinary(); {
	case bin == "":
		b.Logf("SWITCHD_KNP_BIN not set: no kube-network-policies beside")
	case knpKernel(n) != nil:
		// Its rules send packets to user space; without that it writes no
		// table at all.
		b.Logf("kube-network-policies cannot run on this kernel (%v)", knpKernel(n))
	default:
		k = startKNP(b, n, s, bin)
		k.waitStarted(b)
	}
	knpCounts := func(pods int) {
		if k == nil {
			return
		}
		// Its set holds the local pods some policy selects: all of them.
		k.waitWrite(b, "all local pods", time.Time{}, func(string) bool { _, el := k.counts(b); return el >= pods })
		rules, el := k.counts(b)
		b.Logf("kube-network-policies, %d pods per node: %d rules, %d addresses in its sets", pods, rules, el)
		metrics[fmt.Sprintf("knp-rules-%dpods", pods)] = float64(rules)
		metrics[fmt.Sprintf("knp-elements-%dpods", pods)] = float64(el)
	}
	knpCounts(benchPodsNode / 2)
	benchPods(b, c, benchPodsNode/2, benchPodsNode)
	a = l.waitFor(b, "all pods", func(a benchApplied) bool { return a.count == 2*benchPodsNode })
	counts(benchPodsNode, a.status)
	knpCounts(benchPodsNode)

	lat := map[string][]time.Duration{}
	knpWait := func(what string, t0 time.Time, ok func(string) bool) {
		if k != nil {
			lat["knp-"+what] = append(lat["knp-"+what], k.waitWrite(b, what, t0, ok).Sub(t0))
		}
	}
	b.ResetTimer()
	for i := range b.N {
		// A policy of ns0 for app a0, from a peer selector no other has.
		name := fmt.Sprintf("bench-%d", i/2)
		t0 := time.Now()
		if i%2 == 0 {
			np := benchPolicy(0, name, "a0", fmt.Sprintf("g%d", i))
			apiRetry(b, "create policy "+name, func() error {
				_, err := c.NetworkingV1().NetworkPolicies("ns0").Create(ctx, np, metav1.CreateOptions{})
				return err
			})
		} else {
			apiRetry(b, "delete policy "+name, func() error {
				return c.NetworkingV1().NetworkPolicies("ns0").Delete(ctx, name, metav1.DeleteOptions{})
			})
		}
		want := i%2 == 0
		a = l.waitFor(b, "policy "+name, func(a benchApplied) bool { return a.policies != nil && a.policies["k8s:ns0/"+name] == want })
		lat["policy"] = append(lat["policy"], a.at.Sub(t0))
		knpWait("policy", t0, nil) // its next write, whatever it holds

		// A pod of this node (its endpoint made when the API has it, as if
		// the CNI ADD came then; kube-network-policies queues its packets),
		// then one of the other node, its app selected as a peer.
		j := 2*benchPodsNode + 2*i
		t0 = time.Now()
		benchPod(b, c, j, benchThisNode)
		key := fmt.Sprintf("ns%d/p%d", j%benchNamespaces, j)
		a = l.waitFor(b, "pod "+key, func(a benchApplied) bool { return slices.Contains(a.endpoints, key) })
		lat["localpod"] = append(lat["localpod"], a.at.Sub(t0))
		knpWait("localpod", t0, hasAddr(benchPodAddr(j)))
		j++
		t0 = time.Now()
		benchPod(b, c, j, "node2")
		key = fmt.Sprintf("ns%d/p%d", j%benchNamespaces, j)
		a = l.waitFor(b, "pod "+key, func(a benchApplied) bool { return slices.Contains(a.members, key) })
		lat["pod"] = append(lat["pod"], a.at.Sub(t0))
	}
	b.StopTimer()
	for k, v := range metrics {
		b.ReportMetric(v, k)
	}
	for name, ls := range lat {
		slices.Sort(ls)
		q := func(p float64) float64 { return float64(ls[int(p*float64(len(ls)-1))].Microseconds()) / 1000 }
		b.ReportMetric(q(0.5), name+"-p50-ms")
		b.ReportMetric(q(0.99), name+"-p99-ms")
	}
}

// benchLoop is the daemon's cluster-mode loop in small (see
// switchd/daemon/kubernetes.go): it owns the Engine and the index.
type benchLoop struct {
	w       *Watcher
	e       *policy.Engine
	x       *MemberIndex
	eps     map[string]bool // local pods made endpoints, with addresses
	applied chan benchApplied
}

// benchApplied is what one Apply put in the kernel: the compiled policy
// names when they changed, the remote pods that became members.
type benchApplied struct {
	at        time.Time
	policies  map[string]bool
	members   []string
	endpoints []string // local pods upserted with addresses
	// count is the pods with addresses, endpoints or indexed members;
	// status the engine's after the Apply (read in the loop: the Engine
	// is not safe for concurrent use).
	count  int
	status policy.Status
}

func (l *benchLoop) run(ctx context.Context, b *testing.B) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.w.Kick():
		}
		ch := l.w.Drain()
		var a benchApplied
		if ch.Policies {
			c := l.w.Compile()
			if err := l.e.SetIntent(policy.Intent{Policies: c.Policies}); err != nil {
				b.Error(err)
				return
			}
			l.give(b, l.x.SetSelectors(PeerSelectors(c.Policies)))
			a.policies = map[string]bool{}
			for _, p := range c.Policies {
				a.policies[p.Name] = true
			}
		}
		for _, key := range ch.Pods {
			p, ok := l.w.Pod(key)
			if ok && p.Node == benchThisNode {
				// A local pod: its endpoint, as the CNI ADD makes it.
				ns, name, _ := strings.Cut(key, "/")
				labels, _ := l.w.EndpointLabels(map[string]string{cni.PodNamespaceLabel: ns, cni.PodNameLabel: name})
				if err := l.e.UpsertEndpoint(policy.Endpoint{ID: key, Interface: "p" + name, Addrs: p.Addrs, Labels: labels}); err != nil {
					b.Error(err)
					return
				}
				if len(p.Addrs) > 0 {
					l.eps[key] = true
					a.endpoints = append(a.endpoints, key)
				}
				continue
			}
			l.give(b, l.x.SetPod(key, p, ok))
			if ok && len(p.Addrs) > 0 {
				a.members = append(a.members, key)
			}
		}
		if err := l.e.Apply(ctx); err != nil {
			if ctx.Err() == nil {
				b.Error(err)
			}
			return
		}
		a.at = time.Now()
		a.count, a.status = len(l.eps)+len(l.x.pods), l.e.Status()
		l.applied <- a
	}
}

func (l *benchLoop) give(b *testing.B, cs []MemberChange) {
	for _, c := range cs {
		if err := l.e.RemoveMembers("k8s", c.Selector, c.Remove...); err != nil {
			b.Error(err)
		}
		if err := l.e.AddMembers("k8s", c.Selector, c.Add...); err != nil {
			b.Error(err)
		}
	}
}

// waitFor returns the first applied state cond holds for; the limit only
// bounds a benchmark that fails.
func (l *benchLoop) waitFor(b *testing.B, what string, cond func(benchApplied) bool) benchApplied {
	b.Helper()
	deadline := time.After(5 * time.Minute)
	for {
		select {
		case a := <-l.applied:
			if cond(a) {
				return a
			}
		case <-deadline:
			b.Fatalf("%s: not applied within 5 minutes", what)
		}
	}
}

// benchObjects creates the namespaces, the policies and pods [from, to)
// of each node.
func benchObjects(b *testing.B, c *kubernetes.Clientset, from, to int) {
	ctx := context.Background()
	for i := range benchNamespaces {
		name := fmt.Sprintf("ns%d", i)
		apiRetry(b, "create namespace "+name, func() error {
			_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			return err
		})
	}
	parallel(b, benchPolicies, func(i int) {
		// Policy i selects app a<i%100> (in its namespace, i%10) and allows
		// from app a<(i+10)%100> of the same namespace but not group
		// g<i/100>: 1,000 distinct peer selectors.
		np := benchPolicy(i%benchNamespaces, fmt.Sprintf("p%d", i), fmt.Sprintf("a%d", i%100), fmt.Sprintf("g%d", i/100))
		np.Spec.Ingress[0].From[0].PodSelector.MatchLabels["app"] = fmt.Sprintf("a%d", (i+10)%100)
		apiRetry(b, "create policy "+np.Name, func() error {
			_, err := c.NetworkingV1().NetworkPolicies(np.Namespace).Create(ctx, np, metav1.CreateOptions{})
			return err
		})
	})
	benchPods(b, c, from, to)
}

// benchPolicy is policy name of namespace ns<n>: app selects, from app
// and not group notGroup, TCP 80.
func benchPolicy(n int, name, app, notGroup string) *networkingv1.NetworkPolicy {
	tcp, port := corev1.ProtocolTCP, intstr.FromInt32(80)
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("ns%d", n), Name: name},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{
					MatchLabels:      map[string]string{"app": app},
					MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "grp", Operator: metav1.LabelSelectorOpNotIn, Values: []string{notGroup}}},
				}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
			}},
		},
	}
}

// benchPods creates pods [from, to) of this node and of node2.
func benchPods(b *testing.B, c *kubernetes.Clientset, from, to int) {
	parallel(b, 2*(to-from), func(k int) {
		node := benchThisNode
		if k%2 == 1 {
			node = "node2"
		}
		benchPod(b, c, 2*from+k, node)
	})
}

// benchPod creates pod p<j> in ns<j%10> with app a<j%100>, group
// g<j/100%10>, on node, and sets its status.podIP as a kubelet would.
func benchPod(b *testing.B, c *kubernetes.Clientset, j int, node string) {
	ctx := context.Background()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("ns%d", j%benchNamespaces), Name: fmt.Sprintf("p%d", j),
			Labels: map[string]string{"app": fmt.Sprintf("a%d", j%100), "grp": fmt.Sprintf("g%d", j/100%10)}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "none"}}},
	}
	var created *corev1.Pod // nil after a retry: read it back
	apiRetry(b, "create pod "+p.Name, func() error {
		var err error
		created, err = c.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
		return err
	})
	addr := benchPodAddr(j)
	apiRetry(b, "set the address of pod "+p.Name, func() error {
		q, err := created, error(nil)
		if created = nil; q == nil {
			if q, err = c.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{}); err != nil {
				return err
			}
		}
		q.Status.PodIP, q.Status.PodIPs = addr, []corev1.PodIP{{IP: addr}}
		_, err = c.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, q, metav1.UpdateOptions{})
		return err
	})
}

// apiRetry runs an API call that is expected to succeed until it does,
// up to 5 times: on this loaded machine the API server answers some
// requests with a timeout. A create whose first try did succeed answers
// AlreadyExists, and a delete's NotFound, which are success.
func apiRetry(b *testing.B, what string, call func() error) {
	var err error
	for try := range 5 {
		if err = call(); err == nil || (try > 0 && (apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err))) {
			return
		}
		time.Sleep(time.Duration(try+1) * 200 * time.Millisecond)
	}
	b.Fatalf("%s: %v", what, err)
}

// benchPodAddr is pod p<j>'s address.
func benchPodAddr(j int) string {
	return netip.AddrFrom4([4]byte{10, 100, byte(j >> 8), byte(j)}).String()
}

// parallel runs f(0..n-1) on 8 goroutines.
func parallel(b *testing.B, n int, f func(int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				f(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

var nftRuleLine = regexp.MustCompile(`(?m)^\s+[^\s].*# handle \d+$`)

// countNftRules counts the rule lines (not the chain, set or map
// headers) of table inet name in n.
func countNftRules(b *testing.B, n *ns.NS, name string) int {
	out, err := n.Command(context.Background(), "nft", "-a", "list", "table", "inet", name).CombinedOutput()
	if err != nil {
		b.Fatalf("nft list table %s: %v: %s", name, err, out)
	}
	c := 0
	for _, l := range nftRuleLine.FindAllString(string(out), -1) {
		f := strings.Fields(l)[0]
		if f != "chain" && f != "set" && f != "map" && f != "table" {
			c++
		}
	}
	return c
}
