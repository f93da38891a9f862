package sim

import (
	"fmt"
	"io"
	"os"
	"text/tabwriter"
)

// MetricsAddress is where every switchd node serves Prometheus metrics:
// the same address in each node's own namespace, so scrape it from there
// (switchd sim exec NODE -- curl -s http://127.0.0.1:9100/metrics).
const MetricsAddress = "127.0.0.1:9100"

// gnmiSocketEnv names the local gNMI socket for switchd's show, get and
// set (the default of their --gnmi-socket).
const gnmiSocketEnv = "SWITCHD_GNMI_SOCKET"

// execEnv is the environment of a command run in the node's namespace:
// the simulator's own, with switchd's client commands pointed at the
// node's gNMI socket, so `switchd sim exec leaf1 -- switchd show bgp
// summary` asks leaf1's daemon.
func (n *NodeInfo) execEnv() []string {
	env := os.Environ()
	if n.GNMISocket != "" {
		env = append(env, gnmiSocketEnv+"="+n.GNMISocket)
	}
	return env
}

// addMetrics turns on a switchd node's metrics listener in its config.
func addMetrics(tree obj, n *NodeInfo) {
	if n.Metrics == "" {
		return
	}
	sd, _ := tree["switchd:switchd"].(obj)
	if sd == nil {
		sd = obj{}
		tree["switchd:switchd"] = sd
	}
	sd["metrics"] = obj{"config": obj{"enabled": true, "address": n.Metrics}}
}

// printManagement says where each switchd node's management listens: its
// local gNMI socket (what switchd show uses; sim exec points it there)
// and its metrics, both reached through sim exec.
func printManagement(w io.Writer, f *Fabric) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := false
	for _, n := range f.nodes {
		if n.GNMISocket == "" {
			continue
		}
		if !header {
			fmt.Fprintln(w, "\nmanagement (in each node's namespace: switchd sim exec NODE -- switchd show bgp summary):")
			fmt.Fprintln(tw, "NODE\tGNMI SOCKET\tMETRICS")
			header = true
		}
		fmt.Fprintf(tw, "%s\t%s\thttp://%s/metrics\n", n.Name, n.GNMISocket, n.Metrics)
	}
	tw.Flush()
}
