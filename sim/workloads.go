package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchd/switchd/host/endpointapi"
	"github.com/switchd/switchd/sim/ns"
)

// A Workload is a container on a host node: its own network namespace,
// attached by the host's switchd through the same API the CNI plugin uses.
type Workload struct {
	Host string `json:"host"`
	Name string `json:"name"`
	// Netns is the workload's namespace name (<prefix>-<host>-<name>).
	Netns string     `json:"netns"`
	IPv4  netip.Addr `json:"ipv4,omitzero"`
	IPv6  netip.Addr `json:"ipv6,omitzero"`
	// Labels as the host's endpoint API reports them (sim-host and the
	// topology's labels for this workload), as sorted key=value pairs
	// joined by ",": a string keeps Workload comparable.
	Labels string `json:"labels,omitempty"`
}

func (f *Fabric) workloadNetns(hostName, name string) string {
	return fmt.Sprintf("%s-%s-%s", f.Prefix, hostName, name)
}

func (f *Fabric) endpointClient(hostName string) *endpointapi.Client {
	if c, ok := f.clients.Load(hostName); ok {
		return c.(*endpointapi.Client)
	}
	c, _ := f.clients.LoadOrStore(hostName, &endpointapi.Client{Socket: f.SocketPath(hostName), Timeout: 30 * time.Second})
	return c.(*endpointapi.Client)
}

// AddWorkload creates a workload namespace and asks hostName's switchd to
// attach it (a CNI ADD without the plugin process). A failed attach
// removes the namespace again. With a policy topology the other hosts
// then learn its labels as a network set (SyncNetworkSets).
func (f *Fabric) AddWorkload(ctx context.Context, hostName, name string) (*Workload, error) {
	w, err := f.addWorkload(ctx, hostName, name)
	if err != nil {
		return nil, err
	}
	return w, f.SyncNetworkSets(ctx)
}

func (f *Fabric) addWorkload(ctx context.Context, hostName, name string) (*Workload, error) {
	n, err := f.node(hostName)
	if err != nil {
		return nil, err
	}
	if err := f.neighRoomForWorkload(); err != nil {
		return nil, err
	}
	if n.Kind != Switchd {
		return nil, fmt.Errorf("workload %s on %s: only switchd nodes attach workloads", name, hostName)
	}
	wns, err := ns.New(f.workloadNetns(hostName, name))
	if err != nil {
		return nil, fmt.Errorf("workload %s on %s: %w", name, hostName, err)
	}
	labels := map[string]string{"sim-host": hostName}
	for k, v := range n.Workloads[name] {
		labels[k] = v
	}
	res, err := f.endpointClient(hostName).AddContainer(ctx, endpointapi.ContainerAdd{
		ContainerID: name,
		Netns:       wns.Path(),
		Labels:      labels,
	})
	wns.Close()
	if err != nil {
		wns.Delete()
		return nil, fmt.Errorf("workload %s on %s: %w", name, hostName, err)
	}
	return &Workload{Host: hostName, Name: name, Netns: wns.Name, IPv4: res.Endpoint.IPv4, IPv6: res.Endpoint.IPv6, Labels: joinLabels(res.Endpoint.Labels)}, nil
}

// DelWorkload detaches a workload (CNI DEL) and removes its namespace.
func (f *Fabric) DelWorkload(ctx context.Context, hostName, name string) error {
	if err := f.endpointClient(hostName).Del(ctx, endpointapi.ContainerEndpointID(name, "eth0")); err != nil {
		return fmt.Errorf("workload %s on %s: %w", name, hostName, err)
	}
	if o, err := ns.Open(f.workloadNetns(hostName, name)); err == nil {
		if err := o.Delete(); err != nil {
			return err
		}
	}
	return f.SyncNetworkSets(ctx)
}

// Workloads lists the workloads every switchd host reports through its API.
func (f *Fabric) Workloads(ctx context.Context) ([]Workload, error) {
	var out []Workload
	var errs []error
	for _, n := range f.nodes {
		if n.Kind != Switchd || n.Role != Host {
			continue
		}
		l, err := f.endpointClient(n.Name).List(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.Name, err))
			continue
		}
		for _, e := range l.Endpoints {
			if e.Kind != endpointapi.KindContainer && e.Kind != endpointapi.KindDocker {
				continue
			}
			out = append(out, Workload{Host: n.Name, Name: e.Name, Netns: strings.TrimPrefix(e.Netns, ns.Dir+"/"), IPv4: e.IPv4, IPv6: e.IPv6, Labels: joinLabels(e.Labels)})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Host != out[j].Host {
			return out[i].Host < out[j].Host
		}
		return out[i].Name < out[j].Name
	})
	return out, errors.Join(errs...)
}

// AddWorkloads gives every switchd host perHost workloads named w1, w2, ...
func (f *Fabric) AddWorkloads(ctx context.Context, perHost int) ([]Workload, error) {
	var out []Workload
	for _, n := range f.nodes {
		if n.Kind != Switchd || n.Role != Host {
			continue
		}
		for i := 1; i <= perHost; i++ {
			w, err := f.addWorkload(ctx, n.Name, fmt.Sprintf("w%d", i))
			if err != nil {
				return out, err
			}
			out = append(out, *w)
		}
	}
	return out, f.SyncNetworkSets(ctx)
}

// PingWorkload pings to's address of the family from inside workload from.
func (f *Fabric) PingWorkload(ctx context.Context, from, to Workload, family int) error {
	dst, wns, err := probe(from, to, family)
	if err != nil {
		return err
	}
	defer wns.Close()
	if _, err := wns.Run(ctx, "ping", fmt.Sprintf("-%d", family), "-n", "-q", "-c", "2", "-i", "0.2", "-W", "2", dst.String()); err != nil {
		return fmt.Errorf("ping %s/%s to %s/%s (%v): %w", from.Host, from.Name, to.Host, to.Name, dst, err)
	}
	return nil
}

// probe returns to's address of the family and from's namespace (to be
// closed), what a probe from one workload to another starts with.
func probe(from, to Workload, family int) (netip.Addr, *ns.NS, error) {
	dst := to.IPv4
	if family == 6 {
		dst = to.IPv6
	}
	if !dst.IsValid() {
		return dst, nil, fmt.Errorf("workload %s/%s has no IPv%d address", to.Host, to.Name, family)
	}
	wns, err := ns.Open(from.Netns)
	if err != nil {
		return dst, nil, err
	}
	return dst, wns, nil
}

// WorkloadMatrix pings between every pair of workloads,
// from inside the workloads' own namespaces, over IPv4 and IPv6.
func (f *Fabric) WorkloadMatrix(ctx context.Context, ws []Workload) *Matrix {
	var labels []string
	byLabel := map[string]Workload{}
	for _, w := range ws {
		l := w.Host + "/" + w.Name
		labels = append(labels, l)
		byLabel[l] = w
	}
	return pingMatrix(labels, func(a, b string, fam int) error {
		return f.PingWorkload(ctx, byLabel[a], byLabel[b], fam)
	})
}

// printWorkloads lists workloads as a table.
func printWorkloads(w io.Writer, ws []Workload) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tWORKLOAD\tIPV4\tIPV6\tNETNS")
	for _, x := range ws {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%v\t%s\n", x.Host, x.Name, x.IPv4, x.IPv6, x.Netns)
	}
	tw.Flush()
}

// hasWorkloadHosts says whether any switchd host of the fabric has
// workload ranges (IPAM pools in its config), i.e. can attach workloads.
func (f *Fabric) hasWorkloadHosts() bool {
	for _, n := range f.nodes {
		if n.Kind == Switchd && n.Role == Host && (n.Workload4.IsValid() || n.Workload6.IsValid()) {
			return true
		}
	}
	return false
}
