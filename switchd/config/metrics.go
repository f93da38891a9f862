package config

import (
	"fmt"
	"net/netip"

	"github.com/switchd/switchd/models/oc"
)

// Metrics is the Prometheus listener of /switchd/metrics/config. Whether
// the address can be bound is known only when the daemon tries: a port in
// use is a runtime error (logged, and in the status), not a config error.
type Metrics struct {
	Enabled bool
	// Address is where /metrics is served; valid when Enabled.
	Address netip.AddrPort
}

func (t *translator) metrics(sd *oc.Switchd, in *Intent) {
	m := sd.GetMetrics()
	if m == nil || !m.GetEnabled() {
		return
	}
	p := switchdPath.child("metrics").child("config").child("address")
	if m.Address == nil {
		t.add(p, "metrics are enabled but have no address (ip:port, e.g. 127.0.0.1:9100)")
		return
	}
	ap, err := netip.ParseAddrPort(m.GetAddress())
	if err != nil {
		t.add(p, fmt.Sprintf("%q is not an ip:port (e.g. 127.0.0.1:9100 or [::1]:9100)", m.GetAddress()))
		return
	}
	if ap.Port() == 0 {
		t.add(p, fmt.Sprintf("%q has port 0; name the port to listen on", m.GetAddress()))
		return
	}
	if ap.Addr().Zone() != "" {
		t.add(p, fmt.Sprintf("%q has a zone; give an address without one", m.GetAddress()))
		return
	}
	in.Metrics = Metrics{Enabled: true, Address: ap}
}
