package config

import (
	"fmt"
	"path/filepath"
	"regexp"

	"github.com/switchd/switchd/models/oc"
)

// Kubernetes is cluster mode (/switchd/kubernetes/config): the daemon
// watches the API server's Pods, Namespaces and NetworkPolicies
// (host/kubernetes). Whether the API server answers is known only at run
// time: an unreachable one is retried, not a config error.
type Kubernetes struct {
	Enabled bool
	// Kubeconfig is an absolute path; "" is the pod's service account.
	Kubeconfig string
	// NodeName is this node's name in the cluster.
	NodeName string
}

// nodeNameRe is a DNS subdomain, what Kubernetes allows as a node name.
var nodeNameRe = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

func (t *translator) kubernetes(sd *oc.Switchd, in *Intent) {
	k := sd.GetKubernetes()
	if k == nil || !k.GetEnabled() {
		return
	}
	cfg := switchdPath.child("kubernetes").child("config")
	ok := true
	if k.Kubeconfig != nil && !filepath.IsAbs(k.GetKubeconfig()) {
		t.add(cfg.child("kubeconfig"), fmt.Sprintf("%q: give an absolute path (or leave it out for the pod's service account)", k.GetKubeconfig()))
		ok = false
	}
	switch n := k.GetNodeName(); {
	case k.NodeName == nil:
		t.add(cfg.child("node-name"), "cluster mode needs this node's name in the cluster")
		ok = false
	case len(n) > 253 || !nodeNameRe.MatchString(n):
		t.add(cfg.child("node-name"), fmt.Sprintf("%q is not a node name (a DNS subdomain: lower-case letters, digits, '-' and '.')", n))
		ok = false
	}
	if ok {
		in.Kubernetes = Kubernetes{Enabled: true, Kubeconfig: k.GetKubeconfig(), NodeName: k.GetNodeName()}
	}
}
