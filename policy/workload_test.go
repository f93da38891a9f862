package policy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
)

// wlHost is a host namespace with workload namespaces on veths: workload
// i has eth0 with 10.64.i.1/31 and 2001:db8:i::1/127, the host side
// wl-<name> has .0 and ::0 and forwards between them.
type wlHost struct {
	t    *testing.T
	host *ns.NS
	wls  map[string]*ns.NS
	eps  map[string]Endpoint
}

func newWLHost(t *testing.T, names ...string) *wlHost {
	h := &wlHost{t: t, host: ns.NewT(t, "wl-host"), wls: map[string]*ns.NS{}, eps: map[string]Endpoint{}}
	ctx := context.Background()
	for _, s := range []string{"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"} {
		if _, err := h.host.Run(ctx, "sysctl", "-qw", s); err != nil {
			t.Fatal(err)
		}
	}
	for i, name := range names {
		n := ns.NewT(t, "wl-"+name)
		ifname := "wl-" + name
		must(t, ns.Veth(h.host, ifname, n, "eth0"))
		v4, v6 := netip.AddrFrom4([4]byte{10, 64, byte(i), 1}), netip.MustParseAddr(fmt.Sprintf("2001:db8:%d::1", i))
		must(t, h.host.AddAddr(ifname, netip.PrefixFrom(v4.Prev(), 31)))
		must(t, h.host.AddAddr(ifname, netip.PrefixFrom(v6.Prev(), 127)))
		must(t, n.AddAddr("eth0", netip.PrefixFrom(v4, 31)))
		must(t, n.AddAddr("eth0", netip.PrefixFrom(v6, 127)))
		for _, r := range [][]string{{"ip", "route", "add", "default", "via", v4.Prev().String()},
			{"ip", "-6", "route", "add", "default", "via", v6.Prev().String()}} {
			if _, err := n.Run(ctx, r...); err != nil {
				t.Fatal(err)
			}
		}
		// Forwarding starts once DAD on the link-local addresses ends.
		for _, a := range []netip.Addr{v4, v6} {
			deadline := time.Now().Add(5 * time.Second)
			for {
				_, err := h.host.Run(ctx, "ping", "-c1", "-W1", a.String())
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal(err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		h.wls[name] = n
		h.eps[name] = Endpoint{ID: name, Interface: ifname, Addrs: []netip.Addr{v4, v6}, Labels: map[string]string{"role": name}}
	}
	return h
}

// engine is an Engine in the host with the named workloads as endpoints,
// closed when the test ends.
func (h *wlHost) engine(names ...string) *Engine {
	e := NewEngine(h.host.Net())
	h.t.Cleanup(func() { e.Close() })
	for _, n := range names {
		must(h.t, e.UpsertEndpoint(h.eps[n]))
	}
	return e
}

// listen accepts (and closes) TCP connections on port of workload name,
// both families, until the test ends.
func (h *wlHost) listen(name string, port int) {
	serveTCP(h.t, h.wls[name], fmt.Sprintf(":%d", port))
}

// serveTCP accepts (and closes) TCP connections on addr inside n until
// the test ends.
func serveTCP(t *testing.T, n *ns.NS, addr string) {
	must(t, n.Do(func() error {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		return nil
	}))
}

// connect reports whether a TCP connection from workload from (from source
// address src if valid) to dst:port succeeds within the timeout.
func (h *wlHost) connect(from string, src, dst netip.Addr, port int, timeout time.Duration) bool {
	var err error
	h.wls[from].Do(func() error {
		d := net.Dialer{Timeout: timeout}
		if src.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		}
		var c net.Conn
		if c, err = d.Dial("tcp", netip.AddrPortFrom(dst, uint16(port)).String()); err == nil {
			c.Close()
		}
		return nil
	})
	if err != nil && testing.Verbose() {
		h.t.Logf("connect %s %v -> %v:%d: %v", from, src, dst, port, err)
	}
	return err == nil
}

// connects is connect for a connection expected to go through (want) or
// not: an expected one gets three tries, since on a loaded machine a first
// SYN can wait out the timeout behind neighbour discovery; an expected drop
// gets one.
func (h *wlHost) connects(from string, dst netip.Addr, port int, timeout time.Duration, want bool) bool {
	got := h.connect(from, netip.Addr{}, dst, port, timeout)
	for try := 1; want && !got && try < 3; try++ {
		got = h.connect(from, netip.Addr{}, dst, port, timeout)
	}
	return got
}

func (h *wlHost) ping(from string, dst netip.Addr) bool {
	_, err := h.wls[from].Run(context.Background(), "ping", "-c1", "-W1", dst.String())
	return err == nil
}

// dbPolicy selects role == "db" for ingress and allows only tcp/5432 from
// role == "web".
func dbPolicy() Intent {
	web := MustParseSelector(`role == "web"`)
	return Intent{Policies: []Policy{{
		Name: "db", Selector: MustParseSelector(`role == "db"`), SelectsIngress: true,
		Ingress: []Rule{{Seq: 10, Action: Allow, Protocol: ProtoTCP, DstPorts: []PortRange{{5432, 5432}}, Peer: Peer{Selector: &web}}},
	}}}
}

// expect checks what each family can do: web and other to db:5432, ping
// web to db and web to other.
func (h *wlHost) expect(step string, webDB, otherDB, pingDB bool) {
	h.t.Helper()
	for fam := range 2 {
		db, other := h.eps["db"].Addrs[fam], h.eps["other"].Addrs[fam]
		if got := h.connects("web", db, 5432, time.Second, webDB); got != webDB {
			h.t.Errorf("%s: web -> db %v:5432 connects %v, want %v", step, db, got, webDB)
		}
		if got := h.connects("other", db, 5432, 500*time.Millisecond, otherDB); got != otherDB {
			h.t.Errorf("%s: other -> db %v:5432 connects %v, want %v", step, db, got, otherDB)
		}
		if got := h.ping("web", db); got != pingDB {
			h.t.Errorf("%s: ping web -> db %v: %v, want %v", step, db, got, pingDB)
		}
		if !h.ping("web", other) {
			h.t.Errorf("%s: ping web -> other %v fails; no policy selects other", step, other)
		}
	}
}

// TestPrivilegedWorkloadPolicyTraffic is the acceptance: with a
// policy selecting role == "db" that allows ingress only from role ==
// "web" on tcp/5432, web reaches db:5432, other does not, ping to db is
// denied, other stays open; deleting the policy reopens db.
func TestPrivilegedWorkloadPolicyTraffic(t *testing.T) {
	h := newWLHost(t, "web", "db", "other")
	h.listen("db", 5432)
	e := h.engine("web", "db", "other")
	ctx := context.Background()
	must(t, e.SetIntent(Intent{}))
	must(t, e.Apply(ctx))
	h.expect("no policy", true, true, true)

	must(t, e.SetIntent(dbPolicy()))
	must(t, e.Apply(ctx))
	h.expect("db policy", true, false, false)
	st := e.Status()
	if !st.InSync || st.LastError != nil || st.Profiles != 1 || st.Endpoints != 3 {
		t.Errorf("status %+v, want in sync, 1 profile, 3 endpoints", st)
	}
	k := newKernel(t, h.host, DefaultName)
	if got := len(k.elements(selectorSetName(fam4, `role == "web"`))); got != 1 {
		t.Errorf("web's IPv4 selector set has %d elements, want 1", got)
	}
	cs, err := e.Table().Counters()
	must(t, err)
	drops := uint64(0)
	for _, c := range cs {
		if c.ID == `ingress default deny: db` {
			drops += c.Packets
		}
	}
	if drops == 0 {
		t.Errorf("the db profile's default drop counted nothing: %+v", cs)
	}

	// Only a rule changes (another port): no endpoint moves, the
	// profile chain is edited.
	before := k.handles()
	moved := dbPolicy()
	moved.Policies[0].Ingress[0].DstPorts = []PortRange{{5433, 5433}}
	must(t, e.SetIntent(moved))
	must(t, e.Apply(ctx))
	if m := e.Table().Messages(); m != 8 {
		t.Errorf("a port change sent %d messages, want 8 (the IPv4 and IPv6 rules, endpoints' and network sets', out, their successors in)", m)
	}
	after := k.handles()
	for name, hs := range before {
		if !strings.HasPrefix(name, "wli-") && !slices.Equal(hs, after[name]) {
			t.Errorf("a port change touched chain %s: %v -> %v", name, hs, after[name])
		}
	}
	h.expect("db policy on tcp/5433", false, false, false)

	// The same by CIDRs: web's networks and other's, except other's; two
	// port ranges make a port set.
	in := dbPolicy()
	in.Policies[0].Ingress[0].Peer = Peer{
		CIDRs:  []netip.Prefix{netip.MustParsePrefix("10.64.0.0/16"), netip.MustParsePrefix("2001:db8::/32")},
		Except: []netip.Prefix{netip.MustParsePrefix("10.64.2.0/24"), netip.MustParsePrefix("2001:db8:2::/48")},
	}
	in.Policies[0].Ingress[0].DstPorts = []PortRange{{5432, 5432}, {6000, 6100}}
	must(t, e.SetIntent(in))
	must(t, e.Apply(ctx))
	h.expect("db policy by CIDR", true, false, false)

	must(t, e.SetIntent(Intent{}))
	must(t, e.Apply(ctx))
	h.expect("policy deleted", true, true, true)
	if h := k.handles(); len(h) != 0 {
		t.Errorf("chains left with no policy: %v", h)
	}
	if sets, err := k.c.GetSets(k.tbl()); err != nil || len(sets) != 0 {
		t.Errorf("sets left with no policy: %d (%v)", len(sets), err)
	}
}

// fakeEndpoint i has a made-up interface (no packet comes through it) and
// the addresses 10.70.i/16 and 2001:db8:70::i.
func fakeEndpoint(i int, role string) Endpoint {
	return Endpoint{ID: fmt.Sprintf("fk%d", i), Interface: fmt.Sprintf("fk%d", i),
		Addrs: []netip.Addr{netip.AddrFrom4([4]byte{10, 70, byte(i >> 8), byte(i)}),
			netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x70, 14: byte(i >> 8), 15: byte(i)})},
		Labels: map[string]string{"role": role}}
}

// TestPrivileged1000EndpointsChangeNoRule: adding 1,000 endpoints that
// match the peer selector role == "web" of an applied policy leaves every
// rule handle as it was and grows the selector's sets by 1,000 elements;
// each is then reachable as its label says (a TCP connection to db:5432
// from its address, which the "other" workload holds on lo); a label
// change moves one endpoint from the selector's sets to db's profile
// (elements only) and blocks it.
func TestPrivileged1000EndpointsChangeNoRule(t *testing.T) {
	h := newWLHost(t, "web", "db", "other")
	h.listen("db", 5432)
	ctx := context.Background()
	var batch []byte
	for i := range 1000 {
		batch = fmt.Appendf(batch, "address add %v/32 dev lo\n", fakeEndpoint(i, "").Addrs[0])
	}
	f := t.TempDir() + "/addrs"
	must(t, os.WriteFile(f, batch, 0o644))
	for _, c := range [][]string{{"ip", "link", "set", "lo", "up"}, {"ip", "-batch", f}} {
		if _, err := h.wls["other"].Run(ctx, c...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.host.Run(ctx, "ip", "route", "add", "10.70.0.0/16", "via", h.eps["other"].Addrs[0].String()); err != nil {
		t.Fatal(err)
	}

	e := NewEngine(h.host.Net())
	defer e.Close()
	for _, n := range []string{"web", "db", "other"} {
		must(t, e.UpsertEndpoint(h.eps[n]))
	}
	must(t, e.SetIntent(dbPolicy()))
	must(t, e.Apply(ctx))
	k := newKernel(t, h.host, DefaultName)
	before, counts := k.handles(), e.Status().Counts
	web4, web6 := selectorSetName(fam4, `role == "web"`), selectorSetName(fam6, `role == "web"`)
	fake := func(i int) netip.Addr { return fakeEndpoint(i, "").Addrs[0] }
	db := h.eps["db"].Addrs[0]
	if h.connect("other", fake(0), db, 5432, 500*time.Millisecond) {
		t.Fatal("fk0's address reaches db:5432 before fk0 is an endpoint with role web")
	}

	for i := range 1000 {
		must(t, e.UpsertEndpoint(fakeEndpoint(i, "web")))
	}
	start := time.Now()
	must(t, e.Apply(ctx))
	t.Logf("1,000 endpoints in one Apply: %v, %d messages", time.Since(start), e.Table().Messages())
	if h := k.handles(); !equalHandles(before, h) {
		t.Errorf("adding 1,000 endpoints changed rules: %v -> %v", before, h)
	}
	if c := e.Status().Counts; c.Rules != counts.Rules || c.Chains != counts.Chains || c.Elements != counts.Elements+4000 {
		t.Errorf("counts %+v -> %+v, want the same rules and chains, 4,000 more elements (web's sets, wl-to, wl-from)", counts, c)
	}
	if n4, n6 := len(k.elements(web4)), len(k.elements(web6)); n4 != 1001 || n6 != 1001 {
		t.Errorf("web's sets: %d and %d elements, want 1,001 each", n4, n6)
	}
	for i := range 1000 {
		if !h.connect("other", fake(i), db, 5432, time.Second) {
			t.Fatalf("fk%d (role web) does not reach db:5432", i)
		}
	}

	// fk0 becomes a db: out of web's sets, into db's profile.
	must(t, e.UpsertEndpoint(fakeEndpoint(0, "db")))
	must(t, e.Apply(ctx))
	if e.Table().Messages() != 4 {
		t.Errorf("a label change sent %d messages, want 4 (an element out of each web set, fk0's wl-to element out and in)", e.Table().Messages())
	}
	if h := k.handles(); !equalHandles(before, h) {
		t.Errorf("a label change changed rules: %v -> %v", before, h)
	}
	if n4 := len(k.elements(web4)); n4 != 1000 {
		t.Errorf("web's IPv4 set: %d elements after fk0 left, want 1,000", n4)
	}
	prof := 0
	for _, el := range k.elements(wlToMap) {
		if c, _ := verdictOf(el.Val); c != wlOpenChain {
			prof++
		}
	}
	if prof != 2 {
		t.Errorf("wl-to: %d elements to a profile, want db's and fk0's", prof)
	}
	if h.connect("other", fake(0), db, 5432, 500*time.Millisecond) {
		t.Error("fk0 (now role db) still reaches db:5432")
	}
	if !h.connect("other", fake(1), db, 5432, time.Second) {
		t.Error("fk1 (role web) no longer reaches db:5432")
	}
}
