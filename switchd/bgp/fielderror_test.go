package bgp

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestValidateReportsFieldErrors checks that each rule switchd/config
// relies on comes back as a FieldError naming the neighbor (or the global
// settings) and the field, while the message keeps its context.
func TestValidateReportsFieldErrors(t *testing.T) {
	nb := ip("10.0.0.2")
	for _, tc := range []struct {
		name     string
		mod      func(*Config)
		neighbor netip.Addr
		field    string
		reason   string
	}{
		{"hold-time too short", func(c *Config) { c.Neighbors[0].Timers.HoldTime = 2 * time.Second },
			nb, FieldHoldTime, "hold-time 2s: must be at least 3s"},
		{"keepalive not below hold", func(c *Config) { c.Neighbors[0].Timers = Timers{HoldTime: 9 * time.Second, Keepalive: 9 * time.Second} },
			nb, FieldKeepalive, "keepalive-interval 9s must be shorter than hold-time 9s"},
		{"keepalive not below the default hold", func(c *Config) { c.Neighbors[0].Timers.Keepalive = 90 * time.Second },
			nb, FieldKeepalive, "keepalive-interval 1m30s must be shorter than hold-time 1m30s"},
		{"global restart-time over 4095s", func(c *Config) { c.GracefulRestart = GracefulRestart{Enabled: true, RestartTime: 4096 * time.Second} },
			netip.Addr{}, FieldRestartTime, "at most 4095s"},
		{"neighbor restart-time over 4095s", func(c *Config) {
			c.Neighbors[0].GracefulRestart = &GracefulRestart{Enabled: true, RestartTime: 4096 * time.Second}
		}, nb, FieldRestartTime, "at most 4095s"},
		{"asn", func(c *Config) { c.ASN = 0 }, netip.Addr{}, "config/as", "asn: must not be 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := goodConfig()
			tc.mod(&c)
			err := Validate(c)
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			fields, others := SplitErrors(err)
			if len(others) != 0 {
				t.Errorf("errors without a field: %v", others)
			}
			if len(fields) != 1 {
				t.Fatalf("field errors = %+v, want one", fields)
			}
			fe := fields[0]
			if fe.Neighbor != tc.neighbor || fe.Field != tc.field || !strings.Contains(fe.Reason, tc.reason) {
				t.Errorf("field error = %+v, want neighbor %v, field %s, reason containing %q", *fe, tc.neighbor, tc.field, tc.reason)
			}
			if tc.neighbor.IsValid() && !strings.Contains(err.Error(), "neighbor 0 (10.0.0.2): ") {
				t.Errorf("message %q does not name the neighbor", err)
			}
		})
	}
}

// TestSplitErrorsKeepsContextOfOthers checks that a problem without a field
// keeps the context it was reported in, for config to show as it is.
func TestSplitErrorsKeepsContextOfOthers(t *testing.T) {
	c := goodConfig()
	c.ListenPort = 70000
	c.Neighbors[1].Timers.HoldTime = time.Second
	fields, others := SplitErrors(Validate(c))
	if len(fields) != 1 || fields[0].Neighbor != ip("fd00::2") || fields[0].Field != FieldHoldTime {
		t.Errorf("field errors = %+v, want hold-time of fd00::2", fields)
	}
	if len(others) != 1 || others[0].Error() != "invalid bgp config: listen-port 70000: out of range" {
		t.Errorf("other errors = %v, want the listen-port one with its context", others)
	}
}
