package config

import (
	"strings"
	"testing"

	"github.com/openconfig/ygot/ygot"

	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/policy"
)

func TestACLState(t *testing.T) {
	a := ACLState([]policy.ACLEntryCounter{
		{Set: policy.ACLSetKey{Name: "host1-in", Type: policy.ACLIPv4}, Seq: 10, Packets: 3, Octets: 180},
		{Set: policy.ACLSetKey{Name: "host1-in", Type: policy.ACLIPv6}, Seq: 20, Packets: 1, Octets: 80},
	})
	e := a.GetAclSet("host1-in", oc.Acl_ACL_TYPE_ACL_IPV4).GetAclEntry(10)
	if e.GetMatchedPackets() != 3 || e.GetMatchedOctets() != 180 {
		t.Errorf("IPv4 entry 10: %d packets, %d octets; want 3, 180", e.GetMatchedPackets(), e.GetMatchedOctets())
	}
	e = a.GetAclSet("host1-in", oc.Acl_ACL_TYPE_ACL_IPV6).GetAclEntry(20)
	if e.GetMatchedPackets() != 1 || e.GetMatchedOctets() != 80 {
		t.Errorf("IPv6 entry 20: %d packets, %d octets; want 1, 80", e.GetMatchedPackets(), e.GetMatchedOctets())
	}
	// The state paths gNMI will serve.
	ns, err := ygot.TogNMINotifications(&oc.Device{Acl: a}, 0, ygot.GNMINotificationsConfig{UsePathElem: true})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range ns {
		for _, u := range n.GetUpdate() {
			pre, _ := ygot.PathToString(n.GetPrefix())
			p, _ := ygot.PathToString(u.GetPath())
			p = strings.TrimSuffix(pre, "/") + p
			if p == "/acl/acl-sets/acl-set[name=host1-in][type=ACL_IPV4]/acl-entries/acl-entry[sequence-id=10]/state/matched-packets" && u.GetVal().GetUintVal() == 3 {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("no matched-packets 3 at the IPv4 entry's state path in %v", ns)
	}
}
