package bgp

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
)

var (
	pfx = netip.MustParsePrefix
	ip  = netip.MustParseAddr
)

func goodConfig() Config {
	return Config{
		ASN:      65001,
		RouterID: ip("10.0.0.1"),
		Neighbors: []Neighbor{
			{Address: ip("10.0.0.2"), PeerAS: 65002, Enabled: true},
			{Address: ip("fd00::2"), PeerAS: 65002, Enabled: true},
		},
		Originate: []netip.Prefix{pfx("10.1.0.0/24"), pfx("2001:db8::/48")},
	}
}

func TestValidateAcceptsGoodConfig(t *testing.T) {
	d, err := validate(goodConfig())
	if err != nil {
		t.Fatal(err)
	}
	if d.global.ListenPort != 179 {
		t.Errorf("listen port = %d, want 179 for 0", d.global.ListenPort)
	}
	if got := d.neighbors[ip("fd00::2")].Families; !slices.Equal(got, []Family{IPv6Unicast}) {
		t.Errorf("default families of an IPv6 neighbor = %v, want [ipv6-unicast]", got)
	}
	if got := d.neighbors[ip("10.0.0.2")].Families; !slices.Equal(got, []Family{IPv4Unicast}) {
		t.Errorf("default families of an IPv4 neighbor = %v, want [ipv4-unicast]", got)
	}
}

func TestValidateNamesTheProblem(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"asn zero", func(c *Config) { c.ASN = 0 }, "asn"},
		{"router-id IPv6", func(c *Config) { c.RouterID = ip("fd00::1") }, "router-id fd00::1"},
		{"router-id missing", func(c *Config) { c.RouterID = netip.Addr{} }, "router-id"},
		{"duplicate neighbor", func(c *Config) { c.Neighbors = append(c.Neighbors, c.Neighbors[0]) }, "neighbor 10.0.0.2: configured twice"},
		{"peer-as zero", func(c *Config) { c.Neighbors[1].PeerAS = 0 }, "fd00::2"},
		{"bad family", func(c *Config) { c.Neighbors[0].Families = []Family{Family(9)} }, "family 9"},
		{"local address of other family", func(c *Config) { c.Neighbors[0].LocalAddress = ip("fd00::1") }, "local-address fd00::1"},
		{"hold time too short", func(c *Config) { c.Neighbors[0].Timers.HoldTime = 2 * time.Second }, "hold-time 2s"},
		{"fractional timer", func(c *Config) { c.Neighbors[0].Timers.ConnectRetry = 1500 * time.Millisecond }, "connect-retry 1.5s"},
		{"keepalive not below hold", func(c *Config) {
			c.Neighbors[0].Timers.HoldTime = 3 * time.Second
			c.Neighbors[0].Timers.Keepalive = 3 * time.Second
		}, "keepalive-interval 3s"},
		{"host bits", func(c *Config) { c.Originate = append(c.Originate, pfx("10.2.0.1/24")) }, "originate 10.2.0.1/24"},
		{"duplicate prefix", func(c *Config) { c.Originate = append(c.Originate, c.Originate[0]) }, "originate 10.1.0.0/24: listed twice"},
		{"port", func(c *Config) { c.ListenPort = 70000 }, "listen-port 70000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := goodConfig()
			tc.mod(&c)
			_, err := validate(c)
			if err == nil {
				t.Fatalf("validate accepted a config with %s", tc.name)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

func ecmp(mp Multipath) *routeTable {
	t := newRouteTable()
	t.configure(mp, []netip.Addr{ip("192.0.2.254")})
	return t
}

func learned(nh, asPath string) candidate {
	return candidate{nextHop: ip(nh), asPath: asPath}
}

func TestRouteTableReplacesSetPerEvent(t *testing.T) {
	rt := ecmp(Multipath{Enabled: true, MultipleAS: true})
	p := pfx("10.9.0.0/24")
	rt.onPaths(0, []pathUpdate{{prefix: p, c: learned("192.0.2.1", "a")}})
	want := []Route{{Prefix: p, NextHops: []netip.Addr{ip("192.0.2.1")}}}
	if got := rt.drain(); !slices.EqualFunc(got, want, routeEqual) {
		t.Fatalf("drain = %v, want %v", got, want)
	}
	// The multipath set grows: the event lists both paths.
	rt.onPaths(0, []pathUpdate{
		{prefix: p, c: learned("192.0.2.2", "a")},
		{prefix: p, c: learned("192.0.2.1", "a")},
	})
	want = []Route{{Prefix: p, NextHops: []netip.Addr{ip("192.0.2.1"), ip("192.0.2.2")}}}
	if got := rt.drain(); !slices.EqualFunc(got, want, routeEqual) {
		t.Fatalf("drain = %v, want %v", got, want)
	}
	if got := rt.drain(); len(got) != 0 {
		t.Fatalf("second drain = %v, want nothing new", got)
	}
	// An event that repeats the set changes nothing for fib.
	rt.onPaths(0, []pathUpdate{
		{prefix: p, c: learned("192.0.2.1", "a")},
		{prefix: p, c: learned("192.0.2.2", "a")},
	})
	if got := rt.drain(); len(got) != 0 {
		t.Fatalf("drain after an unchanged set = %v, want nothing", got)
	}
	// Shrink, then withdraw (GoBGP sends one withdrawn path).
	rt.onPaths(0, []pathUpdate{{prefix: p, c: learned("192.0.2.2", "a")}})
	want = []Route{{Prefix: p, NextHops: []netip.Addr{ip("192.0.2.2")}}}
	if got := rt.drain(); !slices.EqualFunc(got, want, routeEqual) {
		t.Fatalf("drain = %v, want %v", got, want)
	}
	rt.onPaths(0, []pathUpdate{{prefix: p, c: learned("192.0.2.2", "a"), withdraw: true}})
	want = []Route{{Prefix: p}}
	if got := rt.drain(); !slices.EqualFunc(got, want, routeEqual) {
		t.Fatalf("drain = %v, want %v", got, want)
	}
}

func TestRouteTableSelection(t *testing.T) {
	p := pfx("10.8.0.0/24")
	two := []pathUpdate{
		{prefix: p, c: learned("192.0.2.1", "65100")},
		{prefix: p, c: learned("192.0.2.3", "65200")},
		{prefix: p, c: learned("192.0.2.2", "65100")},
	}
	for _, tc := range []struct {
		name string
		mp   Multipath
		ups  []pathUpdate
		want []netip.Addr
	}{
		{"strict keeps equal AS_PATHs", Multipath{Enabled: true}, two, []netip.Addr{ip("192.0.2.1"), ip("192.0.2.2")}},
		{"relax keeps all", Multipath{Enabled: true, MultipleAS: true}, two, []netip.Addr{ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3")}},
		{"max-paths", Multipath{Enabled: true, MultipleAS: true, MaxPaths: 2}, two, []netip.Addr{ip("192.0.2.1"), ip("192.0.2.3")}},
		{"disabled takes the best", Multipath{}, two, []netip.Addr{ip("192.0.2.1")}},
		{"locally originated best is not learned", Multipath{Enabled: true}, []pathUpdate{
			{prefix: p, c: candidate{local: true}},
			{prefix: p, c: learned("192.0.2.1", "65100")},
		}, nil},
		{"own next hop skipped", Multipath{Enabled: true}, []pathUpdate{
			{prefix: p, c: learned("192.0.2.254", "65100")},
			{prefix: p, c: learned("192.0.2.1", "65100")},
		}, []netip.Addr{ip("192.0.2.1")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := ecmp(tc.mp)
			rt.onPaths(0, tc.ups)
			got := rt.drain()
			if tc.want == nil {
				if len(got) != 0 {
					t.Fatalf("drain = %v, want nothing", got)
				}
				return
			}
			want := []Route{{Prefix: p, NextHops: tc.want}}
			if !slices.EqualFunc(got, want, routeEqual) {
				t.Fatalf("drain = %v, want %v", got, want)
			}
		})
	}
}

func TestRouteTableDropsStaleAndStoppedEvents(t *testing.T) {
	rt := ecmp(Multipath{Enabled: true})
	p := pfx("10.9.0.0/24")
	gen := rt.newGeneration(false)
	rt.onPaths(gen-1, []pathUpdate{{prefix: p, c: learned("192.0.2.1", "a")}})
	if got := rt.drain(); len(got) != 0 {
		t.Fatalf("event of an old watch reached drain: %v", got)
	}
	rt.stop()
	rt.onPaths(gen, []pathUpdate{{prefix: p, c: learned("192.0.2.1", "a")}})
	if got := rt.drain(); len(got) != 0 {
		t.Fatalf("event after stop reached drain: %v", got)
	}
}

func TestRouteTableKickCoalesces(t *testing.T) {
	rt := ecmp(Multipath{Enabled: true})
	for i := range 3 {
		rt.onPaths(0, []pathUpdate{{prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16), c: learned("192.0.2.1", "a")}})
	}
	select {
	case <-rt.kick:
	default:
		t.Fatal("no kick after updates")
	}
	select {
	case <-rt.kick:
		t.Fatal("second kick: bursts must coalesce")
	default:
	}
	if got := rt.drain(); len(got) != 3 {
		t.Fatalf("drain = %v, want the 3 prefixes", got)
	}
}

func routeEqual(a, b Route) bool {
	return a.Prefix == b.Prefix && slices.Equal(a.NextHops, b.NextHops)
}

func TestValidatePolicyReferences(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"undefined policy", func(c *Config) { c.Neighbors[0].Import.Policies = []string{"nope"} }, `import-policy "nope": no such policy`},
		{"undefined prefix set", func(c *Config) {
			c.Policies = []Policy{{Name: "p", Statements: []Statement{{Name: "s", PrefixSet: "nope", Result: Accept}}}}
		}, `prefix-set "nope" is not defined`},
		{"range outside prefix", func(c *Config) {
			c.PrefixSets = []PrefixSet{{Name: "ps", Prefixes: []PrefixRange{{Prefix: pfx("10.0.0.0/24"), MinLen: 16, MaxLen: 32}}}}
		}, "masklength range 16..32"},
		{"restart time too long", func(c *Config) { c.GracefulRestart = GracefulRestart{Enabled: true, RestartTime: 2 * time.Hour} }, "restart-time 2h0m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := goodConfig()
			tc.mod(&c)
			_, err := validate(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("validate: err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestCompilePolicyPerNeighborAndFamily(t *testing.T) {
	c := goodConfig()
	c.PrefixSets = []PrefixSet{{Name: "mine", Prefixes: []PrefixRange{{Prefix: pfx("10.100.1.0/24"), MinLen: 24, MaxLen: 32}}}}
	c.Policies = []Policy{{Name: "p", Statements: []Statement{{Name: "in", PrefixSet: "mine", Result: Accept}}}}
	c.Neighbors[0].Import = PolicyChain{Policies: []string{"p"}, Default: Reject}
	d, err := validate(c)
	if err != nil {
		t.Fatal(err)
	}
	imp := d.policy.policies[0]
	// The AS-loop check comes first (loop.go); then the chains.
	if len(imp.Statements) == 0 || imp.Statements[0].Name != "loop/65001" {
		t.Fatalf("import statements = %v, want the loop check first", imp.Statements)
	}
	imp.Statements = imp.Statements[1:]
	// The v4 half matches; the set has no v6 half, so ANY cannot match v6
	// routes and no v6 statement exists; then the default.
	if len(imp.Statements) != 2 {
		t.Fatalf("import statements = %v, want the IPv4 match and the default", imp.Statements)
	}
	if got := imp.Statements[0].Conditions.NeighborSet.Name; got != "neighbor/10.0.0.2" {
		t.Errorf("statement neighbor set = %q", got)
	}
	if got := imp.Statements[1].Actions.RouteAction; got != api.RouteAction_ROUTE_ACTION_REJECT {
		t.Errorf("default statement action = %s, want REJECT", got)
	}
	if len(d.policy.policies[1].Statements) != 0 {
		t.Errorf("export policy has statements %v, want none", d.policy.policies[1].Statements)
	}
}
