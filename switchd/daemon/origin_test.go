package daemon

import (
	"testing"

	"github.com/switchd/switchd/fib"
)

// TestRouteOrigin: the AFT's origin-protocol of each kind of route
// switchd installs; a workload block's blackhole is an aggregate, not a
// connected route.
func TestRouteOrigin(t *testing.T) {
	for _, c := range []struct {
		r    fib.AFTRoute
		want string
	}{
		{fib.AFTRoute{Metric: BGPRouteMetric, Type: fib.Unicast}, "BGP"},
		{fib.AFTRoute{Metric: StaticRouteMetric, Type: fib.Unicast}, "STATIC"},
		{fib.AFTRoute{Metric: StaticRouteMetric, Type: fib.Blackhole}, "STATIC"},
		{fib.AFTRoute{Type: fib.Blackhole}, "LOCAL_AGGREGATE"},
		{fib.AFTRoute{Type: fib.Unicast}, "DIRECTLY_CONNECTED"},
	} {
		if got := routeOrigin(c.r); got != c.want {
			t.Errorf("routeOrigin(%+v) = %s, want %s", c.r, got, c.want)
		}
	}
}
