package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/platform"
	"github.com/switchd/switchd/switchd/bgp"
	"github.com/switchd/switchd/switchd/config"
	"github.com/switchd/switchd/switchd/config/configtest"
	"github.com/switchd/switchd/switchd/daemon/apiclient"
)

// The daemon's wiring against fakes of its components (fakes_test.go): no
// root, no kernel, no GoBGP. Each test names the wiring it checks and
// fails if that wiring is broken.

// testConfig is a config file: BGP neighbors and static routes (prefix →
// gateway).
type testConfig struct {
	neighbors []string
	statics   map[string]string
	hash      string // ecmp-hash-policy, "" for the default
	// dbPort, if not 0, configures examples/policy.yaml's workload policy:
	// role == "db" takes tcp/dbPort from role == "web"; failsafeTCP are
	// extra failsafe ports.
	dbPort      int
	failsafeTCP []int
	// aclDrop, if set, configures an ACL_IPV4 set of that name whose
	// entry 10 drops TCP.
	aclDrop string
}

func (c testConfig) json() []byte {
	b := configtest.BGP{ASN: 65001, RouterID: "10.255.0.1"}
	for _, a := range c.neighbors {
		b.Neighbors = append(b.Neighbors, configtest.Neighbor{Address: a, PeerAS: 65000,
			Import: configtest.Accept, Export: configtest.Accept})
	}
	tree := b.Tree()
	if len(c.statics) > 0 {
		var list []map[string]any
		for p, gw := range c.statics {
			list = append(list, map[string]any{"prefix": p, "config": map[string]any{"prefix": p},
				"next-hops": map[string]any{"next-hop": []any{map[string]any{
					"index": "a", "config": map[string]any{"index": "a", "next-hop": gw}}}}})
		}
		ni := tree["openconfig-network-instance:network-instances"].(map[string]any)["network-instance"].([]map[string]any)[0]
		ps := ni["protocols"].(map[string]any)
		ps["protocol"] = append(ps["protocol"].([]map[string]any), map[string]any{
			"identifier": "openconfig-policy-types:STATIC", "name": "STATIC",
			"config":        map[string]any{"identifier": "openconfig-policy-types:STATIC", "name": "STATIC"},
			"static-routes": map[string]any{"static": list}})
	}
	sd := map[string]any{}
	if c.hash != "" {
		sd["config"] = map[string]any{"ecmp-hash-policy": c.hash}
	}
	if c.dbPort != 0 {
		rule := map[string]any{"sequence-id": 10, "config": map[string]any{"sequence-id": 10, "action": "ALLOW",
			"protocol": "TCP", "destination-port": []int{c.dbPort}, "peer-selector": `role == "web"`}}
		sd["workload-policy"] = map[string]any{
			"config": map[string]any{"default-action": "ALLOW"},
			"policies": map[string]any{"policy": []any{map[string]any{"name": "db",
				"config":        map[string]any{"name": "db", "order": 100, "selector": `role == "db"`},
				"ingress-rules": map[string]any{"ingress-rule": []any{rule}}}}}}
	}
	if len(c.failsafeTCP) > 0 {
		sd["failsafe"] = map[string]any{"config": map[string]any{"tcp-port": c.failsafeTCP}}
	}
	if len(sd) > 0 {
		tree["switchd:switchd"] = sd
	}
	if c.aclDrop != "" {
		typ := "openconfig-acl:ACL_IPV4"
		tree["openconfig-acl:acl"] = map[string]any{"acl-sets": map[string]any{"acl-set": []any{map[string]any{
			"name": c.aclDrop, "type": typ, "config": map[string]any{"name": c.aclDrop, "type": typ},
			"acl-entries": map[string]any{"acl-entry": []any{map[string]any{
				"sequence-id": 10, "config": map[string]any{"sequence-id": 10},
				"ipv4":    map[string]any{"config": map[string]any{"protocol": "openconfig-packet-match-types:IP_TCP"}},
				"actions": map[string]any{"config": map[string]any{"forwarding-action": "openconfig-acl:DROP"}}}}}}}}}
	}
	out, err := json.Marshal(tree)
	if err != nil {
		panic(err) // plain values only
	}
	return out
}

// wired is a Daemon on fakes, started and looping.
type wired struct {
	d     *Daemon
	rec   *recorder
	sp    *testSpeaker
	tb    *testTable
	mon   *testMonitor
	links *testLinks
	pe    *testPolicy
	eps   *testEndpoints
	cfg   string
	hup   chan os.Signal
	state StatePublisher // set by before: the state tree is on
	// ifaces, set by before, is the interface reconciler (none if nil).
	ifaces ifaceReconciler
}

// startWired runs a daemon on fakes with the config, its loop in a
// goroutine; before is called with the fakes before the daemon starts.
func startWired(t *testing.T, cfg testConfig, before func(w *wired)) *wired {
	t.Helper()
	w := newWired(t, cfg, before)
	w.run(t)
	return w
}

// run runs the daemon's loop until the test ends.
func (w *wired) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	m := w.rec.mark()
	go func() { done <- w.d.loop(ctx) }()
	w.rec.waitTurns(t, m, 1) // the loop arms its retry timer before its first turn
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("loop: %v", err)
		}
	})
}

// newWired is a daemon on fakes, started but not looping: the test calls
// its handlers.
func newWired(t *testing.T, cfg testConfig, before func(w *wired)) *wired {
	t.Helper()
	rec := newRecorder()
	w := &wired{rec: rec, sp: newTestSpeaker(rec), tb: newTestTable(rec),
		mon:   &testMonitor{rec: rec, kick: make(chan struct{}, 1)},
		links: &testLinks{rec: rec, kick: make(chan struct{}, 1), noCarrier: map[int]platform.CarrierEvent{}},
		pe:    &testPolicy{rec: newRecorder()},
		eps:   &testEndpoints{rec: rec, kick: make(chan struct{}, 1)},
		cfg:   filepath.Join(t.TempDir(), "switchd.json"), hup: make(chan os.Signal, 1)}
	w.writeConfig(t, cfg.json())
	if before != nil {
		before(w)
	}
	intent, err := config.Load(w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.d = newDaemon(Options{ConfigPath: w.cfg, Logger: slog.New(slog.DiscardHandler), ResyncInterval: time.Hour,
		State: w.state, StateInterval: time.Hour})
	w.d.reloads = w.hup
	w.d.attach(components{speaker: w.sp, table: w.tb, monitor: w.mon, links: w.links,
		newLinks:      func() (linkMonitor, error) { return w.links, nil },
		setHashPolicy: func(p int) { rec.add("hash policy %d", p) },
		policy:        w.pe, endpoints: w.eps, ifaces: w.ifaces})
	if err := w.d.start(context.Background(), intent); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *wired) writeConfig(t *testing.T, b []byte) {
	t.Helper()
	if err := os.WriteFile(w.cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// reload writes the config file, signals the loop as SIGHUP does and
// waits for the turn to end; it returns the calls the reload made.
func (w *wired) reload(t *testing.T, b []byte) []string {
	t.Helper()
	w.writeConfig(t, b)
	m := w.rec.mark()
	w.hup <- os.Interrupt // any signal: the loop only counts it
	return w.rec.waitTurns(t, m, 1)
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

func route(p string, nhs ...string) bgp.Route {
	r := bgp.Route{Prefix: pfx(p)}
	for _, nh := range nhs {
		r.NextHops = append(r.NextHops, addr(nh))
	}
	return r
}

// TestWiringPeerDownBeforeWithdrawals: a session end (PeerEvents) reaches
// the FIB as NextHopDown and an Apply before the withdrawals that follow
// it are set, whichever feed the loop happens to read first.
func TestWiringPeerDownBeforeWithdrawals(t *testing.T) {
	w := startWired(t, testConfig{neighbors: []string{"10.0.1.1", "10.0.1.3"}}, nil)
	a, b := "10.0.1.1", "10.0.1.3"
	// settled waits for the end of the turn that applied last: the loop
	// then waits for the route feed again (the batching window, if one
	// was open, is over), and wakes for its kick first.
	settled := func(m int, last string) []string {
		return w.rec.waitFor(t, m, last+" applied", func(c []string) bool {
			i := index(c, last)
			j := index(c[max(i, 0):], "fib.Apply")
			return i >= 0 && j >= 0 && slices.Contains(c[i+j:], turnEnd)
		})
	}
	m := w.rec.mark()
	w.sp.learn(2, nil, route("10.1.0.0/24", a), route("10.2.0.0/24", a, b))
	settled(m, "fib.SetRoute 10.2.0.0/24")

	// The route feed kicks first (testSpeaker.learn); rounds of down and
	// up again.
	for i := range 10 {
		m := w.rec.mark()
		w.sp.learn(1, []bgp.PeerEvent{{Neighbor: addr(a)}},
			route("10.1.0.0/24"), route("10.2.0.0/24", b))
		calls := w.rec.waitFor(t, m, "the withdrawal and the changed route", func(c []string) bool {
			return index(c, "fib.DeleteRoute 10.1.0.0/24") >= 0 && index(c, "fib.SetRoute 10.2.0.0/24") >= 0
		})
		down, apply := index(calls, "fib.NextHopDown "+a), index(calls, "fib.Apply")
		del, set := index(calls, "fib.DeleteRoute 10.1.0.0/24"), index(calls, "fib.SetRoute 10.2.0.0/24")
		if down < 0 || apply < down || del < apply || set < apply {
			t.Fatalf("round %d: calls %q: want NextHopDown %s, then Apply, then the withdrawals", i, calls, a)
		}

		m = w.rec.mark()
		w.sp.learn(2, []bgp.PeerEvent{{Neighbor: addr(a), Up: true}},
			route("10.1.0.0/24", a), route("10.2.0.0/24", a, b))
		calls = settled(m, "fib.SetRoute 10.1.0.0/24")
		if up := index(calls, "fib.NextHopUp "+a); up < 0 || up > index(calls, "fib.SetRoute 10.1.0.0/24") {
			t.Fatalf("round %d: calls %q: want NextHopUp %s before its routes", i, calls, a)
		}
	}
}

// TestWiringPeerDownBeforeHeldWithdrawals: changes held back by the
// batching window go to the FIB after a session end that came meanwhile.
func TestWiringPeerDownBeforeHeldWithdrawals(t *testing.T) {
	w := newWired(t, testConfig{neighbors: []string{"10.0.1.1"}}, nil)
	ctx := context.Background()
	// A stopped clock: every change comes within the window of the last
	// Apply, so it is held.
	now := time.Now()
	w.d.bgpRoutes.now = func() time.Time { return now }
	w.d.applyFIB(ctx)
	w.sp.learn(1, nil, route("10.1.0.0/24", "10.0.1.1"))
	if w.d.onBGPUpdates(ctx) {
		t.Fatal("a change right after an Apply was not held for the batching window")
	}
	m := w.rec.mark()
	w.sp.learn(0, []bgp.PeerEvent{{Neighbor: addr("10.0.1.1")}}, route("10.1.0.0/24"))
	w.d.onBGPWindowEnd(ctx)
	calls := w.rec.since(m)
	down, apply, del := index(calls, "fib.NextHopDown 10.0.1.1"), index(calls, "fib.Apply"), index(calls, "fib.DeleteRoute 10.1.0.0/24")
	if down < 0 || apply < down || del < apply {
		t.Errorf("window end with a session end queued: calls %q, want NextHopDown, Apply, then the withdrawal", calls)
	}
}

// TestWiringCarrierLoss: a link that loses carrier makes the FIB resync
// and ends the sessions of exactly the neighbors on that link, whose next
// hops leave the FIB's groups before anything else is applied.
func TestWiringCarrierLoss(t *testing.T) {
	w := startWired(t, testConfig{neighbors: []string{"10.0.1.1", "10.0.1.3", "10.255.0.9"}}, nil)
	m := w.rec.mark()
	w.links.publish(platform.CarrierEvent{Index: 7, Name: "eth1", Carrier: false,
		Prefixes: []netip.Prefix{pfx("10.0.1.0/31")}})
	calls := w.rec.waitTurns(t, m, 1)
	want := []string{"fib.QueueResync", "bgp.DropNeighbor 10.0.1.1", "fib.NextHopDown 10.0.1.1", "fib.Apply"}
	if !slices.Equal(calls[:min(len(want), len(calls))], want) {
		t.Errorf("carrier loss on eth1: calls %q, want %q first", calls, want)
	}
	for _, c := range calls {
		if c == "bgp.DropNeighbor 10.0.1.3" || c == "bgp.DropNeighbor 10.255.0.9" {
			t.Errorf("carrier loss on eth1 (10.0.1.0/31): %s, a neighbor not on it", c)
		}
	}

	// Carrier back: nothing to drop, nothing to resync.
	m = w.rec.mark()
	w.links.publish(platform.CarrierEvent{Index: 7, Name: "eth1", Carrier: true,
		Prefixes: []netip.Prefix{pfx("10.0.1.0/31")}})
	if calls := w.rec.waitTurns(t, m, 1); !slices.Equal(calls, []string{"fib.Apply"}) {
		t.Errorf("carrier back on eth1: calls %q, want only the turn's Apply", calls)
	}
}

// TestWiringReload: a reload hands BGP the new config and changes only the
// static routes that differ; a config that does not load, or that BGP
// refuses, changes nothing.
func TestWiringReload(t *testing.T) {
	v1 := testConfig{neighbors: []string{"10.0.1.1"},
		statics: map[string]string{"192.0.2.0/24": "10.0.1.1", "198.51.100.0/24": "10.0.1.1"}}
	w := startWired(t, v1, nil)
	calls := w.rec.since(0)
	if !slices.Contains(calls, "fib.SetRoute 192.0.2.0/24") || !slices.Contains(calls, "fib.SetRoute 198.51.100.0/24") {
		t.Fatalf("start: calls %q, want both statics set", calls)
	}
	if r, _ := w.tb.route(fib.RouteKey{Table: fib.MainTable, Dst: pfx("192.0.2.0/24"), Priority: StaticRouteMetric}); r.Key.Dst != pfx("192.0.2.0/24") {
		t.Errorf("static 192.0.2.0/24 not in the FIB with metric %d", StaticRouteMetric)
	}

	v2 := testConfig{neighbors: []string{"10.0.1.1", "10.0.1.3"},
		statics: map[string]string{"192.0.2.0/24": "10.0.1.1", "203.0.113.0/24": "10.0.1.3"}}
	calls = w.reload(t, v2.json())
	slices.Sort(calls)
	want := []string{"bgp.Apply neighbors [10.0.1.1 10.0.1.3]", "fib.Apply",
		"fib.DeleteRoute 198.51.100.0/24", "fib.SetRoute 203.0.113.0/24"}
	if !slices.Equal(calls, want) {
		t.Errorf("reload: calls %q, want %q (the unchanged static untouched)", calls, want)
	}

	// The ECMP hash changes only when the config changes it.
	v2.hash = "L3"
	if calls := w.reload(t, v2.json()); !slices.Equal(calls, []string{"bgp.Apply neighbors [10.0.1.1 10.0.1.3]", "hash policy 0", "fib.Apply"}) {
		t.Errorf("reload with the hash policy L3: calls %q, want only BGP's config and the hash", calls)
	}
	if calls := w.reload(t, v2.json()); !slices.Equal(calls, []string{"bgp.Apply neighbors [10.0.1.1 10.0.1.3]", "fib.Apply"}) {
		t.Errorf("reload of the same config: calls %q, want only BGP's config (it diffs itself)", calls)
	}

	if calls := w.reload(t, []byte(`{"openconfig-network-instance:network-instances": 1}`)); !slices.Equal(calls, []string{"fib.Apply"}) {
		t.Errorf("reload of a bad file: calls %q, want nothing but the turn's Apply", calls)
	}
	w.rec.mu.Lock()
	w.sp.applyErr = fmt.Errorf("neighbor 10.0.1.5: refused")
	w.rec.mu.Unlock()
	v3 := testConfig{neighbors: []string{"10.0.1.5"}, statics: map[string]string{"192.0.2.0/24": "10.0.1.5"}}
	if calls := w.reload(t, v3.json()); !slices.Equal(calls, []string{"bgp.Apply refused", "fib.Apply"}) {
		t.Errorf("reload BGP refuses: calls %q, want no FIB change", calls)
	}
}

// TestWiringLearnedRoutesAndStatus: learned routes reach the FIB through
// bgpFIB with BGP's metric and every ECMP next hop; a route fib refuses is
// left out of the status count, which the API serves from what the loop
// consumed.
func TestWiringLearnedRoutesAndStatus(t *testing.T) {
	w := startWired(t, testConfig{neighbors: []string{"10.0.1.1", "10.0.1.3"},
		statics: map[string]string{"192.0.2.0/24": "10.0.1.1"}}, func(w *wired) {
		w.tb.refuse[pfx("10.9.0.0/24")] = true
	})
	sock := filepath.Join(t.TempDir(), "api.sock")
	api, err := w.d.serveAPI(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()

	m := w.rec.mark()
	w.sp.learn(3, nil, route("10.1.0.0/24", "10.0.1.1", "10.0.1.3"), route("10.2.0.0/24", "10.0.1.1"),
		route("10.9.0.0/24", "10.0.1.3"))
	w.rec.waitTurnAfter(t, m, "fib.SetRoute 10.9.0.0/24 refused")
	r, ok := w.tb.route(fib.RouteKey{Table: fib.MainTable, Dst: pfx("10.1.0.0/24"), Priority: BGPRouteMetric})
	want := []fib.NextHop{{Gateway: addr("10.0.1.1"), Weight: 1}, {Gateway: addr("10.0.1.3"), Weight: 1}}
	if !ok || r.Type != fib.Unicast || !slices.Equal(r.NextHops, want) {
		t.Errorf("10.1.0.0/24 in the FIB: %v (found %v), want metric %d via %v", r, ok, BGPRouteMetric, want)
	}
	st, err := apiclient.GetStatus(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	if st.FIB.Routes != 3 || st.BGP.ASN != 65001 || st.BGP.RouterID != "10.255.0.1" {
		t.Errorf("status %+v: want 3 routes (2 BGP, 1 refused left out, 1 static), AS 65001, router-id 10.255.0.1", st)
	}

	m = w.rec.mark()
	w.sp.learn(2, nil, route("10.2.0.0/24"))
	w.rec.waitTurnAfter(t, m, "fib.DeleteRoute 10.2.0.0/24")
	if st, err := apiclient.GetStatus(context.Background(), sock); err != nil || st.FIB.Routes != 2 {
		t.Errorf("status after a withdrawal: %+v, %v; want 2 routes", st, err)
	}
}

// TestWiringUnreachableNextHops: the speaker hears of unreachable next
// hops (the FIB's, and those on links without carrier) only when the set
// changes, not on every Apply.
func TestWiringUnreachableNextHops(t *testing.T) {
	w := startWired(t, testConfig{neighbors: []string{"10.0.1.1"}}, func(w *wired) {
		w.sp.nextHops = []netip.Addr{addr("10.0.1.1"), addr("10.0.3.1"), addr("10.9.9.9")}
	})
	turn := func() []string { // one loop turn: an empty kernel route feed
		m := w.rec.mark()
		w.mon.publish(false)
		return w.rec.waitTurns(t, m, 1)
	}
	sent := func(calls []string) (out []string) {
		for _, c := range calls {
			if len(c) > 26 && c[:26] == "bgp.SetUnreachableNextHops" {
				out = append(out, c)
			}
		}
		return out
	}
	if got := sent(w.rec.since(0)); len(got) != 0 {
		t.Errorf("start: %q, want nothing sent (nothing unreachable)", got)
	}
	if got := w.tb.trackedNextHops(); !slices.Equal(got, w.sp.nextHops) {
		t.Errorf("the FIB tracks %v, want the speaker's next hops %v", got, w.sp.nextHops)
	}
	w.tb.setUnreachable(addr("10.9.9.9"))
	if got := sent(turn()); !slices.Equal(got, []string{"bgp.SetUnreachableNextHops [10.9.9.9]"}) {
		t.Errorf("FIB reports 10.9.9.9 unreachable: sent %q", got)
	}
	for range 3 {
		if got := sent(turn()); len(got) != 0 {
			t.Errorf("same set again: sent %q, want nothing", got)
		}
	}
	// A third-party next hop on a link without carrier joins the set.
	m := w.rec.mark()
	w.links.publish(platform.CarrierEvent{Index: 3, Name: "eth3", Carrier: false, Prefixes: []netip.Prefix{pfx("10.0.3.0/31")}})
	if got := sent(w.rec.waitTurns(t, m, 1)); !slices.Equal(got, []string{"bgp.SetUnreachableNextHops [10.0.3.1 10.9.9.9]"}) {
		t.Errorf("carrier lost on eth3: sent %q", got)
	}
	w.tb.setUnreachable()
	m = w.rec.mark()
	w.links.publish(platform.CarrierEvent{Index: 3, Name: "eth3", Carrier: true, Prefixes: []netip.Prefix{pfx("10.0.3.0/31")}})
	if got := sent(w.rec.waitTurns(t, m, 1)); !slices.Equal(got, []string{"bgp.SetUnreachableNextHops []"}) {
		t.Errorf("all reachable again: sent %q", got)
	}
}

// TestWiringSweepAfterSynced: adopted routes make BGP restart gracefully,
// and the FIB sweeps (EndOfInputs) only once the speaker reports Synced,
// then applies.
func TestWiringSweepAfterSynced(t *testing.T) {
	w := startWired(t, testConfig{neighbors: []string{"10.0.1.1"}}, func(w *wired) { w.tb.stale = 5 })
	calls := w.rec.since(0)
	first, restart, bgpApply := index(calls, "fib.Apply"), index(calls, "bgp.SetRestarting"), index(calls, "bgp.Apply neighbors [10.0.1.1]")
	if index(calls, "fib.QueueResync") > first || first < 0 || restart < first || bgpApply < restart {
		t.Errorf("start with stale routes: calls %q, want resync+Apply (adopt), SetRestarting, then BGP's config", calls)
	}
	m := w.rec.mark()
	for range 3 {
		mm := w.rec.mark()
		w.mon.publish(true, fib.RouteEvent{Route: fib.Route{Key: fib.RouteKey{Dst: pfx("10.7.0.0/16")}}})
		w.rec.waitTurns(t, mm, 1)
	}
	if calls := w.rec.since(m); slices.Contains(calls, "fib.EndOfInputs") || count(calls, "fib.OnRouteEvent 10.7.0.0/16") != 3 {
		t.Fatalf("before Synced: calls %q, want no sweep", calls)
	}
	m = w.rec.mark()
	close(w.sp.synced)
	calls = w.rec.waitTurns(t, m, 1)
	if !slices.Equal(calls, []string{"fib.EndOfInputs", "fib.Apply"}) {
		t.Errorf("Synced: calls %q, want EndOfInputs, then Apply", calls)
	}
}

// TestWiringNeighborStatus: the status lists the neighbors as the
// speaker's neighbor feed published them (a removed one leaves the
// list), and a neighbor change costs no FIB Apply.
func TestWiringNeighborStatus(t *testing.T) {
	w := startWired(t, testConfig{neighbors: []string{"10.0.1.1", "10.0.1.3"}}, nil)
	sock := filepath.Join(t.TempDir(), "api.sock")
	api, err := w.d.serveAPI(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	waitStatus := func(what string, ok func(st *apiclient.Status) bool) *apiclient.Status {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			st, err := apiclient.GetStatus(context.Background(), sock)
			if err == nil && ok(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("status never showed %s: %+v, %v", what, st, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	since := time.Unix(1_800_000_000, 0)
	m := w.rec.mark()
	w.sp.publishNeighbors(
		bgp.NeighborState{Address: addr("10.0.1.1"), PeerAS: 65000, State: bgp.StateEstablished, EstablishedSince: since,
			EstablishedTransitions: 2, PrefixesReceived: map[bgp.Family]uint64{bgp.IPv4Unicast: 3}},
		bgp.NeighborState{Address: addr("10.0.1.3"), PeerAS: 65000, State: bgp.StateActive, LastError: "connection refused"})
	st := waitStatus("both neighbors", func(st *apiclient.Status) bool { return len(st.BGP.Neighbors) == 2 })
	n1, n3 := st.BGP.Neighbors[0], st.BGP.Neighbors[1]
	if n1.Address != "10.0.1.1" || n1.State != "ESTABLISHED" || n1.EstablishedSince == nil || !n1.EstablishedSince.Equal(since) ||
		n1.EstablishedTransitions != 2 || n1.Received["ipv4-unicast"] != 3 {
		t.Errorf("neighbor 10.0.1.1 in the status: %+v", n1)
	}
	if n3.Address != "10.0.1.3" || n3.State != "ACTIVE" || n3.LastError != "connection refused" || n3.EstablishedSince != nil {
		t.Errorf("neighbor 10.0.1.3 in the status: %+v", n3)
	}
	if calls := w.rec.since(m); slices.Contains(calls, "fib.Apply") {
		t.Errorf("a neighbor change applied the FIB: calls %q", calls)
	}

	w.sp.publishNeighbors(bgp.NeighborState{Address: addr("10.0.1.3"), Removed: true},
		bgp.NeighborState{Address: addr("10.0.1.1"), PeerAS: 65000, State: bgp.StateIdle, EstablishedTransitions: 2})
	st = waitStatus("10.0.1.3 gone, 10.0.1.1 idle", func(st *apiclient.Status) bool {
		return len(st.BGP.Neighbors) == 1 && st.BGP.Neighbors[0].State == "IDLE"
	})
	if n := st.BGP.Neighbors[0]; n.Address != "10.0.1.1" || n.EstablishedSince != nil || n.Received != nil {
		t.Errorf("neighbor 10.0.1.1 after its session ended: %+v", n)
	}
}
