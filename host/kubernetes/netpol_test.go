package kubernetes

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchd/switchd/host/kubernetes/k8stest"
	"github.com/switchd/switchd/policy"
)

// render is a compact text of compiled policies, for comparison.
func render(c Compiled) string {
	var b strings.Builder
	for _, p := range c.Policies {
		var dirs []string
		if p.SelectsIngress {
			dirs = append(dirs, "in")
		}
		if p.SelectsEgress {
			dirs = append(dirs, "out")
		}
		fmt.Fprintf(&b, "%s [%s] %s\n", p.Name, p.Selector, strings.Join(dirs, ","))
		for _, d := range []struct {
			name  string
			rules []policy.Rule
		}{{"in", p.Ingress}, {"out", p.Egress}} {
			for _, r := range d.rules {
				fmt.Fprintf(&b, "  %s %d proto=%d ports=%v", d.name, r.Seq, r.Protocol, r.DstPorts)
				if r.Peer.Selector != nil {
					fmt.Fprintf(&b, " sel=[%s]", r.Peer.Selector)
				}
				if len(r.Peer.CIDRs) > 0 {
					fmt.Fprintf(&b, " cidr=%v except=%v", r.Peer.CIDRs, r.Peer.Except)
				}
				b.WriteString("\n")
			}
		}
	}
	return b.String()
}

// Shorthands of k8stest's policy helpers.
var (
	np     = k8stest.NetworkPolicy
	port   = k8stest.Port
	named  = k8stest.NamedPort
	labels = k8stest.MatchLabels
)

func proto(p corev1.Protocol) *corev1.Protocol { return &p }

var (
	ingressOnly = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	egressOnly  = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
)

// TestCompile checks the translation of each NetworkPolicy feature into
// engine policies, as text.
func TestCompile(t *testing.T) {
	end := int32(90)
	const nsX = `k8s.switchd.io/namespace == "x"`
	for _, tc := range []struct {
		name     string
		in       []*networkingv1.NetworkPolicy
		ports    NamedPorts
		want     string
		problems int
	}{{
		name: "default deny ingress",
		in:   []*networkingv1.NetworkPolicy{np("x", "deny", networkingv1.NetworkPolicySpec{PolicyTypes: ingressOnly})},
		want: "k8s:x/deny [" + nsX + "] in\n",
	}, {
		name: "default deny egress",
		in:   []*networkingv1.NetworkPolicy{np("x", "deny", networkingv1.NetworkPolicySpec{PolicyTypes: egressOnly})},
		want: "k8s:x/deny [" + nsX + "] out\n",
	}, {
		name: "no policyTypes: ingress, and egress when it has egress rules",
		in: []*networkingv1.NetworkPolicy{np("x", "a", networkingv1.NetworkPolicySpec{
			PodSelector: *labels("app", "a"),
			Egress:      []networkingv1.NetworkPolicyEgressRule{{}},
		})},
		want: "k8s:x/a [app == \"a\" && " + nsX + "] in,out\n" +
			"  out 1 proto=0 ports=[]\n",
	}, {
		name: "podSelector peer: those pods of the policy's namespace",
		in: []*networkingv1.NetworkPolicy{np("x", "a", networkingv1.NetworkPolicySpec{
			PolicyTypes: ingressOnly,
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: labels("app", "b")}}}},
		})},
		want: "k8s:x/a [" + nsX + "] in\n" +
			"  in 1 proto=0 ports=[] sel=[app == \"b\" && " + nsX + "]\n",
	}, {
		name: "namespaceSelector peer, {} is every pod",
		in: []*networkingv1.NetworkPolicy{np("x", "a", networkingv1.NetworkPolicySpec{
			PolicyTypes: ingressOnly,
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{NamespaceSelector: labels("kubernetes.io/metadata.name", "y")},
				{NamespaceSelector: labels()},
			}}},
		})},
		want: "k8s:x/a [" + nsX + "] in\n" +
			"  in 1 proto=0 ports=[] sel=[has(k8s.switchd.io/namespace) && kubernetes.io.ns.k8s.switchd.io/metadata.name == \"y\"]\n" +
			"  in 2 proto=0 ports=[] sel=[has(k8s.switchd.io/namespace)]\n",
	}, {
		name: "podSelector and namespaceSelector in one peer, with expressions",
		in: []*networkingv1.NetworkPolicy{np("x", "a", networkingv1.NetworkPolicySpec{
			PolicyTypes: ingressOnly,
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{
				PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"b", "c"}},
					{Key: "canary", Operator: metav1.LabelSelectorOpDoesNotExist},
				}},
				NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "team", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"red"}},
					{Key: "env", Operator: metav1.LabelSelectorOpExists},
				}},
			}}}},
		})},
		want: "k8s:x/a [" + nsX + "] in\n" +
			"  in 1 proto=0 ports=[] sel=[!has(canary) && app in {\"b\", \"c\"} && has(k8s.switchd.io/namespace) && has(ns.k8s.switchd.io/env) && ns.k8s.switchd.io/team != \"red\"]\n",
	}, {
		name: "ipBlock with except; leading zeros read as decimal; an except outside is dropped",
		in: []*networkingv1.NetworkPolicy{np("x", "a", networkingv1.NetworkPolicySpec{
			PolicyTypes: egressOnly,
			Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{
				{IPBlock: &networkingv1.IPBlock{CIDR: "010.1.0.0/16", Except: []string{"10.1.2.0/24", "192.0.2.0/24"}}},
				{IPBlock: &networkingv1.IPBlock{CIDR: "2001:db8::1/32"}},
			}}},
		})},
		want: "k8s:x/a [" + nsX + "] out\n" +
			"  out 1 proto=0 ports=[] cidr=[10.1.0.0/16] except=[10.1.2.0/24]\n" +
			"  out 2 proto=0 ports=[] cidr=[2001:db8::/32] except=[]\n",
	}, {
		name: "ports by protocol, endPort, a protocol without port",
		in: []*networkingv1.NetworkPolicy{np("x", "a", networkingv1.NetworkPolicySpec{
			PolicyTypes: ingressOnly,
			Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{
				{Port: port(80)},
				{Protocol: proto(corev1.ProtocolUDP), Port: port(53)},
				{Protocol: proto(corev1.ProtocolTCP), Port: port(81), EndPort: &end},
				{Protocol: proto(corev1.ProtocolSCTP)},
			}}},
		})},
		want: "k8s:x/a [" + nsX + "] in\n" +
			"  in 1 proto=6 ports=[80 81-90]\n" +
			"  in 2 proto=17 ports=[53]\n" +
			"  in 3 proto=132 ports=[]\n",
	}, {
		name:  "named port, ingress: a policy per number among the selected pods",
		ports: NamedPorts{"tcp.port.k8s.switchd.io/http": {8080, 9090}},
		in: []*networkingv1.NetworkPolicy{np("x", "a", networkingv1.NetworkPolicySpec{
			PolicyTypes: ingressOnly,
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: labels()}},
				Ports: []networkingv1.NetworkPolicyPort{{Port: named("http")}, {Port: named("nobody")}},
			}},
		})},
		want: "k8s:x/a [" + nsX + "] in\n" +
			"k8s:x/a#tcp.port.k8s.switchd.io/http=8080 [" + nsX + " && tcp.port.k8s.switchd.io/http == \"8080\"] in\n" +
			"  in 1 proto=6 ports=[8080] sel=[" + nsX + "]\n" +
			"k8s:x/a#tcp.port.k8s.switchd.io/http=9090 [" + nsX + " && tcp.port.k8s.switchd.io/http == \"9090\"] in\n" +
			"  in 1 proto=6 ports=[9090] sel=[" + nsX + "]\n",
	}, {
		name:  "named port, egress: the destination must be a pod calling the number so",
		ports: NamedPorts{"udp.port.k8s.switchd.io/dns": {53}},
		in: []*networkingv1.NetworkPolicy{np("x", "a", networkingv1.NetworkPolicySpec{
			PolicyTypes: egressOnly,
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: proto(corev1.ProtocolUDP), Port: named("dns")}},
			}},
		})},
		want: "k8s:x/a [" + nsX + "] out\n" +
			"  out 1 proto=17 ports=[53] sel=[udp.port.k8s.switchd.io/dns == \"53\"]\n",
	}, {
		name: "bad parts are left out, the rest stays",
		in: []*networkingv1.NetworkPolicy{
			np("x", "b", networkingv1.NetworkPolicySpec{
				PolicyTypes: ingressOnly,
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From: []networkingv1.NetworkPolicyPeer{
						{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/33"}},
						{IPBlock: &networkingv1.IPBlock{CIDR: "10.2.0.0/16"}},
					},
					Ports: []networkingv1.NetworkPolicyPort{{Protocol: proto("ICMP")}, {Port: port(22)}},
				}, {
					From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "nonsense"}}},
				}},
			}),
			np("x", "a", networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Near"}}},
			}),
		},
		want: "k8s:x/b [" + nsX + "] in\n" +
			"  in 1 proto=6 ports=[22] cidr=[10.2.0.0/16] except=[]\n",
		problems: 4,
	}, {
		name: "union: every policy, sorted by name",
		in: []*networkingv1.NetworkPolicy{
			np("y", "b", networkingv1.NetworkPolicySpec{PolicyTypes: ingressOnly, Ingress: []networkingv1.NetworkPolicyIngressRule{{}}}),
			np("x", "c", networkingv1.NetworkPolicySpec{PolicyTypes: ingressOnly}),
		},
		want: "k8s:x/c [" + nsX + "] in\n" +
			"k8s:y/b [k8s.switchd.io/namespace == \"y\"] in\n" +
			"  in 1 proto=0 ports=[]\n",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			c := Compile(tc.in, tc.ports)
			if got := render(c); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
			if len(c.Problems) != tc.problems {
				t.Errorf("problems %v, want %d", c.Problems, tc.problems)
			}
		})
	}
}

// pod is a test pod: its labels as PodLabels gives them and its address.
type pod struct {
	name   string
	addr   netip.Addr
	labels map[string]string
}

func mkPod(ns, name, addr string, ports []corev1.ContainerPort, kv ...string) pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{}}}
	for i := 0; i+1 < len(kv); i += 2 {
		p.Labels[kv[i]] = kv[i+1]
	}
	p.Spec.Containers = []corev1.Container{{Name: "c", Ports: ports}}
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"kubernetes.io/metadata.name": ns, "team": ns + "-team"}}}
	return pod{name: ns + "/" + name, addr: netip.MustParseAddr(addr), labels: PodLabels(p, n)}
}

// allowed evaluates compiled policies as the engine does (Kubernetes
// semantics): a direction a policy selects the pod for allows only what
// some rule of some selecting policy allows.
func allowed(ps []policy.Policy, src, dst pod, proto uint8, dport uint16) bool {
	match := func(r policy.Rule, peer pod) bool {
		if r.Protocol != 0 && r.Protocol != proto {
			return false
		}
		if len(r.DstPorts) > 0 && !slices.ContainsFunc(r.DstPorts, func(pr policy.PortRange) bool { return pr.First <= dport && dport <= pr.Last }) {
			return false
		}
		if r.Peer.Selector != nil && !r.Peer.Selector.Matches(peer.labels) {
			return false
		}
		if len(r.Peer.CIDRs) > 0 {
			in := slices.ContainsFunc(r.Peer.CIDRs, func(p netip.Prefix) bool { return p.Contains(peer.addr) })
			out := slices.ContainsFunc(r.Peer.Except, func(p netip.Prefix) bool { return p.Contains(peer.addr) })
			return in && !out
		}
		return true
	}
	dir := func(self, peer pod, ingress bool) bool {
		selected, ok := false, false
		for _, p := range ps {
			sel, rules := p.SelectsEgress, p.Egress
			if ingress {
				sel, rules = p.SelectsIngress, p.Ingress
			}
			if !sel || !p.Selector.Matches(self.labels) {
				continue
			}
			selected = true
			ok = ok || slices.ContainsFunc(rules, func(r policy.Rule) bool { return match(r, peer) })
		}
		return !selected || ok
	}
	return dir(src, dst, false) && dir(dst, src, true)
}

// TestTruthTable compiles policies and evaluates every pair of pods x/a,
// x/b, y/a, y/b on TCP and UDP 80 and 81, as the upstream NetworkPolicy
// e2e matrix does, cell by cell against k8stest's expected matrices (the
// ones package switchd checks with real traffic).
func TestTruthTable(t *testing.T) {
	addrs := []string{"10.0.0.1", "10.0.0.2", "10.0.1.1", "10.0.1.2"}
	nss := map[string]*corev1.Namespace{}
	for _, n := range k8stest.TableNamespaces() {
		nss[n.Name] = n
	}
	var pods []pod
	namedPorts := NamedPorts{}
	for i, p := range k8stest.TablePods() {
		pods = append(pods, pod{name: p.Namespace + "/" + p.Name, addr: netip.MustParseAddr(addrs[i]), labels: PodLabels(p, nss[p.Namespace])})
		for k, v := range pods[i].labels {
			if strings.Contains(k, portDomain) {
				var n uint16
				fmt.Sscan(v, &n)
				if !slices.Contains(namedPorts[k], n) {
					namedPorts[k] = append(namedPorts[k], n)
				}
			}
		}
	}
	for _, tc := range k8stest.TruthTable(networkingv1.IPBlock{CIDR: "10.0.0.0/16", Except: []string{"10.0.1.0/24"}}) {
		t.Run(tc.Name, func(t *testing.T) {
			c := Compile(tc.Policies, namedPorts)
			if len(c.Problems) > 0 {
				t.Fatal(c.Problems)
			}
			for _, m := range []struct {
				proto corev1.Protocol
				num   uint8
				port  uint16
			}{{corev1.ProtocolTCP, policy.ProtoTCP, 80}, {corev1.ProtocolTCP, policy.ProtoTCP, 81}, {corev1.ProtocolUDP, policy.ProtoUDP, 80}, {corev1.ProtocolUDP, policy.ProtoUDP, 81}} {
				var rows []string
				for _, src := range pods {
					var row []byte
					for _, dst := range pods {
						if allowed(c.Policies, src, dst, m.num, m.port) {
							row = append(row, '.')
						} else {
							row = append(row, 'X')
						}
					}
					rows = append(rows, string(row))
				}
				if got, want := strings.Join(rows, "|"), tc.Want(m.proto, int(m.port)); got != want {
					t.Errorf("%s %d: got %s want %s\n%s", m.proto, m.port, got, want, render(c))
				}
			}
		})
	}
}

// TestPodLabels checks what an endpoint of a pod is labelled with: the
// pod's labels (not those posing as ours), the namespace's under their
// keys, metadata.name even before the namespace is known, named ports.
func TestPodLabels(t *testing.T) {
	sidecar := corev1.ContainerRestartPolicyAlways
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "a", Labels: map[string]string{
			"app": "a", LabelNamespace: "kube-system", "team.ns.k8s.switchd.io/x": "y",
		}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{
				{Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP}, {ContainerPort: 9}}},
				{Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 9090}}},
			},
			InitContainers: []corev1.Container{
				{Name: "init", Ports: []corev1.ContainerPort{{Name: "setup", ContainerPort: 1}}},
				{Name: "side", RestartPolicy: &sidecar, Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9100}}},
			},
		},
	}
	want := map[string]string{
		"app":                             "a",
		LabelNamespace:                    "x",
		NamespaceKey(metadataName):        "x",
		"tcp.port.k8s.switchd.io/http":    "8080",
		"udp.port.k8s.switchd.io/dns":     "53",
		"tcp.port.k8s.switchd.io/metrics": "9100",
	}
	check := func(got map[string]string) {
		t.Helper()
		for _, k := range slices.Sorted(maps.Keys(got)) {
			if err := policy.CheckLabel(k, got[k]); err != nil {
				t.Errorf("%v", err)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("got %v\nwant %v", got, want)
		}
	}
	check(PodLabels(p, nil))
	want["ns.k8s.switchd.io/team"] = "red"
	want["kubernetes.io.ns.k8s.switchd.io/metadata.name"] = "x"
	check(PodLabels(p, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "x", Labels: map[string]string{"team": "red", metadataName: "x"}}}))
	if k := NamespaceKey(strings.Repeat("a", 240) + "/x"); k != "" {
		t.Errorf("an over-long key gave %q", k)
	}
}
