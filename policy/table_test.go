package policy

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/switchd/switchd/sim/ns"
)

func TestMain(m *testing.M) { ns.TestMain(m) }

// Expressions for test rules (what the compiler will emit, in miniature).

// tcpPort is `tcp dport P counter accept`.
func tcpPort(p uint16) ChainRule {
	port := binary.BigEndian.AppendUint16(nil, p)
	return ChainRule{ID: fmt.Sprintf("tcp-%d", p), Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}}
}

// saddrIn is `ip saddr @set counter accept`.
func saddrIn(set string) ChainRule {
	return ChainRule{ID: "saddr-" + set, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: set},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}}
}

// spoofDrop is `iifname . ip saddr != @set drop` (anti-spoofing).
func spoofDrop(set string) ChainRule {
	return ChainRule{ID: "spoof", Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 8},
		&expr.Payload{DestRegister: 12, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Lookup{SourceRegister: 8, SetName: set, Invert: true},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}}
}

// vmapJump is `iifname vmap @map`.
func vmapJump(m string) ChainRule {
	return ChainRule{ID: "vmap-" + m, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Lookup{SourceRegister: 1, SetName: m, IsDestRegSet: true, DestRegister: 0},
	}}
}

func jumpTo(chain string) ChainRule {
	return ChainRule{ID: "jump-" + chain, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chain}}}
}

func addr4(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

func elem4(i int) Element { return Element{Key: addr4(i).AsSlice()} }

var (
	accept = nftables.ChainPolicyAccept
	drop   = nftables.ChainPolicyDrop
)

// demo is a table with every kind of object: a base chain with a vmap, an
// anti-spoofing lookup in a concatenated set, an interval set of prefixes,
// counters; two regular chains.
func demo(t testing.TB, tb *Table) {
	t.Helper()
	must(t, tb.SetSet(Set{Name: "web4", KeyType: nftables.TypeIPAddr, Interval: true}))
	must(t, tb.SetSet(Set{Name: "spoof", KeyType: nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIPAddr)}))
	must(t, tb.SetSet(Set{Name: "ifmap", KeyType: nftables.TypeIFName, Verdict: true}))
	must(t, tb.SetSet(Set{Name: "members", KeyType: nftables.TypeIPAddr}))
	must(t, tb.SetChain(Chain{Name: "wl-a", Rules: []ChainRule{saddrIn("web4"), tcpPort(5432)}}))
	must(t, tb.SetChain(Chain{Name: "spare", Rules: []ChainRule{tcpPort(22)}}))
	must(t, tb.SetChain(Chain{Name: "forward", Hook: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter,
		Policy: &accept, Rules: []ChainRule{spoofDrop("spoof"), vmapJump("ifmap"), saddrIn("members"), tcpPort(179)}}))
	must(t, tb.AddElements("web4", Prefix(netip.MustParsePrefix("192.0.2.0/24")), Prefix(netip.MustParsePrefix("198.51.100.0/25"))))
	must(t, tb.AddElements("spoof", Element{Key: Concat(IfName("wl-a"), addr4(1).AsSlice())}))
	must(t, tb.AddElements("ifmap", Element{Key: IfName("wl-a"), Jump: "wl-a"}))
	must(t, tb.AddElements("members", elem4(1), elem4(2), elem4(3)))
}

// applied makes a namespace (with someone else's table first if foreign)
// and the demo table applied there by a new Table.
func applied(t *testing.T, name string, withForeign bool) (*kernel, *Table) {
	t.Helper()
	n := ns.NewT(t, name)
	k := newKernel(t, n, DefaultName)
	if withForeign {
		loadForeign(t, k)
	}
	tb := NewTable(n.Net())
	t.Cleanup(func() { tb.Close() })
	demo(t, tb)
	must(t, tb.Apply(context.Background()))
	return k, tb
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// kernel reads what the kernel reports for table name in n.
type kernel struct {
	t    testing.TB
	c    *nftables.Conn
	n    *ns.NS
	name string
}

func newKernel(t testing.TB, n *ns.NS, name string) *kernel {
	c, err := nftables.New(nftables.WithNetNSFd(n.Fd()))
	must(t, err)
	return &kernel{t: t, c: c, n: n, name: name}
}

func (k *kernel) tbl() *nftables.Table {
	return &nftables.Table{Name: k.name, Family: nftables.TableFamilyINet}
}

// handles maps chain -> its rule handles, in order.
func (k *kernel) handles() map[string][]uint64 {
	k.t.Helper()
	chains, err := k.c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	must(k.t, err)
	out := map[string][]uint64{}
	for _, c := range chains {
		if c.Table.Name != k.name {
			continue
		}
		rs, err := k.c.GetRules(k.tbl(), c)
		must(k.t, err)
		out[c.Name] = []uint64{}
		for _, r := range rs {
			out[c.Name] = append(out[c.Name], r.Handle)
		}
	}
	return out
}

func (k *kernel) chain(name string) *nftables.Chain {
	k.t.Helper()
	c, err := k.c.ListChain(k.tbl(), name)
	must(k.t, err)
	return c
}

func (k *kernel) elements(set string) []nftables.SetElement {
	k.t.Helper()
	es, err := k.c.GetSetElements(&nftables.Set{Table: k.tbl(), Name: set})
	must(k.t, err)
	return es
}

var handleRE = regexp.MustCompile(`# handle (\d+)`)

// tableHandle is the kernel's handle of the table (nft -a shows it).
func (k *kernel) tableHandle() string {
	k.t.Helper()
	out, err := k.n.Run(context.Background(), "nft", "-a", "list", "table", "inet", k.name)
	must(k.t, err)
	m := handleRE.FindStringSubmatch(strings.SplitN(out, "\n", 2)[0])
	if m == nil {
		k.t.Fatalf("no table handle in %q", out)
	}
	return m[1]
}

func (k *kernel) nft(args ...string) string {
	k.t.Helper()
	out, err := k.n.Run(context.Background(), append([]string{"nft"}, args...)...)
	must(k.t, err)
	return out
}

const foreign = `table inet other {
	set s {
		type ipv4_addr
		elements = { 10.9.9.9 }
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		ip saddr @s counter drop
		counter
	}
}
`

func TestPrivilegedApplyFromEmptyThenNothing(t *testing.T) {
	k, tb := applied(t, "pol-empty", false)
	ctx := context.Background()
	if !tb.InSync() {
		t.Fatal("not in sync after a successful Apply")
	}
	h := k.handles()
	want := map[string]int{"forward": 4, "wl-a": 2, "spare": 1}
	for c, nr := range want {
		if len(h[c]) != nr {
			t.Errorf("chain %s: %d rules in the kernel, want %d", c, len(h[c]), nr)
		}
	}
	if fw := k.chain("forward"); fw.Hooknum == nil || *fw.Hooknum != *nftables.ChainHookForward || *fw.Policy != accept {
		t.Errorf("forward chain: hook %v policy %v", fw.Hooknum, fw.Policy)
	}
	if got := len(k.elements("members")); got != 3 {
		t.Errorf("members: %d elements, want 3", got)
	}
	// An rbtree interval set holds a start and an end per range.
	if got := len(k.elements("web4")); got != 4 {
		t.Errorf("web4: %d elements, want 4 (2 ranges)", got)
	}
	if es := k.elements("ifmap"); len(es) != 1 || jumpOf(es[0].Val) != "wl-a" || string(es[0].Key) != string(IfName("wl-a")) {
		t.Errorf("ifmap: %v, want wl-a -> jump wl-a", es)
	}
	if got := len(k.elements("spoof")); got != 1 {
		t.Errorf("spoof: %d elements, want 1", got)
	}
	out := k.nft("list", "table", "inet", DefaultName)
	for _, s := range []string{"iifname vmap @ifmap", "192.0.2.0/24", `"wl-a" . 10.0.0.1`, "comment \"swd:"} {
		if !strings.Contains(out, s) {
			t.Errorf("nft list lacks %q:\n%s", s, out)
		}
	}

	must(t, tb.Apply(ctx))
	if tb.Messages() != 0 {
		t.Errorf("second Apply sent %d messages, want 0", tb.Messages())
	}
	tb.QueueResync()
	reads := tb.fullReads
	must(t, tb.Apply(ctx))
	if tb.Messages() != 0 || tb.fullReads != reads {
		t.Errorf("resync with nothing changed: %d messages, %d full reads, want 0, 0", tb.Messages(), tb.fullReads-reads)
	}
	if h2 := k.handles(); !equalHandles(h, h2) {
		t.Errorf("rule handles changed: %v -> %v", h, h2)
	}
}

func equalHandles(a, b map[string][]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for c, h := range a {
		if !slices.Equal(h, b[c]) {
			return false
		}
	}
	return true
}

func TestPrivilegedMembershipChangesNoRule(t *testing.T) {
	k, tb := applied(t, "pol-members", false)
	ctx := context.Background()
	before := k.handles()
	var es []Element
	for i := 100; i < 1100; i++ {
		es = append(es, elem4(i))
	}
	must(t, tb.AddElements("members", es...))
	must(t, tb.Apply(ctx))
	if got := len(k.elements("members")); got != 1003 {
		t.Errorf("members: %d elements after adding 1,000, want 1003", got)
	}
	if h := k.handles(); !equalHandles(before, h) {
		t.Errorf("adding elements changed rules: %v -> %v", before, h)
	}
	must(t, tb.DeleteElements("members", es...))
	must(t, tb.Apply(ctx))
	if got := len(k.elements("members")); got != 3 {
		t.Errorf("members: %d elements after deleting 1,000, want 3", got)
	}
	if h := k.handles(); !equalHandles(before, h) {
		t.Errorf("deleting elements changed rules: %v -> %v", before, h)
	}
	// A verdict map entry moves to another chain: elements only.
	must(t, tb.AddElements("ifmap", Element{Key: IfName("wl-a"), Jump: "spare"}))
	must(t, tb.Apply(ctx))
	if es := k.elements("ifmap"); len(es) != 1 || jumpOf(es[0].Val) != "spare" {
		t.Errorf("ifmap after the move: %d elements, want wl-a -> spare", len(es))
	}
	if h := k.handles(); !equalHandles(before, h) {
		t.Errorf("moving a map entry changed rules: %v -> %v", before, h)
	}
	must(t, tb.DeleteElements("ifmap", Element{Key: IfName("wl-a")}))
	must(t, tb.Apply(ctx))
	if es := k.elements("ifmap"); len(es) != 0 {
		t.Errorf("ifmap: %d elements after deleting its one key, want 0", len(es))
	}
}

func TestPrivilegedChainsMovedAndDeleted(t *testing.T) {
	k, tb := applied(t, "pol-chains", false)
	ctx := context.Background()
	h := k.handles()
	// A base chain's priority cannot change in place: the chain is rebuilt
	// in the same transaction.
	prio := nftables.ChainPriority(-10)
	must(t, tb.SetChain(Chain{Name: "forward", Hook: nftables.ChainHookForward, Priority: &prio,
		Policy: &drop, Rules: []ChainRule{spoofDrop("spoof"), vmapJump("ifmap"), saddrIn("members"), tcpPort(179)}}))
	tb.DeleteChain("spare")
	must(t, tb.Apply(ctx))
	fw := k.chain("forward")
	if *fw.Priority != prio || *fw.Policy != drop {
		t.Errorf("forward: priority %d policy %d, want %d, drop", *fw.Priority, *fw.Policy, prio)
	}
	h2 := k.handles()
	if len(h2["forward"]) != 4 || !slices.Equal(h2["wl-a"], h["wl-a"]) {
		t.Errorf("rules: %v -> %v", h, h2)
	}
	if _, ok := h2["spare"]; ok {
		t.Error("spare still there after DeleteChain")
	}
	tb.QueueResync()
	must(t, tb.Apply(ctx))
	if tb.Messages() != 0 {
		t.Errorf("resync after the move sent %d messages, want 0", tb.Messages())
	}
}

// loadForeign makes a table of someone else's in k's namespace, with the
// same hook and priority as ours, and returns how it looks.
func loadForeign(t testing.TB, k *kernel) string {
	f := t.TempDir() + "/other.nft"
	must(t, os.WriteFile(f, []byte(foreign), 0o644))
	k.nft("-f", f)
	return k.nft("-a", "list", "table", "inet", "other")
}

func TestPrivilegedDriftRepaired(t *testing.T) {
	k, tb := applied(t, "pol-drift", true)
	other := k.nft("-a", "list", "table", "inet", "other")
	ctx := context.Background()
	h := k.handles()

	// Behind our back: a rule, a chain, a set element, a base chain policy.
	k.nft("delete", "rule", "inet", DefaultName, "wl-a", "handle", fmt.Sprint(h["wl-a"][1]))
	k.nft("delete", "chain", "inet", DefaultName, "spare")
	k.nft("delete", "element", "inet", DefaultName, "members", "{ 10.0.0.2 }")
	k.nft("delete", "element", "inet", DefaultName, "web4", "{ 192.0.2.0/24 }")
	k.nft("chain", "inet", DefaultName, "forward", "{ policy drop ; }")
	k.nft("add", "rule", "inet", DefaultName, "wl-a", "counter", "accept") // not ours: removed

	full, sets := tb.fullReads, tb.setsRead
	tb.QueueResync()
	must(t, tb.Apply(ctx))
	// The notifications name what changed: the two sets are read again,
	// the other two are not, and the table is not read in full.
	if tb.fullReads != full || tb.setsRead-sets != 2 {
		t.Errorf("repair: %d full reads, %d sets read; want 0, 2", tb.fullReads-full, tb.setsRead-sets)
	}
	h2 := k.handles()
	if len(h2["wl-a"]) != 2 || h2["wl-a"][0] != h["wl-a"][0] {
		t.Errorf("wl-a: handles %v, want 2 rules starting with the kept %d", h2["wl-a"], h["wl-a"][0])
	}
	if len(h2["spare"]) != 1 {
		t.Errorf("spare: %v, want the chain back with 1 rule", h2["spare"])
	}
	if !slices.Equal(h2["forward"], h["forward"]) {
		t.Errorf("forward: handles %v -> %v, want untouched", h["forward"], h2["forward"])
	}
	if got := len(k.elements("members")); got != 3 {
		t.Errorf("members: %d elements, want 3", got)
	}
	if got := len(k.elements("web4")); got != 4 {
		t.Errorf("web4: %d elements, want 4 (2 ranges)", got)
	}
	if fw := k.chain("forward"); fw.Policy == nil || *fw.Policy != accept {
		t.Errorf("forward policy not repaired: %v", fw.Policy)
	}
	if got := k.nft("-a", "list", "table", "inet", "other"); got != other {
		t.Errorf("foreign table changed:\n%s\nwant\n%s", got, other)
	}
	must(t, tb.Apply(ctx))
	if tb.Messages() != 0 {
		t.Errorf("Apply after the repair sent %d messages, want 0", tb.Messages())
	}

	// The whole table deleted: back, with everything in it.
	k.nft("delete", "table", "inet", DefaultName)
	tb.QueueResync()
	must(t, tb.Apply(ctx))
	if h3 := k.handles(); len(h3["forward"]) != 4 || len(h3["wl-a"]) != 2 || len(h3["spare"]) != 1 || len(k.elements("members")) != 3 {
		t.Errorf("after deleting the table: %v, %d members", h3, len(k.elements("members")))
	}

	// A commit to another table moves the generation; its notifications
	// name nothing of ours, so the resync reads no element and leaves the
	// other table alone. With the notifications lost it reads everything.
	k.nft("add", "element", "inet", "other", "s", "{ 10.9.9.10 }")
	other = k.nft("-a", "list", "table", "inet", "other")
	full, sets = tb.fullReads, tb.setsRead
	tb.QueueResync()
	must(t, tb.Apply(ctx))
	if tb.fullReads != full || tb.setsRead != sets || tb.Messages() != 0 {
		t.Errorf("resync after a foreign commit: %d full reads, %d sets read, %d messages; want 0, 0, 0",
			tb.fullReads-full, tb.setsRead-sets, tb.Messages())
	}
	k.nft("add", "element", "inet", "other", "s", "{ 10.9.9.11 }")
	other = k.nft("-a", "list", "table", "inet", "other")
	tb.ev.full = true // as after a notification overflow
	tb.QueueResync()
	must(t, tb.Apply(ctx))
	if tb.fullReads != full+1 || tb.Messages() != 0 {
		t.Errorf("resync with notifications lost: %d full reads, %d messages; want 1, 0", tb.fullReads-full, tb.Messages())
	}
	if got := k.nft("-a", "list", "table", "inet", "other"); got != other {
		t.Errorf("foreign table changed:\n%s\nwant\n%s", got, other)
	}
}

func TestPrivilegedRestartAdopts(t *testing.T) {
	n := ns.NewT(t, "pol-restart")
	k := newKernel(t, n, DefaultName)
	other := loadForeign(t, k)
	ctx := context.Background()
	a := NewTable(n.Net())
	demo(t, a)
	must(t, a.Apply(ctx))
	a.Close() // as after SIGKILL: nothing is cleaned up
	th, h := k.tableHandle(), k.handles()

	b := NewTable(n.Net())
	defer b.Close()
	demo(t, b)
	must(t, b.Apply(ctx))
	if b.Messages() != 0 {
		t.Errorf("adopting an identical table sent %d messages, want 0", b.Messages())
	}
	if got := k.tableHandle(); got != th {
		t.Errorf("table handle %s -> %s: re-created", th, got)
	}
	if h2 := k.handles(); !equalHandles(h, h2) {
		t.Errorf("adoption changed rule handles: %v -> %v", h, h2)
	}

	// A restart with a changed desired state: a rule inserted in the middle
	// of wl-a, one dropped from forward, a member replaced.
	c := NewTable(n.Net())
	defer c.Close()
	demo(t, c)
	must(t, c.SetChain(Chain{Name: "wl-a", Rules: []ChainRule{saddrIn("web4"), tcpPort(80), tcpPort(5432)}}))
	must(t, c.SetChain(Chain{Name: "forward", Hook: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter,
		Policy: &accept, Rules: []ChainRule{spoofDrop("spoof"), vmapJump("ifmap"), saddrIn("members")}}))
	must(t, c.DeleteElements("members", elem4(3)))
	must(t, c.AddElements("members", elem4(9)))
	must(t, c.Apply(ctx))
	// One transaction: delete rule, insert rule, delete element, add element.
	if c.Messages() != 4 {
		t.Errorf("adopting with changes sent %d messages, want 4", c.Messages())
	}
	h3 := k.handles()
	if len(h3["wl-a"]) != 3 || h3["wl-a"][0] != h["wl-a"][0] || h3["wl-a"][2] != h["wl-a"][1] {
		t.Errorf("wl-a: %v -> %v, want the two kept rules around a new one", h["wl-a"], h3["wl-a"])
	}
	if !slices.Equal(h3["forward"], h["forward"][:3]) || !slices.Equal(h3["spare"], h["spare"]) {
		t.Errorf("forward/spare: %v -> %v", h, h3)
	}
	if got := k.tableHandle(); got != th {
		t.Errorf("table handle %s -> %s: re-created", th, got)
	}
	var got []string
	for _, e := range k.elements("members") {
		got = append(got, netip.AddrFrom4([4]byte(e.Key)).String())
	}
	slices.Sort(got)
	if want := []string{"10.0.0.1", "10.0.0.2", "10.0.0.9"}; !slices.Equal(got, want) {
		t.Errorf("members %v, want %v", got, want)
	}
	// The kernel's order of wl-a is the desired one.
	out := k.nft("list", "chain", "inet", DefaultName, "wl-a")
	if i, j := strings.Index(out, "dport 80"), strings.Index(out, "dport 5432"); i < 0 || j < 0 || i > j {
		t.Errorf("wl-a out of order:\n%s", out)
	}
	if got := k.nft("-a", "list", "table", "inet", "other"); got != other {
		t.Errorf("foreign table changed:\n%s\nwant\n%s", got, other)
	}
}

func TestPrivilegedFailedApplyChangesNothing(t *testing.T) {
	k, tb := applied(t, "pol-fail", false)
	ctx := context.Background()
	h := k.handles()
	before := k.nft("list", "table", "inet", DefaultName)

	must(t, tb.SetChain(Chain{Name: "wl-a", Rules: []ChainRule{saddrIn("web4"), tcpPort(5432), jumpTo("missing")}}))
	must(t, tb.AddElements("members", elem4(50)))
	must(t, tb.SetSet(Set{Name: "new", KeyType: nftables.TypeIPAddr}))
	err := tb.Apply(ctx)
	if err == nil || !strings.Contains(err.Error(), "apply table switchd") {
		t.Fatalf("Apply with a jump to a missing chain: %v, want an error naming the table", err)
	}
	if tb.InSync() || tb.LastError() == nil {
		t.Error("in sync after a failed Apply")
	}
	if after := k.nft("list", "table", "inet", DefaultName); after != before {
		t.Errorf("a failed Apply changed the kernel:\n%s\nwas\n%s", after, before)
	}

	must(t, tb.SetChain(Chain{Name: "missing", Rules: []ChainRule{tcpPort(8080)}}))
	reads := tb.fullReads
	must(t, tb.Apply(ctx))
	// An aborted transaction leaves the generation id alone, so the resync
	// the failure queued reads nothing.
	if tb.fullReads != reads {
		t.Errorf("the Apply after a failure read the table %d times, want 0", tb.fullReads-reads)
	}
	h2 := k.handles()
	if len(h2["wl-a"]) != 3 || !slices.Equal(h2["wl-a"][:2], h["wl-a"]) || len(h2["missing"]) != 1 {
		t.Errorf("after the fix: %v (was %v)", h2, h)
	}
	if got := len(k.elements("members")); got != 4 {
		t.Errorf("members: %d, want the pending element applied too (4)", got)
	}
	if !tb.InSync() {
		t.Error("not in sync after the fix")
	}
}

func TestPrivilegedCounters(t *testing.T) {
	n := ns.NewT(t, "pol-count")
	tb := NewTable(n.Net())
	defer tb.Close()
	icmp := ChainRule{ID: "icmp", Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMP}},
		&expr.Counter{},
	}}
	must(t, tb.SetChain(Chain{Name: "out", Hook: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter,
		Rules: []ChainRule{icmp, tcpPort(9)}}))
	ctx := context.Background()
	must(t, tb.Apply(ctx))
	if _, err := n.Run(ctx, "ping", "-c", "3", "-i", "0.01", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	cs, err := tb.Counters()
	must(t, err)
	if len(cs) != 2 || cs[0].ID != "icmp" || cs[0].Packets < 3 || cs[0].Bytes < 3*84 || cs[1].Packets != 0 {
		t.Errorf("counters %+v, want icmp >= 3 packets, tcp-9 none", cs)
	}
}

func TestPrivilegedSetRedefined(t *testing.T) {
	k, tb := applied(t, "pol-redef", false)
	ctx := context.Background()
	// members becomes an interval set while rules refer to it: re-created
	// with its elements, the rules refilled, in one transaction.
	must(t, tb.SetSet(Set{Name: "members", KeyType: nftables.TypeIPAddr, Interval: true}))
	must(t, tb.AddElements("members", Prefix(netip.MustParsePrefix("10.1.0.0/16"))))
	must(t, tb.Apply(ctx))
	if got := len(k.elements("members")); got != 8 {
		t.Errorf("members: %d kernel elements, want 8 (3 addresses and a /16 as ranges)", got)
	}
	if h := k.handles(); len(h["forward"]) != 4 || len(h["wl-a"]) != 2 || len(h["spare"]) != 1 {
		t.Errorf("rules after the re-creation: %v", h)
	}
	if !strings.Contains(k.nft("list", "set", "inet", DefaultName, "members"), "10.1.0.0/16") {
		t.Error("members lacks 10.1.0.0/16")
	}
	// A constant set's elements change the same way.
	must(t, tb.SetSet(Set{Name: "fixed", KeyType: nftables.TypeIPAddr, Constant: true}))
	must(t, tb.AddElements("fixed", elem4(7)))
	must(t, tb.SetChain(Chain{Name: "spare", Rules: []ChainRule{tcpPort(22), saddrIn("fixed")}}))
	must(t, tb.Apply(ctx))
	must(t, tb.AddElements("fixed", elem4(8)))
	must(t, tb.Apply(ctx))
	if got := len(k.elements("fixed")); got != 2 {
		t.Errorf("fixed: %d elements, want 2", got)
	}
	tb.QueueResync()
	must(t, tb.Apply(ctx))
	if tb.Messages() != 0 {
		t.Errorf("resync after re-creations sent %d messages, want 0", tb.Messages())
	}
}

// TestPrivilegedConcatIntervalReadBack: a concatenated interval set
// (iifname . ipv4 prefix) reads back as written, so a full resync after a
// restart finds nothing to do.
func TestPrivilegedConcatIntervalReadBack(t *testing.T) {
	k, tb := applied(t, "pol-concat", false)
	ctx := context.Background()
	nets := func(tb *Table) {
		must(t, tb.SetSet(Set{Name: "nets", KeyType: nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIPAddr), Interval: true}))
		for i, p := range []string{"10.1.0.0/16", "192.0.2.0/24"} {
			r := Prefix(netip.MustParsePrefix(p))
			ifn := IfName(fmt.Sprintf("wl-%d", i))
			must(t, tb.AddElements("nets", Element{Key: Concat(ifn, r.Key), KeyEnd: Concat(ifn, r.KeyEnd)}))
		}
	}
	nets(tb)
	must(t, tb.Apply(ctx))
	out := k.nft("list", "set", "inet", DefaultName, "nets")
	if !strings.Contains(out, `"wl-0" . 10.1.0.0/16`) || !strings.Contains(out, `"wl-1" . 192.0.2.0/24`) {
		t.Errorf("nets:\n%s", out)
	}
	b := NewTable(k.n.Net()) // a restart: a full read compares every element
	defer b.Close()
	demo(t, b)
	nets(b)
	must(t, b.Apply(ctx))
	if b.Messages() != 0 {
		t.Errorf("adopting the concatenated interval set sent %d messages, want 0", b.Messages())
	}
}

// jumpOf is the chain of a jump verdict as a dump returns it ("?" if it
// is none).
func jumpOf(val []byte) string {
	if c, g := verdictOf(val); !g {
		return c
	}
	return "?"
}
