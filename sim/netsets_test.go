package sim

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/switchd/switchd/switchd/config"
)

// TestNetworkSetsInHostConfig: a host's config gets a network set per
// labelled workload on the other hosts (its /32 and /128, its labels with
// sim-host), none for its own or unlabelled ones; switchd's loader takes
// the file; writing the same sets again changes nothing (no reload), and
// no workloads left removes them.
func TestNetworkSetsInHostConfig(t *testing.T) {
	topo, err := LoadTopology("topologies/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(topo, Options{Prefix: "swdtest", RunDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.NodeConfig("host2")
	if err != nil {
		t.Fatal(err)
	}
	p := f.ConfigPath("host2")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr
	ws := []Workload{
		{Host: "host1", Name: "w1", IPv4: a("10.1.0.1"), IPv6: a("fd00:1::1"), Labels: "role=web,sim-host=host1"},
		{Host: "host1", Name: "w2", IPv4: a("10.1.0.2"), IPv6: a("fd00:1::2"), Labels: "sim-host=host1"},
		{Host: "host2", Name: "w1", IPv4: a("10.2.0.1"), IPv6: a("fd00:2::1"), Labels: "role=db,sim-host=host2"},
		{Host: "host3", Name: "w1", IPv4: a("10.3.0.1"), Labels: "role=other,sim-host=host3"},
	}
	write := func(ws []Workload, want bool) *config.Intent {
		t.Helper()
		changed, err := f.writeNetworkSets("host2", remoteNetworkSets("host2", ws))
		if err != nil || changed != want {
			t.Fatalf("writeNetworkSets: changed %v (%v), want %v", changed, err, want)
		}
		in, err := config.Load(p)
		if err != nil {
			t.Fatalf("host2's config with network sets rejected: %v", err)
		}
		return in
	}
	in := write(ws, true)
	got := in.Policy.NetworkSets
	if len(got) != 2 || got[0].Name != "sim-host1-w1" || got[1].Name != "sim-host3-w1" {
		t.Fatalf("network sets %+v, want host1 w1's and host3 w1's", got)
	}
	if got[0].Labels["role"] != "web" || got[0].Labels["sim-host"] != "host1" ||
		len(got[0].Prefixes) != 2 || got[0].Prefixes[0] != netip.MustParsePrefix("10.1.0.1/32") || got[0].Prefixes[1] != netip.MustParsePrefix("fd00:1::1/128") {
		t.Errorf("host1 w1's network set %+v", got[0])
	}
	if len(in.Policy.Policies) != 1 {
		t.Errorf("policies %+v: the example's db policy must stay", in.Policy.Policies)
	}
	write(ws, false)
	if in := write(nil, true); len(in.Policy.NetworkSets) != 0 || len(in.Policy.Policies) != 1 {
		t.Errorf("no workloads: network sets %+v, policies %d", in.Policy.NetworkSets, len(in.Policy.Policies))
	}
}
