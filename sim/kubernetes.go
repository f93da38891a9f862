package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/switchd/switchd/sim/ns"
)

// Cluster mode in the simulator: switchd hosts watching a Kubernetes API
// server (k8stest, started by the test), and pods attached as a
// Kubernetes runtime attaches them, through the CNI plugin (the switchd
// binary run with CNI_COMMAND) with K8S_POD_NAMESPACE and K8S_POD_NAME
// in CNI_ARGS. The API server's Pod objects are the test's to make.

// ManagementNet is the out-of-band network AddManagement makes: node i
// (in the order given) has ManagementNet's 2i+1 on its mgmt0, the
// management namespace 2i on its end.
var ManagementNet = netip.MustParseAddr("192.168.254.0")

// AddManagement makes a management namespace, <prefix>-mgmt, with addr
// on its loopback and a link to each of nodes (mgmt0 on the node), each
// node routing addr over it. A server there (the Kubernetes API server)
// is reached from the nodes' own namespaces as over a real out-of-band
// network: the fabric advertises only loopbacks and workload ranges, so
// a node's own traffic, from a link address, has no way back over it.
// Down removes the namespace and with it the links.
func (f *Fabric) AddManagement(addr netip.Addr, nodes ...string) (*ns.NS, error) {
	m, err := ns.New(f.Prefix + "-mgmt")
	if err != nil {
		return nil, err
	}
	if err := m.AddAddr("lo", netip.PrefixFrom(addr, 32)); err != nil {
		return m, err
	}
	base := ManagementNet.As4()
	for i, name := range nodes {
		n := f.Namespace(name)
		if n == nil {
			return m, fmt.Errorf("management link to %s: no such node", name)
		}
		here, there := base, base
		here[3], there[3] = byte(2*i), byte(2*i+1)
		if err := ns.Veth(m, name, n, "mgmt0"); err != nil {
			return m, err
		}
		if err := m.AddAddr(name, netip.PrefixFrom(netip.AddrFrom4(here), 31)); err != nil {
			return m, err
		}
		if err := n.AddAddr("mgmt0", netip.PrefixFrom(netip.AddrFrom4(there), 31)); err != nil {
			return m, err
		}
		l, err := n.Handle().LinkByName("mgmt0")
		if err != nil {
			return m, err
		}
		if err := n.Handle().RouteReplace(&netlink.Route{LinkIndex: l.Attrs().Index,
			Dst: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(32, 32)}, Gw: netip.AddrFrom4(here).AsSlice()}); err != nil {
			return m, fmt.Errorf("management route on %s: %w", name, err)
		}
	}
	return m, nil
}

// EnableKubernetes puts node's switchd in cluster mode, reading the API
// server through kubeconfig, with the node's name as its Kubernetes node
// name, and restarts it: cluster mode starts with the daemon.
func (f *Fabric) EnableKubernetes(ctx context.Context, node, kubeconfig string) error {
	n, err := f.node(node)
	if err != nil {
		return err
	}
	if n.Kind != Switchd {
		return fmt.Errorf("cluster mode on %s: not a switchd node", node)
	}
	p := f.ConfigPath(node)
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	var tree map[string]any
	if err := json.Unmarshal(b, &tree); err != nil {
		return fmt.Errorf("cluster mode on %s: %s: %w", node, p, err)
	}
	sd, _ := tree["switchd:switchd"].(map[string]any)
	if sd == nil {
		sd = map[string]any{}
		tree["switchd:switchd"] = sd
	}
	sd["kubernetes"] = map[string]any{"config": map[string]any{"enabled": true, "kubeconfig": kubeconfig, "node-name": node}}
	out, err := json.MarshalIndent(tree, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(p, append(out, '\n'), 0o644); err != nil {
		return err
	}
	return f.Restart(ctx, node)
}

// PodNetns is the namespace name of pod namespace/name on host.
func (f *Fabric) PodNetns(host, namespace, name string) string {
	return f.workloadNetns(host, namespace+"-"+name)
}

// AddPod attaches pod namespace/name on host as a Kubernetes runtime does:
// a namespace of its own and an ADD of the CNI plugin (the fabric's
// switchd binary) with the pod in CNI_ARGS. The workload's name is
// "namespace/name". A failed ADD removes the namespace again.
func (f *Fabric) AddPod(ctx context.Context, host, namespace, name string) (*Workload, error) {
	n, err := f.node(host)
	if err != nil {
		return nil, err
	}
	if n.Kind != Switchd || f.switchd == "" {
		return nil, fmt.Errorf("pod %s/%s on %s: only switchd nodes attach pods", namespace, name, host)
	}
	wns, err := ns.New(f.PodNetns(host, namespace, name))
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s on %s: %w", namespace, name, host, err)
	}
	defer wns.Close()
	id := namespace + "_" + name
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "switchd", "socket": f.SocketPath(host)})
	cmd := exec.CommandContext(ctx, f.switchd)
	cmd.Env = append(os.Environ(), "CNI_COMMAND=ADD", "CNI_CONTAINERID="+id, "CNI_NETNS="+wns.Path(),
		"CNI_IFNAME=eth0", "CNI_PATH="+filepath.Dir(f.switchd),
		// As the kubelet's runtimes set them.
		"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE="+namespace+";K8S_POD_NAME="+name+";K8S_POD_INFRA_CONTAINER_ID="+id)
	cmd.Stdin = bytes.NewReader(conf)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		wns.Delete()
		return nil, fmt.Errorf("pod %s/%s on %s: CNI ADD: %w: %s %s", namespace, name, host, err, strings.TrimSpace(string(out)), strings.TrimSpace(stderr.String()))
	}
	var res struct {
		IPs []struct {
			Address netip.Prefix `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		wns.Delete()
		return nil, fmt.Errorf("pod %s/%s on %s: CNI result %q: %w", namespace, name, host, out, err)
	}
	w := &Workload{Host: host, Name: namespace + "/" + name, Netns: wns.Name}
	for _, ip := range res.IPs {
		if a := ip.Address.Addr(); a.Is4() {
			w.IPv4 = a
		} else {
			w.IPv6 = a
		}
	}
	return w, nil
}
