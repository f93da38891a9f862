package policy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// A resync has three costs, cheapest first:
//
//  1. The generation id is the one our last Apply left: nothing committed,
//     nothing is read (one round trip).
//  2. It moved, and the nftables notifications (NFNLGRP_NFTABLES, drained
//     without blocking at every Apply) account for every transaction up to
//     it: the chains and sets of our table that other writers touched are
//     read again, nothing else. Transactions on other tables cost nothing.
//  3. Otherwise (no subscription, an overflow, a race with a commit whose
//     notifications are not in yet, a table event): everything is read.

// events is what the drained notifications say since the view was right.
type events struct {
	full   bool            // read everything
	chains map[string]bool // chains of ours other writers touched
	sets   map[string]bool
	gen    uint32 // the last generation whose notifications were all drained

	// pending is the transaction being received (its NEWGEN closes it).
	pending struct {
		foreign      bool
		full         bool
		chains, sets []string
	}
}

// reset forgets the targets once the view has been read (gen stays).
func (e *events) reset() {
	e.full, e.chains, e.sets = false, map[string]bool{}, map[string]bool{}
}

// subscribe opens the notification socket; without it every resync that
// finds the generation moved reads everything.
func (t *Table) subscribe() {
	cfg := &netlink.Config{}
	if t.ns != nil {
		cfg.NetNS = t.ns.Fd()
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err == nil {
		err = c.JoinGroup(unix.NFNLGRP_NFTABLES)
	}
	if err == nil {
		err = c.SetReadBuffer(sockBuf)
	}
	if err != nil {
		if c != nil {
			c.Close()
		}
		t.log.Warn("policy: no nftables notifications; resyncs after other writers read the whole table", "table", t.name, "err", err)
		return
	}
	t.mon = c
	t.ev.reset()
	t.ev.full = true // nothing is known before the subscription
}

// drain reads the queued notifications without blocking (MSG_DONTWAIT:
// a deadline in the past would not even try the read).
func (t *Table) drain() {
	if t.mon == nil {
		return
	}
	rc, err := t.mon.SyscallConn()
	if err != nil {
		t.ev.full = true
		return
	}
	if t.monBuf == nil {
		t.monBuf = make([]byte, 1<<16)
	}
	for {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), t.monBuf, unix.MSG_DONTWAIT)
			return true
		})
		switch {
		case err != nil:
			t.ev.full = true
			return
		case errors.Is(rerr, unix.EAGAIN):
			return
		case rerr != nil:
			t.ev.full = true // ENOBUFS: some were lost; read on
			continue
		}
		msgs, err := syscall.ParseNetlinkMessage(t.monBuf[:n])
		if err != nil {
			t.ev.full = true
			continue
		}
		for _, m := range msgs {
			t.note(netlink.Message{
				Header: netlink.Header{Type: netlink.HeaderType(m.Header.Type), Flags: netlink.HeaderFlags(m.Header.Flags),
					Sequence: m.Header.Seq, PID: m.Header.Pid},
				Data: m.Data,
			})
		}
	}
}

// note accounts for one notification.
func (t *Table) note(m netlink.Message) {
	if int(m.Header.Type)>>8 != unix.NFNL_SUBSYS_NFTABLES || len(m.Data) < 4 {
		return
	}
	p := &t.ev.pending
	typ := int(m.Header.Type) & 0xff
	ours := t.nl != nil && m.Header.PID == t.nl.PID()
	if ours && typ != unix.NFT_MSG_NEWGEN {
		return // our own transaction: in the view already
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		p.full = true
		return
	}
	ad.ByteOrder = binary.BigEndian
	attrs := map[uint16]string{}
	var gen uint32
	for ad.Next() {
		if typ == unix.NFT_MSG_NEWGEN && ad.Type() == unix.NFTA_GEN_ID {
			gen = ad.Uint32()
			continue
		}
		attrs[ad.Type()] = ad.String()
	}
	if typ == unix.NFT_MSG_NEWGEN {
		// The transaction is complete. Ours are in the view already.
		if p.foreign {
			t.ev.full = t.ev.full || p.full
			for _, c := range p.chains {
				t.ev.chains[c] = true
			}
			for _, s := range p.sets {
				t.ev.sets[s] = true
			}
		}
		t.ev.gen = gen
		p.foreign, p.full, p.chains, p.sets = false, false, nil, nil
		return
	}
	p.foreign = true
	if nftables.TableFamily(m.Data[0]) != nftables.TableFamilyINet {
		return
	}
	w, ok := objectAttrs[typ]
	switch {
	case !ok || attrs[w.table] != t.name:
	case w.name == 0:
		p.full = true // the table itself, objects, flowtables
	case w.set:
		p.sets = append(p.sets, attrs[w.name])
	default:
		p.chains = append(p.chains, attrs[w.name])
	}
}

// objectAttrs says, per notification type, which attributes name the table
// and the chain or set it is about (none: read everything).
var objectAttrs = map[int]struct {
	table, name uint16
	set         bool
}{
	unix.NFT_MSG_NEWTABLE:     {table: unix.NFTA_TABLE_NAME},
	unix.NFT_MSG_DELTABLE:     {table: unix.NFTA_TABLE_NAME},
	unix.NFT_MSG_NEWCHAIN:     {table: unix.NFTA_CHAIN_TABLE, name: unix.NFTA_CHAIN_NAME},
	unix.NFT_MSG_DELCHAIN:     {table: unix.NFTA_CHAIN_TABLE, name: unix.NFTA_CHAIN_NAME},
	unix.NFT_MSG_NEWRULE:      {table: unix.NFTA_RULE_TABLE, name: unix.NFTA_RULE_CHAIN},
	unix.NFT_MSG_DELRULE:      {table: unix.NFTA_RULE_TABLE, name: unix.NFTA_RULE_CHAIN},
	unix.NFT_MSG_NEWSET:       {table: unix.NFTA_SET_TABLE, name: unix.NFTA_SET_NAME, set: true},
	unix.NFT_MSG_DELSET:       {table: unix.NFTA_SET_TABLE, name: unix.NFTA_SET_NAME, set: true},
	unix.NFT_MSG_NEWSETELEM:   {table: unix.NFTA_SET_ELEM_LIST_TABLE, name: unix.NFTA_SET_ELEM_LIST_SET, set: true},
	unix.NFT_MSG_DELSETELEM:   {table: unix.NFTA_SET_ELEM_LIST_TABLE, name: unix.NFTA_SET_ELEM_LIST_SET, set: true},
	unix.NFT_MSG_NEWOBJ:       {table: unix.NFTA_OBJ_TABLE},
	unix.NFT_MSG_DELOBJ:       {table: unix.NFTA_OBJ_TABLE},
	unix.NFT_MSG_NEWFLOWTABLE: {table: nftaFlowtableTable},
	unix.NFT_MSG_DELFLOWTABLE: {table: nftaFlowtableTable},
}

// read refreshes the kernel view at generation gen and returns the
// generation the view matches (0 if a commit raced the read).
func (t *Table) read(gen uint32) (uint32, error) {
	t.resync = false
	if t.applied && t.kgen != 0 && gen == t.kgen {
		return gen, nil
	}
	var only *events
	if t.applied && t.mon != nil && !t.ev.full && t.ev.gen == gen {
		only = &t.ev
	}
	if err := t.readView(only); err != nil {
		t.resync = true
		return 0, err
	}
	t.ev.reset()
	if g, err := t.genID(); err != nil || g != gen {
		return 0, nil
	}
	return gen, nil
}

// readView reads the table: every chain's rules and every set's elements,
// or, with only, those of the chains and sets only names (definitions are
// always read: one dump each).
func (t *Table) readView(only *events) error {
	start := time.Now()
	if only == nil {
		t.fullReads++
	}
	tbl := t.nftTable()
	kchains := map[string]*kernelChain{}
	tables, err := t.conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	exists := slices.ContainsFunc(tables, func(x *nftables.Table) bool { return x.Name == t.name })
	var ksets []*nftables.Set
	if exists {
		chains, err := t.conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
		if err != nil {
			return fmt.Errorf("list chains: %w", err)
		}
		for _, c := range chains {
			if c.Table.Name != t.name {
				continue // another table: never ours
			}
			kc := &kernelChain{hook: c.Hooknum, prio: c.Priority, typ: c.Type, policy: c.Policy}
			if old := t.kchains[c.Name]; only != nil && !only.chains[c.Name] && old != nil {
				kc.rules = old.rules
			} else if kc.rules, err = t.getRules(c.Name); err != nil {
				return err
			}
			kchains[c.Name] = kc
		}
		if ksets, err = t.conn.GetSets(tbl); err != nil {
			return fmt.Errorf("list sets: %w", err)
		}
	}
	// Every chain is compared again (rules are few); sets only if read.
	t.kchains = kchains
	t.tableMissing = !exists
	for name := range kchains {
		t.dirtyChains[name] = true
	}
	for name := range t.chains {
		t.dirtyChains[name] = true
	}
	found := map[string]bool{}
	elements, setsRead := 0, 0
	for _, ks := range ksets {
		found[ks.Name] = true
		st := t.sets[ks.Name]
		if st == nil {
			// Ours by being in our table, but no longer wanted.
			st = &setState{def: Set{Name: ks.Name}, want: map[string]Element{}, dirtyKeys: map[string]struct{}{}, have: map[string]Element{}}
			t.sets[ks.Name] = st
			continue
		}
		if !st.wanted || !sameDef(&st.def, ks) {
			st.have, st.create = map[string]Element{}, st.wanted
			continue
		}
		if only != nil && !only.sets[ks.Name] && st.have != nil && !st.create {
			continue
		}
		kes, err := t.conn.GetSetElements(ks)
		if err != nil {
			return fmt.Errorf("list elements of set %s: %w", ks.Name, err)
		}
		elements += len(kes)
		setsRead++
		have, err := st.fromKernel(kes)
		if err != nil {
			return fmt.Errorf("set %s: kernel element: %w", ks.Name, err)
		}
		st.have, st.create = have, false
		for k, e := range st.want {
			if h, ok := have[k]; !ok || !h.sameData(e) {
				st.dirtyKeys[k] = struct{}{}
			}
		}
		for k := range have {
			if _, ok := st.want[k]; !ok {
				st.dirtyKeys[k] = struct{}{}
			}
		}
		if len(st.dirtyKeys) > 0 {
			st.constantChanged()
		}
	}
	for name, st := range t.sets {
		if !found[name] {
			st.have, st.create = nil, st.wanted
		}
		if !st.wanted && st.have == nil {
			delete(t.sets, name)
		}
	}
	t.setsRead += setsRead
	t.log.Debug("policy: read nftables table", "table", t.name, "full", only == nil, "chains", len(kchains),
		"sets", len(ksets), "sets read", setsRead, "elements", elements, "took", time.Since(start))
	return nil
}

func (t *Table) getRules(chain string) ([]kernelRule, error) {
	rs, err := t.conn.GetRules(t.nftTable(), &nftables.Chain{Name: chain, Table: t.nftTable()})
	if err != nil {
		return nil, fmt.Errorf("list rules of chain %s: %w", chain, err)
	}
	out := make([]kernelRule, len(rs))
	for i, r := range rs {
		out[i] = kernelRule{handle: r.Handle, id: ruleIdentity(r.UserData)}
	}
	return out, nil
}

func (t *Table) readChainRules(name string) error {
	kc := t.kchains[name]
	if kc == nil {
		return nil
	}
	rs, err := t.getRules(name)
	if err != nil {
		return err
	}
	kc.rules = rs
	return nil
}

// nftaFlowtableTable is NFTA_FLOWTABLE_TABLE (golang.org/x/sys/unix lacks it).
const nftaFlowtableTable = 1
