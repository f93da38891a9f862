package daemon

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchd/switchd/fib"
)

// metricsSnapshot is what one scrape reports: the status board's last
// value and the FIB's write counters as the loop last saw them. Nothing
// is asked of a component while scraping.
type metricsSnapshot struct {
	Status Status
	FIB    fib.Stats
	// FailedRoutes counts the routes whose last write failed.
	FailedRoutes int
	// NextHopGroups and NextHops are fib's nexthop groups and objects in
	// the kernel, when known (HaveGroups).
	HaveGroups              bool
	NextHopGroups, NextHops int
}

// Names follow GoBGP's exporter (osrg/gobgp pkg/metrics) where the two
// overlap — bgp_peer_state with the same labels and values, bgp_peer_asn,
// bgp_routes_received and bgp_routes_accepted per peer and route_family
// — so dashboards made for GoBGP read switchd; the rest is switchd_*.
var (
	peerStateDesc = prometheus.NewDesc("bgp_peer_state",
		"State of the BGP session with peer and its administrative state",
		[]string{"peer", "session_state", "admin_state"}, nil)
	peerASNDesc = prometheus.NewDesc("bgp_peer_asn",
		"What is the AS number of the peer",
		[]string{"peer", "router_id"}, nil)
	routesReceivedDesc = prometheus.NewDesc("bgp_routes_received",
		"Number of routes received from peer",
		[]string{"peer", "route_family"}, nil)
	routesAcceptedDesc = prometheus.NewDesc("bgp_routes_accepted",
		"Number of routes accepted from peer",
		[]string{"peer", "route_family"}, nil)
	peerEstablishedDesc = prometheus.NewDesc("switchd_bgp_peer_established_transitions_total",
		"Sessions with the peer that reached Established since it was configured",
		[]string{"peer"}, nil)
	peerUpSinceDesc = prometheus.NewDesc("switchd_bgp_peer_established_since_seconds",
		"When the session with the peer reached Established (Unix time); absent while it is not",
		[]string{"peer"}, nil)

	fibRoutesDesc = prometheus.NewDesc("switchd_fib_routes",
		"Routes switchd wants in the kernel FIB (BGP, static, workload)", nil, nil)
	fibStaleDesc = prometheus.NewDesc("switchd_fib_stale_routes",
		"Routes adopted from a previous run, kept until BGP has synced", nil, nil)
	fibInSyncDesc = prometheus.NewDesc("switchd_fib_in_sync",
		"1 if the kernel FIB holds exactly what switchd wants, else 0", nil, nil)
	fibLastResyncDesc = prometheus.NewDesc("switchd_fib_last_resync_timestamp_seconds",
		"When the FIB was last compared with a full kernel dump (Unix time)", nil, nil)
	fibGroupsDesc = prometheus.NewDesc("switchd_fib_nexthop_groups",
		"Nexthop groups switchd has in the kernel (routes with the same next hops share one)", nil, nil)
	fibNexthopsDesc = prometheus.NewDesc("switchd_fib_nexthops",
		"Nexthop objects switchd has in the kernel (members of its groups)", nil, nil)
	fibFailedDesc = prometheus.NewDesc("switchd_fib_failed_routes",
		"Routes whose last kernel write failed (retried with back-off)", nil, nil)
	fibWritesDesc = prometheus.NewDesc("switchd_fib_route_writes_total",
		"Route write requests sent to the kernel, by operation", []string{"op"}, nil)
	fibWriteFailuresDesc = prometheus.NewDesc("switchd_fib_route_write_failures_total",
		"Route writes that failed or could not be sent", nil, nil)
	fibNexthopWritesDesc = prometheus.NewDesc("switchd_fib_nexthop_writes_total",
		"Nexthop object and group writes sent to the kernel", nil, nil)
	fibResyncsDesc = prometheus.NewDesc("switchd_fib_resyncs_total",
		"Full kernel dumps of the FIB completed", nil, nil)

	endpointsDesc = prometheus.NewDesc("switchd_endpoints",
		"Workload endpoints of this host in the policy engine", nil, nil)

	policyInSyncDesc = prometheus.NewDesc("switchd_policy_in_sync",
		"1 if the last policy Apply succeeded and nothing is pending, else 0", nil, nil)
	policyChainsDesc = prometheus.NewDesc("switchd_policy_chains",
		"Chains in switchd's nftables table", nil, nil)
	policyRulesDesc = prometheus.NewDesc("switchd_policy_rules",
		"Rules in switchd's nftables table", nil, nil)
	policySetsDesc = prometheus.NewDesc("switchd_policy_sets",
		"Sets and maps in switchd's nftables table", nil, nil)
	policyElementsDesc = prometheus.NewDesc("switchd_policy_set_elements",
		"Elements of the sets and maps in switchd's nftables table", nil, nil)
	policyProfilesDesc = prometheus.NewDesc("switchd_policy_profiles",
		"Workload policy profile chains (one per combination of selecting policies)", nil, nil)
	aclPacketsDesc = prometheus.NewDesc("switchd_acl_entry_matched_packets_total",
		"Packets an ACL entry matched (its directions summed)",
		[]string{"acl_set", "type", "sequence_id"}, nil)
	aclOctetsDesc = prometheus.NewDesc("switchd_acl_entry_matched_octets_total",
		"Octets an ACL entry matched (its directions summed)",
		[]string{"acl_set", "type", "sequence_id"}, nil)

	metricsDescs = []*prometheus.Desc{
		peerStateDesc, peerASNDesc, routesReceivedDesc, routesAcceptedDesc, peerEstablishedDesc, peerUpSinceDesc,
		fibRoutesDesc, fibStaleDesc, fibInSyncDesc, fibLastResyncDesc, fibGroupsDesc, fibNexthopsDesc, fibFailedDesc,
		fibWritesDesc, fibWriteFailuresDesc, fibNexthopWritesDesc, fibResyncsDesc,
		endpointsDesc,
		policyInSyncDesc, policyChainsDesc, policyRulesDesc, policySetsDesc, policyElementsDesc, policyProfilesDesc,
		aclPacketsDesc, aclOctetsDesc,
	}
)

// statusCollector turns a snapshot into metrics at each scrape: the status
// board already holds every value, so no gauge is kept up to date as
// things change (cheaper than updating gauges in every handler).
type statusCollector struct {
	snapshot func() metricsSnapshot
}

func (c statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range metricsDescs {
		ch <- d
	}
}

func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}

	bgp := s.Status.BGP
	for _, n := range bgp.Neighbors {
		// GoBGP's label values: its API's enum names. switchd has no
		// administrative shutdown of a configured neighbor.
		gauge(peerStateDesc, 1, n.Address, "SESSION_STATE_"+n.State, "ADMIN_STATE_UP")
		gauge(peerASNDesc, float64(n.PeerAS), n.Address, bgp.RouterID)
		for f, v := range n.Received {
			gauge(routesReceivedDesc, float64(v), n.Address, f)
		}
		for f, v := range n.Accepted {
			gauge(routesAcceptedDesc, float64(v), n.Address, f)
		}
		counter(peerEstablishedDesc, n.EstablishedTransitions, n.Address)
		if n.EstablishedSince != nil {
			gauge(peerUpSinceDesc, float64(n.EstablishedSince.UnixMilli())/1e3, n.Address)
		}
	}

	f := s.Status.FIB
	gauge(fibRoutesDesc, float64(f.Routes))
	gauge(fibStaleDesc, float64(f.Stale))
	gauge(fibInSyncDesc, b2f(f.InSync))
	if !f.LastResync.IsZero() {
		gauge(fibLastResyncDesc, float64(f.LastResync.UnixMilli())/1e3)
	}
	if s.HaveGroups {
		gauge(fibGroupsDesc, float64(s.NextHopGroups))
		gauge(fibNexthopsDesc, float64(s.NextHops))
	}
	gauge(fibFailedDesc, float64(s.FailedRoutes))
	counter(fibWritesDesc, s.FIB.Adds, "add")
	counter(fibWritesDesc, s.FIB.Replaces, "replace")
	counter(fibWritesDesc, s.FIB.Deletes, "delete")
	counter(fibWriteFailuresDesc, s.FIB.Failures)
	counter(fibNexthopWritesDesc, s.FIB.Nexthops)
	counter(fibResyncsDesc, s.FIB.Resyncs)

	p := s.Status.Policy
	gauge(endpointsDesc, float64(p.Endpoints))
	gauge(policyInSyncDesc, b2f(p.InSync))
	gauge(policyChainsDesc, float64(p.Chains))
	gauge(policyRulesDesc, float64(p.Rules))
	gauge(policySetsDesc, float64(p.Sets))
	gauge(policyElementsDesc, float64(p.Elements))
	gauge(policyProfilesDesc, float64(p.Profiles))
	for _, e := range p.ACLEntries {
		seq := strconv.FormatUint(uint64(e.Seq), 10)
		counter(aclPacketsDesc, e.MatchedPackets, e.Set, e.Type, seq)
		counter(aclOctetsDesc, e.MatchedOctets, e.Set, e.Type, seq)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
