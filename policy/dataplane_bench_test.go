package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
)

// BenchmarkDataplane is the data-plane benchmark: iperf3 TCP
// throughput from a client namespace through a forwarding router
// namespace to a server namespace, with the router's switchd table (an
// Engine, the client's and server's veths as endpoints) in a
// configuration, as a ratio to the same path with no table at all.
// Each iteration is a round of one run without the table and one with
// it, in alternating order, so drift of the shared machine's load
// cancels; the table is applied before and deleted after each run
// with it. Reported: the median and lowest ratio over the rounds and
// the median throughputs. Run with -benchtime=Nx (N rounds; each run
// takes iperfSeconds+2 s).
//
// Configurations:
//
//   - acl=1000: an ACL set of 999 DROP entries no packet of the flow
//     matches (TCP from a /32 of 198.18/15 to a port) and a last ACCEPT
//     entry, bound ingress on both router interfaces: every packet
//     passes all 1,000 entries, as ACLs are stateless (one shape, no
//     overlaps: the compiler makes them one run, a single lookup);
//   - acl=1000-mixed: the same size and binding, but entries as an edge
//     ACL has them (mixedACL): blocks of entries of several shapes and
//     both actions, prefixes that overlap now and then, some logged,
//     some naming a defined set, some matching TCP flags; a last ACCEPT;
//   - selector=100k: workload policy selecting the server (role db)
//     that allows tcp/5201 only from role web, whose selector set has
//     the client and 99,999 other addresses (the SetMembers seam), so
//     the flow's first packet is looked up in a 100,000-element set and
//     the rest pass as established;
//   - antispoof: anti-spoofing on with both endpoints (every packet's
//     interface . source is looked up);
//   - all: the three together.
func BenchmarkDataplane(b *testing.B) {
	ns.Privileged(b)
	if _, err := exec.LookPath("iperf3"); err != nil {
		b.Skip("iperf3 not installed")
	}
	for _, v := range dataplaneVariants() {
		b.Run("policy="+v.name, func(b *testing.B) {
			p := newDataplanePath(b, v.name)
			var ratios, base, with []float64
			for i := 0; i < b.N; i++ {
				runs := []bool{false, true}
				if i%2 == 1 {
					runs = []bool{true, false}
				}
				var bps [2]float64
				for _, table := range runs {
					if table {
						bps[1] = p.withTable(v)
					} else {
						if out := p.run(p.router, "nft", "list", "tables"); out != "" {
							b.Fatalf("baseline run with tables in the router: %s", out)
						}
						bps[0] = p.iperf()
					}
				}
				base, with = append(base, bps[0]), append(with, bps[1])
				ratios = append(ratios, bps[1]/bps[0])
			}
			b.ReportMetric(median(ratios), "ratio")
			b.ReportMetric(slices.Min(ratios), "ratio-min")
			b.ReportMetric(median(base)/1e9, "base-Gbit/s")
			b.ReportMetric(median(with)/1e9, "policy-Gbit/s")
			b.ReportMetric(0, "ns/op") // a round's time says nothing
		})
	}
}

// iperfSeconds is the length of one iperf3 run (after a first second
// that is left out, while TCP ramps up).
const iperfSeconds = 3

// dataplaneVariant is a configuration of the router's Engine, and a check
// after a run that the table was in the flow's path.
type dataplaneVariant struct {
	name      string
	configure func(b *testing.B, e *Engine, p *dataplanePath)
	check     func(p *dataplanePath, e *Engine) error
}

func dataplaneVariants() []dataplaneVariant {
	acl := dataplaneVariant{"acl=1000", configureACL1000,
		counterAtLeast(ACLRuleID{Set: ACLSetKey{"bench", ACLIPv4}, Seq: 1000, Ingress: true}.String(), 1000)}
	mixed := dataplaneVariant{"acl=1000-mixed", configureACLMixed,
		counterAtLeast(ACLRuleID{Set: ACLSetKey{"mixed", ACLIPv4}, Seq: 1000, Ingress: true}.String(), 1000)}
	// iperf3's control and data connections: two SYNs.
	sel := dataplaneVariant{"selector=100k", configureSelector100k, counterAtLeast("db/ingress/10/ip", 2)}
	spoof := dataplaneVariant{"antispoof", configureAntiSpoof, forgedDropped}
	all := dataplaneVariant{"all", func(b *testing.B, e *Engine, p *dataplanePath) {
		configureACL1000(b, e, p)
		configureSelector100k(b, e, p)
		configureAntiSpoof(b, e, p)
	}, func(p *dataplanePath, e *Engine) error {
		return errors.Join(acl.check(p, e), sel.check(p, e), spoof.check(p, e))
	}}
	return []dataplaneVariant{acl, mixed, sel, spoof, all}
}

// counterAtLeast checks that a rule whose ID starts with prefix counted at
// least n packets.
func counterAtLeast(prefix string, n uint64) func(*dataplanePath, *Engine) error {
	return func(_ *dataplanePath, e *Engine) error {
		cs, err := e.Counters()
		if err != nil {
			return err
		}
		var ids []string
		for _, c := range cs {
			if strings.HasPrefix(c.ID, prefix) && c.Packets >= n {
				return nil
			}
			ids = append(ids, fmt.Sprintf("%s/%s=%d", c.Chain, c.ID, c.Packets))
		}
		return fmt.Errorf("no rule %q with %d packets or more among %d counters: %.600s", prefix, n, len(cs), strings.Join(ids, " "))
	}
}

// forgedDropped pings the server from the client's address that is not
// its endpoint's (dpForged) and checks that anti-spoofing counted it.
func forgedDropped(p *dataplanePath, e *Engine) error {
	p.client.Run(context.Background(), "ping", "-c1", "-W1", "-I", dpForged.String(), dpServer.String())
	return counterAtLeast(RuleSpoof4, 1)(p, e)
}

func configureACL1000(b *testing.B, e *Engine, p *dataplanePath) {
	entries := make([]ACLEntry, 0, 1000)
	for i := range 999 {
		src := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)}), 32)
		entries = append(entries, ACLEntry{Seq: uint32(i + 1), Family: ACLIPv4, Protocol: ProtoTCP,
			Src: AddrMatch{Prefix: src}, DstPorts: PortMatch{Ranges: []PortRange{{uint16(10000 + i), uint16(10000 + i)}}}, Action: ACLDrop})
	}
	entries = append(entries, ACLEntry{Seq: 1000, Family: ACLIPv4, Action: ACLAccept})
	key := ACLSetKey{"bench", ACLIPv4}
	must(b, e.SetACL(ACLIntent{
		Sets: []ACLSet{{Name: key.Name, Type: key.Type, Entries: entries}},
		Bindings: []ACLBinding{
			{Interface: p.cliIf, Ingress: []ACLSetKey{key}},
			{Interface: p.srvIf, Ingress: []ACLSetKey{key}},
		},
	}))
}

func configureACLMixed(b *testing.B, e *Engine, p *dataplanePath) {
	set, defined := mixedACL()
	key := set.Key()
	must(b, e.SetACL(ACLIntent{
		Sets:    []ACLSet{set},
		Defined: defined,
		Bindings: []ACLBinding{
			{Interface: p.cliIf, Ingress: []ACLSetKey{key}},
			{Interface: p.srvIf, Ingress: []ACLSetKey{key}},
		},
	}))
}

// mixedACL is 999 entries as an edge ACL might have them, none matching
// the benchmark's flow (10.70/16, tcp/5201 and the client's ephemeral
// ports), and a last ACCEPT: blocks of 1-40 entries, each block of one
// action and shape — source /24 + tcp + port, source /32 + destination
// /24 + tcp + port range, destination /32 + udp + port, source /16 of
// 100-119/8 only (a block list), source /24 + icmp, tcp + port below 5000 only —, with
// values drawn from small ranges (so entries overlap now and then); one
// entry in 30 logged, one in 100 naming a defined prefix set, one in 100
// matching TCP flags. The same every run (a fixed seed).
func mixedACL() (ACLSet, DefinedSets) {
	rng := rand.New(rand.NewPCG(1, 2))
	pfx := func(a, b, c, d byte, bits int) AddrMatch {
		return AddrMatch{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{a, b, c, d}), bits).Masked()}
	}
	ports := func(first, n int) PortMatch {
		return PortMatch{Ranges: []PortRange{{uint16(first), uint16(first + n)}}}
	}
	shapes := []func() ACLEntry{
		func() ACLEntry {
			return ACLEntry{Src: pfx(198, 18, byte(rng.IntN(256)), 0, 24), Protocol: ProtoTCP, DstPorts: ports(1+rng.IntN(4000), 0)}
		},
		func() ACLEntry {
			return ACLEntry{Src: pfx(198, 19, byte(rng.IntN(64)), byte(rng.IntN(256)), 32), Dst: pfx(203, 0, byte(rng.IntN(16)), 0, 24),
				Protocol: ProtoTCP, DstPorts: ports(1+rng.IntN(4000), rng.IntN(100))}
		},
		func() ACLEntry {
			return ACLEntry{Dst: pfx(203, 0, 113, byte(rng.IntN(256)), 32), Protocol: ProtoUDP, DstPorts: ports(1+rng.IntN(2000), 0)}
		},
		func() ACLEntry { return ACLEntry{Src: pfx(100+byte(rng.IntN(20)), byte(rng.IntN(256)), 0, 0, 16)} },
		func() ACLEntry { return ACLEntry{Src: pfx(198, 18, byte(rng.IntN(256)), 0, 24), Protocol: ProtoICMP} },
		func() ACLEntry { return ACLEntry{Protocol: ProtoTCP, DstPorts: ports(1+rng.IntN(4000), 0)} },
	}
	var es []ACLEntry
	for len(es) < 999 {
		shape := shapes[rng.IntN(len(shapes))]
		act := ACLDrop
		if rng.IntN(10) < 3 {
			act = ACLAccept
		}
		for n := 1 + rng.IntN(40); n > 0 && len(es) < 999; n-- {
			e := shape()
			e.Seq, e.Family, e.Action, e.Log = uint32(len(es)+1), ACLIPv4, act, rng.IntN(30) == 0
			switch rng.IntN(100) {
			case 0:
				e.Src = AddrMatch{Set: "blocked"}
			case 1:
				e.Protocol, e.DstPorts = ProtoTCP, PortMatch{}
				e.TCPFlags = &TCPFlagMatch{Mask: TCPSyn | TCPAck, Value: TCPSyn}
				e.Src = pfx(198, 18, byte(rng.IntN(256)), 0, 24)
			}
			es = append(es, e)
		}
	}
	es = append(es, ACLEntry{Seq: 1000, Family: ACLIPv4, Action: ACLAccept})
	defined := DefinedSets{IPv4: []PrefixSet{{Name: "blocked", Prefixes: []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24")}}}}
	return ACLSet{Name: "mixed", Type: ACLIPv4, Entries: es}, defined
}

func configureSelector100k(b *testing.B, e *Engine, p *dataplanePath) {
	in := dbPolicy()
	in.Policies[0].Ingress[0].DstPorts = []PortRange{{5201, 5201}}
	must(b, e.SetIntent(in))
	p.upsertEndpoints(b, e)
	addrs := make([]netip.Addr, 0, 99999)
	for i := range 99999 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{10, 100 + byte(i>>16), byte(i >> 8), byte(i)}))
	}
	must(b, e.SetMembers("bench", MustParseSelector(`role == "web"`), addrs))
}

func configureAntiSpoof(b *testing.B, e *Engine, p *dataplanePath) {
	p.upsertEndpoints(b, e)
	must(b, e.SetAntiSpoof(true))
}

// dataplanePath is client — router — server, each a namespace, on
// veths: the client is 10.70.1.2/24 (and dpForged) behind the router's cliIf, the
// server 10.70.2.2/24 behind srvIf, where iperf3 serves until the
// benchmark ends.
type dataplanePath struct {
	b                   *testing.B
	client, router, srv *ns.NS
	cliIf, srvIf        string
}

var (
	dpClient = netip.MustParseAddr("10.70.1.2")
	dpServer = netip.MustParseAddr("10.70.2.2")
	// dpForged is a second address of the client that is not its
	// endpoint's: anti-spoofing drops what it sends.
	dpForged = netip.MustParseAddr("10.71.0.2")
)

func newDataplanePath(b *testing.B, name string) *dataplanePath {
	name = strings.NewReplacer("=", "", "policy", "").Replace(name)
	p := &dataplanePath{b: b, client: ns.NewT(b, "dp-cli-"+name), router: ns.NewT(b, "dp-rtr-"+name),
		srv: ns.NewT(b, "dp-srv-"+name), cliIf: "cli0", srvIf: "srv0"}
	must(b, ns.Veth(p.router, p.cliIf, p.client, "eth0"))
	must(b, ns.Veth(p.router, p.srvIf, p.srv, "eth0"))
	for _, a := range []struct {
		n    *ns.NS
		link string
		p    string
	}{{p.router, p.cliIf, "10.70.1.1/24"}, {p.router, p.srvIf, "10.70.2.1/24"},
		{p.client, "eth0", dpClient.String() + "/24"}, {p.client, "eth0", dpForged.String() + "/32"}, {p.srv, "eth0", dpServer.String() + "/24"}} {
		must(b, a.n.AddAddr(a.link, netip.MustParsePrefix(a.p)))
	}
	p.run(p.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	p.run(p.client, "ip", "route", "add", "default", "via", "10.70.1.1")
	p.run(p.srv, "ip", "route", "add", "default", "via", "10.70.2.1")

	srv := p.srv.Command(context.Background(), "iperf3", "-s", "-B", dpServer.String())
	must(b, srv.Start())
	// Killed by its PID; ns.NewT's cleanup (registered earlier, so run
	// later) kills whatever else is left in the namespace.
	b.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.run(p.srv, "ss", "-Hltn", "sport = :5201"), "5201") {
		if time.Now().After(deadline) {
			b.Fatal("iperf3 server is not listening on 5201 after 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

func (p *dataplanePath) run(n *ns.NS, argv ...string) string {
	p.b.Helper()
	out, err := n.Run(context.Background(), argv...)
	must(p.b, err)
	return out
}

// upsertEndpoints makes the client (role web) and server (role db)
// endpoints of the router's interfaces toward them.
func (p *dataplanePath) upsertEndpoints(b *testing.B, e *Engine) {
	must(b, e.UpsertEndpoint(Endpoint{ID: "client", Interface: p.cliIf, Addrs: []netip.Addr{dpClient}, Labels: map[string]string{"role": "web"}}))
	must(b, e.UpsertEndpoint(Endpoint{ID: "server", Interface: p.srvIf, Addrs: []netip.Addr{dpServer}, Labels: map[string]string{"role": "db"}}))
}

// withTable applies v in the router, measures, checks the table was in
// the path, and deletes the table again.
func (p *dataplanePath) withTable(v dataplaneVariant) float64 {
	e := NewEngine(p.router.Net())
	defer func() {
		e.Close()
		if out, err := p.router.Run(context.Background(), "nft", "delete", "table", "inet", DefaultName); err != nil && !strings.Contains(out, "No such file") {
			p.b.Error(err)
		}
	}()
	v.configure(p.b, e, p)
	must(p.b, e.Apply(context.Background()))
	bps := p.iperf()
	if err := v.check(p, e); err != nil {
		p.b.Fatalf("%s: the flow missed the table: %v", v.name, err)
	}
	return bps
}

// iperf runs the iperf3 client for iperfSeconds and returns the bits per
// second the server received.
func (p *dataplanePath) iperf() float64 {
	p.b.Helper()
	// What the last change left to do settles first, for both kinds of
	// run alike: our garbage, and the kernel's deferred freeing of a
	// deleted table (100,000 elements) that would otherwise slow the
	// baseline run after it.
	runtime.GC()
	time.Sleep(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), (iperfSeconds+30)*time.Second)
	defer cancel()
	// CommandContext kills the client by its PID on the timeout.
	out, err := p.client.Command(ctx, "iperf3", "-c", dpServer.String(), "-t", fmt.Sprint(iperfSeconds), "-O", "1", "-J").Output()
	var res struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil || err != nil || res.Error != "" {
		p.b.Fatalf("iperf3 client: %v, %v, %s: %.500s", err, jerr, res.Error, out)
	}
	if res.End.SumReceived.BitsPerSecond <= 0 {
		p.b.Fatalf("iperf3 client reports no throughput: %.500s", out)
	}
	return res.End.SumReceived.BitsPerSecond
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	return s[len(s)/2]
}
