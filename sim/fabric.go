package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/switchd/switchd/sim/ns"
)

// StateFile, in the run dir, describes a running fabric so that another
// process (switchd sim status/down) can find and control it.
const StateFile = "fabric.json"

// state is the content of StateFile.
type state struct {
	Prefix        string      `json:"prefix"`
	RunDir        string      `json:"run-dir"`
	SwitchdBinary string      `json:"switchd-binary,omitempty"`
	Created       time.Time   `json:"created"`
	Topology      *Topology   `json:"topology"`
	Nodes         []*NodeInfo `json:"nodes"`
}

// Up plans the fabric and builds it: namespaces, links, addresses,
// configs, one daemon per node. It does not wait for BGP (WaitConverged
// does). If anything fails, it removes what it made.
func Up(ctx context.Context, topo *Topology, opts Options) (*Fabric, error) {
	f, err := New(topo, opts)
	if err != nil {
		return nil, err
	}
	if err := f.Up(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

// Up builds a planned fabric; see the function Up.
func (f *Fabric) Up(ctx context.Context) (err error) {
	if f.hasKind(Switchd) && f.switchd == "" {
		return fmt.Errorf("fabric %s: topology has switchd nodes but no switchd binary was given", f.Prefix)
	}
	if _, err := os.Stat(filepath.Join(f.RunDir, StateFile)); err == nil {
		return fmt.Errorf("fabric %s is up (%s exists); run switchd sim down", f.Prefix, f.RunDir)
	}
	if left, _ := ns.List(f.Prefix + "-"); len(left) > 0 {
		return fmt.Errorf("fabric %s: namespaces %v exist already; run switchd sim down", f.Prefix, left)
	}
	// The run dir is ours from here on: Down removes it.
	if err := os.MkdirAll(f.RunDir, 0o755); err != nil {
		return fmt.Errorf("create run dir: %w", err)
	}
	defer func() {
		if err != nil {
			f.log.Warn("fabric up failed; tearing down", "fabric", f.Prefix, "err", err)
			if derr := f.Down(context.WithoutCancel(ctx)); derr != nil {
				err = errors.Join(err, fmt.Errorf("tear down after failure: %w", derr))
			}
		}
	}()
	// Written first so that a crash from here on can be cleaned up.
	if err := f.writeState(); err != nil {
		return err
	}
	for _, n := range f.nodes {
		if err := f.writeNodeFiles(n); err != nil {
			return err
		}
	}
	if err := ensureNeighRoom(f.log, len(f.nodes)); err != nil {
		return err
	}
	for _, n := range f.nodes {
		if err := f.createNamespace(n); err != nil {
			return err
		}
	}
	for j, l := range f.Topology.Links {
		if err := f.createLink(j, l); err != nil {
			return err
		}
	}
	// switchd nodes take their addresses from their config; the others
	// get them here.
	for _, n := range f.nodes {
		if n.Kind != Switchd {
			if err := f.assignAddresses(n); err != nil {
				return err
			}
		}
	}
	var starting []*NodeInfo // lean fabrics pace their start (scale.go)
	for _, n := range f.nodes {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("fabric %s up: %w", f.Prefix, err)
		}
		if err := f.start(n); err != nil {
			return err
		}
		if f.Topology.Lean && n.Kind == Switchd {
			starting = append(starting, n)
			f.waitStarted(ctx, &starting, StartPace, time.Minute)
		}
	}
	if err := f.writeState(); err != nil {
		return err
	}
	f.log.Info("fabric up", "fabric", f.Prefix, "nodes", len(f.nodes), "links", len(f.Topology.Links), "run-dir", f.RunDir)
	return nil
}

func (f *Fabric) hasKind(k Kind) bool {
	return slices.ContainsFunc(f.nodes, func(n *NodeInfo) bool { return n.Kind == k })
}

func (f *Fabric) writeNodeFiles(n *NodeInfo) error {
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		return fmt.Errorf("node %s: create dir: %w", n.Name, err)
	}
	var cfg []byte
	var err error
	switch n.Kind {
	case Bird:
		cfg, err = f.BirdConfig(n.Name)
	case Frr:
		cfg, err = f.FRRConfig(n.Name)
	default:
		if err = os.MkdirAll(n.StateDir, 0o755); err != nil {
			return fmt.Errorf("node %s: create state dir: %w", n.Name, err)
		}
		cfg, err = f.NodeConfig(n.Name)
	}
	if err != nil {
		return err
	}
	if err := os.WriteFile(n.Config, cfg, 0o644); err != nil {
		return fmt.Errorf("node %s: write config: %w", n.Name, err)
	}
	return nil
}

func (f *Fabric) createNamespace(n *NodeInfo) error {
	h, err := ns.New(n.Namespace)
	if err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	f.mu.Lock()
	f.nss[n.Name] = h
	f.mu.Unlock()
	// A fresh namespace does not forward; every node of an L3 fabric
	// routes. Skipping DAD on the veths made later gives them usable
	// link-local addresses at once (BIRD wants one for IPv6 next hops).
	err = h.Do(func() error {
		for p, v := range map[string]string{
			"/proc/sys/net/ipv4/ip_forward":              "1",
			"/proc/sys/net/ipv6/conf/all/forwarding":     "1",
			"/proc/sys/net/ipv6/conf/default/accept_dad": "0",
			// Addresses are configuration: a link bounce must not
			// flush them (switchd sets this too; BIRD nodes need it).
			"/proc/sys/net/ipv6/conf/all/keep_addr_on_down": "1",
		} {
			if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("node %s: sysctls: %w", n.Name, err)
	}
	return nil
}

func (f *Fabric) createLink(j int, l Link) error {
	a, b := f.byName[l.A], f.byName[l.B]
	var ia, ib *Interface
	for _, i := range a.Interfaces {
		if i.Link == j {
			ia = i
		}
	}
	for _, i := range b.Interfaces {
		if i.Link == j {
			ib = i
		}
	}
	na, nb := f.Namespace(a.Name), f.Namespace(b.Name)
	if err := ns.Veth(na, ia.Name, nb, ib.Name); err != nil {
		return fmt.Errorf("link %s: %w", l, err)
	}
	return nil
}

// Namespace returns the node's namespace (nil if there is no such node or
// the fabric is not up).
func (f *Fabric) Namespace(node string) *ns.NS {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h := f.nss[node]; h != nil {
		return h
	}
	n := f.byName[node]
	if n == nil {
		return nil
	}
	h, err := ns.Open(n.Namespace)
	if err != nil {
		return nil
	}
	f.nss[node] = h
	return h
}

func (f *Fabric) writeState() error {
	f.mu.Lock()
	st := state{
		Prefix:        f.Prefix,
		RunDir:        f.RunDir,
		SwitchdBinary: f.switchd,
		Created:       time.Now().UTC(),
		Topology:      f.Topology,
		Nodes:         f.nodes,
	}
	b, err := json.MarshalIndent(st, "", "  ")
	f.mu.Unlock()
	if err != nil {
		return fmt.Errorf("encode %s: %w", StateFile, err)
	}
	p := filepath.Join(f.RunDir, StateFile)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// Load finds the fabric described by runDir/fabric.json (written by Up in
// this or another process).
func Load(runDir string) (*Fabric, error) {
	p := filepath.Join(runDir, StateFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("load fabric: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("load fabric %s: %w", p, err)
	}
	if st.Topology == nil {
		return nil, fmt.Errorf("load fabric %s: no topology", p)
	}
	f, err := New(st.Topology, Options{Prefix: st.Prefix, RunDir: st.RunDir, SwitchdBinary: st.SwitchdBinary})
	if err != nil {
		return nil, fmt.Errorf("load fabric %s: %w", p, err)
	}
	for _, sn := range st.Nodes {
		if n := f.byName[sn.Name]; n != nil {
			n.PID = sn.PID
		}
	}
	return f, nil
}

// Close releases the namespace handles; the fabric keeps running.
func (f *Fabric) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, h := range f.nss {
		h.Close()
		delete(f.nss, k)
	}
}

// Down stops every daemon (SIGTERM, then SIGKILL after a grace period),
// also anything else running in the fabric's namespaces, deletes the
// namespaces and removes the run dir. It works on a fabric that is half
// up, and on one loaded from another process's fabric.json.
func (f *Fabric) Down(ctx context.Context) error {
	var errs []error
	var pids []int
	f.mu.Lock()
	for _, n := range f.nodes {
		if n.PID > 0 && pidInNamespace(n.PID, n.Namespace) || f.procs[n.Name] != nil {
			pids = append(pids, n.PID)
		}
	}
	f.mu.Unlock()
	names, err := ns.List(f.Prefix + "-")
	if err != nil {
		errs = append(errs, fmt.Errorf("list namespaces: %w", err))
	}
	f.log.Info("fabric down", "fabric", f.Prefix, "namespaces", len(names))
	// Daemons first, so that they can say goodbye to their peers; then
	// whatever else runs in our namespaces.
	if err := f.stopPids(ctx, pids); err != nil {
		errs = append(errs, err)
	}
	if err := f.stopPids(ctx, ns.PidsInAny(names)); err != nil {
		errs = append(errs, err)
	}
	f.mu.Lock()
	for k, h := range f.nss {
		h.Close()
		delete(f.nss, k)
	}
	f.mu.Unlock()
	for _, name := range names {
		if err := deleteNamespace(name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(f.RunDir); err != nil {
		errs = append(errs, fmt.Errorf("remove run dir: %w", err))
	}
	if left, _ := ns.List(f.Prefix + "-"); len(left) > 0 {
		errs = append(errs, fmt.Errorf("namespaces left behind: %v", left))
	}
	if err := restoreNeighRoom(f.log); err != nil {
		f.log.Warn("neighbour table thresholds not restored", "err", err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fabric %s down: %w", f.Prefix, err)
	}
	return nil
}

func deleteNamespace(name string) error {
	h, err := ns.Open(name)
	if err != nil {
		// Not openable (a half-made bind mount, say): remove the name.
		if rerr := os.Remove(filepath.Join(ns.Dir, name)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return fmt.Errorf("delete netns %s: %w", name, errors.Join(err, rerr))
		}
		return nil
	}
	return h.Delete()
}
