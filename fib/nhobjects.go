package fib

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/mdlayher/netlink"
	pnl "github.com/switchd/switchd/platform/netlink"
	"golang.org/x/sys/unix"
)

// Creating and deleting nexthop objects and groups: the writes behind
// nhManager.write, moveGroups and dropGateways, and the collection of
// those no route uses.

// ensureObjects creates the nexthop objects the targets' members need and
// returns the error of each member that could not be made.
func (m *nhManager) ensureObjects(targets []*target) (map[nhKey]error, int) {
	needObj := make(map[nhKey]uint32)
	objErr := make(map[nhKey]error)
	var objOrder []nhKey
	for _, t := range targets {
		for _, nh := range t.members {
			k := nhKey{fam: nhFamily(t.fam, nh), gw: nh.Gateway, ifindex: nh.Ifindex}
			if m.byKey[k] != nil {
				continue
			}
			if _, ok := needObj[k]; ok {
				continue
			}
			id, err := m.allocID()
			if err != nil {
				objErr[k] = err
				continue
			}
			m.taken[id] = true
			needObj[k] = id
			objOrder = append(objOrder, k)
		}
	}
	if len(objOrder) == 0 {
		return objErr, 0
	}
	var b pnl.Batch
	for _, k := range objOrder {
		appendNexthop(&b, needObj[k], k, m.protocol)
	}
	err := m.c.Exec(&b, func(i int, _ netlink.Message, err error) {
		if err == nil {
			return // a reply, not an error: none is expected
		}
		objErr[objOrder[i]] = nhError("create nexthop", fmt.Sprintf("%v dev %d", objOrder[i].gw, objOrder[i].ifindex), err)
		delete(m.gws.ifs, objOrder[i].gw) // the interface may be stale: look again
		if errors.Is(err, unix.EEXIST) {
			m.taken[needObj[objOrder[i]]] = true // someone else's id
		}
	})
	for _, k := range objOrder {
		id := needObj[k]
		if objErr[k] == nil {
			delete(m.taken, id)
		}
		if err == nil && objErr[k] == nil {
			o := &nhObject{id: id, key: k}
			m.objs[id], m.byKey[k] = o, o
		} else if err != nil {
			objErr[k] = err
		}
	}
	return objErr, len(objOrder)
}

// groupWrite is one group to create, or to rewrite in place (replace).
type groupWrite struct {
	id      uint32
	t       *target
	replace bool
	res     resCfg // set by writeGroups: the kind written
}

// writeGroups sends the group writes in one batch and returns the error of
// each group that failed; the view follows the ones that succeeded.
func (m *nhManager) writeGroups(gws []groupWrite, objErr map[nhKey]error) (map[uint32]error, int) {
	slices.SortFunc(gws, func(a, b groupWrite) int { return cmp.Compare(a.id, b.id) })
	grpErr := make(map[uint32]error)
	var b pnl.Batch
	var sent []groupWrite
	for _, g := range gws {
		entries, err := m.entries(g.t, objErr)
		if err != nil {
			grpErr[g.id] = err
			continue
		}
		// A rewrite keeps the group's kind (the kernel cannot change it).
		res := m.want(len(g.t.members))
		if old := m.groups[g.id]; g.replace && old != nil {
			res = old.res
		}
		g.res = res
		sent = append(sent, g)
		appendGroup(&b, g.id, entries, g.replace, m.protocol, res)
	}
	if len(sent) == 0 {
		return grpErr, 0
	}
	err := m.c.Exec(&b, func(i int, _ netlink.Message, err error) {
		if err == nil {
			return
		}
		grpErr[sent[i].id] = nhError("write nexthop group", fmt.Sprint(sent[i].id), err)
		switch {
		case errors.Is(err, unix.EEXIST):
			m.taken[sent[i].id] = true
		case errors.Is(err, unix.EINVAL):
			// "Invalid nexthop id": a member the view holds is gone. The
			// kernel removes nexthop objects (and the routes over them)
			// of a device that goes down or loses carrier without a
			// notification, so only a dump can tell.
			grpErr[sent[i].id] = fmt.Errorf("%w (%w)", grpErr[sent[i].id], errStaleView)
			m.gws.forget()
		}
	})
	for _, g := range sent {
		if grpErr[g.id] == nil {
			delete(m.taken, g.id)
		}
		if err != nil {
			grpErr[g.id] = err
		}
		if grpErr[g.id] != nil {
			continue
		}
		if old := m.groups[g.id]; old != nil && m.bySet[old.key()] == old {
			delete(m.bySet, old.key())
		}
		ng := &nhGroup{id: g.id, set: g.t.set, members: g.t.members, res: g.res}
		m.groups[g.id] = ng
		m.publishGroup(g.id)
		if m.bySet[ng.key()] == nil {
			m.bySet[ng.key()] = ng
		}
	}
	return grpErr, len(sent)
}

func (m *nhManager) entries(t *target, objErr map[nhKey]error) ([]grpEntry, error) {
	var out []grpEntry
	for _, nh := range t.members {
		k := nhKey{fam: nhFamily(t.fam, nh), gw: nh.Gateway, ifindex: nh.Ifindex}
		if err := objErr[k]; err != nil {
			return nil, err
		}
		o := m.byKey[k]
		if o == nil {
			return nil, fmt.Errorf("nexthop %v dev %d missing", nh.Gateway, nh.Ifindex)
		}
		out = append(out, grpEntry{id: o.id, weight: nh.Weight})
	}
	return out, nil
}

// gcLocked deletes groups no route uses, then objects no group uses.
func (m *nhManager) gcLocked() int {
	if !m.synced {
		return 0
	}
	var b pnl.Batch
	var ids []uint32
	for id, g := range m.groups {
		if m.usage[id] <= 0 {
			ids = append(ids, id)
			if m.bySet[g.key()] == g {
				delete(m.bySet, g.key())
			}
			delete(m.groups, id)
			m.publishGroup(id)
			delete(m.usage, id)
		}
	}
	inUse := make(map[uint32]bool)
	for _, g := range m.groups {
		for _, nh := range g.members {
			for _, o := range m.objs {
				if o.key.gw == nh.Gateway && o.key.ifindex == nh.Ifindex {
					inUse[o.id] = true
				}
			}
		}
	}
	nGroups := len(ids)
	for id, o := range m.objs {
		if !inUse[id] && !m.foreignIn[id] && m.usage[id] <= 0 {
			ids = append(ids, id)
			delete(m.objs, id)
			delete(m.byKey, o.key)
		}
	}
	if len(ids) == 0 {
		return 0
	}
	// Groups go first: an object in a group could not be deleted cleanly.
	slices.Sort(ids[:nGroups])
	for _, id := range ids {
		appendDelNexthop(&b, id)
	}
	err := m.c.Exec(&b, func(i int, _ netlink.Message, err error) {
		if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ESRCH) {
			m.log.Warn("fib: delete unused nexthop", "id", ids[i], "err", err)
		}
	})
	if err != nil {
		m.log.Warn("fib: delete unused nexthops", "err", err)
	}
	return len(ids)
}
