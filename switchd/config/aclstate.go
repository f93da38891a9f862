package config

import (
	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/policy"
)

var ocACLTypes = map[policy.ACLType]oc.E_Acl_ACL_TYPE{
	policy.ACLIPv4:  oc.Acl_ACL_TYPE_ACL_IPV4,
	policy.ACLIPv6:  oc.Acl_ACL_TYPE_ACL_IPV6,
	policy.ACLMixed: oc.Acl_ACL_TYPE_ACL_MIXED,
}

// ACLState renders ACL entry counters (policy.ACLCounters) as the state
// of /acl: each entry's matched-packets and matched-octets under its
// acl-set, keyed as the config keys it, for the status and gNMI.
func ACLState(cs []policy.ACLEntryCounter) *oc.Acl {
	a := &oc.Acl{}
	for _, c := range cs {
		typ, ok := ocACLTypes[c.Set.Type]
		if !ok {
			continue
		}
		s := a.GetOrCreateAclSet(c.Set.Name, typ)
		e := s.GetOrCreateAclEntry(c.Seq)
		e.MatchedPackets = &c.Packets
		e.MatchedOctets = &c.Octets
	}
	return a
}
