package policy

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkNetworkSetChange: with the db policy and 50,000 endpoints
// applied (engine50k), a network set labelled role web gains or loses a
// host address, from SetIntent to the kernel's ack of the Apply; p50 and
// p99 per change. The intent differs in its network sets only, so no
// endpoint is recompiled and no rule sent.
func BenchmarkNetworkSetChange(b *testing.B) {
	e := engine50k(b, "pol-netset")
	ctx := context.Background()
	web := map[string]string{"role": "web"}
	base := NetworkSet{Name: "remote-web", Labels: web, Prefixes: pfxs("10.90.0.0/24", "2001:db8:90::/48")}
	more := NetworkSet{Name: "remote-web", Labels: web, Prefixes: pfxs("10.90.0.0/24", "10.91.0.5/32", "2001:db8:90::/48")}
	must(b, e.SetIntent(withNetSets(base)))
	must(b, e.Apply(ctx))
	rules := e.Status().Rules
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		in := withNetSets(base)
		if i%2 == 0 {
			in = withNetSets(more)
		}
		must(b, e.SetIntent(in))
		must(b, e.Apply(ctx))
		lat = append(lat, time.Since(start))
		if m := e.Table().Messages(); m != 1 {
			b.Fatalf("a network set change sent %d messages, want 1 (one element)", m)
		}
	}
	b.StopTimer()
	if st := e.Status(); st.Rules != rules || !st.InSync {
		b.Errorf("status %+v: want in sync with %d rules", st, rules)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
