package policy

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
)

// BenchmarkEndpointChange is the Engine's side of BenchmarkMembershipChange:
// with the db policy applied and 50,000 endpoints already present (role
// web: each an address in web's IPv4 and IPv6 sets; every tenth role db:
// a wl-to element into db's profile), one endpoint of role web (or db) is
// added or deleted, from UpsertEndpoint/DeleteEndpoint to the kernel's
// ack of the Apply; p50 and p99 per change.
func BenchmarkEndpointChange(b *testing.B) {
	for _, role := range []string{"web", "db"} {
		b.Run("role="+role, func(b *testing.B) {
			n := ns.NewT(b, "pol-epchange-"+role)
			e := NewEngine(n.Net())
			defer e.Close()
			must(b, e.SetIntent(dbPolicy()))
			for i := range 50000 {
				must(b, e.UpsertEndpoint(benchEndpoint(i, map[bool]string{true: "db", false: "web"}[i%10 == 0])))
			}
			ctx := context.Background()
			must(b, e.Apply(ctx))
			rules := e.Status().Rules
			ep := benchEndpoint(60000, role)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if i%2 == 0 {
					must(b, e.UpsertEndpoint(ep))
				} else {
					must(b, e.DeleteEndpoint(ep.ID))
				}
				must(b, e.Apply(ctx))
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			if st := e.Status(); st.Rules != rules || !st.InSync {
				b.Errorf("status %+v: want in sync with %d rules", st, rules)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// benchEndpoint i has interface b<i> and 10.80.i/16+, 2001:db8:80::i.
func benchEndpoint(i int, role string) Endpoint {
	return Endpoint{ID: fmt.Sprintf("b%d", i), Interface: fmt.Sprintf("b%d", i),
		Addrs: []netip.Addr{netip.AddrFrom4([4]byte{10, 80 + byte(i>>16), byte(i >> 8), byte(i)}),
			netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x80, 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})},
		Labels: map[string]string{"role": role}}
}
