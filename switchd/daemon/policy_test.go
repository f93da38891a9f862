package daemon

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchd/switchd/host"
	"github.com/switchd/switchd/policy"
	"github.com/switchd/switchd/switchd/daemon/apiclient"
)

// Policy wiring against fakes (testPolicy, testEndpoints): the policy
// engine's calls are in w.pe.rec, the loop's turn ends in w.rec.

func endpointEvent(typ host.EndpointEventType, id, iface, v4, v6 string, labels map[string]string) host.EndpointEvent {
	e := host.Endpoint{ID: id, HostIface: iface, Labels: labels}
	if v4 != "" {
		e.IPv4 = addr(v4)
	}
	if v6 != "" {
		e.IPv6 = addr(v6)
	}
	return host.EndpointEvent{Type: typ, Endpoint: e}
}

// TestWiringEndpointsToPolicy: host's endpoint events reach the engine as
// endpoints (host-side interface, addresses, labels): added and updated
// ones upserted, a removed one deleted, and the turn applies policy
// before the FIB.
func TestWiringEndpointsToPolicy(t *testing.T) {
	w := startWired(t, testConfig{neighbors: []string{"10.0.1.1"}}, nil)
	pm, m := w.pe.rec.mark(), w.rec.mark()
	w.eps.publish(
		endpointEvent(host.EndpointAdded, "c1/eth0", "swd1a2b3c", "10.1.0.2", "fd00:1::2", map[string]string{"role": "db"}),
		endpointEvent(host.EndpointAdded, "c2/eth0", "swd4d5e6f", "10.1.0.3", "", map[string]string{"role": "web", "tier": "1"}))
	w.rec.waitTurns(t, m, 1)
	want := []string{
		"policy.UpsertEndpoint c1/eth0 swd1a2b3c [10.1.0.2 fd00:1::2] map[role:db]",
		"policy.UpsertEndpoint c2/eth0 swd4d5e6f [10.1.0.3] map[role:web tier:1]",
		"policy.Apply",
	}
	if calls := w.pe.rec.since(pm); !slices.Equal(calls, want) {
		t.Errorf("two endpoints added: policy calls %q, want %q", calls, want)
	}

	// A label change is an update: the endpoint is upserted whole.
	pm, m = w.pe.rec.mark(), w.rec.mark()
	w.eps.publish(endpointEvent(host.EndpointUpdated, "c2/eth0", "swd4d5e6f", "10.1.0.3", "", map[string]string{"role": "db"}))
	w.rec.waitTurns(t, m, 1)
	want = []string{"policy.UpsertEndpoint c2/eth0 swd4d5e6f [10.1.0.3] map[role:db]", "policy.Apply"}
	if calls := w.pe.rec.since(pm); !slices.Equal(calls, want) {
		t.Errorf("c2's labels changed: policy calls %q, want %q", calls, want)
	}

	pm, m = w.pe.rec.mark(), w.rec.mark()
	w.eps.publish(endpointEvent(host.EndpointRemoved, "c1/eth0", "swd1a2b3c", "10.1.0.2", "fd00:1::2", map[string]string{"role": "db"}))
	if calls := w.rec.waitTurns(t, m, 1); !slices.Equal(calls, []string{"fib.Apply"}) {
		t.Errorf("c1 removed: FIB calls %q, want the turn's Apply only", calls)
	}
	want = []string{"policy.DeleteEndpoint c1/eth0", "policy.Apply"}
	if calls := w.pe.rec.since(pm); !slices.Equal(calls, want) {
		t.Errorf("c1 removed: policy calls %q, want %q", calls, want)
	}

	// A turn with nothing for policy applies only the FIB.
	pm, m = w.pe.rec.mark(), w.rec.mark()
	w.mon.publish(false)
	w.rec.waitTurns(t, m, 1)
	if calls := w.pe.rec.since(pm); len(calls) != 0 {
		t.Errorf("a kernel route turn: policy calls %q, want none", calls)
	}
}

// TestWiringPolicyStart: start gives the engine the config's policy, the
// failsafe config (the BGP neighbors, the extra ports) and the ACLs, and
// every endpoint host already has, before the first policy Apply adopts
// the table.
func TestWiringPolicyStart(t *testing.T) {
	w := newWired(t, testConfig{neighbors: []string{"10.0.1.3", "10.0.1.1"}, dbPort: 5432, failsafeTCP: []int{9100}},
		func(w *wired) {
			w.eps.publish(endpointEvent(host.EndpointAdded, "vm:vm1", "tap-vm1", "10.1.0.9", "", map[string]string{"role": "web"}))
		})
	want := []string{
		"policy.UpsertEndpoint vm:vm1 tap-vm1 [10.1.0.9] map[role:web]",
		`policy.SetIntent default allow [db(role == "db"; 10 allow proto 6 ports [5432] from role == "web")]`,
		"policy.SetFailsafe neighbors [10.0.1.1 10.0.1.3] tcp [9100] udp [] gnmi 0",
		"policy.SetACL 0 sets",
		"policy.QueueResync",
		"policy.Apply",
	}
	if calls := w.pe.rec.since(0); !slices.Equal(calls, want) {
		t.Errorf("start: policy calls\n  %s\nwant\n  %s", strings.Join(calls, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestWiringPolicyReload: a reload hands the engine only what changed: a
// changed policy is one SetIntent with the new intent, changed neighbors
// or extra ports one SetFailsafe; an unchanged config, or one that does
// not load, calls nothing.
func TestWiringPolicyReload(t *testing.T) {
	v1 := testConfig{neighbors: []string{"10.0.1.1"}, dbPort: 5432}
	w := startWired(t, v1, nil)

	reload := func(c testConfig) []string {
		t.Helper()
		pm := w.pe.rec.mark()
		w.reload(t, c.json())
		return w.pe.rec.since(pm)
	}
	if calls := reload(v1); len(calls) != 0 {
		t.Errorf("reload of the same config: policy calls %q, want none", calls)
	}

	v2 := v1
	v2.dbPort = 5433
	want := []string{`policy.SetIntent default allow [db(role == "db"; 10 allow proto 6 ports [5433] from role == "web")]`, "policy.Apply"}
	if calls := reload(v2); !slices.Equal(calls, want) {
		t.Errorf("reload with the db port changed: policy calls %q, want %q", calls, want)
	}

	v3 := v2
	v3.neighbors = []string{"10.0.1.1", "10.0.1.5"}
	want = []string{"policy.SetFailsafe neighbors [10.0.1.1 10.0.1.5] tcp [] udp [] gnmi 0", "policy.Apply"}
	if calls := reload(v3); !slices.Equal(calls, want) {
		t.Errorf("reload with a neighbor added: policy calls %q, want %q", calls, want)
	}
	v4 := v3
	v4.failsafeTCP = []int{9100, 9101}
	want = []string{"policy.SetFailsafe neighbors [10.0.1.1 10.0.1.5] tcp [9100 9101] udp [] gnmi 0", "policy.Apply"}
	if calls := reload(v4); !slices.Equal(calls, want) {
		t.Errorf("reload with extra failsafe ports: policy calls %q, want %q", calls, want)
	}

	// The policy removed: the engine is told (an empty intent).
	v5 := v4
	v5.dbPort = 0
	want = []string{"policy.SetIntent default allow []", "policy.Apply"}
	if calls := reload(v5); !slices.Equal(calls, want) {
		t.Errorf("reload without the policy: policy calls %q, want %q", calls, want)
	}

	pm := w.pe.rec.mark()
	w.reload(t, []byte(`{"switchd:switchd": {"workload-policy": {"policies": {"policy": [{"name": "x", "config": {"name": "x", "selector": "role =="}}]}}}}`))
	if calls := w.pe.rec.since(pm); len(calls) != 0 {
		t.Errorf("reload of a config with a bad selector: policy calls %q, want none", calls)
	}
}

// TestWiringPolicyApplyFails: a failing policy Apply does not hold up the
// FIB (its Apply runs in the same turn, learned routes keep reaching it)
// and is retried after its back-off without any other event; the status
// shows the error, then the engine's counts once it succeeds.
func TestWiringPolicyApplyFails(t *testing.T) {
	w := startWired(t, testConfig{neighbors: []string{"10.0.1.1"}}, nil)
	sock := filepath.Join(t.TempDir(), "api.sock")
	api, err := w.d.serveAPI(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()

	w.pe.failNext(2)
	pm, m := w.pe.rec.mark(), w.rec.mark()
	w.eps.publish(endpointEvent(host.EndpointAdded, "c1/eth0", "swd1", "10.1.0.2", "", map[string]string{"role": "db"}))
	if calls := w.rec.waitTurns(t, m, 1); !slices.Equal(calls, []string{"fib.Apply"}) {
		t.Errorf("turn with a failing policy Apply: FIB calls %q, want its Apply", calls)
	}
	if calls := w.pe.rec.since(pm); !slices.Contains(calls, "policy.Apply failed") {
		t.Fatalf("policy calls %q, want a failed Apply", calls)
	}
	st, err := apiclient.GetStatus(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	if st.Policy.InSync || !strings.Contains(st.Policy.LastError, "operation not permitted") {
		t.Errorf("status after a failed policy Apply: %+v, want not in sync with the error", st.Policy)
	}

	// Routing goes on meanwhile.
	m = w.rec.mark()
	w.sp.learn(1, nil, route("10.9.0.0/24", "10.0.1.1"))
	w.rec.waitTurnAfter(t, m, "fib.SetRoute 10.9.0.0/24")

	// Retried on its own: the second attempt fails too, the third holds.
	w.pe.rec.mu.Lock()
	w.pe.status = policy.Status{Counts: policy.Counts{Chains: 7, Rules: 23, Sets: 9, Elements: 41}, Endpoints: 1, Profiles: 2,
		FailsafeKept: []string{"workload policy x would cut tcp/22 (ssh)"}}
	w.pe.rec.mu.Unlock()
	start := time.Now()
	calls := w.pe.rec.waitFor(t, pm, "policy applied after retries", func(c []string) bool { return slices.Contains(c, "policy.Apply") })
	if n := count(calls, "policy.Apply failed"); n != 2 {
		t.Errorf("policy calls %q: want 2 failed Applies before the good one", calls)
	}
	if waited := time.Since(start); waited > 4*time.Second {
		t.Errorf("retries took %v, want the back-off's 0.5 s + 1 s", waited)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err = apiclient.GetStatus(context.Background(), sock)
		if err != nil {
			t.Fatal(err)
		}
		if st.Policy.InSync || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	want := apiclient.PolicyStatus{InSync: true, Chains: 7, Rules: 23, Sets: 9, Elements: 41, Endpoints: 1, Profiles: 2,
		FailsafeKept: []string{"workload policy x would cut tcp/22 (ssh)"}, LastApply: st.Policy.LastApply}
	if p := st.Policy; p.LastApply.IsZero() || !slices.Equal(p.FailsafeKept, want.FailsafeKept) ||
		p.InSync != want.InSync || p.Chains != 7 || p.Rules != 23 || p.Sets != 9 || p.Elements != 41 ||
		p.Endpoints != 1 || p.Profiles != 2 || p.LastError != "" {
		t.Errorf("status after the retry: %+v, want %+v", p, want)
	}

	// Once applied, turns without policy changes do not apply it again.
	pm, m = w.pe.rec.mark(), w.rec.mark()
	w.mon.publish(false)
	w.rec.waitTurns(t, m, 1)
	time.Sleep(policyRetryMin + 100*time.Millisecond)
	if calls := w.pe.rec.since(pm); len(calls) != 0 {
		t.Errorf("after a good Apply: policy calls %q, want none", calls)
	}
}

// TestWiringPolicyResync: the resync ticker asks policy for a resync
// too, which the turn applies.
func TestWiringPolicyResync(t *testing.T) {
	w := newWired(t, testConfig{neighbors: []string{"10.0.1.1"}}, nil)
	w.d.opts.ResyncInterval = 50 * time.Millisecond
	pm := w.pe.rec.mark()
	w.run(t)
	calls := w.pe.rec.waitFor(t, pm, "two resyncs applied", func(c []string) bool { return count(c, "policy.Apply") >= 2 })
	for i := 0; i+1 < len(calls); i += 2 {
		if calls[i] != "policy.QueueResync" || calls[i+1] != "policy.Apply" {
			t.Fatalf("policy calls %q, want QueueResync then Apply on each tick", calls)
		}
	}
}

// TestWiringACLCounters: while ACLs are configured, the counters ticker
// reads the rules' counters into the status as ACL entries (summed over
// directions), with no FIB Apply; without ACLs nothing is read.
func TestWiringACLCounters(t *testing.T) {
	w := newWired(t, testConfig{neighbors: []string{"10.0.1.1"}, aclDrop: "host1-in"}, nil)
	if calls := w.pe.rec.since(0); !slices.Contains(calls, "policy.SetACL 1 sets") {
		t.Fatalf("start with an ACL: policy calls %q, want SetACL with 1 set", calls)
	}
	key := policy.ACLSetKey{Name: "host1-in", Type: policy.ACLIPv4}
	w.pe.counters = []policy.RuleCounter{
		{Chain: "acl-in-host1-in", ID: policy.ACLRuleID{Set: key, Seq: 10, Ingress: true}.String(), Packets: 3, Bytes: 180},
		{Chain: "acl-out-host1-in", ID: policy.ACLRuleID{Set: key, Seq: 10}.String(), Packets: 2, Bytes: 120},
		{Chain: "failsafe-in", ID: "tcp-local", Packets: 100, Bytes: 6000},
	}
	w.d.opts.CountersInterval = 20 * time.Millisecond
	m := w.rec.mark()
	w.run(t)
	want := []ACLEntryStatus{{Set: "host1-in", Type: "ACL_IPV4", Seq: 10, MatchedPackets: 5, MatchedOctets: 300}}
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Equal(w.d.Status().Policy.ACLEntries, want) {
		if time.Now().After(deadline) {
			t.Fatalf("status ACL entries %+v, want %+v", w.d.Status().Policy.ACLEntries, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if calls := w.rec.since(m); slices.Contains(calls, "fib.Apply") {
		t.Errorf("reading counters applied the FIB: calls %q", calls)
	}

	// The ACL removed: the entries leave the status, nothing is read.
	w.reload(t, testConfig{neighbors: []string{"10.0.1.1"}}.json())
	deadline = time.Now().Add(5 * time.Second)
	for len(w.d.Status().Policy.ACLEntries) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("status ACL entries %+v after the ACL was removed", w.d.Status().Policy.ACLEntries)
		}
		time.Sleep(5 * time.Millisecond)
	}
	pm := w.pe.rec.mark()
	time.Sleep(100 * time.Millisecond)
	if calls := w.pe.rec.since(pm); slices.Contains(calls, "policy.Counters") {
		t.Errorf("without ACLs: policy calls %q, want no counters read", calls)
	}
}
