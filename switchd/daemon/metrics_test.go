package daemon

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchd/switchd/fib"
)

// TestStatusCollector renders a fake snapshot and compares the whole
// exposition: names, labels, types and values.
func TestStatusCollector(t *testing.T) {
	up := time.Unix(1700000000, 500e6)
	snap := metricsSnapshot{
		Status: Status{
			BGP: BGPStatus{ASN: 65001, RouterID: "10.0.0.1", Neighbors: []NeighborStatus{
				{Address: "10.1.0.2", PeerAS: 65100, State: "ESTABLISHED", EstablishedSince: &up, EstablishedTransitions: 2,
					Received: map[string]uint64{"ipv4-unicast": 7, "ipv6-unicast": 3}, Accepted: map[string]uint64{"ipv4-unicast": 6}},
				{Address: "fd00::2", PeerAS: 65101, State: "ACTIVE"},
			}},
			FIB: FIBStatus{Routes: 12, InSync: true, Stale: 1, LastResync: time.Unix(1700000100, 0)},
			Policy: PolicyStatus{InSync: false, Chains: 9, Rules: 40, Sets: 4, Elements: 17, Endpoints: 3, Profiles: 2,
				ACLEntries: []ACLEntryStatus{{Set: "edge", Type: "ACL_IPV4", Seq: 10, MatchedPackets: 5, MatchedOctets: 420}}},
		},
		FIB:          fib.Stats{Adds: 10, Replaces: 2, Deletes: 1, Failures: 3, Resyncs: 4, Nexthops: 6},
		FailedRoutes: 1,
		HaveGroups:   true, NextHopGroups: 2, NextHops: 3,
	}
	c := statusCollector{snapshot: func() metricsSnapshot { return snap }}
	const want = `
# HELP bgp_peer_asn What is the AS number of the peer
# TYPE bgp_peer_asn gauge
bgp_peer_asn{peer="10.1.0.2",router_id="10.0.0.1"} 65100
bgp_peer_asn{peer="fd00::2",router_id="10.0.0.1"} 65101
# HELP bgp_peer_state State of the BGP session with peer and its administrative state
# TYPE bgp_peer_state gauge
bgp_peer_state{admin_state="ADMIN_STATE_UP",peer="10.1.0.2",session_state="SESSION_STATE_ESTABLISHED"} 1
bgp_peer_state{admin_state="ADMIN_STATE_UP",peer="fd00::2",session_state="SESSION_STATE_ACTIVE"} 1
# HELP bgp_routes_accepted Number of routes accepted from peer
# TYPE bgp_routes_accepted gauge
bgp_routes_accepted{peer="10.1.0.2",route_family="ipv4-unicast"} 6
# HELP bgp_routes_received Number of routes received from peer
# TYPE bgp_routes_received gauge
bgp_routes_received{peer="10.1.0.2",route_family="ipv4-unicast"} 7
bgp_routes_received{peer="10.1.0.2",route_family="ipv6-unicast"} 3
# HELP switchd_acl_entry_matched_octets_total Octets an ACL entry matched (its directions summed)
# TYPE switchd_acl_entry_matched_octets_total counter
switchd_acl_entry_matched_octets_total{acl_set="edge",sequence_id="10",type="ACL_IPV4"} 420
# HELP switchd_acl_entry_matched_packets_total Packets an ACL entry matched (its directions summed)
# TYPE switchd_acl_entry_matched_packets_total counter
switchd_acl_entry_matched_packets_total{acl_set="edge",sequence_id="10",type="ACL_IPV4"} 5
# HELP switchd_bgp_peer_established_since_seconds When the session with the peer reached Established (Unix time); absent while it is not
# TYPE switchd_bgp_peer_established_since_seconds gauge
switchd_bgp_peer_established_since_seconds{peer="10.1.0.2"} 1.7000000005e+09
# HELP switchd_bgp_peer_established_transitions_total Sessions with the peer that reached Established since it was configured
# TYPE switchd_bgp_peer_established_transitions_total counter
switchd_bgp_peer_established_transitions_total{peer="10.1.0.2"} 2
switchd_bgp_peer_established_transitions_total{peer="fd00::2"} 0
# HELP switchd_endpoints Workload endpoints of this host in the policy engine
# TYPE switchd_endpoints gauge
switchd_endpoints 3
# HELP switchd_fib_failed_routes Routes whose last kernel write failed (retried with back-off)
# TYPE switchd_fib_failed_routes gauge
switchd_fib_failed_routes 1
# HELP switchd_fib_in_sync 1 if the kernel FIB holds exactly what switchd wants, else 0
# TYPE switchd_fib_in_sync gauge
switchd_fib_in_sync 1
# HELP switchd_fib_last_resync_timestamp_seconds When the FIB was last compared with a full kernel dump (Unix time)
# TYPE switchd_fib_last_resync_timestamp_seconds gauge
switchd_fib_last_resync_timestamp_seconds 1.7000001e+09
# HELP switchd_fib_nexthop_groups Nexthop groups switchd has in the kernel (routes with the same next hops share one)
# TYPE switchd_fib_nexthop_groups gauge
switchd_fib_nexthop_groups 2
# HELP switchd_fib_nexthops Nexthop objects switchd has in the kernel (members of its groups)
# TYPE switchd_fib_nexthops gauge
switchd_fib_nexthops 3
# HELP switchd_fib_nexthop_writes_total Nexthop object and group writes sent to the kernel
# TYPE switchd_fib_nexthop_writes_total counter
switchd_fib_nexthop_writes_total 6
# HELP switchd_fib_resyncs_total Full kernel dumps of the FIB completed
# TYPE switchd_fib_resyncs_total counter
switchd_fib_resyncs_total 4
# HELP switchd_fib_route_write_failures_total Route writes that failed or could not be sent
# TYPE switchd_fib_route_write_failures_total counter
switchd_fib_route_write_failures_total 3
# HELP switchd_fib_route_writes_total Route write requests sent to the kernel, by operation
# TYPE switchd_fib_route_writes_total counter
switchd_fib_route_writes_total{op="add"} 10
switchd_fib_route_writes_total{op="delete"} 1
switchd_fib_route_writes_total{op="replace"} 2
# HELP switchd_fib_routes Routes switchd wants in the kernel FIB (BGP, static, workload)
# TYPE switchd_fib_routes gauge
switchd_fib_routes 12
# HELP switchd_fib_stale_routes Routes adopted from a previous run, kept until BGP has synced
# TYPE switchd_fib_stale_routes gauge
switchd_fib_stale_routes 1
# HELP switchd_policy_chains Chains in switchd's nftables table
# TYPE switchd_policy_chains gauge
switchd_policy_chains 9
# HELP switchd_policy_in_sync 1 if the last policy Apply succeeded and nothing is pending, else 0
# TYPE switchd_policy_in_sync gauge
switchd_policy_in_sync 0
# HELP switchd_policy_profiles Workload policy profile chains (one per combination of selecting policies)
# TYPE switchd_policy_profiles gauge
switchd_policy_profiles 2
# HELP switchd_policy_rules Rules in switchd's nftables table
# TYPE switchd_policy_rules gauge
switchd_policy_rules 40
# HELP switchd_policy_set_elements Elements of the sets and maps in switchd's nftables table
# TYPE switchd_policy_set_elements gauge
switchd_policy_set_elements 17
# HELP switchd_policy_sets Sets and maps in switchd's nftables table
# TYPE switchd_policy_sets gauge
switchd_policy_sets 4
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	// The collector is consistent with its Describe (the registry checks
	// each metric against the descriptions).
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", err, problems)
	}
}

// TestMetricsRegistry gathers the daemon's whole registry: the status
// collector beside the Go runtime and process collectors and the FIB
// Apply histogram, which times only Applies that did something.
func TestMetricsRegistry(t *testing.T) {
	d := newDaemon(Options{Logger: slog.New(slog.DiscardHandler)})
	d.status.update(func(st *Status) { st.FIB.Routes = 5 })
	tbl := &statsTable{}
	d.met.fibApplied(tbl, time.Millisecond) // nothing written: not timed
	tbl.stats.Adds = 5
	d.met.fibApplied(tbl, 2*time.Millisecond)
	d.met.fibApplied(tbl, time.Millisecond) // nothing more: not timed

	n, err := testutil.GatherAndCount(d.met.reg, "switchd_fib_routes", "go_goroutines", "switchd_fib_apply_duration_seconds")
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("gathered %d of switchd_fib_routes, go_goroutines, switchd_fib_apply_duration_seconds, want 3", n)
	}
	if got := testutil.CollectAndCount(d.met.applySeconds); got != 1 {
		t.Fatalf("histogram series %d", got)
	}
	const want = `
# HELP switchd_fib_route_writes_total Route write requests sent to the kernel, by operation
# TYPE switchd_fib_route_writes_total counter
switchd_fib_route_writes_total{op="add"} 5
switchd_fib_route_writes_total{op="delete"} 0
switchd_fib_route_writes_total{op="replace"} 0
`
	if err := testutil.GatherAndCompare(d.met.reg, strings.NewReader(want), "switchd_fib_route_writes_total"); err != nil {
		t.Error(err)
	}
	if c := histogramCount(t, d); c != 1 {
		t.Errorf("apply histogram counted %d Applies, want 1 (the one that wrote)", c)
	}
}

func histogramCount(t *testing.T, d *Daemon) uint64 {
	t.Helper()
	mfs, err := d.met.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "switchd_fib_apply_duration_seconds" {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatal("no switchd_fib_apply_duration_seconds")
	return 0
}

// statsTable is a fibTable reporting write counters, as *fib.Table does.
type statsTable struct {
	fibTable
	stats fib.Stats
}

func (s *statsTable) Stats() fib.Stats         { return s.stats }
func (s *statsTable) Errors() []fib.RouteError { return nil }
