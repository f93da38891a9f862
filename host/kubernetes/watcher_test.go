package kubernetes

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/switchd/switchd/host/cni"
	"github.com/switchd/switchd/host/kubernetes/k8stest"
)

// waitChanges drains w after each kick until cond holds for what was
// drained so far; the limit only bounds a test that fails.
func waitChanges(t *testing.T, w *Watcher, what string, cond func(Changes) bool) Changes {
	t.Helper()
	var all Changes
	deadline := time.After(time.Minute)
	for {
		c := w.Drain()
		all.Policies = all.Policies || c.Policies
		all.Pods = append(all.Pods, c.Pods...)
		if cond(all) {
			return all
		}
		select {
		case <-w.Kick():
		case <-deadline:
			t.Fatalf("no %s (drained %+v)", what, all)
		}
	}
}

func hasPod(key string) func(Changes) bool {
	return func(c Changes) bool { return slices.Contains(c.Pods, key) }
}

func policyNames(c Compiled) []string {
	var out []string
	for _, p := range c.Policies {
		out = append(out, p.Name)
	}
	return out
}

// TestWatcher runs the Watcher against a real API server (through a
// kubeconfig, as the daemon would): the first drain after sync has the
// policies and every pod; a pod's label change and its namespace's label
// change reach Drain and the endpoint labels; with the API server
// stopped the compiled policy and the labels stay; back, it resyncs and
// a policy deleted meanwhile leaves.
func TestWatcher(t *testing.T) {
	s := k8stest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := s.Client()
	mustNS(t, c, "x", map[string]string{"team": "red"})
	pod := mustPod(t, c, "x", "a", "10.1.0.5", map[string]string{"app": "a"})
	deny := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "deny"},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: ingressOnly},
	}
	if _, err := c.NetworkingV1().NetworkPolicies("x").Create(ctx, deny, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	rc, err := RESTConfig(s.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWatcher(rc, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Start(ctx)
	first := waitChanges(t, w, "first drain", func(c Changes) bool { return c.Policies && slices.Contains(c.Pods, "x/a") })
	t.Logf("first drain: %+v", first)
	if got := policyNames(w.Compile()); !slices.Equal(got, []string{"k8s:x/deny"}) {
		t.Fatalf("compiled %v", got)
	}
	ep := map[string]string{cni.NetworkLabel: "k8s", cni.PodNamespaceLabel: "x", cni.PodNameLabel: "a"}
	labels, key := w.EndpointLabels(ep)
	if key != "x/a" || labels["app"] != "a" || labels["ns.k8s.switchd.io/team"] != "red" || labels[cni.NetworkLabel] != "k8s" {
		t.Fatalf("endpoint labels %v (pod %q)", labels, key)
	}
	if p, _ := w.Pod("x/a"); !slices.Equal(p.Addrs, []netip.Addr{netip.MustParseAddr("10.1.0.5")}) {
		t.Fatalf("pod addresses %v", p.Addrs)
	}

	pod.Labels["app"] = "b"
	if _, err := c.CoreV1().Pods("x").Update(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitChanges(t, w, "pod relabelled", hasPod("x/a"))
	if labels, _ := w.EndpointLabels(ep); labels["app"] != "b" {
		t.Fatalf("after relabel: %v", labels)
	}
	ns, err := c.CoreV1().Namespaces().Get(ctx, "x", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Labels["team"] = "blue"
	if _, err := c.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitChanges(t, w, "namespace relabelled", hasPod("x/a"))
	if labels, _ := w.EndpointLabels(ep); labels["ns.k8s.switchd.io/team"] != "blue" {
		t.Fatalf("after namespace relabel: %v", labels)
	}

	// Lost API server: once requests have failed, everything is as it was.
	failures := w.RequestFailures()
	s.StopAPIServer()
	for deadline := time.Now().Add(time.Minute); w.RequestFailures() == failures; {
		if time.Now().After(deadline) {
			t.Fatal("no failed request with the API server stopped")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := policyNames(w.Compile()); !slices.Equal(got, []string{"k8s:x/deny"}) {
		t.Fatalf("compiled with the API server lost: %v", got)
	}
	if labels, _ := w.EndpointLabels(ep); labels["app"] != "b" || labels["ns.k8s.switchd.io/team"] != "blue" {
		t.Fatalf("labels with the API server lost: %v", labels)
	}
	if c := w.Drain(); c.Policies || len(c.Pods) > 0 {
		t.Fatalf("changes with the API server lost: %+v", c)
	}

	// Back: a change made while the watcher was away arrives. Another
	// client deletes the policy right after the restart, before the
	// watcher's reflector relists.
	s.StartAPIServer()
	if err := c.NetworkingV1().NetworkPolicies("x").Delete(ctx, "deny", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitChanges(t, w, "policy deletion after the API server returned", func(Changes) bool { return len(w.Compile().Policies) == 0 })
}

func mustNS(t *testing.T, c *kubernetes.Clientset, name string, labels map[string]string) {
	t.Helper()
	if _, err := c.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// mustPod creates a pod and sets its address through the status
// subresource, as a kubelet would.
func mustPod(t *testing.T, c *kubernetes.Clientset, ns, name, addr string, labels map[string]string) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "none", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80}}}}},
	}
	p, err := c.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.PodIP = addr
	p.Status.PodIPs = []corev1.PodIP{{IP: addr}}
	if p, err = c.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.Status.PodIP, ".") {
		t.Fatalf("pod %s/%s: status.podIP %q", ns, name, p.Status.PodIP)
	}
	return p
}
