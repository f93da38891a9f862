package daemon

import (
	"cmp"
	"context"
	"log/slog"
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
// members change: set elements, never a rule. Members are kept in a
// kubernetes.MemberIndex and given as AddMembers/RemoveMembers, so a pod
// change costs that pod, not every pod times every selector.

// kubeMembersSource is the SetMembers source of the API's pods.
const kubeMembersSource = "k8s"

// kubeWatcher is what the daemon uses of *kubernetes.Watcher.
type kubeWatcher interface {
	Kick() <-chan struct{}
	Drain() kubernetes.Changes
	Compile() kubernetes.Compiled
	EndpointLabels(epLabels map[string]string) (map[string]string, string)
	Pod(key string) (kubernetes.Pod, bool)
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
	// members are the remote members given to the engine, by selector.
	members *kubernetes.MemberIndex
	// problems are the parts of policies the last Compile left out, by
	// their text (which names the policy): logged as they come and go.
	problems map[string]bool
}

// kubeMembersEngine is what cluster mode gives the policy engine of the
// remote pods: changes only (*policy.Engine).
type kubeMembersEngine interface {
	AddMembers(source string, selector policy.Selector, addrs ...netip.Addr) error
	RemoveMembers(source string, selector policy.Selector, addrs ...netip.Addr) error
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
		podOf: map[string]string{}, members: kubernetes.NewMemberIndex()}
	failures := w.RequestFailures
	d.status.kubeFailures.Store(&failures) // read with the status (status.go)
	d.publishKubernetes()                  // not synced yet: no feed until it is
}

// kubeKick is the Watcher's feed; nil outside cluster mode.
func (d *Daemon) kubeKick() <-chan struct{} {
	if d.kube.w == nil {
		return nil
	}
	return d.kube.w.Kick()
}

// onKubernetes takes what changed in the API: policies compiled again
// (their problems logged as they come and go: each leaves out only its
// own part), the local endpoints of changed pods upserted with their new
// labels, then the remote members refreshed.
func (d *Daemon) onKubernetes() {
	k := &d.kube
	ch := k.w.Drain()
	if ch.Policies {
		c := k.w.Compile()
		k.takeProblems(d.log, c.Problems)
		k.policies = c.Policies
		d.setPolicy(d.intent)
	}
	if ch.Policies {
		d.giveKubeMembers(k.members.SetSelectors(kubernetes.PeerSelectors(k.policies)))
	}
	for _, key := range ch.Pods {
		for _, id := range slices.Sorted(maps.Keys(k.byPod[key])) {
			d.upsertEndpoint(k.byPod[key][id])
		}
		d.setKubeMember(key)
	}
	d.publishKubernetes()
}

// takeProblems logs each problem of a Compile when it appears and when
// it is gone, not at each Compile: every policy change and every change
// of a named port's numbers compiles all policies again, and one bad
// policy would log its problems at each.
func (k *kubeLoop) takeProblems(log *slog.Logger, problems []error) {
	now := make(map[string]bool, len(problems))
	for _, err := range problems {
		p := err.Error()
		if !now[p] && !k.problems[p] {
			log.Warn("network policy partly left out", "err", p)
		}
		now[p] = true
	}
	for _, p := range slices.Sorted(maps.Keys(k.problems)) {
		if !now[p] {
			log.Info("network policy problem gone", "err", p)
		}
	}
	k.problems = now
}

// publishKubernetes records cluster mode's state in the status.
func (d *Daemon) publishKubernetes() {
	k := &d.kube
	if k.w == nil {
		return
	}
	ks := &apiclient.KubernetesStatus{Node: k.node, Synced: k.w.Synced(), RequestFailures: k.w.RequestFailures(),
		Policies: len(k.policies), Problems: len(k.problems)}
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
	if old := k.forget(ep.ID); old != "" && old != key {
		d.setKubeMember(old) // maybe a remote member again
	}
	if key != "" {
		if k.byPod[key] == nil {
			k.byPod[key] = map[string]policy.Endpoint{}
		}
		k.byPod[key][ep.ID], k.podOf[ep.ID] = ep, key
		d.setKubeMember(key) // local now: no remote member
	}
	ep.Labels = labels
	return ep
}

// kubeForget drops a removed endpoint's pod record.
func (d *Daemon) kubeForget(id string) {
	if key := d.kube.forget(id); key != "" {
		d.setKubeMember(key) // maybe a remote member again
	}
}

// forget drops endpoint id's pod record and returns its pod key ("":
// none).
func (k *kubeLoop) forget(id string) string {
	key, ok := k.podOf[id]
	if !ok {
		return ""
	}
	delete(k.byPod[key], id)
	if len(k.byPod[key]) == 0 {
		delete(k.byPod, key)
	}
	delete(k.podOf, id)
	return key
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

// setKubeMember indexes the cached pod key as a remote member or not
// (a local endpoint, or a pod of this node, endpoint or not yet) and
// gives the engine what that changed.
func (d *Daemon) setKubeMember(key string) {
	k := &d.kube
	p, ok := k.w.Pod(key)
	remote := ok && len(k.byPod[key]) == 0 && (k.node == "" || p.Node != k.node)
	d.giveKubeMembers(k.members.SetPod(key, p, remote))
}

// giveKubeMembers gives the engine member changes of the "k8s" source.
func (d *Daemon) giveKubeMembers(cs []kubernetes.MemberChange) {
	for _, c := range cs {
		if len(c.Remove) > 0 {
			if err := d.policy.RemoveMembers(kubeMembersSource, c.Selector, c.Remove...); err != nil {
				d.log.Error("pods not taken out of policy", "selector", c.Name, "err", err)
			}
		}
		if len(c.Add) > 0 {
			if err := d.policy.AddMembers(kubeMembersSource, c.Selector, c.Add...); err != nil {
				d.log.Error("pods not in policy", "selector", c.Name, "err", err)
			}
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
