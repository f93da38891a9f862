package kubernetes

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// TestMembers: the peer selectors of compiled policies get the addresses
// of the pods they match, except local endpoints' (the engine has those)
// and other pods of this node's.
func TestMembers(t *testing.T) {
	web := []corev1.ContainerPort{{Name: "serve", ContainerPort: 80}}
	pods := []pod{
		mkPod("x", "a", "10.0.0.1", web, "app", "a"),
		mkPod("x", "b", "10.0.0.2", web, "app", "b"),
		mkPod("y", "b", "10.0.1.2", web, "app", "b"),
		mkPod("y", "c", "10.0.1.3", web, "app", "b"), // on this node, no endpoint yet
	}
	var cached []Pod
	for _, p := range pods {
		node := "other"
		if p.name == "x/b" || p.name == "y/c" {
			node = "this"
		}
		cached = append(cached, Pod{Key: p.name, Labels: p.labels, Addrs: []netip.Addr{p.addr}, Node: node})
	}
	c := Compile([]*networkingv1.NetworkPolicy{np("x", "p", networkingv1.NetworkPolicySpec{
		PolicyTypes: ingressOnly,
		Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
			{PodSelector: labels("app", "b")},
			{PodSelector: labels("app", "b"), NamespaceSelector: labels()},
		}}},
	})}, nil)
	sels := PeerSelectors(c.Policies)
	if len(sels) != 2 {
		t.Fatalf("peer selectors %v", sels)
	}
	got := Members(sels, cached, func(p Pod) bool { return p.Node == "this" })
	want := map[string]string{
		`app == "b" && k8s.switchd.io/namespace == "x"`: "[]", // x/b is local
		`app == "b" && has(k8s.switchd.io/namespace)`:   "[10.0.1.2]",
	}
	for s, w := range want {
		if g := fmt.Sprint(got[s]); g != w {
			t.Errorf("%s: members %s, want %s", s, g, w)
		}
	}
	if len(got) != 1 {
		t.Errorf("members %v: a selector without members is left out", got)
	}
}
