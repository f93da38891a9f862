package policy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// kernelChain is a chain of our table as the kernel holds it.
type kernelChain struct {
	hook   *nftables.ChainHook
	prio   *nftables.ChainPriority
	typ    nftables.ChainType
	policy *nftables.ChainPolicy
	rules  []kernelRule
}

type kernelRule struct {
	handle uint64
	id     string // identity from userdata; "" if not ours
}

// Apply converges the kernel to the desired state in one transaction; see
// the Table comment. On error nothing of the transaction is applied, every
// change stays pending and a resync is queued (it costs one round trip if
// nothing committed meanwhile).
func (t *Table) Apply(ctx context.Context) error {
	err := t.apply(ctx)
	t.lastErr = err
	if err != nil {
		t.resync = true
		t.closeConn() // a Conn keeps its first serialisation error
	}
	return err
}

func (t *Table) dial() error {
	if t.conn != nil {
		return nil
	}
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(func(c *netlink.Conn) error {
		if err := c.SetWriteBuffer(sockBuf); err != nil {
			return err
		}
		if err := c.SetReadBuffer(sockBuf); err != nil {
			return err
		}
		t.nl = c
		return nil
	})}
	if t.ns != nil {
		opts = append(opts, nftables.WithNetNSFd(t.ns.Fd()))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("open nftables socket: %w", err)
	}
	t.conn = c
	if t.mon == nil {
		t.subscribe()
	}
	return nil
}

func (t *Table) closeConn() {
	if t.conn != nil {
		t.conn.CloseLasting()
	}
	t.conn, t.nl = nil, nil
}

// Close releases the sockets. The table stays in the kernel.
func (t *Table) Close() error {
	t.closeConn()
	if t.mon != nil {
		t.mon.Close()
		t.mon = nil
	}
	return nil
}

func (t *Table) apply(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("apply table %s: %w", t.name, err)
	}
	if err := t.dial(); err != nil {
		return fmt.Errorf("apply table %s: %w", t.name, err)
	}
	dl, _ := ctx.Deadline()
	t.nl.SetDeadline(dl) // zero: none; a stuck kernel answer fails the Apply
	g0, err := t.genID()
	if err != nil {
		return fmt.Errorf("apply table %s: %w", t.name, err)
	}
	t.drain()
	// viewGen is the generation our kernel view is known to match (0: not
	// known, e.g. someone committed since our last Apply and no resync was
	// asked for); only then can the next resync trust the generation id.
	viewGen := uint32(0)
	if t.kgen == g0 {
		viewGen = g0
	}
	if t.resync || !t.applied {
		if viewGen, err = t.read(g0); err != nil {
			return fmt.Errorf("resync table %s: %w", t.name, err)
		}
	}
	p := t.plan()
	t.messages = p.messages
	if p.messages > 0 {
		if err := t.conn.Flush(); err != nil {
			return fmt.Errorf("apply table %s (%d messages): %w", t.name, p.messages, err)
		}
		// Ours is g0+1 unless someone else committed in between: then the
		// view is not known to match any generation.
		t.kgen = 0
		if g1, err := t.genID(); err == nil && viewGen != 0 && g1 == g0+1 {
			t.kgen = g1
		}
	} else {
		t.kgen = viewGen
	}
	t.commit(p)
	// Learn the handles of rules we inserted (the library drops the echo).
	for name := range p.reread {
		if err := t.readChainRules(name); err != nil {
			// The view lacks the new handles: only a full read mends it.
			t.kgen, t.ev.full = 0, true
			return fmt.Errorf("apply table %s: read back: %w", t.name, err)
		}
	}
	t.applied = true
	return nil
}

// genID asks the kernel for the nftables generation id of the namespace.
func (t *Table) genID() (uint32, error) {
	req := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN),
			Flags: netlink.Request,
		},
		Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	}
	msgs, err := t.nl.Execute(req)
	if err != nil {
		return 0, fmt.Errorf("get nftables generation: %w", err)
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, fmt.Errorf("get nftables generation: %w", err)
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
	}
	return 0, errors.New("get nftables generation: no id in the answer")
}

// plan is what one Apply queued on the Conn.
type plan struct {
	messages    int
	tableAdded  bool
	reread      map[string]bool     // chains whose rule handles to read back
	setsWritten map[string][]string // set -> keys applied
}

// plan queues the transaction: table, new and changed chains, new sets,
// element deletes then adds (a verdict-map element that changes its jump
// is deleted and re-added), rule edits, then chains and sets no longer
// wanted — an order in which nothing refers to what does not exist yet.
func (t *Table) plan() *plan {
	p := &plan{reread: map[string]bool{}, setsWritten: map[string][]string{}}
	c := t.conn
	tbl := t.nftTable()
	if t.tableMissing && (len(t.chains) > 0 || len(t.sets) > 0) {
		c.AddTable(tbl)
		p.messages++
		p.tableAdded = true
	}
	// Sorted once: three passes below, over thousands of sets with
	// workload policy, at every Apply.
	setNames := slices.Sorted(maps.Keys(t.sets))
	var edit, drop []string
	for _, name := range slices.Sorted(maps.Keys(t.dirtyChains)) {
		want, kc := t.chains[name], t.kchains[name]
		switch {
		case want == nil && kc != nil:
			drop = append(drop, name)
		case want == nil:
		case kc == nil:
			c.AddChain(want.nftChain(tbl))
			p.messages++
			edit = append(edit, name)
		case !sameHook(want, kc):
			// Hook, priority and type cannot change in place: the chain is
			// rebuilt inside this transaction.
			nc := &nftables.Chain{Name: name, Table: tbl}
			c.FlushChain(nc)
			c.DelChain(nc)
			c.AddChain(want.nftChain(tbl))
			p.messages += 3
			edit = append(edit, name)
		default:
			if want.Hook != nil && !samePolicy(want.Policy, kc.policy) {
				c.AddChain(want.nftChain(tbl)) // updates the policy in place
				p.messages++
			}
			edit = append(edit, name)
		}
	}
	// A set that exists with another definition (or a constant set whose
	// elements change) is deleted and re-created, which the kernel refuses
	// while rules refer to it: then every chain of ours is flushed first and
	// refilled below, all inside this transaction, so no packet sees it.
	rebuild := false
	for _, st := range t.sets {
		rebuild = rebuild || st.wanted && st.create && st.have != nil
	}
	if rebuild {
		for _, name := range slices.Sorted(maps.Keys(t.kchains)) {
			c.FlushChain(&nftables.Chain{Name: name, Table: tbl})
			p.messages++
			if t.chains[name] != nil && !slices.Contains(edit, name) {
				edit = append(edit, name)
			}
		}
	}
	for _, name := range setNames {
		st := t.sets[name]
		if !st.wanted || !st.create {
			continue
		}
		ns := st.def.nftSet(tbl)
		if st.have != nil {
			c.DelSet(ns) // another definition; refused while rules refer to it
			p.messages++
		}
		c.AddSet(ns, nil)
		p.messages++
		var keys []string
		for k := range st.want {
			keys = append(keys, k)
		}
		p.messages += t.queueElements(st, keys, false)
		p.setsWritten[name] = keys
	}
	for _, name := range setNames {
		st := t.sets[name]
		if !st.wanted || st.create || len(st.dirtyKeys) == 0 {
			continue
		}
		var del, add []string
		for k := range st.dirtyKeys {
			w, wok := st.want[k]
			h, hok := st.have[k]
			if hok && (!wok || !h.sameData(w)) {
				del = append(del, k)
			}
			if wok && (!hok || !h.sameData(w)) {
				add = append(add, k)
			}
		}
		p.messages += t.queueElements(st, del, true)
		p.messages += t.queueElements(st, add, false)
		p.setsWritten[name] = slices.Collect(maps.Keys(st.dirtyKeys))
	}
	for _, name := range edit {
		n := t.editRules(t.chains[name], t.kchains[name], rebuild)
		p.messages += n
		if n > 0 || t.kchains[name] == nil {
			p.reread[name] = true
		}
	}
	// Chains no longer wanted are all flushed before any is deleted (one
	// may jump to another: a base chain to its slot chain), and sets no
	// longer wanted go in between, when no rule refers to them but before
	// the chains their verdict-map elements jump to; the kernel refuses
	// (EBUSY) to delete a chain something still refers to.
	for _, name := range drop {
		c.FlushChain(&nftables.Chain{Name: name, Table: tbl})
		p.messages++
	}
	for _, name := range setNames {
		st := t.sets[name]
		if !st.wanted && st.have != nil {
			c.DelSet(&nftables.Set{Table: tbl, Name: name})
			p.messages++
		}
	}
	for _, name := range drop {
		c.DelChain(&nftables.Chain{Name: name, Table: tbl})
		p.messages++
	}
	return p
}

// queueElements queues keys of st (from want, or from have to delete) in
// calls of at most maxElementsPerCall elements and maxElementBytes; it
// returns the messages.
func (t *Table) queueElements(st *setState, keys []string, del bool) int {
	if len(keys) == 0 {
		return 0
	}
	ns := st.def.nftSet(t.nftTable())
	var buf []nftables.SetElement
	msgs := 0
	flush := func() {
		if len(buf) == 0 {
			return
		}
		if del {
			t.conn.SetDeleteElements(ns, buf)
		} else {
			t.conn.SetAddElements(ns, buf)
		}
		msgs++
		buf = nil
	}
	size := 0
	for _, k := range keys {
		e, ok := st.want[k]
		if del || !ok {
			e = st.have[k]
		}
		n := len(buf)
		buf = st.def.nftElements(buf, e)
		for _, ne := range buf[n:] {
			size += elementSize(&ne)
		}
		if len(buf) >= maxElementsPerCall-1 || size >= maxElementBytes {
			flush()
			size = 0
		}
	}
	flush()
	return msgs
}

// elementSize is an upper bound of the bytes ne takes in the element list
// attribute: its nest, key, key end, flags and verdict (each attribute 4
// bytes of header, padded to 4).
func elementSize(ne *nftables.SetElement) int {
	pad := func(n int) int { return (n + 3) &^ 3 }
	n := 4 + 8 + pad(len(ne.Key))
	if ne.KeyEnd != nil {
		n += 8 + pad(len(ne.KeyEnd))
	}
	if ne.IntervalEnd {
		n += 8
	}
	if ne.VerdictData != nil {
		n += 4 + 4 + 8 + 4 + pad(len(ne.VerdictData.Chain)+1)
	}
	if ne.Comment != "" {
		n += 4 + pad(len(ne.Comment)+3)
	}
	return n
}

// editRules queues the rule edits that turn kc's rules into want's, keeping
// the rules that are already right (their handles and counters); it
// returns the messages queued.
func (t *Table) editRules(want *Chain, kc *kernelChain, flushed bool) int {
	tbl := t.nftTable()
	nc := &nftables.Chain{Name: want.Name, Table: tbl}
	ids := make([]string, len(want.Rules))
	for i := range want.Rules {
		ids[i], _ = want.Rules[i].identity() // checked by SetChain
	}
	var have []kernelRule
	if kc != nil && sameHook(want, kc) && !flushed {
		have = kc.rules
	}
	dels, ins := diffRules(have, ids)
	for _, h := range dels {
		t.conn.DelRule(&nftables.Rule{Table: tbl, Chain: nc, Handle: h})
	}
	for _, in := range ins {
		r := &nftables.Rule{Table: tbl, Chain: nc, Exprs: want.Rules[in.idx].Exprs, UserData: ruleUserData(ids[in.idx])}
		if in.before != 0 {
			r.Position = in.before
			t.conn.InsertRule(r)
		} else {
			t.conn.AddRule(r)
		}
	}
	return len(dels) + len(ins)
}

// commit moves what the successful transaction p wrote into the kernel view.
func (t *Table) commit(p *plan) {
	if p.tableAdded {
		t.tableMissing = false
	}
	for name := range t.dirtyChains {
		want := t.chains[name]
		if want == nil {
			delete(t.kchains, name)
			continue
		}
		kc := t.kchains[name]
		if kc == nil || !sameHook(want, kc) {
			kc = &kernelChain{}
			t.kchains[name] = kc
			p.reread[name] = true
		}
		kc.hook, kc.prio, kc.typ, kc.policy = want.Hook, want.Priority, want.Type, want.Policy
	}
	clear(t.dirtyChains)
	for name, st := range t.sets {
		if !st.wanted {
			delete(t.sets, name)
			continue
		}
		if st.create {
			st.have = map[string]Element{}
			st.create = false
		}
		for _, k := range p.setsWritten[name] {
			if e, ok := st.want[k]; ok {
				st.have[k] = e
			} else {
				delete(st.have, k)
			}
		}
		// A new map, not clear(): a cleared map keeps its capacity, and the
		// next Apply ranging over it pays for every slot a large change
		// once used (4x the cost of a one-element change at 50,000).
		st.dirtyKeys = map[string]struct{}{}
	}
}

func (c *Chain) nftChain(tbl *nftables.Table) *nftables.Chain {
	nc := &nftables.Chain{Name: c.Name, Table: tbl}
	if c.Hook != nil {
		nc.Hooknum, nc.Priority, nc.Type, nc.Policy = c.Hook, c.Priority, c.Type, c.Policy
	}
	return nc
}

func sameHook(c *Chain, k *kernelChain) bool {
	if (c.Hook == nil) != (k.hook == nil) {
		return false
	}
	if c.Hook == nil {
		return true
	}
	return *c.Hook == *k.hook && k.prio != nil && *c.Priority == *k.prio && c.Type == k.typ
}

// samePolicy compares base chain policies; none means accept.
func samePolicy(a, b *nftables.ChainPolicy) bool {
	pa, pb := nftables.ChainPolicyAccept, nftables.ChainPolicyAccept
	if a != nil {
		pa = *a
	}
	if b != nil {
		pb = *b
	}
	return pa == pb
}
