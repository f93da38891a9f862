package sim

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/switchd/switchd/sim/ns"
)

// Address plan. Node i (1-based, in file order) gets Loopback4Base+i/32 and
// Loopback6Base+i/128; link j (0-based) gets the j-th /31 and /127 of the
// link bases, the lower address on its A end.
var (
	Loopback4Base = netip.MustParseAddr("10.255.0.0")
	Loopback6Base = netip.MustParseAddr("fd00:255::")
	Link4Base     = netip.MustParseAddr("10.254.0.0")
	Link6Base     = netip.MustParseAddr("fd00:254::")
	// Host h (1-based among hosts, in file order) gets the workload ranges
	// Workload4Base+h*256/24 and fd00:100:h::/64 (h in the third group).
	Workload4Base = netip.MustParseAddr("10.100.0.0")
	Workload6Base = netip.MustParseAddr("fd00:100::")
)

// IPAM block lengths of the generated host pools (the project's defaults).
const (
	WorkloadBlock4 = 26
	WorkloadBlock6 = 122
)

// workloadRanges returns the ranges of the h-th host (1-based).
func workloadRanges(h int) (v4, v6 netip.Prefix) {
	v4 = netip.PrefixFrom(addN(Workload4Base, uint64(h)<<8), 24)
	b := Workload6Base.As16()
	b[4], b[5] = byte(h>>8), byte(h)
	return v4, netip.PrefixFrom(netip.AddrFrom16(b), 64)
}

const (
	maxNodes = 4000  // well inside 10.255.0.0/16
	maxLinks = 16000 // well inside 10.254.0.0/16 as /31s
)

// RunRoot holds the run directories of fabrics started by the CLI (and the
// default run dir of any fabric); a variable so that tests can move it.
var RunRoot = "/run/switchd-sim"

// Options tune Up and New.
type Options struct {
	// Prefix starts every namespace name (<prefix>-<node>); default
	// ns.NewPrefix().
	Prefix string
	// RunDir holds configs, sockets, logs and fabric.json; default
	// RunRoot/<prefix>.
	RunDir string
	// SwitchdBinary is the switchd executable run on switchd nodes.
	SwitchdBinary string
	// Logger reports progress; default discards.
	Logger *slog.Logger
	// Unnumbered plans the topology's unnumbered variant
	// (Topology.Unnumbered) without changing the caller's topology.
	Unnumbered bool
	// BFD, if not zero, turns BFD on at this interval × 3 (Topology.BFD).
	BFD time.Duration
	// Docker makes switchd hosts serve Docker's driver in their dirs
	// (NodeInfo.DockerPlugins), for a dockerd per host.
	Docker bool
}

// Interface is one end of a link, as seen from its node.
type Interface struct {
	Name          string       `json:"name"` // the peer's name, plus "_N" for the N-th parallel link
	Link          int          `json:"link"` // index in Topology.Links
	Peer          string       `json:"peer"`
	PeerInterface string       `json:"peer-interface"`
	PeerASN       uint32       `json:"peer-asn"`
	Addr4         netip.Prefix `json:"ipv4"` // this end, with the /31
	Addr6         netip.Prefix `json:"ipv6"` // this end, with the /127
	Peer4         netip.Addr   `json:"peer-ipv4"`
	Peer6         netip.Addr   `json:"peer-ipv6"`
	// Unnumbered: the link has only link-local addresses and one BGP
	// session over them (unnumbered.go); Addr4 and the rest are the plan's,
	// not configured.
	Unnumbered bool `json:"unnumbered,omitempty"`
}

// NodeInfo is everything the simulator decided about a node.
type NodeInfo struct {
	Node
	Index     int        `json:"index"` // 1-based
	Namespace string     `json:"namespace"`
	RouterID  netip.Addr `json:"router-id"`
	Loopback4 netip.Addr `json:"loopback-ipv4"`
	Loopback6 netip.Addr `json:"loopback-ipv6"`
	// Workload4 and Workload6 are a host's workload ranges: its IPAM pools,
	// and all its leaf accepts from it besides its loopbacks. Zero on
	// other roles.
	Workload4  netip.Prefix `json:"workload-ipv4,omitzero"`
	Workload6  netip.Prefix `json:"workload-ipv6,omitzero"`
	Interfaces []*Interface `json:"interfaces"`
	Dir        string       `json:"dir"`
	Config     string       `json:"config"` // switchd.json or bird.conf
	Socket     string       `json:"socket"` // switchd API socket or BIRD control socket
	StateDir   string       `json:"state-dir,omitempty"`
	Log        string       `json:"log"`
	PID        int          `json:"pid,omitempty"`

	// GNMISocket is a switchd node's local gNMI socket (switchd run
	// --gnmi-socket); sim exec points switchd show at it (gnmi.go).
	GNMISocket string `json:"gnmi-socket,omitempty"`
	// Metrics is where a switchd node serves /metrics, in its namespace.
	Metrics string `json:"metrics,omitempty"`
	// DockerPlugins is a switchd host's directory holding switchd.sock,
	// Docker's driver (Options.Docker): a dockerd's /run/docker/plugins.
	DockerPlugins string `json:"docker-plugins,omitempty"`
}

// Sessions is the number of BGP sessions the node should have: one IPv4
// and one IPv6 per link, one per unnumbered link.
func (n *NodeInfo) Sessions() int {
	s := 0
	for _, i := range n.Interfaces {
		s += 2
		if i.Unnumbered {
			s--
		}
	}
	return s
}

// Fabric is a planned, and after Up a running, fabric. Its methods may be
// called from several goroutines.
type Fabric struct {
	Topology *Topology
	Prefix   string
	RunDir   string
	switchd  string
	log      *slog.Logger

	nodes  []*NodeInfo
	byName map[string]*NodeInfo

	mu    sync.Mutex          // guards the fields below and NodeInfo.PID
	nss   map[string]*ns.NS   // open namespace handles, by node
	procs map[string]*process // daemons this process started, by node

	// clients holds an endpoint API client per host (workloads.go): each
	// keeps its idle connections, so one per call would leak them.
	clients sync.Map
}

// New plans a fabric: names, addresses, paths and configs. It touches
// nothing; Up does.
func New(topo *Topology, opts Options) (*Fabric, error) {
	if err := topo.Validate(); err != nil {
		return nil, err
	}
	if opts.Unnumbered && !topo.Unnumbered {
		t := *topo
		t.Unnumbered = true
		topo = &t
	}
	if b, err := bfdOption(opts.BFD); err != nil {
		return nil, err
	} else if b != nil {
		t := *topo
		t.BFD = b
		topo = &t
	}
	f := &Fabric{
		Topology: topo,
		Prefix:   opts.Prefix,
		RunDir:   opts.RunDir,
		switchd:  opts.SwitchdBinary,
		log:      opts.Logger,
		byName:   map[string]*NodeInfo{},
		nss:      map[string]*ns.NS{},
		procs:    map[string]*process{},
	}
	if f.Prefix == "" {
		f.Prefix = ns.NewPrefix()
	}
	if err := checkName(f.Prefix, 20); err != nil {
		return nil, fmt.Errorf("prefix %q: %v", f.Prefix, err)
	}
	if f.RunDir == "" {
		f.RunDir = filepath.Join(RunRoot, f.Prefix)
	}
	if abs, err := filepath.Abs(f.RunDir); err == nil {
		f.RunDir = abs
	}
	if f.log == nil {
		f.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	hosts := 0
	for i, n := range topo.Nodes {
		dir := filepath.Join(f.RunDir, n.Name)
		ni := &NodeInfo{
			Node:      n,
			Index:     i + 1,
			Namespace: f.Prefix + "-" + n.Name,
			Loopback4: addN(Loopback4Base, uint64(i+1)),
			Loopback6: addN(Loopback6Base, uint64(i+1)),
			Dir:       dir,
		}
		ni.RouterID = ni.Loopback4
		if n.Role == Host {
			hosts++
			ni.Workload4, ni.Workload6 = workloadRanges(hosts)
		}
		switch n.Kind {
		case Bird:
			ni.Config = filepath.Join(dir, "bird.conf")
			ni.Socket = filepath.Join(dir, "bird.ctl")
			ni.Log = filepath.Join(dir, "bird.log")
		case Frr:
			ni.Config = filepath.Join(dir, "frr.conf")
			ni.Socket = filepath.Join(dir, "bgpd.vty") // vtysh --vty_socket takes its dir
			ni.Log = filepath.Join(dir, "bgpd.log")
		default:
			ni.Config = filepath.Join(dir, "switchd.json")
			ni.Socket = filepath.Join(dir, "switchd.sock")
			if !topo.Lean {
				ni.GNMISocket = filepath.Join(dir, "gnmi.sock")
				ni.Metrics = MetricsAddress
			}
			ni.StateDir = filepath.Join(dir, "state")
			ni.Log = filepath.Join(dir, "switchd.log")
			if opts.Docker && n.Role == Host {
				ni.DockerPlugins = filepath.Join(dir, "plugins")
			}
		}
		f.nodes = append(f.nodes, ni)
		f.byName[n.Name] = ni
	}
	// Unix socket paths are limited to 108 bytes.
	for _, ni := range f.nodes {
		for _, s := range []string{ni.Socket, ni.GNMISocket} {
			if len(s) >= 108 {
				return nil, fmt.Errorf("node %s: socket path %s is longer than 107 bytes; use a shorter run dir", ni.Name, s)
			}
		}
	}
	parallel := map[[2]string]int{}
	for j, l := range topo.Links {
		a, b := f.byName[l.A], f.byName[l.B]
		k := [2]string{min(l.A, l.B), max(l.A, l.B)}
		parallel[k]++
		suffix := ""
		if c := parallel[k]; c > 1 {
			suffix = fmt.Sprintf("_%d", c)
		}
		a4, a6 := addN(Link4Base, uint64(2*j)), addN(Link6Base, uint64(2*j))
		b4, b6 := a4.Next(), a6.Next()
		ia := &Interface{Name: b.Name + suffix, Link: j, Peer: b.Name, PeerInterface: a.Name + suffix, PeerASN: b.ASN,
			Addr4: netip.PrefixFrom(a4, 31), Addr6: netip.PrefixFrom(a6, 127), Peer4: b4, Peer6: b6}
		ib := &Interface{Name: a.Name + suffix, Link: j, Peer: a.Name, PeerInterface: b.Name + suffix, PeerASN: a.ASN,
			Addr4: netip.PrefixFrom(b4, 31), Addr6: netip.PrefixFrom(b6, 127), Peer4: a4, Peer6: a6}
		ia.Unnumbered = unnumberedLink(topo, a, b)
		ib.Unnumbered = ia.Unnumbered
		a.Interfaces = append(a.Interfaces, ia)
		b.Interfaces = append(b.Interfaces, ib)
	}
	return f, nil
}

// addN returns a+n (n small enough not to overflow the address).
func addN(a netip.Addr, n uint64) netip.Addr {
	b := a.As16()
	for i := 15; i >= 0 && n > 0; i-- {
		s := uint64(b[i]) + n&0xff
		b[i] = byte(s)
		n = n>>8 + s>>8
	}
	r := netip.AddrFrom16(b)
	if a.Is4() {
		r = r.Unmap()
	}
	return r
}

// Nodes lists the nodes in topology order.
func (f *Fabric) Nodes() []*NodeInfo { return f.nodes }

// Node returns the named node, or nil.
func (f *Fabric) Node(name string) *NodeInfo { return f.byName[name] }

func (f *Fabric) node(name string) (*NodeInfo, error) {
	n := f.byName[name]
	if n == nil {
		return nil, fmt.Errorf("fabric %s: no node %q (have %s)", f.Prefix, name, strings.Join(f.names(), ", "))
	}
	return n, nil
}

func (f *Fabric) names() []string {
	var s []string
	for _, n := range f.nodes {
		s = append(s, n.Name)
	}
	return s
}

// Loopbacks returns the node's loopback addresses (zero if there is no such node).
func (f *Fabric) Loopbacks(node string) (v4, v6 netip.Addr) {
	if n := f.byName[node]; n != nil {
		return n.Loopback4, n.Loopback6
	}
	return netip.Addr{}, netip.Addr{}
}

// ConfigPath is where the node's generated config lives; edit it and
// Reload the node to test a config change.
func (f *Fabric) ConfigPath(node string) string {
	if n := f.byName[node]; n != nil {
		return n.Config
	}
	return ""
}

// LogPath is the node's daemon log.
func (f *Fabric) LogPath(node string) string {
	if n := f.byName[node]; n != nil {
		return n.Log
	}
	return ""
}

// SocketPath is the node's switchd API socket or BIRD control socket.
func (f *Fabric) SocketPath(node string) string {
	if n := f.byName[node]; n != nil {
		return n.Socket
	}
	return ""
}
