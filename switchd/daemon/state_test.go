package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"golang.org/x/sys/unix"

	"github.com/switchd/switchd/gnmi"
	"github.com/switchd/switchd/host"
	"github.com/switchd/switchd/host/endpointapi"
	"github.com/switchd/switchd/platform"
	"github.com/switchd/switchd/policy"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/switchd/bgp"
	"github.com/switchd/switchd/switchd/daemon/state"
)

// The state tree's wiring on fakes: each feed the loop drains reaches the
// publisher as the leaves a gNMI subscriber would get.

// The gNMI server plugs in as the daemon's StatePublisher.
var _ StatePublisher = (*gnmi.Server)(nil)

// statePub is a publisher that applies what it gets to a map of leaves
// (path → value as text), as a cache would: a delete removes a subtree.
// The loop publishes, the test reads.
type statePub struct {
	mu     sync.Mutex
	leaves map[string]string
	count  int // notifications
}

func newStatePub() *statePub { return &statePub{leaves: map[string]string{}} }

func (p *statePub) Update(n *gpb.Notification) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.count++
	for _, d := range n.GetDelete() {
		gone := state.PathString(n.GetPrefix(), d)
		maps.DeleteFunc(p.leaves, func(k, _ string) bool { return k == gone || strings.HasPrefix(k, gone+"/") })
	}
	for _, u := range n.GetUpdate() {
		p.leaves[state.PathString(n.GetPrefix(), u.GetPath())] = state.ValueText(u.GetVal())
	}
	return nil
}

// get returns a leaf's value and whether it is there.
func (p *statePub) get(path string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.leaves[path]
	return v, ok
}

// under lists the leaves under prefix.
func (p *statePub) under(prefix string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for k := range p.leaves {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// waitLeaf waits until the leaf has the value ("" and absent: gone).
func (p *statePub) waitLeaf(t *testing.T, path, want string, absent bool) {
	t.Helper()
	waitFor(t, path, func() error {
		v, ok := p.get(path)
		if absent && ok {
			return fmt.Errorf("still there: %q", v)
		}
		if !absent && v != want {
			return fmt.Errorf("= %q (there: %v), want %q", v, ok, want)
		}
		return nil
	})
}

// testLinkStats is the link stats reader: it returns what the test set.
type testLinkStats struct {
	mu    sync.Mutex
	links []platform.LinkStats
	reads int
}

func (l *testLinkStats) Read(ctx context.Context) ([]platform.LinkStats, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	return slices.Clone(l.links), nil
}

func (l *testLinkStats) set(ls ...platform.LinkStats) {
	l.mu.Lock()
	l.links = ls
	l.mu.Unlock()
}

const nbrPath = "network-instances/network-instance[name=DEFAULT]/protocols/protocol[identifier=BGP][name=BGP]/bgp/"

// startWiredState runs a daemon on fakes with a state publisher and a
// link stats reader.
func startWiredState(t *testing.T, cfg testConfig) (*wired, *statePub, *testLinkStats) {
	t.Helper()
	pub, ls := newStatePub(), &testLinkStats{}
	w := newWired(t, cfg, func(w *wired) { w.state = pub })
	w.d.linkStats = ls
	w.run(t)
	return w, pub, ls
}

// TestWiringStateNeighbors: the config's BGP global state is published
// at start; the speaker's neighbor feed reaches the tree: established,
// then ACTIVE when the session drops, then deleted when the neighbor is
// no longer configured.
func TestWiringStateNeighbors(t *testing.T) {
	w, pub, _ := startWiredState(t, testConfig{neighbors: []string{"10.0.1.1"}})
	pub.waitLeaf(t, nbrPath+"global/state/as", "65001", false)
	pub.waitLeaf(t, nbrPath+"global/state/router-id", "10.255.0.1", false)

	const n = nbrPath + "neighbors/neighbor[neighbor-address=10.0.1.1]/state/"
	up := bgp.NeighborState{Address: addr("10.0.1.1"), PeerAS: 65000, State: bgp.StateEstablished,
		EstablishedTransitions: 1, LastEstablished: time.Unix(1000, 0), EstablishedSince: time.Unix(1000, 0)}
	w.sp.publishNeighbors(up)
	pub.waitLeaf(t, n+"session-state", "ESTABLISHED", false)
	if v, _ := pub.get(n + "established-transitions"); v != "1" {
		t.Errorf("established-transitions = %q, want 1", v)
	}

	down := up
	down.State, down.EstablishedSince = bgp.StateActive, time.Time{}
	w.sp.publishNeighbors(down)
	pub.waitLeaf(t, n+"session-state", "ACTIVE", false)

	gone := down
	gone.Removed = true
	w.sp.publishNeighbors(gone)
	waitFor(t, "the removed neighbor deleted", func() error {
		if l := pub.under(nbrPath + "neighbors/"); len(l) > 0 {
			return fmt.Errorf("leaves left: %v", l)
		}
		return nil
	})
}

// TestWiringStateEndpoints: host's endpoint events reach
// /switchd/endpoints; a removed endpoint is deleted.
func TestWiringStateEndpoints(t *testing.T) {
	w, pub, _ := startWiredState(t, testConfig{})
	e := host.Endpoint{ID: "c1/eth0", Kind: endpointapi.KindContainer, Name: "c1", HostIface: "sd-c1",
		IPv4: addr("10.10.1.5"), Labels: map[string]string{"role": "web"}}
	w.eps.publish(host.EndpointEvent{Type: host.EndpointAdded, Endpoint: e})
	const p = "switchd/endpoints/endpoint[name=c1/eth0]/"
	pub.waitLeaf(t, p+"state/ipv4-address", "10.10.1.5", false)
	pub.waitLeaf(t, p+"labels/label[key=role]/state/value", "web", false)

	e.Labels = map[string]string{"role": "db"}
	w.eps.publish(host.EndpointEvent{Type: host.EndpointUpdated, Endpoint: e})
	pub.waitLeaf(t, p+"labels/label[key=role]/state/value", "db", false)

	w.eps.publish(host.EndpointEvent{Type: host.EndpointRemoved, Endpoint: e})
	pub.waitLeaf(t, p+"state/interface", "", true)
}

// TestWiringStateLinkOper: the interfaces are published at start; a
// carrier change from the link monitor makes the loop read the links at
// once (the sample interval is an hour here), so the new oper status is
// published without waiting for the next sample.
func TestWiringStateLinkOper(t *testing.T) {
	swp := platform.LinkStats{Index: 3, Name: "swp1", Type: unix.ARPHRD_ETHER, Flags: unix.IFF_UP | unix.IFF_LOWER_UP,
		OperState: platform.OperUp, MTU: 1500, Addrs: []netip.Prefix{pfx("10.0.1.0/31")}}
	pub, ls := newStatePub(), &testLinkStats{}
	ls.set(swp)
	w := newWired(t, testConfig{neighbors: []string{"10.0.1.1"}}, func(w *wired) { w.state = pub })
	w.d.linkStats = ls
	w.run(t)
	const p = "interfaces/interface[name=swp1]/state/"
	pub.waitLeaf(t, p+"oper-status", "UP", false)
	pub.waitLeaf(t, "interfaces/interface[name=swp1]/subinterfaces/subinterface[index=0]/ipv4/addresses/address[ip=10.0.1.0]/state/prefix-length", "31", false)
	if _, ok := pub.get(p + "last-change"); ok {
		t.Error("last-change published before any change was seen")
	}

	swp.OperState, swp.Flags = platform.OperDown, unix.IFF_UP
	ls.set(swp)
	m := w.rec.mark()
	w.links.publish(platform.CarrierEvent{Index: 3, Name: "swp1", Prefixes: swp.Addrs})
	pub.waitLeaf(t, p+"oper-status", "DOWN", false)
	if _, ok := pub.get(p + "last-change"); !ok {
		t.Error("no last-change after the oper change")
	}
	// The carrier loss also took its usual path (fast failover).
	w.rec.waitFor(t, m, "the neighbor on the link dropped", func(c []string) bool {
		return slices.Contains(c, "bgp.DropNeighbor 10.0.1.1")
	})
}

// TestWiringStateACL: the ACL entries' counters the loop reads for the
// status reach /acl, and leave it with the ACL.
func TestWiringStateACL(t *testing.T) {
	pub := newStatePub()
	w := newWired(t, testConfig{neighbors: []string{"10.0.1.1"}, aclDrop: "host1-in"}, func(w *wired) { w.state = pub })
	key := policy.ACLSetKey{Name: "host1-in", Type: policy.ACLIPv4}
	w.pe.counters = []policy.RuleCounter{
		{Chain: "acl-in-host1-in", ID: policy.ACLRuleID{Set: key, Seq: 10, Ingress: true}.String(), Packets: 3, Bytes: 180},
	}
	w.d.opts.CountersInterval = 20 * time.Millisecond
	w.run(t)
	const p = "acl/acl-sets/acl-set[name=host1-in][type=ACL_IPV4]/acl-entries/acl-entry[sequence-id=10]/state/"
	pub.waitLeaf(t, p+"matched-packets", "3", false)
	pub.waitLeaf(t, p+"matched-octets", "180", false)
	w.reload(t, testConfig{neighbors: []string{"10.0.1.1"}}.json())
	pub.waitLeaf(t, p+"matched-packets", "", true)
}

// TestWiringStateOff: without a publisher nothing is rendered and no
// link is read.
func TestWiringStateOff(t *testing.T) {
	ls := &testLinkStats{}
	w := newWired(t, testConfig{neighbors: []string{"10.0.1.1"}}, nil)
	w.d.linkStats = ls
	w.run(t)
	m := w.rec.mark()
	w.links.publish(platform.CarrierEvent{Index: 3, Name: "swp1", Carrier: true})
	w.rec.waitTurns(t, m, 1)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.reads != 0 || w.d.st.tree != nil {
		t.Errorf("state off: %d link reads, tree %v", ls.reads, w.d.st.tree)
	}
}

// TestStatePrivileged runs the real daemon with a state publisher and an
// FRR peer on a veth: the peer's IPv4 and IPv6 sessions become
// ESTABLISHED in the tree, the veth's in-pkts and out-pkts grow by a
// ping through it; setting the veth down makes it oper and admin DOWN and
// the session leave ESTABLISHED; /system carries the hostname and
// switchd's own memory.
func TestStatePrivileged(t *testing.T) {
	ns.Privileged(t)
	if os.Getenv("SWITCHD_TEST_NETNS") == "" {
		t.Skip("needs ns.TestMain's private namespace")
	}
	peer := startFRR(t, 1, 65011)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "switchd.json")
	if err := os.WriteFile(cfg, ecmpConfig([]*frrPeer{peer}), 0o644); err != nil {
		t.Fatal(err)
	}
	pub := newStatePub()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{ConfigPath: cfg, Socket: filepath.Join(dir, "switchd.sock"), StateDir: dir,
			Logger: slog.New(slog.NewTextHandler(testLogOut(), nil)), State: pub, StateInterval: 200 * time.Millisecond})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	for _, a := range []netip.Addr{peer.addr4(), peer.addr6()} {
		n := nbrPath + "neighbors/neighbor[neighbor-address=" + a.String() + "]/state/"
		pub.waitLeaf(t, n+"session-state", "ESTABLISHED", false)
		if v, _ := pub.get(n + "peer-as"); v != "65011" {
			t.Errorf("%v peer-as = %q, want 65011", a, v)
		}
	}

	const c = "interfaces/interface[name=tofrr1]/state/counters/"
	counter := func(leaf string) (uint64, error) {
		v, ok := pub.get(c + leaf)
		if !ok {
			return 0, fmt.Errorf("%s not published", c+leaf)
		}
		return strconv.ParseUint(v, 10, 64)
	}
	var inBefore, outBefore uint64
	waitFor(t, "tofrr1's counters published", func() (err error) {
		if inBefore, err = counter("in-pkts"); err == nil {
			outBefore, err = counter("out-pkts")
		}
		return err
	})
	pub.waitLeaf(t, "interfaces/interface[name=tofrr1]/state/oper-status", "UP", false)
	const pings = 10
	// A loaded machine may lose a first echo behind neighbour discovery:
	// the count of replies is what the counters must show.
	out, err := exec.Command("ping", "-c", strconv.Itoa(pings), "-i", "0.2", "-W", "2", peer.addr4().String()).CombinedOutput()
	if err != nil {
		t.Fatalf("ping %v: %v\n%s", peer.addr4(), err, out)
	}
	waitFor(t, "tofrr1's counters grow by the ping", func() error {
		in, err := counter("in-pkts")
		if err != nil {
			return err
		}
		out, err := counter("out-pkts")
		if err != nil {
			return err
		}
		if in < inBefore+pings || out < outBefore+pings {
			return fmt.Errorf("in-pkts %d -> %d, out-pkts %d -> %d over %d pings", inBefore, in, outBefore, out, pings)
		}
		return nil
	})

	// Our end set down: the link monitor's news brings the new oper and
	// admin status, and fast failover ends the session over it.
	if out, err := exec.Command("ip", "link", "set", "tofrr1", "down").CombinedOutput(); err != nil {
		t.Fatalf("set tofrr1 down: %v\n%s", err, out)
	}
	pub.waitLeaf(t, "interfaces/interface[name=tofrr1]/state/oper-status", "DOWN", false)
	pub.waitLeaf(t, "interfaces/interface[name=tofrr1]/state/admin-status", "DOWN", false)
	n4 := nbrPath + "neighbors/neighbor[neighbor-address=" + peer.addr4().String() + "]/state/session-state"
	waitFor(t, "the IPv4 session down in the tree", func() error {
		if v, _ := pub.get(n4); v == "ESTABLISHED" || v == "" {
			return fmt.Errorf("%s = %q", n4, v)
		}
		return nil
	})

	host, _ := os.Hostname()
	pub.waitLeaf(t, "system/state/hostname", host, false)
	mem := fmt.Sprintf("system/processes/process[pid=%d]/state/memory-usage", os.Getpid())
	waitFor(t, "switchd's memory usage", func() error {
		if v, ok := pub.get(mem); !ok || v == "0" {
			return fmt.Errorf("%s = %q", mem, v)
		}
		return nil
	})
}
