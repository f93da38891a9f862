package cni

import (
	"maps"
	"testing"
)

// TestPodArgs: a Kubernetes runtime's CNI_ARGS give the endpoint the pod's
// namespace and name as labels; other arguments are ignored.
func TestPodArgs(t *testing.T) {
	for _, tc := range []struct {
		args string
		want map[string]string
	}{
		{"", map[string]string{}},
		{"IgnoreUnknown=1;K8S_POD_NAMESPACE=x;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u",
			map[string]string{PodNamespaceLabel: "x", PodNameLabel: "web-0"}},
		{"K8S_POD_NAME=a", map[string]string{PodNameLabel: "a"}},
	} {
		got := map[string]string{}
		podArgs(tc.args, got)
		if !maps.Equal(got, tc.want) {
			t.Errorf("CNI_ARGS %q: labels %v, want %v", tc.args, got, tc.want)
		}
	}
}
