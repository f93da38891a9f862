package policy

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/switchd/switchd/sim/ns"
)

// BenchmarkEndpointChange is the Engine's side of BenchmarkMembershipChange:
// with the db policy applied and 50,000 endpoints already present
// (engine50k), one endpoint of role web (or db) is
// added or deleted, from UpsertEndpoint/DeleteEndpoint to the kernel's
// ack of the Apply; p50 and p99 per change.
func BenchmarkEndpointChange(b *testing.B) {
	for _, role := range []string{"web", "db"} {
		b.Run("role="+role, func(b *testing.B) {
			e := engine50k(b, "pol-epchange-"+role)
			ctx := context.Background()
			rules := e.Status().Rules
			ep := benchEndpoint(60000, role)
			timeOps(b, b.N, func(i int) {
				if i%2 == 0 {
					must(b, e.UpsertEndpoint(ep))
				} else {
					must(b, e.DeleteEndpoint(ep.ID))
				}
				must(b, e.Apply(ctx))
			})
			if st := e.Status(); st.Rules != rules || !st.InSync {
				b.Errorf("status %+v: want in sync with %d rules", st, rules)
			}
		})
	}
}

// engine50k is an Engine in a new namespace with the db policy and
// 50,000 endpoints applied: role web (each an address in web's IPv4 and
// IPv6 sets), every tenth role db (a wl-to element into db's profile).
func engine50k(b *testing.B, name string) *Engine {
	e := NewEngine(ns.NewT(b, name).Net())
	b.Cleanup(func() { e.Close() })
	must(b, e.SetIntent(dbPolicy()))
	for i := range 50000 {
		must(b, e.UpsertEndpoint(benchEndpoint(i, map[bool]string{true: "db", false: "web"}[i%10 == 0])))
	}
	must(b, e.Apply(context.Background()))
	return e
}

// benchEndpoint i has interface b<i> and 10.80.i/16+, 2001:db8:80::i.
func benchEndpoint(i int, role string) Endpoint {
	return Endpoint{ID: fmt.Sprintf("b%d", i), Interface: fmt.Sprintf("b%d", i),
		Addrs: []netip.Addr{netip.AddrFrom4([4]byte{10, 80 + byte(i>>16), byte(i >> 8), byte(i)}),
			netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x80, 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})},
		Labels: map[string]string{"role": role}}
}

// BenchmarkSetIntent sets the db policy again with 50,000 endpoints
// present (a reload that left workload policy alone: nothing to do), and
// alternately with another port (every endpoint leaves and rejoins the
// compilation in memory; the Table sends the one rule that changed).
func BenchmarkSetIntent(b *testing.B) {
	for _, changed := range []bool{false, true} {
		b.Run(fmt.Sprintf("changed=%v", changed), func(b *testing.B) {
			e := engine50k(b, fmt.Sprintf("pol-setintent-%v", changed))
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				in := dbPolicy()
				if changed && i%2 == 0 {
					in.Policies[0].Ingress[0].DstPorts[0] = PortRange{5433, 5433}
				}
				must(b, e.SetIntent(in))
				must(b, e.Apply(ctx))
				if m := e.Table().Messages(); (m == 0) == changed {
					b.Fatalf("SetIntent (changed %v) sent %d messages", changed, m)
				}
			}
		})
	}
}
