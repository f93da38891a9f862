package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// PolicyPort is the TCP port the policy matrix probes: the example
// policy's database port.
const PolicyPort = 5432

// mergePolicy merges a config fragment (Topology.PolicyTree) into a
// host's tree: objects merge key by key, anything else in the fragment
// wins. The host's own switchd:switchd (IPAM) and the fragment's
// (workload policy) thus end up side by side.
func mergePolicy(dst, src map[string]any) {
	for k, v := range src {
		if sv, ok := v.(map[string]any); ok {
			if dv, ok := dst[k].(map[string]any); ok {
				mergePolicy(dv, sv)
				continue
			}
		}
		dst[k] = v
	}
}

// ListenWorkload opens a TCP listener on port inside workload w's
// namespace (all addresses) that accepts and closes every connection.
// Closing it ends the accepting goroutine; no process is started.
func (f *Fabric) ListenWorkload(w Workload, port int) (net.Listener, error) {
	l, err := openIn(w, fmt.Sprintf("listen on tcp/%d", port), func() (net.Listener, error) {
		return net.Listen("tcp", fmt.Sprintf(":%d", port))
	})
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l, nil
}

// ConnectWorkload opens (and closes) a TCP connection from inside workload
// from to to's address of the family on port, waiting at most timeout.
func (f *Fabric) ConnectWorkload(from, to Workload, family, port int, timeout time.Duration) error {
	return probeFrom(from, to, family, port, "tcp", func(addr string) error {
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// PolicyMatrix is what workload policy lets through between labelled
// workloads: TCP to PolicyPort and ping, IPv4.
type PolicyMatrix struct {
	Workloads []Workload
	TCP, Ping map[[2]string]error // by from, to label (host/name)
}

func workloadKey(w Workload) string { return w.Host + "/" + w.Name }

// joinLabels is Workload.Labels of an endpoint's labels.
func joinLabels(m map[string]string) string {
	var ls []string
	for k, v := range m {
		ls = append(ls, k+"="+v)
	}
	sort.Strings(ls)
	return strings.Join(ls, ",")
}

// Label returns the value of the workload's label key ("" if it has none).
func (w Workload) Label(key string) string {
	for _, kv := range strings.Split(w.Labels, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// Labelled returns the workloads that carry labels other than sim-host:
// the ones a topology's policy can tell apart.
func Labelled(ws []Workload) []Workload {
	var out []Workload
	for _, w := range ws {
		if labelString(w) != "" {
			out = append(out, w)
		}
	}
	return out
}

// WorkloadPolicyMatrix listens on PolicyPort in every workload of ws and
// tries TCP and ping between every ordered pair, all at once. A failure
// is a deny; so is a timeout, which is why the TCP timeout is short.
func (f *Fabric) WorkloadPolicyMatrix(ctx context.Context, ws []Workload) (*PolicyMatrix, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for _, w := range ws {
		l, err := f.ListenWorkload(w, PolicyPort)
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
	}
	m := &PolicyMatrix{Workloads: ws, TCP: map[[2]string]error{}, Ping: map[[2]string]error{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, a := range ws {
		for _, b := range ws {
			if workloadKey(a) == workloadKey(b) {
				continue
			}
			k := [2]string{workloadKey(a), workloadKey(b)}
			wg.Add(2)
			go func() {
				defer wg.Done()
				err := f.ConnectWorkload(a, b, 4, PolicyPort, 2*time.Second)
				mu.Lock()
				m.TCP[k] = err
				mu.Unlock()
			}()
			go func() {
				defer wg.Done()
				err := f.PingWorkload(ctx, a, b, 4)
				mu.Lock()
				m.Ping[k] = err
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	return m, nil
}

// labelString is a workload's labels without sim-host.
func labelString(w Workload) string {
	var ls []string
	for _, kv := range strings.Split(w.Labels, ",") {
		if kv != "" && !strings.HasPrefix(kv, "sim-host=") {
			ls = append(ls, kv)
		}
	}
	return strings.Join(ls, ",")
}

// Print writes the workloads with their labels and one allow/deny table
// per probe: rows from, columns to.
func (m *PolicyMatrix) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, x := range m.Workloads {
		fmt.Fprintf(tw, "  %s\t%v\t%s\n", workloadKey(x), x.IPv4, labelString(x))
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, t := range []struct {
		name string
		res  map[[2]string]error
	}{{fmt.Sprintf("tcp/%d", PolicyPort), m.TCP}, {"ping", m.Ping}} {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		var cols []string
		for _, b := range m.Workloads {
			cols = append(cols, workloadKey(b))
		}
		fmt.Fprintf(tw, "%s from\\to\t%s\n", t.name, strings.Join(cols, "\t"))
		for _, a := range m.Workloads {
			row := []string{workloadKey(a)}
			for _, b := range m.Workloads {
				cell := "-"
				if err, ok := t.res[[2]string{workloadKey(a), workloadKey(b)}]; ok {
					cell = "allow"
					if err != nil {
						cell = "deny"
					}
				}
				row = append(row, cell)
			}
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
}

// errNoLabels says why a policy matrix is empty.
var errNoLabels = errors.New("fewer than two workloads carry labels (set them per host under workloads: in the topology)")

// Network sets: the simulator standing in for a datastore, for a
// topology whose policy declares no groups (the Docker fabric test's). A
// host's switchd knows the labels of its own workloads only; with groups
// (/switchd/workload-policy/groups) membership travels in BGP. Without,
// the simulator, which knows every workload's labels and addresses, gives
// each host a network set per labelled workload on another host
// (/switchd/workload-policy/network-sets) and reloads the host, so a peer
// selector matches remote workloads too.

// SyncNetworkSets writes into every switchd host's config the network sets
// of the labelled workloads on the other hosts and reloads the hosts
// whose sets changed, waiting for each to take its config. Without a
// policy in the topology it does nothing.
func (f *Fabric) SyncNetworkSets(ctx context.Context) error {
	if f.Topology.PolicyTree == nil || declaresGroups(f.Topology.PolicyTree) {
		// With groups declared, membership travels in BGP instead.
		return nil
	}
	ws, err := f.Workloads(ctx)
	if err != nil {
		return fmt.Errorf("network sets: %w", err)
	}
	for _, n := range f.nodes {
		if n.Kind != Switchd || n.Role != Host {
			continue
		}
		changed, err := f.writeNetworkSets(n.Name, remoteNetworkSets(n.Name, ws))
		if err != nil {
			return err
		}
		if changed {
			if err := f.reloadAndWait(ctx, n.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// declaresGroups reports whether a policy fragment declares groups
// (/switchd/workload-policy/groups), whose membership BGP carries.
func declaresGroups(tree map[string]any) bool {
	sd, _ := tree["switchd:switchd"].(map[string]any)
	wp, _ := sd["workload-policy"].(map[string]any)
	_, ok := wp["groups"]
	return ok
}

// remoteNetworkSets are the network-set list entries host gets: one per
// labelled workload elsewhere, its addresses as a /32 and a /128, its
// labels (sim-host included) as the set's.
func remoteNetworkSets(host string, ws []Workload) []any {
	var out []any
	for _, w := range Labelled(ws) {
		if w.Host == host {
			continue
		}
		name := "sim-" + w.Host + "-" + w.Name
		var pfxs []any
		for _, a := range []netip.Addr{w.IPv4, w.IPv6} {
			if a.IsValid() {
				pfxs = append(pfxs, netip.PrefixFrom(a, a.BitLen()).String())
			}
		}
		var labels []any
		for _, kv := range strings.Split(w.Labels, ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				labels = append(labels, map[string]any{"key": k, "config": map[string]any{"key": k, "value": v}})
			}
		}
		out = append(out, map[string]any{"name": name,
			"config": map[string]any{"name": name, "prefix": pfxs},
			"labels": map[string]any{"label": labels}})
	}
	return out
}

// writeNetworkSets makes sets node's network sets in its config file,
// keeping everything else (a test may have edited it); it reports whether
// the file changed.
func (f *Fabric) writeNetworkSets(node string, sets []any) (bool, error) {
	p := f.ConfigPath(node)
	b, err := os.ReadFile(p)
	if err != nil {
		return false, fmt.Errorf("network sets of %s: %w", node, err)
	}
	var tree map[string]any
	if err := json.Unmarshal(b, &tree); err != nil {
		return false, fmt.Errorf("network sets of %s: %s: %w", node, p, err)
	}
	sd, _ := tree["switchd:switchd"].(map[string]any)
	if sd == nil {
		sd = map[string]any{}
		tree["switchd:switchd"] = sd
	}
	wp, _ := sd["workload-policy"].(map[string]any)
	if wp == nil {
		wp = map[string]any{}
	}
	old, _ := json.Marshal(wp["network-sets"])
	var want any
	if len(sets) > 0 {
		want = map[string]any{"network-set": sets}
	}
	if nb, _ := json.Marshal(want); bytes.Equal(old, nb) {
		return false, nil
	}
	if want == nil {
		delete(wp, "network-sets")
	} else {
		wp["network-sets"] = want
	}
	if len(wp) > 0 {
		sd["workload-policy"] = wp
	}
	out, err := json.MarshalIndent(tree, "", "  ")
	if err != nil {
		return false, fmt.Errorf("network sets of %s: %w", node, err)
	}
	// Renamed into place: the daemon never reads half a file.
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, append(out, '\n'), 0o644); err != nil {
		return false, fmt.Errorf("network sets of %s: %w", node, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return false, fmt.Errorf("network sets of %s: %w", node, err)
	}
	return true, nil
}

// reloadAndWait reloads node's switchd and waits until its log says the
// config was taken (or refused: an error).
func (f *Fabric) reloadAndWait(ctx context.Context, node string) error {
	count := func() (int, string) {
		b, _ := os.ReadFile(f.LogPath(node))
		lines := strings.Split(string(b), "\n")
		n, last := 0, ""
		for _, l := range lines {
			if strings.Contains(l, "config reload") {
				n, last = n+1, l
			}
		}
		return n, last
	}
	before, _ := count()
	if err := f.Reload(ctx, node); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		if n, last := count(); n > before {
			if !strings.Contains(last, "config reloaded") {
				return fmt.Errorf("reload %s with network sets: %s", node, last)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("reload %s with network sets: no word in %s: %w", node, f.LogPath(node), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
