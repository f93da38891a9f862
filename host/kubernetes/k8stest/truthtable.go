package k8stest

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The NetworkPolicy truth table, in the style of the upstream e2e suite
// (test/e2e/network/netpol): pods a and b in namespaces x and y, each
// probed from every pod on ports 80 and 81. host/kubernetes evaluates it
// on compiled policy, package switchd with real traffic between pods on
// two hosts; both compare against the same expected matrices.

// TableNamespaces are the table's namespaces, x and y, labelled
// team=<name>-team (and kubernetes.io/metadata.name, as the API server
// would).
func TableNamespaces() []*corev1.Namespace {
	var out []*corev1.Namespace
	for _, n := range []string{"x", "y"} {
		out = append(out, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n,
			Labels: map[string]string{"kubernetes.io/metadata.name": n, "team": n + "-team"}}})
	}
	return out
}

// TablePods are the table's pods in row order: x/a, x/b, y/a, y/b,
// labelled app=<name>. Pods a call their port 80 "serve", pods b their
// port 81.
func TablePods() []*corev1.Pod {
	var out []*corev1.Pod
	for _, n := range []string{"x", "y"} {
		for _, name := range []string{"a", "b"} {
			p := int32(80)
			if name == "b" {
				p = 81
			}
			out = append(out, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: n, Name: name, Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "none",
					Ports: []corev1.ContainerPort{{Name: "serve", ContainerPort: p}}}}},
			})
		}
	}
	return out
}

// TableCase is one row of the truth table: policies and the matrices
// they give. A matrix is four rows (sources x/a x/b y/a y/b) joined by
// "|", each four cells (destinations in the same order), '.' allowed,
// 'X' denied. The diagonal is what the policy says of a pod to itself;
// real traffic to a pod's own address never leaves it (upstream's
// AllowLoopback).
type TableCase struct {
	Name         string
	Policies     []*networkingv1.NetworkPolicy
	TCP80, TCP81 string
	// UDP80 and UDP81: "" means as TCP (the policy names no port).
	UDP80, UDP81 string
}

// Want is the case's matrix for protocol ("TCP", "UDP") and port.
func (c TableCase) Want(protocol corev1.Protocol, port int) string {
	tcp, udp := c.TCP80, c.UDP80
	if port == 81 {
		tcp, udp = c.TCP81, c.UDP81
	}
	if protocol == corev1.ProtocolUDP && udp != "" {
		return udp
	}
	return tcp
}

// AllAllowed is the matrix with no policy.
const AllAllowed = "....|....|....|...."

// TruthTable is the table's cases. block is an ipBlock that holds the
// addresses of x's pods and excepts those of y's (the addresses depend
// on where the pods run).
func TruthTable(block networkingv1.IPBlock) []TableCase {
	end := int32(85)
	return []TableCase{{
		Name:  "no policy",
		TCP80: AllAllowed, TCP81: AllAllowed,
	}, {
		Name:     "default deny ingress in x",
		Policies: []*networkingv1.NetworkPolicy{np("x", "deny", networkingv1.NetworkPolicySpec{PolicyTypes: ingressOnly})},
		TCP80:    "XX..|XX..|XX..|XX..", TCP81: "XX..|XX..|XX..|XX..",
	}, {
		Name:     "default deny egress in x",
		Policies: []*networkingv1.NetworkPolicy{np("x", "deny", networkingv1.NetworkPolicySpec{PolicyTypes: egressOnly})},
		TCP80:    "XXXX|XXXX|....|....", TCP81: "XXXX|XXXX|....|....",
	}, {
		Name: "x/a allows from namespace y only",
		Policies: []*networkingv1.NetworkPolicy{np("x", "p", networkingv1.NetworkPolicySpec{
			PodSelector: *MatchLabels("app", "a"), PolicyTypes: ingressOnly,
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: MatchLabels("team", "y-team")}}}},
		})},
		TCP80: "X...|X...|....|....", TCP81: "X...|X...|....|....",
	}, {
		Name: "x/a allows from app=b pods AND namespace y",
		Policies: []*networkingv1.NetworkPolicy{np("x", "p", networkingv1.NetworkPolicySpec{
			PodSelector: *MatchLabels("app", "a"), PolicyTypes: ingressOnly,
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{
				PodSelector: MatchLabels("app", "b"), NamespaceSelector: MatchLabels("kubernetes.io/metadata.name", "y"),
			}}}},
		})},
		TCP80: "X...|X...|X...|....", TCP81: "X...|X...|X...|....",
	}, {
		Name:     "x/a allows from app=b of its own namespace (podSelector alone)",
		Policies: []*networkingv1.NetworkPolicy{PodSelectorPolicy()},
		TCP80:    "X...|....|X...|X...", TCP81: "X...|....|X...|X...",
	}, {
		Name: "x egress only to an ipBlock of x's pods, y's excepted",
		Policies: []*networkingv1.NetworkPolicy{np("x", "p", networkingv1.NetworkPolicySpec{
			PolicyTypes: egressOnly,
			Egress:      []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &block}}}},
		})},
		TCP80: "..XX|..XX|....|....", TCP81: "..XX|..XX|....|....",
	}, {
		Name:     "named port: x pods take ingress on their port called serve",
		Policies: []*networkingv1.NetworkPolicy{onlyPort("x", true, networkingv1.NetworkPolicyPort{Port: NamedPort("serve")})},
		// x/a serves on 80, x/b on 81; the port is TCP, so no UDP to x.
		TCP80: ".X..|.X..|.X..|.X..", TCP81: "X...|X...|X...|X...",
		UDP80: "XX..|XX..|XX..|XX..", UDP81: "XX..|XX..|XX..|XX..",
	}, {
		Name:     "named port, egress: y pods reach pods on the port those call serve",
		Policies: []*networkingv1.NetworkPolicy{onlyPort("y", false, networkingv1.NetworkPolicyPort{Port: NamedPort("serve")})},
		TCP80:    "....|....|.X.X|.X.X", TCP81: "....|....|X.X.|X.X.",
		UDP80: "....|....|XXXX|XXXX", UDP81: "....|....|XXXX|XXXX",
	}, {
		Name:     "endPort: ingress to x on TCP 81-85 from anywhere, and nothing else",
		Policies: []*networkingv1.NetworkPolicy{onlyPort("x", true, networkingv1.NetworkPolicyPort{Port: Port(81), EndPort: &end})},
		TCP80:    "XX..|XX..|XX..|XX..", TCP81: AllAllowed,
		UDP80: "XX..|XX..|XX..|XX..", UDP81: "XX..|XX..|XX..|XX..",
	}, {
		Name: "union: deny ingress to x plus allow from y/b",
		Policies: []*networkingv1.NetworkPolicy{
			np("x", "deny", networkingv1.NetworkPolicySpec{PolicyTypes: ingressOnly}),
			np("x", "allow", networkingv1.NetworkPolicySpec{
				PolicyTypes: ingressOnly,
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{
					PodSelector: MatchLabels("app", "b"), NamespaceSelector: MatchLabels(),
				}}}},
			}),
		},
		TCP80: "XX..|....|XX..|....", TCP81: "XX..|....|XX..|....",
	}}
}

// PodSelectorPolicy lets x/a (app=a in x) take ingress only from app=b
// pods of namespace x: the relabel cases move x/b in and out of it.
func PodSelectorPolicy() *networkingv1.NetworkPolicy {
	return np("x", "p", networkingv1.NetworkPolicySpec{
		PodSelector: *MatchLabels("app", "a"), PolicyTypes: ingressOnly,
		Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: MatchLabels("app", "b")}}}},
	})
}

var (
	ingressOnly = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	egressOnly  = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
)

// onlyPort is policy p in namespace ns letting its pods take (ingress)
// or send (egress) traffic to port only, from or to anyone.
func onlyPort(ns string, ingress bool, port networkingv1.NetworkPolicyPort) *networkingv1.NetworkPolicy {
	spec := networkingv1.NetworkPolicySpec{PolicyTypes: egressOnly,
		Egress: []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{port}}}}
	if ingress {
		spec = networkingv1.NetworkPolicySpec{PolicyTypes: ingressOnly,
			Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{port}}}}
	}
	return np(ns, "p", spec)
}

// NetworkPolicy is a policy ns/name with spec.
func NetworkPolicy(ns, name string, spec networkingv1.NetworkPolicySpec) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
}

var np = NetworkPolicy

// Port is a numbered port of a policy.
func Port(n int32) *intstr.IntOrString {
	v := intstr.FromInt32(n)
	return &v
}

// NamedPort is a named port of a policy.
func NamedPort(s string) *intstr.IntOrString {
	v := intstr.FromString(s)
	return &v
}

// MatchLabels is a selector of key, value pairs.
func MatchLabels(kv ...string) *metav1.LabelSelector {
	s := &metav1.LabelSelector{MatchLabels: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		s.MatchLabels[kv[i]] = kv[i+1]
	}
	return s
}
