package host

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// u128 is an address as a 128-bit number, so block arithmetic is the same
// for IPv4 (as IPv4-mapped) and IPv6.
type u128 struct{ hi, lo uint64 }

func toU128(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func (u u128) addr(is4 bool) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], u.hi)
	binary.BigEndian.PutUint64(b[8:], u.lo)
	a := netip.AddrFrom16(b)
	if is4 {
		return a.Unmap()
	}
	return a
}

func (u u128) add(v u128) u128 {
	lo, c := bits.Add64(u.lo, v.lo, 0)
	hi, _ := bits.Add64(u.hi, v.hi, c)
	return u128{hi, lo}
}

// shl returns n<<s as a u128 (s < 128).
func shl(n uint64, s int) u128 {
	switch {
	case s == 0:
		return u128{0, n}
	case s >= 64:
		return u128{n << (s - 64), 0}
	default:
		return u128{n >> (64 - s), n << s}
	}
}

// nthAddr is the address off places after the start of p.
func nthAddr(p netip.Prefix, off uint64) netip.Addr {
	return toU128(p.Masked().Addr()).add(u128{0, off}).addr(p.Addr().Is4())
}

// subPrefix is the i-th sub-prefix of length bits inside p.
func subPrefix(p netip.Prefix, bits int, i uint64) netip.Prefix {
	base := p.Masked().Addr()
	a := toU128(base).add(shl(i, base.BitLen()-bits)).addr(base.Is4())
	return netip.PrefixFrom(a, bits)
}

// overlaps reports whether two prefixes share an address.
func overlaps(a, b netip.Prefix) bool { return a.Overlaps(b) }

// hostPrefix is the /32 or /128 of a.
func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }
