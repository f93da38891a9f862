package config

import (
	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/models/oc"
)

// Dataplane holds the kernel forwarding settings of /switchd/config.
type Dataplane struct {
	// HashPolicy is fib_multipath_hash_policy: fib.HashL3 or fib.HashL4.
	HashPolicy int
	// ResilientBuckets, if not 0, makes ECMP groups resilient with this
	// many buckets (read at start).
	ResilientBuckets uint16
}

func (t *translator) dataplane(sd *oc.Switchd, in *Intent) {
	in.Dataplane = Dataplane{HashPolicy: fib.DefaultHashPolicy}
	if sd == nil {
		return
	}
	switch sd.EcmpHashPolicy {
	case oc.Switchd_EcmpHashPolicy_L3:
		in.Dataplane.HashPolicy = fib.HashL3
	case oc.Switchd_EcmpHashPolicy_L4:
		in.Dataplane.HashPolicy = fib.HashL4
	}
	in.Dataplane.ResilientBuckets = sd.GetResilientEcmpBuckets()
}
