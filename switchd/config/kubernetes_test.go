package config

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// withSwitchdConfig is examples/host.json with /switchd/<container>/config
// set to c.
func withSwitchdConfig(t *testing.T, container string, c map[string]any) []byte {
	t.Helper()
	m := hostDoc(t)
	at(t, m, "switchd:switchd")[container] = map[string]any{"config": c}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// wantConfigError fails unless err has an error at path whose reason
// contains reason.
func wantConfigError(t *testing.T, err error, path, reason string) {
	t.Helper()
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("got %v, want config errors", err)
	}
	for _, e := range es {
		if e.Path == path && strings.Contains(e.Reason, reason) {
			return
		}
	}
	t.Errorf("no error at %s containing %q; got:\n%v", path, reason, err)
}

func TestParseKubernetes(t *testing.T) {
	for _, tc := range []struct {
		cfg  map[string]any
		want Kubernetes
	}{
		{map[string]any{"enabled": true, "kubeconfig": "/etc/switchd/kubeconfig", "node-name": "node-1.rack2"},
			Kubernetes{Enabled: true, Kubeconfig: "/etc/switchd/kubeconfig", NodeName: "node-1.rack2"}},
		{map[string]any{"enabled": true, "node-name": "n1"}, Kubernetes{Enabled: true, NodeName: "n1"}},
		// Not enabled: nothing else is looked at.
		{map[string]any{"enabled": false, "kubeconfig": "relative"}, Kubernetes{}},
	} {
		in, err := Parse(withSwitchdConfig(t, "kubernetes", tc.cfg), "host.json")
		if err != nil {
			t.Fatalf("%v: %v", tc.cfg, err)
		}
		if in.Kubernetes != tc.want {
			t.Errorf("%v: got %+v, want %+v", tc.cfg, in.Kubernetes, tc.want)
		}
	}
}

func TestParseRejectsKubernetes(t *testing.T) {
	const p = "/switchd/kubernetes/config/"
	for _, tc := range []struct {
		cfg    map[string]any
		path   string
		reason string
	}{
		{map[string]any{"enabled": true}, p + "node-name", "needs this node's name"},
		{map[string]any{"enabled": true, "node-name": "Node_1"}, p + "node-name", "not a node name"},
		{map[string]any{"enabled": true, "node-name": "n1", "kubeconfig": "kube/config"}, p + "kubeconfig", "absolute path"},
	} {
		_, err := Parse(withSwitchdConfig(t, "kubernetes", tc.cfg), "host.json")
		wantConfigError(t, err, tc.path, tc.reason)
	}
}
