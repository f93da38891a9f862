package state

import (
	"maps"
	"slices"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"

	"github.com/switchd/switchd/host"
	"github.com/switchd/switchd/host/endpointapi"
	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/policy"
	"github.com/switchd/switchd/switchd/config"
)

// ACL publishes the ACL entries' counters (the full set, as
// policy.ACLCounters gives them; nil when no ACL is configured) under
// /acl, rendered by config.ACLState. An entry no longer there is
// deleted.
func (t *Tree) ACL(cs []policy.ACLEntryCounter) error {
	p := []*gpb.PathElem{elem("acl")}
	if len(cs) == 0 {
		return t.publish(p, nil)
	}
	return t.publish(p, config.ACLState(cs))
}

// Endpoints publishes host's endpoint events under
// /switchd/endpoints/endpoint: an added or updated endpoint is rendered,
// a removed one deleted.
func (t *Tree) Endpoints(evs []host.EndpointEvent) error {
	var errs joinErrs
	for _, ev := range evs {
		e := ev.Endpoint
		if ev.Type == host.EndpointRemoved {
			if name, ok := t.endpoints[e.ID]; ok {
				delete(t.endpoints, e.ID)
				errs.add(t.publish(endpointPath(name), nil))
			}
			continue
		}
		o := Endpoint(e)
		if old, ok := t.endpoints[e.ID]; ok && old != *o.Name {
			errs.add(t.publish(endpointPath(old), nil))
		}
		t.endpoints[e.ID] = *o.Name
		errs.add(t.publish(endpointPath(*o.Name), o))
	}
	return errs.err()
}

func endpointPath(name string) []*gpb.PathElem {
	return []*gpb.PathElem{elem("switchd"), elem("endpoints"), elem("endpoint", "name", name)}
}

// Endpoint renders a workload endpoint as the state of
// /switchd/endpoints/endpoint: kind, host-side interface, addresses, MAC
// and labels. A VM is keyed by its name, as the config keys it; a
// container by its endpoint ID (container ID/interface), which is unique
// where the container ID alone is not.
func Endpoint(e host.Endpoint) *oc.Switchd_Endpoint {
	o := &oc.Switchd_Endpoint{Name: ygot.String(e.ID), Interface: ygot.String(e.HostIface)}
	switch e.Kind {
	case endpointapi.KindVM:
		o.Kind = oc.Switchd_EndpointKind_VM
		o.Name = ygot.String(e.Name)
	case endpointapi.KindContainer, endpointapi.KindDocker:
		o.Kind = oc.Switchd_EndpointKind_CONTAINER
	}
	if e.IPv4.IsValid() {
		o.Ipv4Address = ygot.String(e.IPv4.String())
	}
	if e.IPv6.IsValid() {
		o.Ipv6Address = ygot.String(e.IPv6.String())
	}
	if e.MAC != "" {
		o.Mac = ygot.String(e.MAC)
	}
	for _, k := range slices.Sorted(maps.Keys(e.Labels)) {
		l := o.GetOrCreateLabel(k)
		l.Value = ygot.String(e.Labels[k])
	}
	return o
}
