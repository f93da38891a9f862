package host

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func mustIPAM(t *testing.T, pools ...Pool) *IPAM {
	t.Helper()
	p, err := NewIPAM(pools)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSubPrefix(t *testing.T) {
	for _, c := range []struct {
		p    string
		bits int
		i    uint64
		want string
	}{
		{"10.0.0.0/16", 26, 0, "10.0.0.0/26"},
		{"10.0.0.0/16", 26, 1, "10.0.0.64/26"},
		{"10.0.0.0/16", 26, 5, "10.0.1.64/26"},
		{"fd00::/64", 122, 0, "fd00::/122"},
		{"fd00::/64", 122, 3, "fd00::c0/122"},
		{"fd00::/48", 122, 1 << 60, "fd00:0:0:4::/122"},
	} {
		got := subPrefix(netip.MustParsePrefix(c.p), c.bits, c.i)
		if got.String() != c.want {
			t.Errorf("subPrefix(%s, %d, %d) = %v, want %s", c.p, c.bits, c.i, got, c.want)
		}
	}
}

func TestIPAMBlocksAndAllocation(t *testing.T) {
	p := mustIPAM(t,
		Pool{Prefix: netip.MustParsePrefix("10.1.0.0/24"), BlockBits: 28},
		Pool{Prefix: netip.MustParsePrefix("fd00:1::/64")},
	)
	var newBlocks []netip.Prefix
	for i := range 17 {
		a, nb, err := p.Allocate(fmt.Sprintf("ep%d", i), false)
		if err != nil {
			t.Fatal(err)
		}
		if want := netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}); a != want {
			t.Errorf("allocation %d = %v, want %v", i, a, want)
		}
		if nb.IsValid() {
			newBlocks = append(newBlocks, nb)
		}
	}
	if want := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/28"), netip.MustParsePrefix("10.1.0.16/28")}; !slices.Equal(newBlocks, want) {
		t.Errorf("claimed blocks %v, want %v (a new block only when the first is full)", newBlocks, want)
	}
	a6, nb6, err := p.Allocate("ep0", true)
	if err != nil {
		t.Fatal(err)
	}
	if a6 != netip.MustParseAddr("fd00:1::") || nb6 != netip.MustParsePrefix("fd00:1::/122") {
		t.Errorf("IPv6 allocation %v in new block %v, want fd00:1:: in fd00:1::/122", a6, nb6)
	}
	if got := p.Addrs("ep0"); len(got) != 2 {
		t.Errorf("ep0 holds %v, want one address of each family", got)
	}
	// Release makes the address free again; the lowest is reused.
	if rel := p.Release("ep3"); len(rel) != 1 || rel[0] != netip.MustParseAddr("10.1.0.3") {
		t.Errorf("release ep3 = %v", rel)
	}
	if a, _, _ := p.Allocate("ep99", false); a != netip.MustParseAddr("10.1.0.3") {
		t.Errorf("after release got %v, want 10.1.0.3 again", a)
	}
	if len(p.Outside()) != 0 {
		t.Errorf("outside = %v, want none", p.Outside())
	}
}

func TestIPAMPoolExhausted(t *testing.T) {
	p := mustIPAM(t, Pool{Prefix: netip.MustParsePrefix("192.0.2.0/30"), BlockBits: 31})
	for i := range 4 {
		if _, _, err := p.Allocate(fmt.Sprint(i), false); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := p.Allocate("x", false)
	if !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("fifth allocation from a /30: err = %v, want ErrPoolExhausted", err)
	}
	if want := "192.0.2.0/30"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the pool %s", err, want)
	}
	if _, _, err := p.Allocate("x", true); !errors.Is(err, ErrPoolExhausted) || !strings.Contains(err.Error(), "no IPv6 pool") {
		t.Errorf("IPv6 with no IPv6 pool: err = %v", err)
	}
}

func TestIPAMAssign(t *testing.T) {
	p := mustIPAM(t, Pool{Prefix: netip.MustParsePrefix("10.2.0.0/16")})
	nb, err := p.Assign("vm1", netip.MustParseAddr("10.2.3.70"))
	if err != nil || nb != netip.MustParsePrefix("10.2.3.64/26") {
		t.Fatalf("assign in pool: block %v err %v, want block 10.2.3.64/26", nb, err)
	}
	if _, err := p.Assign("vm2", netip.MustParseAddr("10.2.3.70")); !errors.Is(err, ErrAddressInUse) {
		t.Errorf("assign taken address: err = %v, want ErrAddressInUse", err)
	}
	if _, err := p.Assign("vm3", netip.MustParseAddr("198.51.100.7")); err != nil {
		t.Fatal(err)
	}
	if got := p.Outside(); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("198.51.100.7")}) {
		t.Errorf("outside = %v, want [198.51.100.7]", got)
	}
	// Automatic allocation skips the claimed block's used address and
	// fills the claimed block before claiming the pool's first block.
	a, nb, _ := p.Allocate("c1", false)
	if a != netip.MustParseAddr("10.2.3.64") || nb.IsValid() {
		t.Errorf("allocate = %v (new block %v), want 10.2.3.64 from the owned block", a, nb)
	}
	for _, bad := range []string{"127.0.0.1", "224.0.0.1", "fe80::1", "0.0.0.0"} {
		if _, err := p.Assign("bad", netip.MustParseAddr(bad)); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("assign %s: err = %v, want ErrInvalidRequest", bad, err)
		}
	}
}

func TestIPAMBadPools(t *testing.T) {
	for _, pools := range [][]Pool{
		{{Prefix: netip.MustParsePrefix("10.0.0.1/24")}},
		{{Prefix: netip.MustParsePrefix("10.0.0.0/8"), BlockBits: 12}},
		{{Prefix: netip.MustParsePrefix("10.0.0.0/16")}, {Prefix: netip.MustParsePrefix("10.0.1.0/24")}},
		{{Prefix: netip.MustParsePrefix("10.0.0.0/16"), BlockBits: 40}},
	} {
		if _, err := NewIPAM(pools); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("NewIPAM(%v): err = %v, want ErrInvalidRequest", pools, err)
		}
	}
}

// TestIPAMBookkeeping checks the per-block counts and the outside set the
// IPAM keeps instead of scanning every address: full blocks are skipped,
// released addresses are reused, outside addresses follow block claims,
// and blocks with addresses cannot be given up.
func TestIPAMBookkeeping(t *testing.T) {
	p, err := NewIPAM([]Pool{{Prefix: netip.MustParsePrefix("10.0.0.0/24"), BlockBits: 30}})
	if err != nil {
		t.Fatal(err)
	}
	var got []netip.Addr
	for i := range 5 {
		a, _, err := p.Allocate(fmt.Sprintf("e%d", i), false)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a)
	}
	if want := netip.MustParseAddr("10.0.0.4"); got[4] != want {
		t.Errorf("fifth address %v, want %v (first block full)", got[4], want)
	}
	p.Release("e1")
	if a, nb, _ := p.Allocate("e9", false); a != got[1] || nb.IsValid() {
		t.Errorf("after release got %v (new block %v), want %v again", a, nb, got[1])
	}
	out := netip.MustParseAddr("192.0.2.1")
	if _, err := p.Assign("s1", out); err != nil {
		t.Fatal(err)
	}
	if o := p.Outside(); !slices.Equal(o, []netip.Addr{out}) {
		t.Errorf("outside %v, want [%v]", o, out)
	}
	blk := netip.MustParsePrefix("192.0.2.0/30")
	if err := p.ClaimBlock(blk); err != nil {
		t.Fatal(err)
	}
	if o := p.Outside(); len(o) != 0 {
		t.Errorf("outside %v after claiming %v, want none", o, blk)
	}
	p.UnclaimBlock(blk)
	if !slices.Contains(p.Blocks(), blk) {
		t.Errorf("block %v given up while %v is allocated in it", blk, out)
	}
	p.ReleaseAddr("s1", out)
	p.UnclaimBlock(blk)
	if slices.Contains(p.Blocks(), blk) {
		t.Errorf("empty block %v not given up", blk)
	}
	second := netip.MustParsePrefix("10.0.0.4/30")
	p.UnclaimBlock(second)
	if !slices.Contains(p.Blocks(), second) {
		t.Errorf("block %v given up while e4 holds %v", second, got[4])
	}
}
