// Package docker is switchd's Docker network and IPAM driver: libnetwork's
// remote driver protocol (JSON over HTTP POST on a unix socket that
// dockerd finds in /run/docker/plugins) turned into host endpoints.
//
// A Docker network of driver switchd is a group: each endpoint carries the
// label NetworkLabel=<group>, the network's short ID (12 hex digits, as
// `docker network ls` shows it) unless `-o switchd.group=NAME` names the
// group (so that networks of several hosts are one), and Policies gives,
// per group, a workload policy under which its members accept traffic
// from members only (others denied unless another policy allows them). Addresses come
// from switchd's IPAM blocks (IpamDriver); the endpoint is a routed veth
// as for CNI (host.Manager.AddDocker): no bridge, no overlay, a link-local
// gateway (169.254.1.1, fe80::1) reached by a connected static route.
package docker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/switchd/switchd/host"
	"github.com/switchd/switchd/policy"
)

// NetworkLabel is the label every endpoint of a Docker network carries:
// the network's group, its short ID unless `-o switchd.group=NAME` names
// one (the same name on several hosts makes their networks one group).
// NetworkIDLabel is the network's short ID, always.
const (
	NetworkLabel   = "switchd.docker/network"
	NetworkIDLabel = "switchd.docker/network-id"
	// GroupOption is the driver option (docker network create -o) naming
	// the group.
	GroupOption = "switchd.group"
)

// Name is the driver's name for `docker network create -d` and
// `--ipam-driver`: dockerd finds it as /run/docker/plugins/switchd.sock.
const Name = "switchd"

// DefaultSocket is where dockerd looks for the plugin.
const DefaultSocket = "/run/docker/plugins/" + Name + ".sock"

// Endpoints is what the driver needs of host.Manager.
type Endpoints interface {
	Reserve(pool netip.Prefix, fixed netip.Addr) (netip.Addr, error)
	Unreserve(a netip.Addr) bool
	Pools() []host.Pool
	AddDocker(ctx context.Context, req host.DockerRequest) (host.Result, string, error)
	Del(ctx context.Context, id string) error
	List() []host.Endpoint
}

// Network is a Docker network the driver was asked to create.
type Network struct {
	ID    string `json:"id"`
	Group string `json:"group,omitempty"` // GroupOption; "": the short ID
	IPv4  bool   `json:"ipv4,omitempty"`
	IPv6  bool   `json:"ipv6,omitempty"`
}

// Short is the network's short ID.
func (n Network) Short() string { return shortID(n.ID) }

// Label is the network's NetworkLabel value: its group.
func (n Network) Label() string { return cmp.Or(n.Group, n.Short()) }

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

type endpoint struct {
	network    string
	ipv4, ipv6 netip.Addr
	mac        net.HardwareAddr
}

// Driver serves the plugin. Its networks persist in a file (dockerd does
// not create them again after a switchd restart); endpoints are the
// Manager's records (label NetworkLabel), pending ones (created, not yet
// joined) are in memory.
//
// Methods are safe for concurrent use.
type Driver struct {
	eps   Endpoints
	path  string // the networks file
	log   *slog.Logger
	kick  chan struct{}
	mu    sync.Mutex // guards the fields below
	nets  map[string]Network
	pend  map[string]endpoint // by Docker endpoint ID
	dirty bool
}

// New loads the networks from stateDir/docker-networks.json.
func New(eps Endpoints, stateDir string, log *slog.Logger) (*Driver, error) {
	if log == nil {
		log = slog.Default()
	}
	d := &Driver{eps: eps, path: filepath.Join(stateDir, "docker-networks.json"), log: log,
		kick: make(chan struct{}, 1), nets: map[string]Network{}, pend: map[string]endpoint{}}
	b, err := os.ReadFile(d.path)
	if errors.Is(err, os.ErrNotExist) {
		return d, nil
	}
	if err != nil {
		return nil, fmt.Errorf("docker networks: %w", err)
	}
	var ns []Network
	if err := json.Unmarshal(b, &ns); err != nil {
		return nil, fmt.Errorf("docker networks %s: %w", d.path, err)
	}
	for _, n := range ns {
		d.nets[n.ID] = n
	}
	return d, nil
}

// saveLocked writes the networks file.
func (d *Driver) saveLocked() error {
	ns := slices.Collect(maps.Values(d.nets))
	slices.SortFunc(ns, func(a, b Network) int { return strings.Compare(a.ID, b.ID) })
	if ns == nil {
		ns = []Network{}
	}
	b, err := json.Marshal(ns)
	if err == nil {
		err = host.WriteStateFile(filepath.Dir(d.path), filepath.Base(d.path), b)
	}
	if err != nil {
		return fmt.Errorf("save docker networks: %w", err)
	}
	return nil
}

// Updates is kicked when the networks change (Policies changed).
func (d *Driver) Updates() <-chan struct{} { return d.kick }

// Networks returns the networks, sorted by ID.
func (d *Driver) Networks() []Network {
	d.mu.Lock()
	defer d.mu.Unlock()
	ns := slices.Collect(maps.Values(d.nets))
	slices.SortFunc(ns, func(a, b Network) int { return strings.Compare(a.ID, b.ID) })
	return ns
}

// PolicyOrder is the order of the networks' policies: after most
// configured ones, so an operator's policy can name them.
const PolicyOrder = 1000

// Policies are the networks' workload policies: members of a network
// accept what comes from members (and whatever other policies selecting
// them allow); everything else is denied. Egress stays open: a member's
// peer on another network refuses it at its own ingress.
func (d *Driver) Policies() []policy.Policy {
	var ps []policy.Policy
	seen := map[string]bool{}
	for _, n := range d.Networks() {
		if seen[n.Label()] {
			continue // networks of one group share its policy
		}
		seen[n.Label()] = true
		sel, err := policy.ParseSelector(fmt.Sprintf("%s == %q", NetworkLabel, n.Label()))
		if err != nil {
			continue // checked at CreateNetwork: cannot happen
		}
		peer := sel
		ps = append(ps, policy.Policy{
			Name: "docker-" + n.Label(), Order: PolicyOrder, Selector: sel, SelectsIngress: true,
			Ingress: []policy.Rule{{Seq: 1, Action: policy.Allow, Peer: policy.Peer{Selector: &peer}}},
		})
	}
	return ps
}

// Handler is the plugin's HTTP handler.
func (d *Driver) Handler() http.Handler {
	mux := http.NewServeMux()
	for name, f := range map[string]func(*http.Request) (any, error){
		"Plugin.Activate":                           d.activate,
		"NetworkDriver.GetCapabilities":             d.netCapabilities,
		"NetworkDriver.CreateNetwork":               d.createNetwork,
		"NetworkDriver.DeleteNetwork":               d.deleteNetwork,
		"NetworkDriver.CreateEndpoint":              d.createEndpoint,
		"NetworkDriver.DeleteEndpoint":              d.deleteEndpoint,
		"NetworkDriver.EndpointOperInfo":            d.operInfo,
		"NetworkDriver.Join":                        d.join,
		"NetworkDriver.Leave":                       d.leave,
		"NetworkDriver.ProgramExternalConnectivity": empty,
		"NetworkDriver.RevokeExternalConnectivity":  empty,
		"NetworkDriver.DiscoverNew":                 empty,
		"NetworkDriver.DiscoverDelete":              empty,
		"IpamDriver.GetCapabilities":                d.ipamCapabilities,
		"IpamDriver.GetDefaultAddressSpaces":        d.addressSpaces,
		"IpamDriver.RequestPool":                    d.requestPool,
		"IpamDriver.ReleasePool":                    empty,
		"IpamDriver.RequestAddress":                 d.requestAddress,
		"IpamDriver.ReleaseAddress":                 d.releaseAddress,
	} {
		mux.HandleFunc("POST /"+name, func(w http.ResponseWriter, r *http.Request) {
			res, err := f(r)
			w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1+json")
			if err != nil {
				d.log.Warn("docker driver", "call", name, "err", err)
				w.WriteHeader(http.StatusInternalServerError)
				json.NewEncoder(w).Encode(map[string]string{"Err": "switchd: " + err.Error()})
				return
			}
			json.NewEncoder(w).Encode(res)
		})
	}
	return mux
}

// Serve listens on path (a stale socket is replaced) until the listener
// is closed.
func (d *Driver) Serve(path string) (*http.Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("docker socket %s: %w", path, err)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("docker socket: %w", err)
	}
	srv := &http.Server{Handler: d.Handler()}
	go srv.Serve(ln)
	return srv, nil
}

func decode(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode request: %w", err)
	}
	return nil
}

func empty(*http.Request) (any, error) { return struct{}{}, nil }

func (d *Driver) activate(*http.Request) (any, error) {
	return map[string][]string{"Implements": {"NetworkDriver", "IpamDriver"}}, nil
}

func (d *Driver) netCapabilities(*http.Request) (any, error) {
	// Local: the daemon of each host answers for its own endpoints.
	return map[string]string{"Scope": "local", "ConnectivityScope": "local"}, nil
}

func (d *Driver) kickLocked() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}
