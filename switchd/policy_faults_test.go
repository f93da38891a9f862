package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
	"github.com/switchd/switchd/switchd/daemon/apiclient"
)

// Issue 9's fault acceptance through the real switchd binary in the
// simulator: the failsafe under deny-all policy and ACLs, restarts while
// flows are filtered, and drift repair beside a foreign table.

// ourTable is switchd's nftables table, as an operator names it.
var ourTable = []string{"inet", "switchd"}

// gnmiPort is the port the failsafe keeps open with no gNMI configured
// (policy.DefaultGNMIPort, IANA's gNMI port).
const gnmiPort = 9339

// daemonResync is how often a daemon the simulator starts looks for
// drift: daemon.Options.ResyncInterval's default, which switchd run does
// not change.
const daemonResync = 30 * time.Second

// policyFabric brings the policy demo topology up with fast BGP timers
// and its labelled workloads (host2: db, web; host3: other), converged.
func policyFabric(t *testing.T) (*sim.Fabric, map[string]sim.Workload) {
	t.Helper()
	topo, err := sim.LoadTopology("../sim/topologies/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	topo.Timers = fastTimers
	f := simtest.Start(t, topo)
	simtest.WaitConverged(t, f)
	ws := map[string]sim.Workload{}
	for name, at := range map[string][2]string{"db": {"host2", "w1"}, "web": {"host2", "w2"}, "other": {"host3", "w1"}} {
		w, err := f.AddWorkload(context.Background(), at[0], at[1])
		if err != nil {
			t.Fatal(err)
		}
		ws[name] = *w
	}
	return f, ws
}

// reloadLine is what a daemon logs when it has taken a new config; its
// time field is when.
var reloadLine = regexp.MustCompile(`(?m)^time=(\S+) level=INFO msg="config reloaded"`)

// reloadTimes lists when node's daemon logged a reload, in order.
func reloadTimes(t testing.TB, f *sim.Fabric, node string) []time.Time {
	t.Helper()
	b, err := os.ReadFile(f.LogPath(node))
	if err != nil {
		t.Fatalf("read %s log: %v", node, err)
	}
	var out []time.Time
	for _, m := range reloadLine.FindAllSubmatch(b, -1) {
		at, err := time.Parse(time.RFC3339Nano, string(m[1]))
		if err != nil {
			t.Fatalf("%s log: reload time %q: %v", node, m[1], err)
		}
		out = append(out, at)
	}
	return out
}

// editConfig changes a node's config file with edit, reloads the node and
// returns when its daemon took the new config. The daemon applies policy
// after that, in the same turn of its loop: waitPolicyApplied(since it)
// waits for that.
func editConfig(t testing.TB, f *sim.Fabric, node string, edit func(doc map[string]any)) time.Time {
	t.Helper()
	before := len(reloadTimes(t, f, node))
	b, err := os.ReadFile(f.ConfigPath(node))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc)
	nb, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeConfig(t, f.ConfigPath(node), nb)
	if err := f.Reload(context.Background(), node); err != nil {
		t.Fatal(err)
	}
	var at time.Time
	waitFor(t, 10*time.Second, node+" reloads its config (see its log if it refused it)", func() error {
		ts := reloadTimes(t, f, node)
		if len(ts) <= before {
			return fmt.Errorf("%d reloads logged, %d before", len(ts), before)
		}
		at = ts[len(ts)-1]
		return nil
	})
	return at
}

// nodeStatus asks one node's switchd for its status.
func nodeStatus(f *sim.Fabric, node string) (*sim.DaemonStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return sim.SwitchdStatus(ctx, f.SocketPath(node))
}

// waitPolicyApplied waits until node's daemon says an Apply no earlier
// than since left its table in sync with the config and endpoints it has
// (endpoints of them at least), with no error. A status from before
// since may still describe the old config.
func waitPolicyApplied(t *testing.T, f *sim.Fabric, node string, since time.Time, endpoints int) *apiclient.PolicyStatus {
	t.Helper()
	var p apiclient.PolicyStatus
	waitFor(t, 30*time.Second, node+"'s policy applied", func() error {
		st, err := nodeStatus(f, node)
		if err != nil {
			return err
		}
		p = st.Policy
		if !p.InSync || p.LastError != "" || p.Endpoints < endpoints || p.LastApply.Before(since) {
			return fmt.Errorf("in sync %v, %d endpoints (want %d), last apply %v (want since %v), last error %q",
				p.InSync, p.Endpoints, endpoints, p.LastApply, since, p.LastError)
		}
		return nil
	})
	return &p
}

// sessionsWith returns node's BGP neighbors on its link to peer (IPv4 and
// IPv6), as its daemon reports them.
func sessionsWith(t *testing.T, f *sim.Fabric, node, peer string) []apiclient.NeighborStatus {
	t.Helper()
	st, err := nodeStatus(f, node)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{peerAddr(t, f, node, peer, 4).String(): true, peerAddr(t, f, node, peer, 6).String(): true}
	var out []apiclient.NeighborStatus
	for _, nb := range st.BGP.Neighbors {
		if want[nb.Address] {
			out = append(out, nb)
		}
	}
	if len(out) != 2 {
		t.Fatalf("%s: %d BGP neighbors on the link to %s, want 2: %+v", node, len(out), peer, st.BGP.Neighbors)
	}
	return out
}

// sessionsStayUp checks that node's sessions with peer are established
// now and never went down since before (no new transition to Established).
func sessionsStayUp(t *testing.T, f *sim.Fabric, node, peer string, before []apiclient.NeighborStatus) {
	t.Helper()
	now := sessionsWith(t, f, node, peer)
	for i, nb := range now {
		if nb.State != "established" && nb.State != "ESTABLISHED" && nb.State != "Established" {
			t.Errorf("%s: session with %s (%s) is %q", node, peer, nb.Address, nb.State)
		}
		if nb.EstablishedTransitions != before[i].EstablishedTransitions {
			t.Errorf("%s: session with %s (%s) was re-established (%d times, %d before)", node, peer, nb.Address, nb.EstablishedTransitions, before[i].EstablishedTransitions)
		}
	}
}

// failsafeReachable checks that peer's SSH and gNMI ports, where
// listeners run, take TCP connections from node over their link (IPv4
// and IPv6). A few tries each: a first SYN can wait behind neighbour
// discovery on a loaded machine.
func failsafeReachable(t *testing.T, f *sim.Fabric, node, peer string) {
	t.Helper()
	for _, port := range []int{22, gnmiPort} {
		for _, fam := range []int{4, 6} {
			waitFor(t, 6*time.Second, fmt.Sprintf("%s reaches %s's tcp/%d over IPv%d", node, peer, port, fam), func() error {
				return f.ConnectPeer(node, peer, fam, port, 2*time.Second)
			})
		}
	}
}

// listenFailsafe listens on SSH, gNMI and extra in node's namespace until
// the test ends.
func listenFailsafe(t *testing.T, f *sim.Fabric, node string, extra int) {
	t.Helper()
	for _, port := range []int{22, gnmiPort, extra} {
		l, err := f.ListenNode(node, port)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
	}
}

// denyAllACL is an OpenConfig ACL tree with one set per family, "deny-all",
// whose one entry drops everything (an ACL set has no implicit deny), bound
// to iface for ingress and egress.
func denyAllACL(iface string) map[string]any {
	type obj = map[string]any
	var sets, binds []any
	for _, typ := range []string{"openconfig-acl:ACL_IPV4", "openconfig-acl:ACL_IPV6"} {
		sets = append(sets, obj{
			"name": "deny-all", "type": typ,
			"config": obj{"name": "deny-all", "type": typ},
			"acl-entries": obj{"acl-entry": []any{obj{
				"sequence-id": 10,
				"config":      obj{"sequence-id": 10, "description": "deny all"},
				"actions":     obj{"config": obj{"forwarding-action": "openconfig-acl:DROP"}},
			}}},
		})
		binds = append(binds, obj{"set-name": "deny-all", "type": typ, "config": obj{"set-name": "deny-all", "type": typ}})
	}
	return obj{
		"acl-sets": obj{"acl-set": sets},
		"interfaces": obj{"interface": []any{obj{
			"id": iface, "config": obj{"id": iface},
			"ingress-acl-sets": obj{"ingress-acl-set": binds},
			"egress-acl-sets":  obj{"egress-acl-set": binds},
		}}},
	}
}

// aclMatched is what the status says the deny-all entry of type typ
// matched.
func aclMatched(f *sim.Fabric, node, typ string) (uint64, error) {
	st, err := nodeStatus(f, node)
	if err != nil {
		return 0, err
	}
	for _, e := range st.Policy.ACLEntries {
		if e.Set == "deny-all" && e.Type == typ && e.Seq == 10 {
			return e.MatchedPackets, nil
		}
	}
	return 0, fmt.Errorf("%s: no counters for deny-all %s entry 10 in %+v", node, typ, st.Policy.ACLEntries)
}

// TestPolicyFailsafeUnderDenyAllPrivileged: BGP sessions, SSH and the
// gNMI port stay reachable under a deny-all OpenConfig ACL bound (ingress
// and egress, IPv4 and IPv6) to the leaf's interface facing a host, while
// a ping forwarded through that interface is dropped and counted by the
// DROP entry, and passes again once the ACL is gone; likewise under a
// deny-all workload policy on a host, which does cut its workloads. A
// listener on a port outside the failsafe shows the ACL reaches the
// leaf's own input, so what stays open is the failsafe's doing.
func TestPolicyFailsafeUnderDenyAllPrivileged(t *testing.T) {
	ns.Privileged(t)
	f, ws := policyFabric(t)
	ctx := context.Background()
	hold := time.Duration(fastTimers.Hold) * time.Second
	const other = 2000 // a port no failsafe keeps

	t.Run("acl", func(t *testing.T) {
		listenFailsafe(t, f, "leaf1", other)
		failsafeReachable(t, f, "host1", "leaf1")
		waitFor(t, 6*time.Second, "host1 reaches leaf1's tcp/2000 before the ACL", func() error {
			return f.ConnectPeer("host1", "leaf1", 4, other, 2*time.Second)
		})
		for _, fam := range []int{4, 6} {
			if err := f.Ping(ctx, "host1", "host3", fam); err != nil {
				t.Fatalf("before the ACL: %v", err)
			}
		}
		leafSide, hostSide := sessionsWith(t, f, "leaf1", "host1"), sessionsWith(t, f, "host1", "leaf1")

		at := editConfig(t, f, "leaf1", func(doc map[string]any) { doc["openconfig-acl:acl"] = denyAllACL("host1") })
		waitPolicyApplied(t, f, "leaf1", at, 0)
		bound := time.Now()
		// The entry's drops are what the checks below send through it.
		for _, fam := range []int{4, 6} {
			if err := f.Ping(ctx, "host1", "host3", fam); err == nil {
				t.Errorf("IPv%d ping from host1 through leaf1's deny-all interface got an answer", fam)
			}
		}
		if err := f.ConnectPeer("host1", "leaf1", 4, other, time.Second); err == nil {
			t.Errorf("host1 reached leaf1's tcp/%d through the deny-all ACL", other)
		}
		failsafeReachable(t, f, "host1", "leaf1")
		// Counters are read every few seconds: wait for the next read.
		for _, typ := range []string{"ACL_IPV4", "ACL_IPV6"} {
			waitFor(t, 30*time.Second, "deny-all "+typ+" entry counts the dropped pings", func() error {
				n, err := aclMatched(f, "leaf1", typ)
				if err != nil {
					return err
				}
				if n < 3 { // f.Ping sends 3
					return fmt.Errorf("%d packets matched", n)
				}
				return nil
			})
		}
		// Well past a hold time with everything but the failsafe dropped.
		time.Sleep(time.Until(bound.Add(2 * hold)))
		sessionsStayUp(t, f, "leaf1", "host1", leafSide)
		sessionsStayUp(t, f, "host1", "leaf1", hostSide)
		if t.Failed() {
			t.FailNow()
		}

		editConfig(t, f, "leaf1", func(doc map[string]any) { delete(doc, "openconfig-acl:acl") })
		for _, fam := range []int{4, 6} {
			waitFor(t, 10*time.Second, fmt.Sprintf("IPv%d ping through leaf1's host1 interface after the ACL is gone", fam), func() error {
				return f.Ping(ctx, "host1", "host3", fam)
			})
		}
	})

	t.Run("workload-policy", func(t *testing.T) {
		listenFailsafe(t, f, "host2", other)
		waitFor(t, 10*time.Second, "other pings web before deny-all", func() error {
			return f.PingWorkload(ctx, ws["other"], ws["web"], 4)
		})
		leafSide, hostSide := sessionsWith(t, f, "leaf1", "host2"), sessionsWith(t, f, "host2", "leaf1")
		at := editConfig(t, f, "host2", func(doc map[string]any) {
			sd := doc["switchd:switchd"].(map[string]any)
			sd["workload-policy"] = map[string]any{
				"config": map[string]any{"default-action": "DENY"},
				"policies": map[string]any{"policy": []any{map[string]any{
					"name": "deny-all",
					"config": map[string]any{"name": "deny-all", "order": 1, "selector": "all()",
						"direction": []any{"INGRESS", "EGRESS"}},
				}}},
			}
		})
		waitPolicyApplied(t, f, "host2", at, 2)
		bound := time.Now()
		for _, w := range []string{"web", "db"} {
			if err := f.PingWorkload(ctx, ws["other"], ws[w], 4); err == nil {
				t.Errorf("other pinged %s under deny-all", w)
			}
		}
		failsafeReachable(t, f, "leaf1", "host2")
		time.Sleep(time.Until(bound.Add(2 * hold)))
		sessionsStayUp(t, f, "leaf1", "host2", leafSide)
		sessionsStayUp(t, f, "host2", "leaf1", hostSide)
	})
}

// workloadPings is a ping from inside a workload to another at a fixed
// interval (the pings of restart_test.go, in a workload's namespace).
func workloadPings(t *testing.T, from, to sim.Workload, fam int, every time.Duration) *pings {
	t.Helper()
	dst := to.IPv4
	if fam == 6 {
		dst = to.IPv6
	}
	h, err := ns.Open(from.Netns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	cmd := h.Command(context.Background(), "ping", fmt.Sprintf("-%d", fam), "-n", "-q", "-i", fmt.Sprintf("%.3f", every.Seconds()), "-W", "1", dst.String())
	p := &pings{cmd: cmd, out: &lockedBuffer{}}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return p
}

// tcpFlow connects from one workload to another's PolicyPort every 10 ms
// until the test ends or the flow is stopped. An attempt gets 900 ms: a
// dropped SYN (retransmitted after 1 s) fails it.
func tcpFlow(t *testing.T, f *sim.Fabric, from, to sim.Workload, fam int) *sim.TCPFlow {
	t.Helper()
	fl := f.StartTCPFlow(from, to, fam, sim.PolicyPort, 10*time.Millisecond, 900*time.Millisecond)
	t.Cleanup(func() { fl.Stop() })
	return fl
}

// restartPolicy is host2's workload policy for the restart test: db
// takes ping (and tcp/5432) from web and nothing from anyone else.
var restartPolicy = map[string]any{
	"config": map[string]any{"default-action": "ALLOW"},
	"policies": map[string]any{"policy": []any{map[string]any{
		"name":   "db",
		"config": map[string]any{"name": "db", "order": 100, "selector": `role == "db"`},
		"ingress-rules": map[string]any{"ingress-rule": []any{
			ingressRule(10, "ICMP", nil), ingressRule(11, "ICMPV6", nil), ingressRule(20, "TCP", []any{5432}),
		}},
	}}},
}

func ingressRule(seq int, proto string, ports []any) map[string]any {
	cfg := map[string]any{"sequence-id": seq, "action": "ALLOW", "protocol": proto, "peer-selector": `role == "web"`}
	if ports != nil {
		cfg["destination-port"] = ports
	}
	return map[string]any{"sequence-id": seq, "config": cfg}
}

// TestPolicyRestartKeepsFilteringPrivileged kills host2's switchd (SIGTERM,
// then SIGKILL), leaves it down a few seconds and starts it again, while
// web pings db beside it every 10 ms (allowed) and other, on another
// host, pings db every 10 ms (denied), over IPv4 and IPv6, and each also
// opens a new TCP connection to db every 10 ms. A ping's echoes after the
// first ride one conntrack entry, so the new connections are what the
// rules and sets judge throughout. Not one denied ping may be answered
// or connection made, not one allowed ping or connection lost, and the
// restarted daemon adopts the table (same handle) instead of creating it
// anew: a table deleted or flushed, or filled with empty sets before the
// endpoints are back, would let a denied ping through or drop an allowed
// one.
func TestPolicyRestartKeepsFilteringPrivileged(t *testing.T) {
	ns.Privileged(t)
	f, ws := policyFabric(t)
	ctx := context.Background()
	at := editConfig(t, f, "host2", func(doc map[string]any) {
		doc["switchd:switchd"].(map[string]any)["workload-policy"] = restartPolicy
	})
	waitPolicyApplied(t, f, "host2", at, 2)
	l, err := f.ListenWorkload(ws["db"], sim.PolicyPort)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, fam := range []int{4, 6} {
		waitFor(t, 10*time.Second, fmt.Sprintf("web reaches db:%d over IPv%d", sim.PolicyPort, fam), func() error {
			return f.ConnectWorkload(ws["web"], ws["db"], fam, sim.PolicyPort, 2*time.Second)
		})
		waitFor(t, 10*time.Second, fmt.Sprintf("web pings db over IPv%d", fam), func() error {
			return f.PingWorkload(ctx, ws["web"], ws["db"], fam)
		})
		waitFor(t, 10*time.Second, fmt.Sprintf("other pings web over IPv%d (routes are there)", fam), func() error {
			return f.PingWorkload(ctx, ws["other"], ws["web"], fam)
		})
		if err := f.PingWorkload(ctx, ws["other"], ws["db"], fam); err == nil {
			t.Fatalf("other pinged db over IPv%d before any restart; the policy allows only web", fam)
		}
		if err := f.ConnectWorkload(ws["other"], ws["db"], fam, sim.PolicyPort, time.Second); err == nil {
			t.Fatalf("other reached db:%d over IPv%d before any restart; the policy allows only web", sim.PolicyPort, fam)
		}
	}

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			handle, err := f.NftTableHandle(ctx, "host2", ourTable[0], ourTable[1])
			if err != nil {
				t.Fatal(err)
			}
			const every = 10 * time.Millisecond
			var allowed, denied []*pings
			var tcpAllowed, tcpDenied []*sim.TCPFlow
			for _, fam := range []int{4, 6} {
				allowed = append(allowed, workloadPings(t, ws["web"], ws["db"], fam, every))
				denied = append(denied, workloadPings(t, ws["other"], ws["db"], fam, every))
				tcpAllowed = append(tcpAllowed, tcpFlow(t, f, ws["web"], ws["db"], fam))
				tcpDenied = append(tcpDenied, tcpFlow(t, f, ws["other"], ws["db"], fam))
			}
			time.Sleep(time.Second)

			if err := f.Kill("host2", sig); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "host2's switchd exits", func() error {
				if f.Running("host2") {
					return fmt.Errorf("still running")
				}
				return nil
			})
			time.Sleep(3 * time.Second) // filtering with no switchd on host2
			started := time.Now()
			if err := f.Start("host2"); err != nil {
				t.Fatal(err)
			}
			simWaitConverged(t, f)
			waitPolicyApplied(t, f, "host2", started, 2)
			time.Sleep(2 * time.Second) // past the first applies of the new run

			for i, fam := range []int{4, 6} {
				sent, recv := allowed[i].stop(t)
				t.Logf("%v, IPv%d web to db (allowed): %d sent, %d received", sig, fam, sent, recv)
				if sent < 300 {
					t.Fatalf("only %d pings sent; the test did not cover the restart", sent)
				}
				// One reply may still be in flight when ping is stopped.
				if lost := sent - recv; lost > 1 {
					t.Errorf("IPv%d: %d of %d allowed pings lost across host2's restart (%v)", fam, lost, sent, sig)
				}
				sent, recv = denied[i].stop(t)
				t.Logf("%v, IPv%d other to db (denied): %d sent, %d received", sig, fam, sent, recv)
				if recv != 0 {
					t.Errorf("IPv%d: %d of %d denied pings answered across host2's restart (%v)", fam, recv, sent, sig)
				}
				tries, ok := tcpAllowed[i].Stop()
				t.Logf("%v, IPv%d web to db:%d (allowed): %d connections tried, %d made", sig, fam, sim.PolicyPort, tries, ok)
				if tries < 300 {
					t.Fatalf("only %d connections tried; the test did not cover the restart", tries)
				}
				if ok != tries {
					t.Errorf("IPv%d: %d of %d allowed connections failed across host2's restart (%v)", fam, tries-ok, tries, sig)
				}
				tries, ok = tcpDenied[i].Stop()
				t.Logf("%v, IPv%d other to db:%d (denied): %d connections tried, %d made", sig, fam, sim.PolicyPort, tries, ok)
				if ok != 0 {
					t.Errorf("IPv%d: %d of %d denied connections made across host2's restart (%v)", fam, ok, tries, sig)
				}
			}
			after, err := f.NftTableHandle(ctx, "host2", ourTable[0], ourTable[1])
			if err != nil {
				t.Fatal(err)
			}
			if after != handle {
				t.Errorf("table inet switchd has handle %d after the restart, %d before: recreated, not adopted", after, handle)
			}
		})
	}
}

// foreignTable is another program's table at the hooks and priority of
// switchd's base chains, with counters that the traffic moves.
const foreignTable = `table inet foreign {
	set peers { type ipv4_addr; elements = { 192.0.2.1, 192.0.2.2 } }
	chain forward { type filter hook forward priority filter; policy accept; counter; }
	chain input { type filter hook input priority filter; policy accept; ip saddr @peers counter; counter; }
}`

// ourRuleAndElement picks, in a listing of switchd's table, a rule of a
// chain that is not a base chain and an element of a set (not a map):
// what someone might delete by hand.
func ourRuleAndElement(objs []map[string]any) (rule, set map[string]any, elem any) {
	for _, o := range objs {
		if r, ok := o["rule"].(map[string]any); ok && rule == nil {
			if c, _ := r["chain"].(string); c != "prerouting" && c != "input" && c != "forward" && c != "output" {
				rule = r
			}
		}
		if s, ok := o["set"].(map[string]any); ok && set == nil {
			if es, ok := s["elem"].([]any); ok && len(es) > 0 {
				set, elem = s, es[0]
			}
		}
	}
	return rule, set, elem
}

// TestPolicyDriftRepairedPrivileged deletes, with the nft command in
// host2's namespace, one rule and one set element of switchd's table
// while a foreign table hooks forward and input at the same priority:
// within the daemon's resync interval the table is as it was (every
// chain's rules in order, every set's elements; handles and counters
// aside), and the foreign table is exactly as it was, handles included.
func TestPolicyDriftRepairedPrivileged(t *testing.T) {
	ns.Privileged(t)
	f, _ := policyFabric(t)
	ctx := context.Background()
	waitPolicyApplied(t, f, "host2", time.Time{}, 2)
	if err := f.NftScript(ctx, "host2", false, foreignTable); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Exec(ctx, "host2", "nft", "delete", "table", "inet", "foreign") })
	listForeign := func() string {
		t.Helper()
		objs, err := f.NftObjects(ctx, "host2", "list", "table", "inet", "foreign")
		if err != nil {
			t.Fatal(err)
		}
		return sim.NftNormalize(objs, true)
	}
	listOurs := func() ([]map[string]any, string) {
		t.Helper()
		objs, err := f.NftObjects(ctx, "host2", append([]string{"list", "table"}, ourTable...)...)
		if err != nil {
			t.Fatal(err)
		}
		return objs, sim.NftNormalize(objs, false)
	}
	foreign := listForeign()
	objs, ours := listOurs()

	rule, set, elem := ourRuleAndElement(objs)
	if rule == nil || set == nil {
		t.Fatalf("switchd's table on host2 has no rule outside the base chains or no set element:\n%s", ours)
	}
	if _, err := f.Exec(ctx, "host2", "nft", "delete", "rule", "inet", "switchd", rule["chain"].(string),
		"handle", fmt.Sprint(rule["handle"])); err != nil {
		t.Fatal(err)
	}
	del, _ := json.Marshal(map[string]any{"nftables": []any{map[string]any{"delete": map[string]any{"element": map[string]any{
		"family": "inet", "table": "switchd", "name": set["name"], "elem": []any{elem},
	}}}}})
	if err := f.NftScript(ctx, "host2", true, string(del)); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	if _, now := listOurs(); now == ours {
		t.Fatal("deleting a rule and a set element changed nothing nft lists")
	}
	t.Logf("deleted rule %v of chain %s and element %v of set %s", rule["handle"], rule["chain"], elem, set["name"])

	// Drift is looked for every daemonResync: the next look repairs it.
	waitFor(t, daemonResync+10*time.Second, "switchd's table repaired", func() error {
		if _, now := listOurs(); now != ours {
			return fmt.Errorf("table still differs from before the deletes:\n%s", lineDiff(ours, now))
		}
		return nil
	})
	t.Logf("repaired %v after the deletes", time.Since(deleted).Round(100*time.Millisecond))
	waitPolicyApplied(t, f, "host2", time.Time{}, 2)
	if now := listForeign(); now != foreign {
		t.Errorf("the foreign table changed:\n%s", lineDiff(foreign, now))
	}
}

// lineDiff lists the lines only in was (-) and only in now (+).
func lineDiff(was, now string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	w, n := in(was), in(now)
	var out []string
	for _, l := range strings.Split(was, "\n") {
		if !n[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(now, "\n") {
		if !w[l] {
			out = append(out, "+ "+l)
		}
	}
	if len(out) == 0 {
		return "the same lines in another order:\n" + now
	}
	return strings.Join(out, "\n")
}
