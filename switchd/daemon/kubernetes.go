package daemon

import (
	"cmp"
	"context"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"k8s.io/klog/v2"

	"github.com/switchd/switchd/host/kubernetes"
	"github.com/switchd/switchd/policy"
	"github.com/switchd/switchd/switchd/config"
	"github.com/switchd/switchd/switchd/daemon/apiclient"
)

// Cluster mode (/switchd/kubernetes): the Watcher's compiled
// NetworkPolicies join the configured workload policy (setPolicy), local
// endpoints that are pods get the pod's and its namespace's labels, and
// the cached pods that are not local endpoints fill the engine's "k8s"
// member source, so pods of other nodes are selected without BGP
// membership routes. A pod relabelled is an endpoint upsert and a
// members change: set elements, never a rule.

// kubeMembersSource is the SetMembers source of the API's pods.
const kubeMembersSource = "k8s"

// kubeWatcher is what the daemon uses of *kubernetes.Watcher.
type kubeWatcher interface {
	Kick() <-chan struct{}
	Drain() kubernetes.Changes
	Compile() kubernetes.Compiled
	EndpointLabels(epLabels map[string]string) (map[string]string, string)
	Pods() []kubernetes.Pod
	Synced() bool
	RequestFailures() int
}

// kubeLoop is the loop's bookkeeping of cluster mode.
type kubeLoop struct {
	w    kubeWatcher // nil: not in cluster mode
	node string      // this node's name (spec.nodeName of its pods)
	// policies are the compiled NetworkPolicies last taken.
	policies []policy.Policy
	// byPod are the local endpoints (as host gave them, CNI labels only)
	// of each pod key; podOf is the pod key of each endpoint id.
	byPod map[string]map[string]policy.Endpoint
	podOf map[string]string
	// given are the members last given to the engine, by selector.
	given map[string]kubeMembers
	// problems counts the parts of policies the last Compile left out.
	problems int
}

type kubeMembers struct {
	sel   policy.Selector
	addrs []netip.Addr
}

// startKubernetes starts the Watcher of cluster mode; it publishes
// nothing before every informer has listed, so a start never enforces
// from an empty cache.
func (d *Daemon) startKubernetes(ctx context.Context, k config.Kubernetes) error {
	log := d.log.With("component", "kubernetes")
	klog.SetSlogLogger(log) // client-go's reflectors log through klog
	rc, err := kubernetes.RESTConfig(k.Kubeconfig)
	if err != nil {
		return err
	}
	w, err := kubernetes.NewWatcher(rc, log, 0)
	if err != nil {
		return err
	}
	d.setKubeWatcher(w, k.NodeName)
	w.Start(ctx)
	d.log.Info("kubernetes watcher started", "server", rc.Host, "node", k.NodeName)
	return nil
}

// setKubeWatcher puts the daemon in cluster mode on w; endpoints it
// already has get their pods' labels when w's first Drain names them.
func (d *Daemon) setKubeWatcher(w kubeWatcher, node string) {
	d.kube = kubeLoop{w: w, node: node, byPod: map[string]map[string]policy.Endpoint{},
		podOf: map[string]string{}, given: map[string]kubeMembers{}}
}

// kubeKick is the Watcher's feed; nil outside cluster mode.
func (d *Daemon) kubeKick() <-chan struct{} {
	if d.kube.w == nil {
		return nil
	}
	return d.kube.w.Kick()
}

// onKubernetes takes what changed in the API: policies compiled again
// (their problems logged: each leaves out only its own part), the local
// endpoints of changed pods upserted with their new labels, then the
// remote members refreshed.
func (d *Daemon) onKubernetes() {
	k := &d.kube
	ch := k.w.Drain()
	if ch.Policies {
		c := k.w.Compile()
		for _, err := range c.Problems {
			d.log.Warn("network policy partly left out", "err", err)
		}
		k.policies, k.problems = c.Policies, len(c.Problems)
		d.setPolicy(d.intent)
	}
	for _, key := range ch.Pods {
		for _, id := range slices.Sorted(maps.Keys(k.byPod[key])) {
			d.upsertEndpoint(k.byPod[key][id])
		}
	}
	d.setKubeMembers()
	d.publishKubernetes()
}

// publishKubernetes records cluster mode's state in the status.
func (d *Daemon) publishKubernetes() {
	k := &d.kube
	if k.w == nil {
		return
	}
	ks := &apiclient.KubernetesStatus{Node: k.node, Synced: k.w.Synced(), RequestFailures: k.w.RequestFailures(),
		Policies: len(k.policies), Problems: k.problems}
	d.status.update(func(st *Status) { st.Kubernetes = ks })
}

// kubeEndpoint is ep with its pod's labels in cluster mode, and records
// which pod it is; outside cluster mode, ep.
func (d *Daemon) kubeEndpoint(ep policy.Endpoint) policy.Endpoint {
	k := &d.kube
	if k.w == nil {
		return ep
	}
	labels, key := k.w.EndpointLabels(ep.Labels)
	d.kubeForget(ep.ID)
	if key != "" {
		if k.byPod[key] == nil {
			k.byPod[key] = map[string]policy.Endpoint{}
		}
		k.byPod[key][ep.ID], k.podOf[ep.ID] = ep, key
	}
	ep.Labels = labels
	return ep
}

// kubeForget drops a removed endpoint's pod record.
func (d *Daemon) kubeForget(id string) {
	k := &d.kube
	key, ok := k.podOf[id]
	if !ok {
		return
	}
	delete(k.byPod[key], id)
	if len(k.byPod[key]) == 0 {
		delete(k.byPod, key)
	}
	delete(k.podOf, id)
}

// upsertEndpoint gives the engine (and group membership) a host endpoint
// with its labels as cluster mode sees them.
func (d *Daemon) upsertEndpoint(ep policy.Endpoint) {
	ep = d.kubeEndpoint(ep)
	d.groups.upsert(ep)
	if err := d.policy.UpsertEndpoint(ep); err != nil {
		d.log.Error("endpoint not in policy", "endpoint", ep.ID, "err", err)
	}
	d.pol.dirty = true
}

// setKubeMembers gives the engine, for each peer selector of the
// compiled policies, the cached pods it matches that are not local
// endpoints; only selectors whose members changed are given again.
func (d *Daemon) setKubeMembers() {
	k := &d.kube
	sels := kubernetes.PeerSelectors(k.policies)
	// Pods of this node are not remote members, endpoints or not yet.
	local := func(p kubernetes.Pod) bool { return len(k.byPod[p.Key]) > 0 || k.node != "" && p.Node == k.node }
	want := kubernetes.Members(sels, k.w.Pods(), local)
	for name := range maps.Keys(k.given) {
		if _, ok := want[name]; !ok {
			want[name] = nil // withdrawn
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		addrs, old := want[name], k.given[name]
		sel, ok := sels[name]
		if !ok {
			sel = old.sel
		}
		if slices.Equal(addrs, old.addrs) {
			continue
		}
		if err := d.policy.SetMembers(kubeMembersSource, sel, addrs); err != nil {
			d.log.Error("pods not in policy", "selector", name, "err", err)
			continue
		}
		if len(addrs) == 0 {
			delete(k.given, name)
		} else {
			k.given[name] = kubeMembers{sel, addrs}
		}
		d.pol.dirty = true
	}
}

// withKubernetesPolicies adds the compiled NetworkPolicies to the
// configured ones, in the order the engine evaluates them.
func (d *Daemon) withKubernetesPolicies(in policy.Intent) policy.Intent {
	if d.kube.w == nil {
		return in
	}
	return withPolicies(in, d.kube.policies)
}

// withPolicies is in with extra policies, sorted by order then name.
func withPolicies(in policy.Intent, extra []policy.Policy) policy.Intent {
	in.Policies = append(slices.Clone(in.Policies), extra...)
	slices.SortStableFunc(in.Policies, func(a, b policy.Policy) int {
		return cmp.Or(cmp.Compare(a.Order, b.Order), strings.Compare(a.Name, b.Name))
	})
	return in
}
