// Package sim builds a whole switchd fabric on one machine: a topology file
// becomes one network namespace per node, veth pairs for the links,
// deterministic addresses, a generated config per node and one routing
// daemon per node (switchd, or BIRD 2 or FRR as a foreign peer). It is a test and
// demo tool; nothing on a real switch needs it.
//
// A topology file (YAML or JSON):
//
//	name: demo
//	timers: {hold: 9, keepalive: 3, connect-retry: 1}   # optional, every session
//	nodes:
//	  - {name: spine1, role: spine, asn: 65000}            # kind: switchd (default), bird or frr
//	  - {name: leaf1, role: leaf, asn: 65001, kind: bird}
//	links:
//	  - [leaf1, spine1]
//
// Addresses are derived from the file order (see Loopback4Base and
// Link4Base): node i has 10.255.0.i/32 and fd00:255::i/128 on lo (and
// router-id 10.255.0.i); link j is the j-th /31 of 10.254.0.0/16 and /127
// of fd00:254::/64, the lower address on the first node named. On a node,
// a link's interface is named after the peer node ("_2", "_3"... for
// parallel links). Only loopbacks are advertised in BGP.
//
// Per node the run dir holds its config (switchd.json, the OpenConfig tree
// in RFC 7951 JSON, or bird.conf), its socket, state dir and log;
// fabric.json in the run dir describes the whole fabric for Load.
package sim

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// Role is the place of a node in the fabric.
type Role string

const (
	Spine Role = "spine"
	Leaf  Role = "leaf"
	Host  Role = "host"
	// External is a router outside the fabric peering with a leaf (a
	// border or customer router, normally of kind bird or frr): the leaf
	// keeps group membership routes from it (membership-routes filter).
	External Role = "external"
)

// Kind is the routing daemon that runs on a node.
type Kind string

const (
	Switchd Kind = "switchd"
	Bird    Kind = "bird"
	Frr     Kind = "frr" // FRR's zebra and bgpd (frr.go)
)

// Topology is what a topology file describes.
type Topology struct {
	Name   string  `json:"name"`
	Timers *Timers `json:"timers,omitempty"`
	Nodes  []Node  `json:"nodes"`
	Links  []Link  `json:"links"`
	// Policy names a file (YAML or JSON, relative to the topology file)
	// holding config to merge into every switchd host's config, e.g. a
	// /switchd workload-policy tree (examples/policy.yaml). LoadTopology
	// reads it into PolicyTree, which fabric.json keeps, so a loaded
	// fabric does not depend on the file (Policy becomes the path read).
	Policy     string         `json:"policy,omitempty"`
	PolicyTree map[string]any `json:"policy-tree,omitempty"`
	// Unnumbered leaves spine–leaf links between switchd nodes without
	// IPv4 and global IPv6 addresses: BGP runs over the link-local ones
	// (unnumbered.go).
	Unnumbered bool `json:"unnumbered,omitempty"`
	// BFD turns BFD on for sessions between switchd nodes (bfd.go).
	BFD *BFD `json:"bfd,omitempty"`
	// Lean runs switchd nodes with only what the simulator uses (no
	// metrics listener, no gNMI socket, LeanEnv) and paces their start
	// (StartPace): what a generated scale fabric does (scale.go).
	Lean bool `json:"lean,omitempty"`
}

// Timers apply to every BGP session of the fabric, in seconds.
type Timers struct {
	Hold         int `json:"hold,omitempty"`
	Keepalive    int `json:"keepalive,omitempty"`
	ConnectRetry int `json:"connect-retry,omitempty"`
}

// DefaultTimers are short so that a fabric converges, and notices a dead
// peer, within seconds; a simulated link never drops keepalives.
var DefaultTimers = Timers{Hold: 9, Keepalive: 3, ConnectRetry: 1}

// Node is one router of the fabric.
type Node struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
	ASN  uint32 `json:"asn"`
	Kind Kind   `json:"kind,omitempty"` // default Switchd
	// Workloads gives labels to a host's workloads by name (w1, w2...):
	// the sim passes them to the endpoint API when it attaches them, so
	// workload policy can select them.
	Workloads map[string]map[string]string `json:"workloads,omitempty"`
}

// Link joins two nodes with a veth pair. In a file it is written either as
// a two-element list [a, b] or as {a: ..., b: ...}.
type Link struct {
	A string `json:"a"`
	B string `json:"b"`
}

func (l *Link) UnmarshalJSON(b []byte) error {
	var pair []string
	if err := json.Unmarshal(b, &pair); err == nil {
		if len(pair) != 2 {
			return fmt.Errorf("link %v: want two node names, got %d", pair, len(pair))
		}
		l.A, l.B = pair[0], pair[1]
		return nil
	}
	type plain Link
	var p plain
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("link %s: want [a, b] or {a: ..., b: ...}: %w", b, err)
	}
	*l = Link(p)
	return nil
}

func (l Link) MarshalJSON() ([]byte, error) { return json.Marshal([]string{l.A, l.B}) }

func (l Link) String() string { return l.A + "--" + l.B }

// MaxNodeName keeps interface names (the peer's name plus "_N" for a
// parallel link) within the kernel's 15 bytes.
const MaxNodeName = 12

//go:embed topologies/default.yaml
var defaultTopology []byte

// Default returns the demo topology: two spines sharing one AS, two leaves
// and two hosts per leaf, each in an AS of its own (RFC 7938).
func Default() *Topology {
	t, err := ParseTopology(defaultTopology)
	if err != nil {
		panic("embedded default topology: " + err.Error())
	}
	return t
}

// LoadTopology reads and validates a topology file (YAML or JSON).
func LoadTopology(path string) (*Topology, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read topology: %w", err)
	}
	t, err := ParseTopology(b)
	if err != nil {
		return nil, fmt.Errorf("topology %s: %w", path, err)
	}
	if t.Policy != "" && t.PolicyTree == nil {
		p := t.Policy
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(path), p)
		}
		if t.PolicyTree, err = readPolicy(p); err != nil {
			return nil, fmt.Errorf("topology %s: policy: %w", path, err)
		}
		t.Policy = p // as found, for messages
	}
	return t, nil
}

// readPolicy reads a config fragment (YAML or JSON) to merge into hosts'
// configs.
func readPolicy(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var tree map[string]any
	if err := yaml.Unmarshal(b, &tree); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if len(tree) == 0 {
		return nil, fmt.Errorf("%s: empty", path)
	}
	return tree, nil
}

// ParseTopology decodes a topology (YAML or JSON; unknown fields are
// errors), fills in defaults and validates it.
func ParseTopology(b []byte) (*Topology, error) {
	var t Topology
	if err := yaml.UnmarshalStrict(b, &t); err != nil {
		return nil, fmt.Errorf("parse topology: %w", err)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// Validate fills in defaults (kind switchd, default timers) and checks the
// topology, returning every problem found, each naming its node or link.
func (t *Topology) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if t.Name == "" {
		bad("topology: name is missing")
	} else if err := checkName(t.Name, 32); err != nil {
		bad("topology name %q: %v", t.Name, err)
	}
	if t.Timers == nil {
		tm := DefaultTimers
		t.Timers = &tm
	} else {
		tm := t.Timers
		if tm.Hold == 0 {
			tm.Hold = DefaultTimers.Hold
		}
		if tm.Keepalive == 0 {
			tm.Keepalive = tm.Hold / 3
		}
		if tm.ConnectRetry == 0 {
			tm.ConnectRetry = DefaultTimers.ConnectRetry
		}
		switch {
		case tm.Hold < 3 || tm.Hold > 65535:
			bad("timers: hold %d: want 3..65535 seconds", tm.Hold)
		case tm.Keepalive < 1 || tm.Keepalive >= tm.Hold:
			bad("timers: keepalive %d: want 1..hold-1 seconds", tm.Keepalive)
		}
		if tm.ConnectRetry < 1 || tm.ConnectRetry > 65535 {
			bad("timers: connect-retry %d: want 1..65535 seconds", tm.ConnectRetry)
		}
	}
	if len(t.Nodes) == 0 {
		bad("topology: no nodes")
	}
	if len(t.Nodes) > maxNodes {
		bad("topology: %d nodes, at most %d", len(t.Nodes), maxNodes)
	}
	seen := map[string]bool{}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		if n.Name == "" {
			bad("node #%d: name is missing", i+1)
			continue
		}
		if err := checkName(n.Name, MaxNodeName); err != nil {
			bad("node %q: %v", n.Name, err)
		}
		if n.Name == "lo" {
			bad("node %q: name is taken by the loopback interface", n.Name)
		}
		if seen[n.Name] {
			bad("node %q: duplicate name", n.Name)
		}
		seen[n.Name] = true
		switch n.Role {
		case Spine, Leaf, Host, External:
		case "":
			bad("node %q: role is missing (spine, leaf, host or external)", n.Name)
		default:
			bad("node %q: bad role %q (want spine, leaf, host or external)", n.Name, n.Role)
		}
		if n.ASN == 0 {
			bad("node %q: asn is missing", n.Name)
		} else if n.ASN == 23456 || n.ASN == 4294967295 {
			bad("node %q: asn %d is reserved", n.Name, n.ASN)
		}
		switch n.Kind {
		case "":
			n.Kind = Switchd
		case Switchd, Bird, Frr:
		default:
			bad("node %q: bad kind %q (want switchd, bird or frr)", n.Name, n.Kind)
		}
		if len(n.Workloads) > 0 && (n.Role != Host || n.Kind != Switchd) {
			bad("node %q: workloads: only switchd hosts attach workloads", n.Name)
		}
		for w, labels := range n.Workloads {
			if err := checkName(w, MaxNodeName); err != nil {
				bad("node %q: workload %q: %v", n.Name, w, err)
			}
			for k := range labels {
				if k == "" {
					bad("node %q: workload %q: empty label key", n.Name, w)
				}
			}
		}
	}
	if len(t.Links) > maxLinks {
		bad("topology: %d links, at most %d", len(t.Links), maxLinks)
	}
	parallel := map[[2]string]int{}
	for i, l := range t.Links {
		if l.A == "" || l.B == "" {
			bad("link #%d %s: node name is missing", i+1, l)
			continue
		}
		ok := true
		for _, end := range []string{l.A, l.B} {
			if !seen[end] {
				bad("link #%d %s: unknown node %q", i+1, l, end)
				ok = false
			}
		}
		if l.A == l.B {
			bad("link #%d %s: links a node to itself", i+1, l)
			continue
		}
		if ok {
			k := [2]string{min(l.A, l.B), max(l.A, l.B)}
			parallel[k]++
			if parallel[k] > 99 {
				bad("link #%d %s: more than 99 parallel links", i+1, l)
			}
		}
	}
	return errors.Join(errs...)
}

// checkName allows what is safe in a namespace, interface and file name
// and in a BIRD protocol name (after '-' becomes '_').
func checkName(s string, maxLen int) error {
	if len(s) > maxLen {
		return fmt.Errorf("name too long (%d bytes, at most %d)", len(s), maxLen)
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case (c >= '0' && c <= '9') || c == '-':
			if i == 0 {
				return fmt.Errorf("name must start with a letter")
			}
		default:
			return fmt.Errorf("bad character %q (want letters, digits and '-')", c)
		}
	}
	return nil
}
