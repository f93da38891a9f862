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
	p, err := NewIPAM(pools, nil)
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
	// A record from disk is held wherever it is, and only announced with
	// a pool or static prefix behind it.
	if _, err := p.Restore("vm3", netip.MustParseAddr("198.51.100.7")); err != nil {
		t.Fatal(err)
	}
	if got := p.Outside(); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("198.51.100.7")}) {
		t.Errorf("outside = %v, want [198.51.100.7]", got)
	}
	if got := p.Announced(); !slices.Equal(got, []netip.Prefix{netip.MustParsePrefix("10.2.3.64/26")}) {
		t.Errorf("announced = %v, want only the block 10.2.3.64/26", got)
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
		if _, err := NewIPAM(pools, nil); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("NewIPAM(%v): err = %v, want ErrInvalidRequest", pools, err)
		}
	}
}

// TestIPAMBookkeeping checks the per-block counts and the outside set the
// IPAM keeps instead of scanning every address: full blocks are skipped,
// released addresses are reused, outside addresses follow block claims,
// and blocks with addresses cannot be given up.
func TestIPAMBookkeeping(t *testing.T) {
	p, err := NewIPAM([]Pool{{Prefix: netip.MustParsePrefix("10.0.0.0/24"), BlockBits: 30}}, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")})
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

// TestIPAMFixedAddressMustBeGiven: a requested fixed address is taken from
// a pool (claiming its block) or a static prefix (announced on its own);
// any other is refused with ErrAddressNotAllowed naming the address and
// where addresses may come from, and leaves nothing allocated.
func TestIPAMFixedAddressMustBeGiven(t *testing.T) {
	pool := Pool{Prefix: netip.MustParsePrefix("10.2.0.0/16")}
	static := netip.MustParsePrefix("198.51.100.0/28")
	for _, tc := range []struct {
		name   string
		static []netip.Prefix
		addr   string
		want   string // in the error
	}{
		{"outside the pools, none static", nil, "192.0.2.7", "192.0.2.7 is in no pool (10.2.0.0/16) and no static prefix is configured"},
		{"outside pools and static", []netip.Prefix{static}, "192.0.2.7", "no static prefix (198.51.100.0/28)"},
		{"next to the static prefix", []netip.Prefix{static}, "198.51.100.16", "198.51.100.16 is in no pool"},
		{"IPv6 with an IPv4 pool only", nil, "2001:db8::7", "2001:db8::7 is in no pool (10.2.0.0/16)"},
	} {
		p, err := NewIPAM([]Pool{pool}, tc.static)
		if err != nil {
			t.Fatal(err)
		}
		a := netip.MustParseAddr(tc.addr)
		nb, err := p.Assign("c1/eth0", a)
		if !errors.Is(err, ErrAddressNotAllowed) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: assign %v: err = %v, want ErrAddressNotAllowed with %q", tc.name, a, err, tc.want)
		}
		if nb.IsValid() || len(p.Addrs("c1/eth0")) != 0 || len(p.Outside()) != 0 || len(p.Blocks()) != 0 || len(p.Announced()) != 0 {
			t.Errorf("%s: refused %v left block %v, addrs %v, outside %v, announced %v", tc.name, a, nb, p.Addrs("c1/eth0"), p.Outside(), p.Announced())
		}
	}

	p, err := NewIPAM([]Pool{pool}, []netip.Prefix{static})
	if err != nil {
		t.Fatal(err)
	}
	if nb, err := p.Assign("vm1", netip.MustParseAddr("198.51.100.7")); err != nil || nb.IsValid() {
		t.Fatalf("assign in static prefix: block %v err %v, want no block", nb, err)
	}
	if nb, err := p.Assign("vm2", netip.MustParseAddr("10.2.9.9")); err != nil || nb != netip.MustParsePrefix("10.2.9.0/26") {
		t.Fatalf("assign in pool: block %v err %v, want 10.2.9.0/26", nb, err)
	}
	// Static prefixes are for fixed addresses only: never allocated from.
	if a, _, err := p.Allocate("c2", false); err != nil || !pool.Prefix.Contains(a) {
		t.Errorf("allocate = %v %v, want an address of %v", a, err, pool.Prefix)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.2.9.0/26"), netip.MustParsePrefix("198.51.100.7/32")}
	if got := p.Announced(); !slices.Equal(got, want) {
		t.Errorf("announced %v, want %v (the block and the static address, not the static range)", got, want)
	}
	// A block owned from a pool that is gone: held, not open to requests.
	q, err := NewIPAM(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.ClaimBlock(netip.MustParsePrefix("10.9.0.0/26")); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Assign("c3", netip.MustParseAddr("10.9.0.5")); !errors.Is(err, ErrAddressNotAllowed) {
		t.Errorf("assign in a block of a removed pool: err = %v, want ErrAddressNotAllowed", err)
	}
}

func TestIPAMBadStaticPrefixes(t *testing.T) {
	pools := []Pool{{Prefix: netip.MustParsePrefix("10.0.0.0/16")}}
	for _, tc := range []struct {
		static netip.Prefix
		want   string
	}{
		{netip.MustParsePrefix("198.51.100.1/24"), "not a masked prefix"},
		{netip.Prefix{}, "not a masked prefix"},
		{netip.MustParsePrefix("10.0.4.0/24"), "overlaps pool 10.0.0.0/16"},
		{netip.MustParsePrefix("0.0.0.0/0"), "overlaps pool 10.0.0.0/16"},
	} {
		_, err := NewIPAM(pools, []netip.Prefix{tc.static})
		if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("static prefix %v: err = %v, want ErrInvalidRequest with %q", tc.static, err, tc.want)
		}
	}
}
