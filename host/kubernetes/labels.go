// Package kubernetes is switchd's Kubernetes adapter: it turns the API
// server's Pods, Namespaces and NetworkPolicies into endpoint labels and
// workload policy (policy.Policy) for the policy engine.
//
// Everything a NetworkPolicy can select is carried as endpoint labels, so
// the engine's selectors and sets do the work and a pod or namespace
// change is a set-element change:
//
//   - the pod's own labels, as they are;
//   - LabelNamespace: the pod's namespace (only pods have it);
//   - the namespace's labels under their own keys (NamespaceKey), with
//     kubernetes.io/metadata.name always among them;
//   - for each named container port, NamedPortKey(protocol, name) = the
//     port number, so a named port resolves per pod.
//
// Pod labels in this package's domain (LabelDomain) are dropped, so a
// pod cannot pose as another namespace's.
package kubernetes

import (
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// LabelDomain is the key prefix domain of the labels this package adds.
const LabelDomain = "k8s.switchd.io"

// Keys of the labels this package adds.
const (
	// LabelNamespace is the pod's namespace.
	LabelNamespace = LabelDomain + "/namespace"
	// nsDomain holds namespace labels: "team" is ns.k8s.switchd.io/team,
	// "kubernetes.io/metadata.name" is
	// kubernetes.io.ns.k8s.switchd.io/metadata.name (NamespaceKey).
	nsDomain = "ns." + LabelDomain
	// portDomain holds named ports: tcp.port.k8s.switchd.io/http.
	portDomain = "port." + LabelDomain
)

// metadataName is the label the API server gives every namespace: its name.
const metadataName = "kubernetes.io/metadata.name"

// NamespaceKey is the endpoint label key of namespace label key k; "" if
// k cannot be carried (its prefix would grow past 253 bytes).
func NamespaceKey(k string) string {
	prefix, name, ok := strings.Cut(k, "/")
	if !ok {
		return nsDomain + "/" + k
	}
	p := prefix + "." + nsDomain
	if len(p) > 253 {
		return ""
	}
	return p + "/" + name
}

// NamedPortKey is the label key whose value is the number of the pod's
// container port called name, for protocol ("TCP", "UDP", "SCTP").
func NamedPortKey(protocol corev1.Protocol, name string) string {
	return strings.ToLower(string(protocol)) + "." + portDomain + "/" + name
}

// isNamedPortKey reports whether k is a NamedPortKey.
func isNamedPortKey(k string) bool {
	prefix, _, ok := strings.Cut(k, "/")
	return ok && strings.HasSuffix(prefix, "."+portDomain)
}

// ownKey reports whether k is in this package's domain, or the CNI
// plugin's matching keys.
func ownKey(k string) bool {
	prefix, _, ok := strings.Cut(k, "/")
	return ok && (prefix == LabelDomain || strings.HasSuffix(prefix, "."+LabelDomain))
}

// PodLabels are the endpoint labels of pod in namespace ns (nil: known by
// name only, as when the namespace is not in the cache yet).
func PodLabels(pod *corev1.Pod, ns *corev1.Namespace) map[string]string {
	out := make(map[string]string, len(pod.Labels)+4)
	for k, v := range pod.Labels {
		if !ownKey(k) {
			out[k] = v
		}
	}
	out[LabelNamespace] = pod.Namespace
	if ns != nil {
		for k, v := range ns.Labels {
			if nk := NamespaceKey(k); nk != "" {
				out[nk] = v
			}
		}
	}
	// The API server sets it on every namespace; set it here too so a
	// namespace selector on it works before the namespace is cached.
	out[NamespaceKey(metadataName)] = pod.Namespace
	for _, c := range allContainers(pod) {
		for _, p := range c.Ports {
			if p.Name == "" {
				continue
			}
			proto := p.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			k := NamedPortKey(proto, p.Name)
			if _, dup := out[k]; !dup { // the first container naming it wins
				out[k] = strconv.Itoa(int(p.ContainerPort))
			}
		}
	}
	return out
}

// allContainers are the containers whose ports a named port may name:
// init containers run to completion first, except sidecars (restartPolicy
// Always), which keep running and serve.
func allContainers(pod *corev1.Pod) []corev1.Container {
	cs := pod.Spec.Containers
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			cs = append(cs[:len(cs):len(cs)], c)
		}
	}
	return cs
}
