package host

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Default block sizes, as Calico's: 64 addresses per block in both families.
const (
	DefaultBlockBitsV4 = 26
	DefaultBlockBitsV6 = 122
	// maxBlockHostBits bounds a block to 65536 addresses so that the linear
	// scan for a free address stays cheap.
	maxBlockHostBits = 16
)

// Pool is a range of addresses this host may claim blocks from: a pool
// shared by configuration or a per-host range. Hosts do not coordinate, so
// hosts that share a pool must each be given a disjoint range.
type Pool struct {
	Prefix netip.Prefix
	// BlockBits is the prefix length of the pool's blocks; 0 means the
	// family default. A pool smaller than a block is one block.
	BlockBits int
}

func (p Pool) blockBits() int {
	b := p.BlockBits
	if b == 0 {
		b = DefaultBlockBitsV4
		if p.Prefix.Addr().Is6() {
			b = DefaultBlockBitsV6
		}
	}
	return max(b, p.Prefix.Bits())
}

func (p Pool) validate() error {
	if !p.Prefix.IsValid() {
		return fmt.Errorf("pool %v: %w: not a prefix", p.Prefix, ErrInvalidRequest)
	}
	if p.Prefix != p.Prefix.Masked() {
		return fmt.Errorf("pool %v: %w: host bits set (did you mean %v?)", p.Prefix, ErrInvalidRequest, p.Prefix.Masked())
	}
	bl := p.Prefix.Addr().BitLen()
	if p.BlockBits != 0 && (p.BlockBits < 0 || p.BlockBits > bl) {
		return fmt.Errorf("pool %v: %w: block length /%d out of range", p.Prefix, ErrInvalidRequest, p.BlockBits)
	}
	if bl-p.blockBits() > maxBlockHostBits {
		return fmt.Errorf("pool %v: %w: blocks of /%d are larger than %d addresses", p.Prefix, ErrInvalidRequest, p.blockBits(), 1<<maxBlockHostBits)
	}
	return nil
}

// IPAM hands out addresses from blocks claimed out of pools. It is pure
// logic: the Manager persists claims and allocations around its calls and
// guards it with its mutex.
//
// A fixed address (Assign) must lie in a pool or in a static prefix: the
// host announces what it holds, so an address it was not given would be
// announced as a /32 or /128 that beats the owner's block (a hijack).
// Records loaded from disk (Restore) are taken as they are; those that no
// longer fit are held but not announced (Announced).
type IPAM struct {
	pools  []Pool
	static []netip.Prefix // where fixed addresses outside the pools may come from
	blocks []netip.Prefix // owned, sorted
	owner  map[netip.Addr]string
	byID   map[string][]netip.Addr
	// Kept up to date so that an Add costs no scan of every address:
	// used counts the allocated addresses of each owned block, outside
	// holds those in no owned block.
	used    map[netip.Prefix]int
	outside map[netip.Addr]struct{}
}

// NewIPAM checks pools (no two may overlap) and static prefixes (masked,
// in no pool) and returns an IPAM owning no block.
func NewIPAM(pools []Pool, static []netip.Prefix) (*IPAM, error) {
	for i, p := range pools {
		if err := p.validate(); err != nil {
			return nil, err
		}
		for _, q := range pools[:i] {
			if overlaps(p.Prefix, q.Prefix) {
				return nil, fmt.Errorf("pool %v: %w: overlaps pool %v", p.Prefix, ErrInvalidRequest, q.Prefix)
			}
		}
	}
	for _, s := range static {
		if !s.IsValid() || s != s.Masked() {
			return nil, fmt.Errorf("static prefix %v: %w: not a masked prefix", s, ErrInvalidRequest)
		}
		// An address of both would be claimed with its block and announced
		// twice; the operator must say which it is.
		for _, p := range pools {
			if overlaps(s, p.Prefix) {
				return nil, fmt.Errorf("static prefix %v: %w: overlaps pool %v", s, ErrInvalidRequest, p.Prefix)
			}
		}
	}
	return &IPAM{pools: slices.Clone(pools), static: slices.Clone(static), owner: map[netip.Addr]string{}, byID: map[string][]netip.Addr{},
		used: map[netip.Prefix]int{}, outside: map[netip.Addr]struct{}{}}, nil
}

// Blocks returns the owned blocks, sorted.
func (p *IPAM) Blocks() []netip.Prefix { return slices.Clone(p.blocks) }

// Outside returns allocated addresses that lie in no owned block (static
// endpoints' addresses from outside the pools), sorted.
func (p *IPAM) Outside() []netip.Addr {
	var out []netip.Addr
	for a := range p.outside {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Owner returns the handle an address is allocated to.
func (p *IPAM) Owner(a netip.Addr) (string, bool) {
	h, ok := p.owner[a]
	return h, ok
}

// Addrs returns the addresses allocated to handle.
func (p *IPAM) Addrs(handle string) []netip.Addr { return slices.Clone(p.byID[handle]) }

func (p *IPAM) blockOf(a netip.Addr) netip.Prefix {
	for _, b := range p.blocks {
		if b.Contains(a) {
			return b
		}
	}
	return netip.Prefix{}
}

func (p *IPAM) poolOf(a netip.Addr) (Pool, bool) {
	for _, pl := range p.pools {
		if pl.Prefix.Contains(a) {
			return pl, true
		}
	}
	return Pool{}, false
}

// ClaimBlock records b as owned (used when loading persisted claims). A
// block overlapping an owned one is refused.
func (p *IPAM) ClaimBlock(b netip.Prefix) error {
	if !b.IsValid() || b != b.Masked() {
		return fmt.Errorf("claim block %v: %w: not a masked prefix", b, ErrInvalidRequest)
	}
	for _, o := range p.blocks {
		if o == b {
			return nil
		}
		if overlaps(o, b) {
			return fmt.Errorf("claim block %v: %w: overlaps owned block %v", b, ErrInvalidRequest, o)
		}
	}
	p.blocks = append(p.blocks, b)
	slices.SortFunc(p.blocks, comparePrefix)
	for a := range p.outside {
		if b.Contains(a) {
			delete(p.outside, a)
			p.used[b]++
		}
	}
	return nil
}

// UnclaimBlock gives up an owned block (after a failed persist). Blocks with
// allocations are kept.
func (p *IPAM) UnclaimBlock(b netip.Prefix) {
	if p.used[b] > 0 {
		return
	}
	delete(p.used, b)
	p.blocks = slices.DeleteFunc(p.blocks, func(o netip.Prefix) bool { return o == b })
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

// Allocate gives handle the lowest free address of the family (is6) from
// the owned blocks of the first pool that has one, claiming the pool's next
// free block when its blocks are full. newBlock is the block claimed, if
// any: the caller persists it before using the address.
func (p *IPAM) Allocate(handle string, is6 bool) (addr netip.Addr, newBlock netip.Prefix, err error) {
	return p.allocateIn(handle, is6, netip.Prefix{})
}

// AllocateIn is Allocate from the configured pool only.
func (p *IPAM) AllocateIn(handle string, pool netip.Prefix) (addr netip.Addr, newBlock netip.Prefix, err error) {
	return p.allocateIn(handle, pool.Addr().Is6(), pool)
}

func (p *IPAM) allocateIn(handle string, is6 bool, only netip.Prefix) (addr netip.Addr, newBlock netip.Prefix, err error) {
	var tried []string
	for _, pl := range p.pools {
		if pl.Prefix.Addr().Is6() != is6 || only.IsValid() && pl.Prefix != only {
			continue
		}
		tried = append(tried, pl.Prefix.String())
		for _, b := range p.blocks {
			if !pl.Prefix.Contains(b.Addr()) || p.used[b] >= blockSize(b) {
				continue
			}
			if a, ok := p.freeIn(b); ok {
				p.assign(handle, a)
				return a, netip.Prefix{}, nil
			}
		}
		if b, ok := p.nextFreeBlock(pl); ok {
			p.blocks = append(p.blocks, b)
			slices.SortFunc(p.blocks, comparePrefix)
			a, _ := p.freeIn(b)
			p.assign(handle, a)
			return a, b, nil
		}
	}
	fam := "IPv4"
	if is6 {
		fam = "IPv6"
	}
	if len(tried) == 0 {
		return netip.Addr{}, netip.Prefix{}, fmt.Errorf("allocate %s for %s: %w: no %s pool configured", fam, handle, ErrPoolExhausted, fam)
	}
	return netip.Addr{}, netip.Prefix{}, fmt.Errorf("allocate %s for %s: %w: pool %v has no free address", fam, handle, ErrPoolExhausted, tried)
}

func (p *IPAM) freeIn(b netip.Prefix) (netip.Addr, bool) {
	n := uint64(1) << (b.Addr().BitLen() - b.Bits())
	for off := range n {
		a := nthAddr(b, off)
		if _, used := p.owner[a]; !used {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// nextFreeBlock is the lowest block of pl that overlaps no owned block. It
// looks at most len(p.blocks)+1 candidates, so huge IPv6 pools are cheap.
func (p *IPAM) nextFreeBlock(pl Pool) (netip.Prefix, bool) {
	bits := pl.blockBits()
	n := uint64(0) // 0: more blocks than fit in a uint64
	if d := bits - pl.Prefix.Bits(); d < 64 {
		n = uint64(1) << d
	}
	for i := uint64(0); n == 0 || i < n; i++ {
		c := subPrefix(pl.Prefix, bits, i)
		if !slices.ContainsFunc(p.blocks, func(o netip.Prefix) bool { return overlaps(o, c) }) {
			return c, true
		}
		if i > uint64(len(p.blocks)) {
			break // every earlier candidate overlapped a distinct block; cannot happen
		}
	}
	return netip.Prefix{}, false
}

func (p *IPAM) assign(handle string, a netip.Addr) {
	p.owner[a] = handle
	p.byID[handle] = append(p.byID[handle], a)
	if b := p.blockOf(a); b.IsValid() {
		p.used[b]++
	} else {
		p.outside[a] = struct{}{}
	}
}

// unassign undoes the counting of assign; the caller removes the owner.
func (p *IPAM) unassign(a netip.Addr) {
	delete(p.owner, a)
	if b := p.blockOf(a); b.IsValid() {
		p.used[b]--
	} else {
		delete(p.outside, a)
	}
}

// blockSize is the number of addresses of b (blocks have at most
// maxBlockHostBits host bits).
func blockSize(b netip.Prefix) int { return 1 << (b.Addr().BitLen() - b.Bits()) }

// Assign gives handle the fixed address a its requester chose. An address
// inside a pool claims its block (returned as newBlock); one in a static
// prefix shows up in Outside and is announced on its own; any other is
// refused with ErrAddressNotAllowed. Assigning an address the handle holds
// already is a no-op.
func (p *IPAM) Assign(handle string, a netip.Addr) (newBlock netip.Prefix, err error) {
	if err := checkUnicast(handle, a); err != nil {
		return netip.Prefix{}, err
	}
	if !p.permits(a) {
		return netip.Prefix{}, fmt.Errorf("assign %v to %s: %w: %v is in %s", a, handle, ErrAddressNotAllowed, a, p.ranges())
	}
	return p.Restore(handle, a)
}

// Restore is Assign for a record loaded from disk: the record is the truth
// (an interface carries the address), so an address in no pool and no
// static prefix is held too, in Outside, and Announced leaves it out.
func (p *IPAM) Restore(handle string, a netip.Addr) (newBlock netip.Prefix, err error) {
	if err := checkUnicast(handle, a); err != nil {
		return netip.Prefix{}, err
	}
	if h, ok := p.owner[a]; ok {
		if h == handle {
			return netip.Prefix{}, nil
		}
		return netip.Prefix{}, fmt.Errorf("assign %v to %s: %w by %s", a, handle, ErrAddressInUse, h)
	}
	if p.blockOf(a) == (netip.Prefix{}) {
		if pl, ok := p.poolOf(a); ok {
			b := netip.PrefixFrom(a, pl.blockBits()).Masked()
			if err := p.ClaimBlock(b); err != nil {
				return netip.Prefix{}, fmt.Errorf("assign %v to %s: %w", a, handle, err)
			}
			newBlock = b
		}
	}
	p.assign(handle, a)
	return newBlock, nil
}

// Release frees every address of handle and returns them.
func (p *IPAM) Release(handle string) []netip.Addr {
	as := p.byID[handle]
	for _, a := range as {
		p.unassign(a)
	}
	delete(p.byID, handle)
	return as
}

// ReleaseAddr frees one address if handle holds it (rollback of a partial
// allocation).
func (p *IPAM) ReleaseAddr(handle string, a netip.Addr) {
	if h, ok := p.owner[a]; !ok || h != handle {
		return
	}
	p.unassign(a)
	p.byID[handle] = slices.DeleteFunc(p.byID[handle], func(x netip.Addr) bool { return x == a })
	if len(p.byID[handle]) == 0 {
		delete(p.byID, handle)
	}
}

func checkUnicast(handle string, a netip.Addr) error {
	if !a.IsValid() || a.Is4In6() || a.Zone() != "" || !a.IsGlobalUnicast() {
		return fmt.Errorf("assign %v to %s: %w: not a unicast address", a, handle, ErrInvalidRequest)
	}
	return nil
}

// permits reports whether a requester may have the fixed address a: it is
// in a pool (this host's range) or in a static prefix.
func (p *IPAM) permits(a netip.Addr) bool {
	_, ok := p.poolOf(a)
	return ok || p.inStatic(a)
}

func (p *IPAM) inStatic(a netip.Addr) bool {
	return slices.ContainsFunc(p.static, func(s netip.Prefix) bool { return s.Contains(a) })
}

// ranges names where fixed addresses may come from, for errors.
func (p *IPAM) ranges() string {
	var pools []string
	for _, pl := range p.pools {
		pools = append(pools, pl.Prefix.String())
	}
	s := "no pool"
	if len(pools) > 0 {
		s = "no pool (" + strings.Join(pools, ", ") + ")"
	}
	if len(p.static) == 0 {
		return s + " and no static prefix is configured"
	}
	var st []string
	for _, x := range p.static {
		st = append(st, x.String())
	}
	return s + " and no static prefix (" + strings.Join(st, ", ") + ")"
}

// Announced is what the host originates: the owned blocks, and a host
// prefix for each address outside them that a static prefix covers. An
// address restored from a record that no longer fits (its static prefix
// was removed, or an older switchd took it unchecked) is not announced:
// this host has no authority for it.
func (p *IPAM) Announced() []netip.Prefix {
	ps := p.Blocks()
	for _, a := range p.Outside() {
		if p.inStatic(a) {
			ps = append(ps, hostPrefix(a))
		}
	}
	return ps
}

// Unannounced returns the held addresses Announced leaves out, sorted.
func (p *IPAM) Unannounced() []netip.Addr {
	return slices.DeleteFunc(p.Outside(), p.inStatic)
}
