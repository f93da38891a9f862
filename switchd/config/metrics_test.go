package config

import (
	"net/netip"
	"testing"
)

// withMetrics is examples/host.json with /switchd/metrics/config set to c.
func withMetrics(t *testing.T, c map[string]any) []byte {
	return withSwitchdConfig(t, "metrics", c)
}

func TestParseMetrics(t *testing.T) {
	for _, tc := range []struct {
		cfg  map[string]any
		want Metrics
	}{
		{map[string]any{"enabled": true, "address": "127.0.0.1:9100"}, Metrics{Enabled: true, Address: netip.MustParseAddrPort("127.0.0.1:9100")}},
		{map[string]any{"enabled": true, "address": "[::]:9100"}, Metrics{Enabled: true, Address: netip.MustParseAddrPort("[::]:9100")}},
		// Not enabled: the address is not used, whatever it holds.
		{map[string]any{"enabled": false, "address": "127.0.0.1:9100"}, Metrics{}},
		{map[string]any{"address": "nonsense"}, Metrics{}},
	} {
		in, err := Parse(withMetrics(t, tc.cfg), "host.json")
		if err != nil {
			t.Fatalf("%v: %v", tc.cfg, err)
		}
		if in.Metrics != tc.want {
			t.Errorf("%v: got %+v, want %+v", tc.cfg, in.Metrics, tc.want)
		}
	}
}

func TestParseRejectsMetrics(t *testing.T) {
	const addr = "/switchd/metrics/config/address"
	for _, tc := range []struct {
		cfg    map[string]any
		path   string
		reason string
	}{
		{map[string]any{"enabled": true}, addr, "no address"},
		{map[string]any{"enabled": true, "address": "127.0.0.1"}, addr, "not an ip:port"},
		{map[string]any{"enabled": true, "address": "localhost:9100"}, addr, "not an ip:port"},
		{map[string]any{"enabled": true, "address": "127.0.0.1:0"}, addr, "port 0"},
		{map[string]any{"enabled": true, "address": "[fe80::1%eth0]:9100"}, addr, "zone"},
		{map[string]any{"enabled": "yes", "address": "127.0.0.1:9100"}, "/switchd/metrics/config/enabled", ""},
	} {
		_, err := Parse(withMetrics(t, tc.cfg), "host.json")
		wantConfigError(t, err, tc.path, tc.reason)
	}
}
