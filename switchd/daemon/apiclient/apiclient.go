// Package apiclient is the client side of switchd's local API: the JSON the
// daemon serves on its unix socket and a Get that reads it. The daemon
// serves these types and the simulator and CLI read them, so a reader needs
// this small package, not the daemon.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// StatusPath is where the daemon serves Status.
const StatusPath = "/v1/status"

// Status is what GET /v1/status on the local API returns.
type Status struct {
	BGP    BGPStatus    `json:"bgp"`
	FIB    FIBStatus    `json:"fib"`
	Policy PolicyStatus `json:"policy"`
	// Metrics is the Prometheus listener, when one is configured.
	Metrics *MetricsStatus `json:"metrics,omitempty"`
	// Interfaces is /interfaces as last applied, when any is configured.
	Interfaces *InterfacesStatus `json:"interfaces,omitempty"`
	// BFD is the BFD sessions, when any is configured (bfd.go).
	BFD *BFDStatus `json:"bfd,omitempty"`
	// Kubernetes is cluster mode's watcher, when enabled.
	Kubernetes *KubernetesStatus `json:"kubernetes,omitempty"`
}

// KubernetesStatus is cluster mode's: whether every informer has listed
// (nothing is enforced from the API before), the API requests that got
// no answer so far (a lost API server: enforcement stays as it was), and
// the NetworkPolicies compiled, with the parts left out.
type KubernetesStatus struct {
	Node            string `json:"node"`
	Synced          bool   `json:"synced"`
	RequestFailures int    `json:"request-failures"`
	Policies        int    `json:"policies"`
	Problems        int    `json:"problems,omitempty"`
}

// InterfacesStatus is the interface reconciler's last Apply: how many
// interfaces the config names, those the kernel lacks (configured when
// they appear) and the writes that failed (retried with a back-off).
type InterfacesStatus struct {
	Configured int      `json:"configured"`
	Missing    []string `json:"missing,omitempty"`
	LastError  string   `json:"last-error,omitempty"`
}

// BGPStatus lists the configured neighbors and their sessions.
type BGPStatus struct {
	ASN       uint32           `json:"as"`
	RouterID  string           `json:"router-id"`
	Neighbors []NeighborStatus `json:"neighbors"`
}

// NeighborStatus is one BGP session as the local API reports it, from the
// speaker's neighbor feed: prefix counts lag by up to a second, and what
// was sent is not counted (GoBGP counts it only by walking its RIB).
type NeighborStatus struct {
	Address          string     `json:"address"`
	PeerAS           uint32     `json:"peer-as"`
	State            string     `json:"state"`
	EstablishedSince *time.Time `json:"established-since,omitempty"`
	// EstablishedTransitions counts the sessions that reached Established
	// since the neighbor was configured.
	EstablishedTransitions uint64            `json:"established-transitions,omitempty"`
	Received               map[string]uint64 `json:"received,omitempty"`
	Accepted               map[string]uint64 `json:"accepted,omitempty"`
	LastError              string            `json:"last-error,omitempty"`
}

// FIBStatus summarises the routes switchd wants in the kernel.
type FIBStatus struct {
	Routes int  `json:"routes"`
	InSync bool `json:"in-sync"`
	// Stale counts routes adopted from a previous run and kept until BGP
	// has synced.
	Stale      int       `json:"stale,omitempty"`
	LastResync time.Time `json:"last-resync"`
	LastError  string    `json:"last-error,omitempty"`
	// Offloaded, Trapped and OffloadFailed count switchd's routes by
	// the hardware flags a switchdev driver set (iproute2's offload,
	// trap, offload_failed); zero without one.
	Offloaded     int `json:"offloaded,omitempty"`
	Trapped       int `json:"trapped,omitempty"`
	OffloadFailed int `json:"offload-failed,omitempty"`
}

// PolicyStatus summarises switchd's nftables table (forwarding control):
// the counts are of the desired table, as the last Apply left it.
type PolicyStatus struct {
	// InSync: the last Apply succeeded and nothing is pending.
	InSync    bool `json:"in-sync"`
	Chains    int  `json:"chains"`
	Rules     int  `json:"rules"`
	Sets      int  `json:"sets"`
	Elements  int  `json:"set-elements"`
	Endpoints int  `json:"endpoints"`
	// Profiles counts the chains of workload policy, one per combination
	// of policies selecting some endpoint.
	Profiles  int       `json:"profiles"`
	LastApply time.Time `json:"last-apply,omitzero"`
	LastError string    `json:"last-error,omitempty"`
	// FailsafeKept names the failsafe services (BGP, SSH, gNMI, ...) a
	// policy would have cut: it is applied, but these stay reachable.
	FailsafeKept []string `json:"failsafe-kept,omitempty"`
	// ACLEntries are the configured ACL entries' counters as last read
	// (every few seconds), summed over the directions an entry is bound
	// in; the gNMI server will serve them at
	// /acl/acl-sets/acl-set/acl-entries/acl-entry/state.
	ACLEntries []ACLEntryStatus `json:"acl-entries,omitempty"`
}

// ACLEntryStatus is what one ACL entry matched.
type ACLEntryStatus struct {
	Set            string `json:"acl-set"`
	Type           string `json:"type"` // ACL_IPV4, ACL_IPV6, ACL_MIXED
	Seq            uint32 `json:"sequence-id"`
	MatchedPackets uint64 `json:"matched-packets"`
	MatchedOctets  uint64 `json:"matched-octets"`
}

// DebugPath is where the daemon serves the runtime's profiles
// (net/http/pprof), on its socket only.
const DebugPath = "/debug/pprof/"

// GetStatus asks the daemon listening on the unix socket for its status.
func GetStatus(ctx context.Context, socket string) (*Status, error) {
	b, err := get(ctx, socket, StatusPath, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("switchd status on %s: %w", socket, err)
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("switchd status on %s: decode: %w", socket, err)
	}
	return &st, nil
}

// CPUProfile records the daemon's CPU profile for d (whole seconds, at
// least one) and returns it as pprof writes it (gzipped protobuf). The
// runtime records one CPU profile at a time: a second request meanwhile
// fails.
func CPUProfile(ctx context.Context, socket string, d time.Duration) ([]byte, error) {
	sec := max(1, int((d+time.Second-1)/time.Second))
	b, err := get(ctx, socket, fmt.Sprintf("%sprofile?seconds=%d", DebugPath, sec), time.Duration(sec)*time.Second+10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("switchd cpu profile on %s: %w", socket, err)
	}
	return b, nil
}

// HeapProfile returns the daemon's heap profile, taken after a garbage
// collection so that it shows what is live.
func HeapProfile(ctx context.Context, socket string) ([]byte, error) {
	b, err := get(ctx, socket, DebugPath+"heap?gc=1", 30*time.Second)
	if err != nil {
		return nil, fmt.Errorf("switchd heap profile on %s: %w", socket, err)
	}
	return b, nil
}

// get reads path from the daemon's API on socket; a status other than
// 200 is an error.
func get(ctx context.Context, socket, path string, timeout time.Duration) ([]byte, error) {
	c := &http.Client{
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
		Timeout: timeout,
	}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://switchd"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return io.ReadAll(resp.Body)
}
