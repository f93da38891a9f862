package kubernetes

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/switchd/switchd/host/cni"
)

// DefaultResync is how often the informers hand every cached object to
// the handlers again; a handler that sees no change does nothing.
const DefaultResync = 10 * time.Minute

// Watcher keeps Pods, Namespaces and NetworkPolicies of the whole
// cluster in client-go informers (list, then watch; on an error the
// reflector lists again after a back-off) and publishes what changed as
// a feed: Kick (1-buffered) plus Drain.
//
// A lost API server changes nothing: the caches keep the last objects,
// so compiled policy and endpoint labels stay as they were, and when the
// server is back the relist delivers only the differences. Nothing is
// published before every informer has listed once (Synced), so a start
// never enforces from an empty cache.
//
// It uses REST clients of its own for the two API groups rather than
// client-go's clientset, whose scheme registers every API group at
// process start: the daemon's binary is also the CNI plugin.
//
// Threading: the informers call the handlers on their goroutines; the
// methods are safe for concurrent use.
type Watcher struct {
	log                *slog.Logger
	pods, nss, netpols cache.SharedIndexInformer
	kick               chan struct{}

	mu        sync.Mutex // guards the fields below
	synced    bool
	policies  bool            // NetworkPolicies or named ports changed
	dirtyPods map[string]bool // "ns/name" whose labels or addresses changed
	failures  int             // requests without an answer so far
}

// Changes is what Drain returns: what changed since the last Drain.
type Changes struct {
	// Policies: compile again (Compile).
	Policies bool
	// Pods are the pods ("namespace/name") whose endpoint labels or
	// addresses may have changed, sorted; all of a namespace whose labels
	// changed.
	Pods []string
}

// NewWatcher makes the informers of the cluster rc names; Start runs them.
func NewWatcher(rc *rest.Config, log *slog.Logger, resync time.Duration) (*Watcher, error) {
	if log == nil {
		log = slog.Default()
	}
	if resync <= 0 {
		resync = DefaultResync
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, networkingv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	codecs := serializer.NewCodecFactory(scheme).WithoutConversion()
	w := &Watcher{log: log, kick: make(chan struct{}, 1), dirtyPods: map[string]bool{}}
	client := func(apiPath string, gv schema.GroupVersion) (*rest.RESTClient, error) {
		c := rest.CopyConfig(rc)
		c.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countFailures{rt, w} })
		c.APIPath, c.GroupVersion, c.NegotiatedSerializer = apiPath, &gv, codecs
		c.ContentType = runtime.ContentTypeProtobuf
		c.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
		if c.UserAgent == "" {
			c.UserAgent = "switchd"
		}
		return rest.RESTClientFor(c)
	}
	core, err := client("/api", corev1.SchemeGroupVersion)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	networking, err := client("/apis", networkingv1.SchemeGroupVersion)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	byNS := cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}
	w.pods = cache.NewSharedIndexInformer(cache.NewListWatchFromClient(core, "pods", metav1.NamespaceAll, fields.Everything()), &corev1.Pod{}, resync, byNS)
	w.nss = cache.NewSharedIndexInformer(cache.NewListWatchFromClient(core, "namespaces", metav1.NamespaceAll, fields.Everything()), &corev1.Namespace{}, resync, cache.Indexers{})
	w.netpols = cache.NewSharedIndexInformer(cache.NewListWatchFromClient(networking, "networkpolicies", metav1.NamespaceAll, fields.Everything()), &networkingv1.NetworkPolicy{}, resync, cache.Indexers{})
	for _, inf := range []cache.SharedIndexInformer{w.pods, w.nss, w.netpols} {
		if err := inf.SetWatchErrorHandlerWithContext(w.watchError); err != nil {
			return nil, err
		}
	}
	if _, err := w.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { w.podChanged(nil, asPod(o)) },
		UpdateFunc: func(o, n any) { w.podChanged(asPod(o), asPod(n)) },
		DeleteFunc: func(o any) { w.podChanged(asPod(o), nil) },
	}); err != nil {
		return nil, err
	}
	if _, err := w.nss.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { w.namespaceChanged(nil, asNamespace(o)) },
		UpdateFunc: func(o, n any) { w.namespaceChanged(asNamespace(o), asNamespace(n)) },
		DeleteFunc: func(o any) { w.namespaceChanged(asNamespace(o), nil) },
	}); err != nil {
		return nil, err
	}
	if _, err := w.netpols.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.policiesChanged() },
		UpdateFunc: func(o, n any) { w.policiesChanged() },
		DeleteFunc: func(any) { w.policiesChanged() },
	}); err != nil {
		return nil, err
	}
	return w, nil
}

// Start runs the informers until ctx ends; once all have listed, the
// first Kick says everything is new.
func (w *Watcher) Start(ctx context.Context) {
	for _, inf := range []cache.SharedIndexInformer{w.pods, w.nss, w.netpols} {
		go inf.RunWithContext(ctx)
	}
	go func() {
		if !cache.WaitForCacheSync(ctx.Done(), w.pods.HasSynced, w.nss.HasSynced, w.netpols.HasSynced) {
			return
		}
		w.mu.Lock()
		w.synced, w.policies = true, true
		for _, k := range w.pods.GetStore().ListKeys() {
			w.dirtyPods[k] = true
		}
		w.mu.Unlock()
		w.signal()
	}()
}

// Synced reports whether every informer has listed once.
func (w *Watcher) Synced() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.synced
}

// RequestFailures is the number of API requests that got no answer so
// far (the server unreachable): the reflectors retry those quietly.
func (w *Watcher) RequestFailures() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failures
}

// countFailures counts the requests of a Watcher that get no answer.
type countFailures struct {
	rt http.RoundTripper
	w  *Watcher
}

func (c countFailures) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(r)
	if err != nil {
		c.w.mu.Lock()
		c.w.failures++
		c.w.mu.Unlock()
	}
	return resp, err
}

// Kick is signalled when Drain has something (after Synced).
func (w *Watcher) Kick() <-chan struct{} { return w.kick }

// Drain returns what changed since the last Drain (nothing before Synced).
func (w *Watcher) Drain() Changes {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.synced {
		return Changes{}
	}
	c := Changes{Policies: w.policies, Pods: slices.Sorted(maps.Keys(w.dirtyPods))}
	w.policies, w.dirtyPods = false, map[string]bool{}
	return c
}

func (w *Watcher) signal() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *Watcher) watchError(ctx context.Context, r *cache.Reflector, err error) {
	w.log.Warn("kubernetes watch failed; the cache and enforcement stay as they are, retrying", "reflector", r.TypeDescription(), "err", err)
}

func asPod(o any) *corev1.Pod {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	p, _ := o.(*corev1.Pod)
	return p
}

func asNamespace(o any) *corev1.Namespace {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	n, _ := o.(*corev1.Namespace)
	return n
}

// podChanged marks a pod whose labels, addresses, named ports or node
// differ between old and new (nil: absent).
func (w *Watcher) podChanged(old, new *corev1.Pod) {
	p := new
	if p == nil {
		p = old
	}
	if p == nil {
		return
	}
	var ol, nl map[string]string
	var oa, na []netip.Addr
	if old != nil {
		ol, oa = PodLabels(old, nil), PodAddrs(old)
	}
	if new != nil {
		nl, na = PodLabels(new, nil), PodAddrs(new)
	}
	// The node decides whether a pod is a remote member (Members).
	if maps.Equal(ol, nl) && slices.Equal(oa, na) && (old == nil || new == nil || old.Spec.NodeName == new.Spec.NodeName) {
		return
	}
	w.mu.Lock()
	w.dirtyPods[p.Namespace+"/"+p.Name] = true
	if !maps.Equal(namedPorts(ol), namedPorts(nl)) {
		w.policies = true
	}
	synced := w.synced
	w.mu.Unlock()
	if synced {
		w.signal()
	}
}

// namespaceChanged marks every pod of a namespace whose labels changed.
func (w *Watcher) namespaceChanged(old, new *corev1.Namespace) {
	n := new
	if n == nil {
		n = old
	}
	if n == nil || (old != nil && new != nil && maps.Equal(old.Labels, new.Labels)) {
		return
	}
	keys, _ := w.pods.GetIndexer().IndexKeys(cache.NamespaceIndex, n.Name)
	if len(keys) == 0 {
		return
	}
	w.mu.Lock()
	for _, k := range keys {
		w.dirtyPods[k] = true
	}
	synced := w.synced
	w.mu.Unlock()
	if synced {
		w.signal()
	}
}

func (w *Watcher) policiesChanged() {
	w.mu.Lock()
	w.policies = true
	synced := w.synced
	w.mu.Unlock()
	if synced {
		w.signal()
	}
}

// namedPorts are the named-port labels among labels.
func namedPorts(labels map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range labels {
		if isNamedPortKey(k) {
			out[k] = v
		}
	}
	return out
}

// PodAddrs are the pod's addresses (status.podIPs), sorted.
func PodAddrs(p *corev1.Pod) []netip.Addr {
	var out []netip.Addr
	ips := p.Status.PodIPs
	if len(ips) == 0 && p.Status.PodIP != "" {
		ips = []corev1.PodIP{{IP: p.Status.PodIP}}
	}
	for _, ip := range ips {
		if a, err := netip.ParseAddr(ip.IP); err == nil {
			out = append(out, a.Unmap())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// Compile compiles the cached NetworkPolicies, named ports resolved over
// the cached pods.
func (w *Watcher) Compile() Compiled {
	var nps []*networkingv1.NetworkPolicy
	for _, o := range w.netpols.GetStore().List() {
		if np, ok := o.(*networkingv1.NetworkPolicy); ok {
			nps = append(nps, np)
		}
	}
	ports := NamedPorts{}
	for _, o := range w.pods.GetStore().List() {
		p, ok := o.(*corev1.Pod)
		if !ok {
			continue
		}
		for k, v := range namedPorts(PodLabels(p, nil)) {
			var n uint16
			if _, err := fmt.Sscan(v, &n); err == nil && !slices.Contains(ports[k], n) {
				ports[k] = append(ports[k], n)
			}
		}
	}
	for _, ns := range ports {
		slices.Sort(ns)
	}
	slices.SortFunc(nps, func(a, b *networkingv1.NetworkPolicy) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return Compile(nps, ports)
}

// Pod is a cached pod as the policy engine sees it.
type Pod struct {
	Key    string // namespace/name
	Labels map[string]string
	Addrs  []netip.Addr
	Node   string // spec.nodeName: "" until scheduled
}

// Pod returns the cached pod key ("namespace/name") with its endpoint
// labels; ok is false if it is not cached.
func (w *Watcher) Pod(key string) (Pod, bool) {
	o, ok, _ := w.pods.GetStore().GetByKey(key)
	p, _ := o.(*corev1.Pod)
	if !ok || p == nil {
		return Pod{}, false
	}
	return Pod{Key: key, Labels: PodLabels(p, w.namespace(p.Namespace)), Addrs: PodAddrs(p), Node: p.Spec.NodeName}, true
}

// Pods are every cached pod with an address (the members of selectors
// that are not local endpoints).
func (w *Watcher) Pods() []Pod {
	var out []Pod
	for _, k := range w.pods.GetStore().ListKeys() {
		if p, ok := w.Pod(k); ok && len(p.Addrs) > 0 {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b Pod) int { return strings.Compare(a.Key, b.Key) })
	return out
}

func (w *Watcher) namespace(name string) *corev1.Namespace {
	o, ok, _ := w.nss.GetStore().GetByKey(name)
	if !ok {
		return nil
	}
	n, _ := o.(*corev1.Namespace)
	return n
}

// EndpointLabels are the labels of a local endpoint whose labels (from
// the CNI plugin) are epLabels: with the pod's namespace and name among
// them (cni.PodNamespaceLabel, cni.PodNameLabel), the pod's endpoint
// labels are added. A pod not cached yet gets its namespace's labels
// only, so namespace-wide policy applies from its first packet; the
// pod's Changes entry follows when it is cached.
func (w *Watcher) EndpointLabels(epLabels map[string]string) (labels map[string]string, podKey string) {
	ns, name := epLabels[cni.PodNamespaceLabel], epLabels[cni.PodNameLabel]
	if ns == "" || name == "" {
		return epLabels, ""
	}
	key := ns + "/" + name
	out := maps.Clone(epLabels)
	if p, ok := w.Pod(key); ok {
		maps.Copy(out, p.Labels)
		return out, key
	}
	stub := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	maps.Copy(out, PodLabels(stub, w.namespace(ns)))
	return out, key
}
