package main

import (
	"context"
	"fmt"
	"io"

	"github.com/switchd/switchd/switchd/daemon/apiclient"
)

// defaultAPISocket is the daemon's local API socket (switchd run
// --socket).
const defaultAPISocket = "/run/switchd/switchd.sock"

// showKubernetes prints cluster mode's status as the daemon's local API
// has it (GET /v1/status): the state tree has no leaves for it
// (/switchd/kubernetes/state mirrors the config only), so this is the one
// show command that does not read gNMI and takes no gNMI client.
func showKubernetes(ctx context.Context, _ *daemonClient, o showOutput) error {
	st, err := apiclient.GetStatus(ctx, o.api)
	if err != nil {
		return err
	}
	t := renderKubernetes(st.Kubernetes)
	switch {
	case o.json:
		return t.writeJSON(o.w)
	case st.Kubernetes == nil:
		_, err := fmt.Fprintln(o.w, "Cluster mode is off (/switchd/kubernetes/config/enabled)")
		return err
	}
	return t.writeRecords(o.w)
}

// renderKubernetes is one record of cluster mode's status, none when it
// is off: the node, whether every informer has listed (nothing from the
// API is enforced before), the API requests that got no answer, the
// NetworkPolicies compiled and the parts of them left out (logged).
func renderKubernetes(ks *apiclient.KubernetesStatus) *table {
	t := newTable("Kubernetes node", "Synced", "Request failures", "Policies", "Problems")
	if ks != nil {
		t.add(ks.Node, ks.Synced, ks.RequestFailures, ks.Policies, ks.Problems)
	}
	return t
}

// apiMain runs fn, which reads the local API rather than gNMI, with the
// timeout of the client flags, and turns its error into a message and
// exit code 1 as clientMain does.
func apiMain(cmd string, f clientFlags, stderr io.Writer, fn func(ctx context.Context, c *daemonClient) error) int {
	ctx, cancel := context.WithTimeout(context.Background(), *f.timeout)
	defer cancel()
	if err := fn(ctx, nil); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return 1
	}
	return 0
}
