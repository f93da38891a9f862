package kubernetes

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// TestMembers: the peer selectors of compiled policies get the addresses
// of the pods they match, except local endpoints' (the engine has those)
// and other pods of this node's; each pod change is a change of that
// pod's addresses in the selectors it enters or leaves, an address two
// pods hold stays until both let go, and a selector dropped loses its
// members.
func TestMembers(t *testing.T) {
	web := []corev1.ContainerPort{{Name: "serve", ContainerPort: 80}}
	pods := map[string]Pod{}
	for _, p := range []pod{
		mkPod("x", "a", "10.0.0.1", web, "app", "a"),
		mkPod("x", "b", "10.0.0.2", web, "app", "b"),
		mkPod("y", "b", "10.0.1.2", web, "app", "b"),
		mkPod("y", "c", "10.0.1.3", web, "app", "b"), // on this node, no endpoint yet
	} {
		node := "other"
		if p.name == "x/b" || p.name == "y/c" {
			node = "this"
		}
		pods[p.name] = Pod{Key: p.name, Labels: p.labels, Addrs: []netip.Addr{p.addr}, Node: node}
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
	const inX, anyNS = `app == "b" && k8s.switchd.io/namespace == "x"`, `app == "b" && has(k8s.switchd.io/namespace)`
	x := NewMemberIndex()
	set := func(key string) []MemberChange {
		p, ok := pods[key]
		return x.SetPod(key, p, ok && p.Node != "this")
	}
	step := func(what string, got []MemberChange, want ...string) {
		t.Helper()
		var s []string
		for _, c := range got {
			if c.Name != c.Selector.String() {
				t.Errorf("%s: change of %q carries selector %q", what, c.Name, c.Selector)
			}
			s = append(s, fmt.Sprintf("%s +%v -%v", c.Name, c.Add, c.Remove))
		}
		if !slices.Equal(s, want) {
			t.Errorf("%s: changes\n%s\nwant\n%s", what, strings.Join(s, "\n"), strings.Join(want, "\n"))
		}
	}
	for _, k := range []string{"x/a", "x/b", "y/b", "y/c"} {
		step("pod "+k+" before the selectors", set(k))
	}
	step("selectors set", x.SetSelectors(sels), anyNS+" +[10.0.1.2] -[]") // x/b and y/c are this node's
	step("selectors set again", x.SetSelectors(sels))

	p := pods["y/b"]
	p.Labels = map[string]string{"app": "a", "k8s.switchd.io/namespace": "y"}
	pods["y/b"] = p
	step("y/b relabelled out", set("y/b"), anyNS+" +[] -[10.0.1.2]")
	step("y/b again, unchanged", set("y/b"))

	p = pods["x/b"]
	p.Node = "other"
	pods["x/b"] = p
	step("x/b moved to another node", set("x/b"), anyNS+" +[10.0.0.2] -[]", inX+" +[10.0.0.2] -[]")

	// y/d takes x/b's address before x/b's delete is seen.
	pods["y/d"] = Pod{Key: "y/d", Labels: map[string]string{"app": "b", "k8s.switchd.io/namespace": "y"}, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.2")}, Node: "other"}
	step("y/d with x/b's address", set("y/d"))
	delete(pods, "x/b")
	step("x/b deleted", set("x/b"), inX+" +[] -[10.0.0.2]")
	if got := fmt.Sprint(x.Members(anyNS)); got != "[10.0.0.2]" {
		t.Errorf("members of %s: %s, want y/d's", anyNS, got)
	}

	delete(sels, anyNS)
	step("selector dropped", x.SetSelectors(sels), anyNS+" +[] -[10.0.0.2]")
	delete(pods, "y/d")
	step("y/d deleted, its selector gone", set("y/d"))
	if len(x.refs) != 0 {
		t.Errorf("counts left: %v", x.refs)
	}
}
