package daemon

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/switchd/switchd/host"
	"github.com/switchd/switchd/host/cni"
	"github.com/switchd/switchd/host/kubernetes"
	"github.com/switchd/switchd/policy"
)

// testKube is the Watcher: pods by key, compiled policies and the changes
// the test queues; EndpointLabels adds a cached pod's labels as the real
// one does.
type testKube struct {
	mu       sync.Mutex
	kick     chan struct{}
	pods     map[string]kubernetes.Pod
	policies []policy.Policy
	changes  kubernetes.Changes
}

func (k *testKube) Kick() <-chan struct{} { return k.kick }
func (k *testKube) Synced() bool          { return true }
func (k *testKube) RequestFailures() int  { return 0 }
func (k *testKube) Drain() kubernetes.Changes {
	k.mu.Lock()
	defer k.mu.Unlock()
	c := k.changes
	k.changes = kubernetes.Changes{}
	return c
}
func (k *testKube) Compile() kubernetes.Compiled {
	k.mu.Lock()
	defer k.mu.Unlock()
	return kubernetes.Compiled{Policies: slices.Clone(k.policies)}
}
func (k *testKube) EndpointLabels(ep map[string]string) (map[string]string, string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	key := ep[cni.PodNamespaceLabel] + "/" + ep[cni.PodNameLabel]
	out := maps.Clone(ep)
	maps.Copy(out, k.pods[key].Labels)
	return out, key
}
func (k *testKube) Pod(key string) (kubernetes.Pod, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p, ok := k.pods[key]
	return p, ok
}

func (p *testPolicy) AddMembers(source string, sel policy.Selector, addrs ...netip.Addr) error {
	p.rec.add("policy.AddMembers %s %s %v", source, sel, addrs)
	return nil
}

func (p *testPolicy) RemoveMembers(source string, sel policy.Selector, addrs ...netip.Addr) error {
	p.rec.add("policy.RemoveMembers %s %s %v", source, sel, addrs)
	return nil
}

// set changes the cache and queues changes, then kicks.
func (k *testKube) set(f func(), c kubernetes.Changes) {
	k.mu.Lock()
	f()
	k.changes = c
	k.mu.Unlock()
	kick(k.kick)
}

// relabel gives a cached pod the label app=app and queues its change.
func (k *testKube) relabel(key, app string) {
	k.set(func() {
		p := k.pods[key]
		p.Labels = map[string]string{"app": app}
		k.pods[key] = p
	}, kubernetes.Changes{Pods: []string{key}})
}

// TestWiringKubernetes: cluster mode's feed reaches the policy engine as
// Kubernetes needs it. The first drain gives the compiled NetworkPolicy
// after the configured policy (SetIntent), re-upserts the local pod's
// endpoint with its pod labels, and gives the pod of another node (not
// one of this node) as a "k8s" member of the policy's peer selector; a
// remote pod relabelled out of the selector is a RemoveMembers only, a
// local one an endpoint upsert only: no SetIntent, so no rule changes.
func TestWiringKubernetes(t *testing.T) {
	web := policy.MustParseSelector(`app == "web"`)
	np := policy.Policy{Name: "k8s/x/allow-web", Selector: policy.MustParseSelector(`app == "db"`), SelectsIngress: true,
		Ingress: []policy.Rule{{Seq: 1, Action: policy.Allow, Peer: policy.Peer{Selector: &web}}}}
	k := &testKube{kick: make(chan struct{}, 1), pods: map[string]kubernetes.Pod{
		"x/a": {Key: "x/a", Labels: map[string]string{"app": "web"}, Addrs: []netip.Addr{addr("10.1.0.2")}},
		"x/b": {Key: "x/b", Labels: map[string]string{"app": "web"}, Addrs: []netip.Addr{addr("10.2.0.5")}, Node: "node2"},
		// On this node with no endpoint yet (its CNI ADD to come): no
		// remote member.
		"x/c": {Key: "x/c", Labels: map[string]string{"app": "web"}, Addrs: []netip.Addr{addr("10.1.0.7")}, Node: "node1"},
	}}
	w := newWired(t, testConfig{neighbors: []string{"10.0.1.1"}, dbPort: 5432}, nil)
	w.d.setKubeWatcher(k, "node1") // before the loop, which selects on its feed
	w.run(t)

	podA := map[string]string{cni.PodNamespaceLabel: "x", cni.PodNameLabel: "a"}
	pm, m := w.pe.rec.mark(), w.rec.mark()
	w.eps.publish(endpointEvent(host.EndpointAdded, "c1/eth0", "swd1", "10.1.0.2", "", podA))
	w.rec.waitTurns(t, m, 1)
	want := []string{"policy.UpsertEndpoint c1/eth0 swd1 [10.1.0.2] map[app:web switchd.cni/k8s-pod-name:a switchd.cni/k8s-pod-namespace:x]", "policy.Apply"}
	if calls := w.pe.rec.since(pm); !slices.Equal(calls, want) {
		t.Errorf("pod x/a's endpoint added: policy calls %q, want %q", calls, want)
	}

	pm, m = w.pe.rec.mark(), w.rec.mark()
	k.set(func() { k.policies = []policy.Policy{np} }, kubernetes.Changes{Policies: true, Pods: []string{"x/a", "x/b"}})
	w.rec.waitTurns(t, m, 1)
	calls := w.pe.rec.since(pm)
	if len(calls) != 4 || !strings.HasPrefix(calls[0], "policy.SetIntent ") || !strings.Contains(calls[0], "db(") ||
		!strings.Contains(calls[0], `k8s/x/allow-web(app == "db"; 1 allow proto 0 ports [] from app == "web")`) ||
		calls[1] != want[0] || calls[2] != `policy.AddMembers k8s app == "web" [10.2.0.5]` || calls[3] != "policy.Apply" {
		t.Errorf("first drain: policy calls %q, want the configured and compiled policies, x/a upserted, x/b a member, an Apply", calls)
	}

	pm, m = w.pe.rec.mark(), w.rec.mark()
	k.relabel("x/b", "other")
	w.rec.waitTurns(t, m, 1)
	want = []string{`policy.RemoveMembers k8s app == "web" [10.2.0.5]`, "policy.Apply"}
	if calls := w.pe.rec.since(pm); !slices.Equal(calls, want) {
		t.Errorf("remote pod x/b relabelled: policy calls %q, want %q", calls, want)
	}

	pm, m = w.pe.rec.mark(), w.rec.mark()
	k.relabel("x/a", "other")
	w.rec.waitTurns(t, m, 1)
	want = []string{"policy.UpsertEndpoint c1/eth0 swd1 [10.1.0.2] map[app:other switchd.cni/k8s-pod-name:a switchd.cni/k8s-pod-namespace:x]", "policy.Apply"}
	if calls := w.pe.rec.since(pm); !slices.Equal(calls, want) {
		t.Errorf("local pod x/a relabelled: policy calls %q, want %q", calls, want)
	}

	// The endpoint removed, x/a is no longer local: its address becomes a
	// member if it is selected.
	pm, m = w.pe.rec.mark(), w.rec.mark()
	w.eps.publish(endpointEvent(host.EndpointRemoved, "c1/eth0", "swd1", "10.1.0.2", "", podA))
	w.rec.waitTurns(t, m, 1)
	m = w.rec.mark()
	k.relabel("x/a", "web")
	w.rec.waitTurns(t, m, 1)
	want = []string{"policy.DeleteEndpoint c1/eth0", "policy.Apply", `policy.AddMembers k8s app == "web" [10.1.0.2]`, "policy.Apply"}
	if calls := w.pe.rec.since(pm); !slices.Equal(calls, want) {
		t.Errorf("x/a's endpoint gone, x/a selected again: policy calls %q, want %q", calls, want)
	}
}
