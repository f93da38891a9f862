package daemon

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchd/switchd/host/kubernetes/k8stest"
	"github.com/switchd/switchd/switchd/config"
)

// TestWiringKubernetesAPI: cluster mode started as Run starts it
// (startKubernetes: the kubeconfig, the Watcher) against a real API
// server, on fake components: a NetworkPolicy in the API reaches the
// engine compiled, the pod of another node it selects as a peer becomes
// a "k8s" member, and a pod of this node does not; the status says the
// watcher synced and how many policies it compiled.
func TestWiringKubernetesAPI(t *testing.T) {
	s := k8stest.Start(t)
	ctx := t.Context()
	c := s.Client()
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct{ name, node, addr string }{{"b", "node2", "10.2.0.5"}, {"c", "node1", "10.1.0.7"}} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: p.name, Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{NodeName: p.node, Containers: []corev1.Container{{Name: "c", Image: "none"}}}}
		pod, err := c.CoreV1().Pods("x").Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// No kubelet: the address is set as it would through the status.
		pod.Status.PodIP, pod.Status.PodIPs = p.addr, []corev1.PodIP{{IP: p.addr}}
		if _, err := c.CoreV1().Pods("x").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "allow-web"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}}},
		}}
	if _, err := c.NetworkingV1().NetworkPolicies("x").Create(ctx, np, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	w := newWired(t, testConfig{neighbors: []string{"10.0.1.1"}}, nil)
	pm := w.pe.rec.mark()
	if err := w.d.startKubernetes(ctx, config.Kubernetes{Enabled: true, Kubeconfig: s.Kubeconfig, NodeName: "node1"}); err != nil {
		t.Fatal(err)
	}
	w.run(t)
	// The limit only bounds a test that fails.
	var calls []string
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		calls = w.pe.rec.since(pm)
		if slices.ContainsFunc(calls, func(c string) bool { return strings.HasPrefix(c, "policy.AddMembers k8s ") }) && w.d.Status().Kubernetes != nil ||
			time.Now().After(deadline) {
			break
		}
	}
	var intent, members []string
	for _, c := range calls {
		if strings.HasPrefix(c, "policy.SetIntent ") {
			intent = append(intent, c)
		}
		if strings.HasPrefix(c, "policy.AddMembers ") {
			members = append(members, c)
		}
	}
	if len(intent) != 1 || !strings.Contains(intent[0], "k8s:x/allow-web(") {
		t.Errorf("SetIntent calls %q, want one with k8s:x/allow-web", intent)
	}
	if len(members) != 1 || !strings.HasSuffix(members[0], " [10.2.0.5]") || !strings.Contains(members[0], `app == "web"`) {
		t.Errorf("AddMembers calls %q, want x/b's address (node2) only under app == \"web\"", members)
	}
	if st := w.d.Status().Kubernetes; st == nil || !st.Synced || st.Policies != 1 || st.Node != "node1" {
		t.Errorf("status %+v, want synced, node1, 1 policy", st)
	}
}
