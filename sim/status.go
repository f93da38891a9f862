package sim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/switchd/switchd/switchd/daemon/apiclient"
)

// SessionStatus is one expected BGP session of a node.
type SessionStatus struct {
	Peer    string     `json:"peer"`
	Address netip.Addr `json:"address"`
	PeerASN uint32     `json:"peer-as"`
	State   string     `json:"state"` // as the daemon says; "" if it does not know the neighbor
	Up      bool       `json:"up"`
}

// NodeStatus is what Status found out about a node.
type NodeStatus struct {
	Name          string          `json:"name"`
	Role          Role            `json:"role"`
	Kind          Kind            `json:"kind"`
	ASN           uint32          `json:"asn"`
	Namespace     string          `json:"namespace"`
	PID           int             `json:"pid"`
	Running       bool            `json:"running"`
	Sessions      []SessionStatus `json:"sessions"`
	SessionsUp    int             `json:"sessions-up"`
	SessionsTotal int             `json:"sessions-total"`
	// Routes counts the kernel routes the node's daemon installed
	// (SwitchdProtocol for switchd, BirdProtocol for BIRD), counted in its namespace.
	Routes int `json:"routes"`
	// FIBInSync is switchd's own opinion (nil for BIRD or no answer).
	FIBInSync *bool `json:"fib-in-sync,omitempty"`
	// Policy is switchd's nftables table as its daemon reports it (nil
	// for BIRD or no answer).
	Policy *apiclient.PolicyStatus `json:"policy,omitempty"`
	// Missing lists the loopbacks of nodes in other ASes that the node has
	// no route to.
	Missing []netip.Prefix `json:"missing,omitempty"`
	Err     string         `json:"error,omitempty"`
}

// Converged says the node's sessions are all up and it has routes to
// every other node's loopbacks.
func (s *NodeStatus) Converged() bool {
	return s.Running && s.Err == "" && s.SessionsUp == s.SessionsTotal && len(s.Missing) == 0
}

// DaemonStatus is what switchd answers on GET /v1/status over its unix
// socket.
type DaemonStatus = apiclient.Status

// Status asks every node's daemon for its BGP sessions and counts the
// routes in its namespace. Per-node problems go into NodeStatus.Err.
func (f *Fabric) Status(ctx context.Context) ([]NodeStatus, error) {
	out := make([]NodeStatus, len(f.nodes))
	var wg sync.WaitGroup
	for i, n := range f.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = f.nodeStatus(ctx, n)
		}()
	}
	wg.Wait()
	return out, ctx.Err()
}

func (f *Fabric) nodeStatus(ctx context.Context, n *NodeInfo) NodeStatus {
	s := NodeStatus{
		Name: n.Name, Role: n.Role, Kind: n.Kind, ASN: n.ASN, Namespace: n.Namespace,
		PID: f.PID(n.Name), Running: f.Running(n.Name), SessionsTotal: n.Sessions(),
	}
	for _, i := range n.Interfaces {
		if i.Unnumbered {
			s.Sessions = append(s.Sessions, SessionStatus{Peer: i.Peer, Address: unnumberedSession(i), PeerASN: i.PeerASN})
			continue
		}
		s.Sessions = append(s.Sessions,
			SessionStatus{Peer: i.Peer, Address: i.Peer4, PeerASN: i.PeerASN},
			SessionStatus{Peer: i.Peer, Address: i.Peer6, PeerASN: i.PeerASN})
	}
	var errs []error
	if !s.Running {
		errs = append(errs, fmt.Errorf("%s is not running (log: %s)", n.Kind, n.Log))
	} else {
		states, ds, err := f.sessionStates(ctx, n)
		if err != nil {
			errs = append(errs, err)
		}
		if ds != nil {
			inSync := ds.FIB.InSync
			s.FIBInSync, s.Policy = &inSync, &ds.Policy
		}
		for k := range s.Sessions {
			ss := &s.Sessions[k]
			ss.State = states[ss.Address]
			ss.Up = strings.EqualFold(ss.State, "established")
			if ss.Up {
				s.SessionsUp++
			}
		}
	}
	rs, err := f.Routes(n.Name)
	if err != nil {
		errs = append(errs, err)
	}
	s.Routes = len(rs)
	have := map[netip.Prefix]bool{}
	for _, r := range rs {
		if r.Dst == nil {
			continue
		}
		if a, ok := netip.AddrFromSlice(r.Dst.IP); ok {
			ones, _ := r.Dst.Mask.Size()
			have[netip.PrefixFrom(a.Unmap(), ones)] = true
		}
	}
	for _, o := range f.nodes {
		// eBGP loop prevention drops a route whose AS_PATH holds the
		// receiver's own AS, so nodes sharing an AS (the spines of an
		// RFC 7938 fabric) never learn each other's loopbacks.
		if o == n || o.ASN == n.ASN {
			continue
		}
		for _, p := range []netip.Prefix{netip.PrefixFrom(o.Loopback4, 32), netip.PrefixFrom(o.Loopback6, 128)} {
			if !have[p] {
				s.Missing = append(s.Missing, p)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		s.Err = err.Error()
	}
	return s
}

// sessionStates maps neighbor address to session state, as the node's
// daemon reports it, and returns switchd's whole status (nil for BIRD).
func (f *Fabric) sessionStates(ctx context.Context, n *NodeInfo) (map[netip.Addr]string, *DaemonStatus, error) {
	if n.Kind == Bird {
		st, err := birdSessions(ctx, n)
		return st, nil, err
	}
	if n.Kind == Frr {
		st, err := frrSessions(ctx, n)
		return st, nil, err
	}
	ds, err := SwitchdStatus(ctx, n.Socket)
	if err != nil {
		return nil, nil, err
	}
	st := map[netip.Addr]string{}
	for _, nb := range ds.BGP.Neighbors {
		if a, err := netip.ParseAddr(nb.Address); err == nil {
			st[sessionKey(a)] = nb.State
		}
	}
	return st, ds, nil
}

// SwitchdStatus asks the switchd daemon listening on socket for its status.
func SwitchdStatus(ctx context.Context, socket string) (*DaemonStatus, error) {
	return apiclient.GetStatus(ctx, socket)
}

// birdSessions reads `birdc show protocols`: a BGP protocol that is up
// shows "Established" in its info column. Protocol names map back to
// neighbors through birdProtocol.
func birdSessions(ctx context.Context, n *NodeInfo) (map[netip.Addr]string, error) {
	byProto := map[string]netip.Addr{}
	for _, i := range n.Interfaces {
		byProto[birdProtocol(i, "4")] = i.Peer4
		byProto[birdProtocol(i, "6")] = i.Peer6
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "birdc", "-s", n.Socket, "show", "protocols").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("birdc show protocols on %s: %w: %s", n.Socket, err, strings.TrimSpace(string(out)))
	}
	st := map[netip.Addr]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		// name proto table state since(date and/or time) info
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 || fs[1] != "BGP" {
			continue
		}
		a, ok := byProto[fs[0]]
		if !ok {
			continue
		}
		state := fs[3] // "up", "start", "down"
		if len(fs) > 5 {
			state = fs[len(fs)-1] // Established, Active, Connect, ...
		}
		st[a] = state
	}
	return st, nil
}

// Converged says whether every node of statuses is converged.
func Converged(statuses []NodeStatus) bool {
	for i := range statuses {
		if !statuses[i].Converged() {
			return false
		}
	}
	return len(statuses) > 0
}

// WaitConverged waits until every session is established and every node
// has a route to every other node's loopbacks, or ctx ends; then the error
// says what was still missing. It gives up early if a daemon died.
func WaitConverged(ctx context.Context, f *Fabric) error {
	for {
		start := time.Now()
		st, err := f.Status(ctx)
		if err == nil && Converged(st) {
			return nil
		}
		for _, s := range st {
			if !s.Running && s.PID > 0 {
				return fmt.Errorf("fabric %s: node %s: %s exited%s", f.Prefix, s.Name, s.Kind, logTail(f.LogPath(s.Name)))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fabric %s not converged: %w\n%s", f.Prefix, ctx.Err(), notConverged(st))
		// A poll asks every node: on a big fabric, not so often that the
		// polling starves the daemons (idle twice as long as it took).
		case <-time.After(max(250*time.Millisecond, 2*time.Since(start))):
		}
	}
}

func notConverged(st []NodeStatus) string {
	var b strings.Builder
	for _, s := range st {
		if s.Converged() {
			continue
		}
		fmt.Fprintf(&b, "  %s: sessions %d/%d", s.Name, s.SessionsUp, s.SessionsTotal)
		for _, ss := range s.Sessions {
			if !ss.Up {
				fmt.Fprintf(&b, " [%s %s %q]", ss.Peer, ss.Address, ss.State)
			}
		}
		if len(s.Missing) > 0 {
			fmt.Fprintf(&b, "; no route to %v", s.Missing)
		}
		if s.Err != "" {
			fmt.Fprintf(&b, "; %s", s.Err)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// logTail returns the last lines of a log file, for error messages.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return fmt.Sprintf("; last lines of %s:\n  %s", path, strings.Join(lines, "\n  "))
}
