package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Probes of a node's nftables and its own TCP ports, for tests of
// forwarding control (policy faults): what the kernel holds, read with
// the nft command as an operator would, not through switchd's code.

// NftObjects runs `nft -j` with args (e.g. "list", "table", "inet",
// "switchd") in the node's namespace and returns the objects of its
// "nftables" array, without the metainfo object.
func (f *Fabric) NftObjects(ctx context.Context, node string, args ...string) ([]map[string]any, error) {
	out, err := f.Exec(ctx, node, append([]string{"nft", "-j"}, args...)...)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Nftables []map[string]any `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return nil, fmt.Errorf("nft -j %s in %s: %w", strings.Join(args, " "), node, err)
	}
	var objs []map[string]any
	for _, o := range doc.Nftables {
		if _, ok := o["metainfo"]; !ok {
			objs = append(objs, o)
		}
	}
	return objs, nil
}

// NftScript feeds script to `nft -f -` in the node's namespace (asJSON:
// a JSON command document, with -j).
func (f *Fabric) NftScript(ctx context.Context, node string, asJSON bool, script string) error {
	argv := []string{"nft", "-f", "-"}
	if asJSON {
		argv = []string{"nft", "-j", "-f", "-"}
	}
	cmd, err := f.Command(ctx, node, argv...)
	if err != nil {
		return err
	}
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft -f in %s: %w: %s\nscript:\n%s", node, err, strings.TrimSpace(string(out)), script)
	}
	return nil
}

// NftTableHandle is the kernel's handle of the table family/name in the
// node's namespace: a table deleted and created again gets a new one.
func (f *Fabric) NftTableHandle(ctx context.Context, node, family, name string) (uint64, error) {
	objs, err := f.NftObjects(ctx, node, "list", "table", family, name)
	if err != nil {
		return 0, err
	}
	for _, o := range objs {
		if t, ok := o["table"].(map[string]any); ok {
			if h, ok := t["handle"].(float64); ok {
				return uint64(h), nil
			}
		}
	}
	return 0, fmt.Errorf("%s: no handle for table %s %s", node, family, name)
}

// NftNormalize returns what nft listed in a form two listings of the same
// content compare equal in: counters zeroed (traffic moves them), set
// elements sorted (the kernel's order is a hash's), and with handles
// false, no handles (the kernel numbers a re-added rule anew). Rule order
// within a chain is kept: it is meaning.
func NftNormalize(objs []map[string]any, handles bool) string {
	var norm func(v any) any
	norm = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			out := map[string]any{}
			for k, c := range v {
				switch {
				case k == "handle" && !handles:
				case k == "counter":
					out[k] = map[string]any{}
				case k == "elem":
					out[k] = sortedJSON(norm(c))
				default:
					out[k] = norm(c)
				}
			}
			return out
		case []any:
			out := make([]any, len(v))
			for i, c := range v {
				out[i] = norm(c)
			}
			return out
		}
		return v
	}
	var lines []string
	for _, o := range objs {
		b, _ := json.Marshal(norm(o)) // maps of JSON values: cannot fail
		lines = append(lines, string(b))
	}
	return strings.Join(lines, "\n")
}

// sortedJSON sorts a list by the JSON of its members.
func sortedJSON(v any) any {
	l, ok := v.([]any)
	if !ok {
		return v
	}
	key := func(x any) string { b, _ := json.Marshal(x); return string(b) }
	slices.SortFunc(l, func(a, b any) int { return strings.Compare(key(a), key(b)) })
	return l
}

// asWorkload is node's own namespace (the switch or host itself) as a
// workload, reachable at its end of the link from peer ("" for none):
// the workload probes then serve the node as they are.
func (f *Fabric) asWorkload(node, peer string) (Workload, error) {
	n, err := f.node(node)
	if err != nil {
		return Workload{}, err
	}
	w := Workload{Host: node, Name: "self", Netns: n.Namespace}
	if peer == "" {
		return w, nil
	}
	for _, i := range n.Interfaces {
		if i.Peer == peer {
			w.IPv4, w.IPv6 = i.Addr4.Addr(), i.Addr6.Addr()
			return w, nil
		}
	}
	return w, fmt.Errorf("%s has no link to %s", node, peer)
}

// ListenNode opens a TCP listener on port, all addresses, in the node's
// own namespace that accepts and closes every connection until closed.
// No process is started.
func (f *Fabric) ListenNode(node string, port int) (net.Listener, error) {
	w, err := f.asWorkload(node, "")
	if err != nil {
		return nil, err
	}
	return f.ListenWorkload(w, port)
}

// ConnectPeer opens (and closes) a TCP connection from node to peer's
// address of the family on the link between them, on port, waiting at
// most timeout: what a BGP session or an SSH login to a neighbor uses.
func (f *Fabric) ConnectPeer(node, peer string, family, port int, timeout time.Duration) error {
	from, err := f.asWorkload(node, "")
	if err != nil {
		return err
	}
	to, err := f.asWorkload(peer, node)
	if err != nil {
		return err
	}
	return f.ConnectWorkload(from, to, family, port, timeout)
}

// TCPFlow opens a new TCP connection from one workload to another at a
// fixed interval, each a flow of its own (a new conntrack entry), so
// each is judged by the policy's rules and sets, not by an established
// entry as a long-running ping is.
type TCPFlow struct {
	stop         chan struct{}
	stopOnce     sync.Once
	wg           sync.WaitGroup
	attempts, ok atomic.Int64
}

// StartTCPFlow starts connecting from inside workload from to to's address
// of the family on port every interval, each attempt waiting at most
// timeout, until Stop.
func (f *Fabric) StartTCPFlow(from, to Workload, family, port int, every, timeout time.Duration) *TCPFlow {
	fl := &TCPFlow{stop: make(chan struct{})}
	fl.wg.Add(1)
	go func() {
		defer fl.wg.Done()
		var attempts sync.WaitGroup
		defer attempts.Wait()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-fl.stop:
				return
			case <-tick.C:
			}
			attempts.Add(1)
			go func() {
				defer attempts.Done()
				err := f.ConnectWorkload(from, to, family, port, timeout)
				fl.attempts.Add(1)
				if err == nil {
					fl.ok.Add(1)
				}
			}()
		}
	}()
	return fl
}

// Stop ends the flow, waits for attempts under way, and returns how many
// were made and how many connected. It may be called again.
func (fl *TCPFlow) Stop() (attempts, connected int) {
	fl.stopOnce.Do(func() { close(fl.stop) })
	fl.wg.Wait()
	return int(fl.attempts.Load()), int(fl.ok.Load())
}
