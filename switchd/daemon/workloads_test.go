package daemon

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/switchd/switchd/host/endpointapi"
	"github.com/switchd/switchd/sim/ns"
)

// peeredHostConfig is examples/host.json (with its VM, state in dir)
// peering as AS 65001 with FRR peer p instead of the fabric's leaf; extra
// are local aggregates added to what it originates.
func peeredHostConfig(t *testing.T, dir string, p *frrPeer, extra ...netip.Prefix) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(hostConfig(t, dir, true), &doc); err != nil {
		t.Fatal(err)
	}
	type obj = map[string]any
	ni := doc["openconfig-network-instance:network-instances"].(obj)["network-instance"].([]any)[0].(obj)
	for _, pr := range ni["protocols"].(obj)["protocol"].([]any) {
		pr := pr.(obj)
		switch pr["name"] {
		case "BGP":
			bgp := pr["bgp"].(obj)
			bgp["global"].(obj)["config"].(obj)["as"] = 65001
			for i, nb := range bgp["neighbors"].(obj)["neighbor"].([]any) {
				nb := nb.(obj)
				addr, local := p.addr4(), p.ours4()
				if i == 1 {
					addr, local = p.addr6(), p.ours6()
				}
				nb["neighbor-address"] = addr.String()
				nb["config"].(obj)["neighbor-address"] = addr.String()
				nb["config"].(obj)["peer-as"] = p.as
				nb["transport"].(obj)["config"].(obj)["local-address"] = local.String()
			}
		case "LOCAL":
			aggs := pr["local-aggregates"].(obj)
			for _, e := range extra {
				aggs["aggregate"] = append(aggs["aggregate"].([]any), obj{"prefix": e.String(), "config": obj{"prefix": e.String()}})
			}
		}
	}
	set := doc["openconfig-routing-policy:routing-policy"].(obj)["defined-sets"].(obj)["prefix-sets"].(obj)["prefix-set"].([]any)[0].(obj)
	for _, e := range extra {
		ps := set["prefixes"].(obj)
		ps["prefix"] = append(ps["prefix"].([]any), obj{"ip-prefix": e.String(), "masklength-range": "exact",
			"config": obj{"ip-prefix": e.String(), "masklength-range": "exact"}})
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestWorkloadBlockSurvivesReloadPrivileged: the daemon announces its
// workload block through the speaker's delta API, apart from the config's
// prefixes, so a reload (whose config does not name the block) keeps it
// announced to the peer.
func TestWorkloadBlockSurvivesReloadPrivileged(t *testing.T) {
	ns.Privileged(t)
	if os.Getenv("SWITCHD_TEST_NETNS") == "" {
		t.Skip("needs ns.TestMain's private namespace")
	}
	addTap(t, "tap-vm1")
	peer := startFRR(t, 1, 65011)
	dir := t.TempDir()
	cfg, sock := runDaemon(t, dir, peeredHostConfig(t, dir, peer))
	vm := waitVM(t, &endpointapi.Client{Socket: sock, Timeout: 5 * time.Second})
	block := netip.PrefixFrom(vm.IPv4, 26).Masked()
	announced := func(p netip.Prefix) func() error {
		return func() error {
			if !peer.hasPathViaUs(t, p) {
				return fmt.Errorf("FRR has no path to %v from AS 65001", p)
			}
			return nil
		}
	}
	waitFor(t, "FRR receives the workload block", announced(block))
	waitFor(t, "FRR receives the loopback", announced(netip.MustParsePrefix("10.0.0.21/32")))

	// The reload adds a marker; the speaker sends it after any withdrawal
	// the same Apply makes.
	marker := netip.MustParsePrefix("10.0.0.22/32")
	if err := os.WriteFile(cfg, peeredHostConfig(t, dir, peer, marker), 0o644); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, "FRR receives the marker of the reload", announced(marker))
	if err := announced(block)(); err != nil {
		t.Errorf("after a reload: %v", err)
	}
}
