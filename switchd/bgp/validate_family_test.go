package bgp

import (
	"strings"
	"testing"
)

// TestValidateRefusesFamilyOfOtherSession: GoBGP sends IPv4 routes over an
// IPv6 session (and the reverse) with a next hop of the session's family
// without negotiating RFC 8950 extended next hop, and the peer drops them
// while switchd counts them sent. Such a neighbor is refused.
func TestValidateRefusesFamilyOfOtherSession(t *testing.T) {
	for _, tc := range []struct {
		neighbor int
		want     string
	}{
		{1, "neighbor 1 (fd00::2): IPV4_UNICAST over an IPv6 session needs RFC 8950 extended next hop"},
		{0, "neighbor 0 (10.0.0.2): IPV6_UNICAST over an IPv4 session needs RFC 8950 extended next hop"},
	} {
		c := goodConfig()
		c.Neighbors[tc.neighbor].Families = []Family{IPv4Unicast, IPv6Unicast}
		_, err := validate(c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("validate: %v, want an error containing %q", err, tc.want)
		}
	}
}
