package kubernetes

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchd/switchd/policy"
)

// selectorTerms are the terms of a selector in the engine's grammar
// (policy.Selector), one per requirement of sel, each key passed through
// key (identity for pod labels, NamespaceKey for namespace labels).
func selectorTerms(sel *metav1.LabelSelector, key func(string) string) ([]string, error) {
	var terms []string
	for _, k := range slices.Sorted(maps.Keys(sel.MatchLabels)) {
		nk := key(k)
		if nk == "" {
			return nil, fmt.Errorf("label key %q cannot be carried", k)
		}
		terms = append(terms, nk+" == "+strconv.Quote(sel.MatchLabels[k]))
	}
	for _, e := range sel.MatchExpressions {
		nk := key(e.Key)
		if nk == "" {
			return nil, fmt.Errorf("label key %q cannot be carried", e.Key)
		}
		switch e.Operator {
		case metav1.LabelSelectorOpExists:
			terms = append(terms, "has("+nk+")")
		case metav1.LabelSelectorOpDoesNotExist:
			terms = append(terms, "!has("+nk+")")
		case metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn:
			if len(e.Values) == 0 {
				return nil, fmt.Errorf("%s %s with no values", e.Key, e.Operator)
			}
			vs := make([]string, len(e.Values))
			for i, v := range e.Values {
				vs[i] = strconv.Quote(v)
			}
			op := " in {"
			if e.Operator == metav1.LabelSelectorOpNotIn {
				op = " not in {"
			}
			terms = append(terms, nk+op+strings.Join(vs, ", ")+"}")
		default:
			return nil, fmt.Errorf("unknown operator %q", e.Operator)
		}
	}
	return terms, nil
}

// selector joins terms into an engine selector.
func selector(terms ...string) (policy.Selector, error) {
	if len(terms) == 0 {
		return policy.Selector{}, nil
	}
	return policy.ParseSelector(strings.Join(terms, " && "))
}

// inNamespace is the term of pods in namespace ns; isPod the term of any
// pod.
func inNamespace(ns string) string { return LabelNamespace + " == " + strconv.Quote(ns) }

const isPod = "has(" + LabelNamespace + ")"

func identity(k string) string { return k }

// peerSelector is the engine selector of a NetworkPolicyPeer without an
// ipBlock in policy namespace ns (Kubernetes' semantics):
//
//   - podSelector alone: those pods of ns;
//   - namespaceSelector alone: every pod of the namespaces it selects
//     ({} selects every namespace);
//   - both: those pods in those namespaces.
//
// Pods only: a selector never matches an address that is not a pod's.
func peerSelector(ns string, pods, namespaces *metav1.LabelSelector) (policy.Selector, error) {
	var terms []string
	if pods != nil {
		t, err := selectorTerms(pods, identity)
		if err != nil {
			return policy.Selector{}, fmt.Errorf("podSelector: %w", err)
		}
		terms = append(terms, t...)
	}
	if namespaces == nil {
		terms = append(terms, inNamespace(ns))
	} else {
		t, err := selectorTerms(namespaces, NamespaceKey)
		if err != nil {
			return policy.Selector{}, fmt.Errorf("namespaceSelector: %w", err)
		}
		terms = append(append(terms, t...), isPod)
	}
	return selector(terms...)
}

// parseCIDR parses an ipBlock CIDR as the API server does for objects
// stored by older versions: IPv4 octets with leading zeros are decimal
// (k8s.io/utils/net ParseCIDRSloppy), host bits are masked.
func parseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		addr, bits, ok := strings.Cut(s, "/")
		octets := strings.Split(addr, ".")
		if !ok || len(octets) != 4 {
			return netip.Prefix{}, err
		}
		for i, o := range octets {
			if t := strings.TrimLeft(o, "0"); t != "" {
				octets[i] = t
			} else if o != "" {
				octets[i] = "0"
			}
		}
		if p, err = netip.ParsePrefix(strings.Join(octets, ".") + "/" + bits); err != nil {
			return netip.Prefix{}, err
		}
	}
	return p.Masked(), nil
}
