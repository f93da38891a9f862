// Package state renders switchd's applied state as OpenConfig: pure
// functions turn what the components' feeds carry (link stats, BGP
// neighbor states, endpoint events, ACL counters, a system sample) into
// ygot structs of models/oc, and a Tree publishes them as gNMI
// notifications through one funnel (Tree.publish), the way lemming's
// updateAppliedState does (STYLE.md §6).
//
// The daemon owns the Tree and calls it from its loop goroutine as it
// drains each feed; the gNMI server behind the Publisher never asks a
// component anything. AFT (routes, next hops) is not rendered here: the
// gNMI server walks fib's table for it, so a million routes are not kept
// twice.
package state

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
	"google.golang.org/protobuf/proto"
)

// Publisher takes rendered state: the gNMI server's cache
// (*gnmi.Server's Update). A notification's prefix carries no target (the
// server sets its own); updates are leaves relative to the prefix,
// deletes remove subtrees. Update is called from one goroutine at a time.
type Publisher interface {
	Update(n *gpb.Notification) error
}

// Tree is the state tree as last published: for each subtree (an
// interface, a neighbor, an endpoint, /system, ...) the leaves and their
// values. A new rendering of a subtree is compared with it, so only
// changed leaves are published, and leaves that are gone (an address
// removed, a label dropped) are deleted; a subtree that is gone as a
// whole is deleted by its path. Its methods should only be called from
// one goroutine (the daemon's loop).
type Tree struct {
	pub    Publisher
	now    func() time.Time
	lastTS int64 // the last notification's timestamp

	subtrees map[string]*subtree // by path string
	intern   *interner
	// links are the interfaces' oper states and last changes (interfaces.go).
	links map[string]linkSeen
	// endpoints are the keys of the published endpoints by endpoint ID.
	endpoints map[string]string
	// blocks are the IPAM blocks published (status.go).
	blocks map[string]bool
	// plat is the platform's components and ports published (platform.go).
	plat platformSeen
}

// subtree is one published subtree: its path and its leaves' values by
// their path relative to it, interned (Tree.intern), so the pointer is
// the leaf's identity and like subtrees share their keys.
type subtree struct {
	prefix []*gpb.PathElem
	leaves map[*gpb.Path]*gpb.TypedValue
}

// New returns a Tree publishing to p.
func New(p Publisher) *Tree {
	return &Tree{pub: p, now: time.Now, subtrees: map[string]*subtree{}, intern: newInterner(),
		links: map[string]linkSeen{}, endpoints: map[string]string{}}
}

// WithClock makes the Tree stamp notifications with now (tests).
func (t *Tree) WithClock(now func() time.Time) *Tree {
	t.now = now
	return t
}

// publish is the funnel: it renders s, the subtree at prefix, compares
// its leaves with what was published there last and publishes the
// changed ones and the deletion of the gone ones, in one notification. A
// nil s deletes the subtree. A failed Publish forgets the subtree's
// leaves, so the next rendering publishes it whole.
func (t *Tree) publish(prefix []*gpb.PathElem, s ygot.GoStruct) error {
	key := pathString(prefix)
	ts := t.stamp()
	old := t.subtrees[key]
	if s == nil {
		if old == nil {
			return nil
		}
		if err := t.send(key, &gpb.Notification{Timestamp: ts, Prefix: &gpb.Path{},
			Delete: []*gpb.Path{{Elem: prefix}}}); err != nil {
			return err // kept: the next deletion tries again
		}
		delete(t.subtrees, key)
		return nil
	}
	if old == nil {
		t.intern.prefix(prefix)
	} else {
		prefix = old.prefix
	}
	ns, err := ygot.TogNMINotifications(s, ts, ygot.GNMINotificationsConfig{UsePathElem: true})
	if err != nil {
		return fmt.Errorf("render %s: %w", key, err)
	}
	n := &gpb.Notification{Timestamp: ts, Prefix: &gpb.Path{Elem: prefix}}
	cur := &subtree{prefix: prefix, leaves: map[*gpb.Path]*gpb.TypedValue{}}
	for _, rn := range ns {
		for _, u := range rn.GetUpdate() {
			u.Path = t.intern.path(pathString(u.GetPath().GetElem()), u.GetPath())
			if old != nil {
				if o, ok := old.leaves[u.Path]; ok && equalValue(o, u.GetVal()) {
					cur.leaves[u.Path] = o
					continue
				}
			}
			var shared bool
			if u.Val, shared = t.intern.value(u.GetVal()); shared {
				u = t.intern.update(u)
			}
			cur.leaves[u.Path] = u.Val
			n.Update = append(n.Update, u)
		}
	}
	if old != nil {
		for p := range old.leaves {
			if _, ok := cur.leaves[p]; !ok {
				n.Delete = append(n.Delete, p)
			}
		}
	}
	t.subtrees[key] = cur
	if len(n.Update) == 0 && len(n.Delete) == 0 {
		return nil
	}
	return t.send(key, n)
}

// stamp is the time for a notification: now, but never before the last
// one, since the cache drops an update older than the leaf it has (a
// wall clock stepped back would freeze the tree until it caught up).
func (t *Tree) stamp() int64 {
	t.lastTS = max(t.now().UnixNano(), t.lastTS+1)
	return t.lastTS
}

// send publishes n for the subtree at key.
func (t *Tree) send(key string, n *gpb.Notification) error {
	if err := t.pub.Update(n); err != nil {
		if st := t.subtrees[key]; st != nil {
			// Kept empty: published whole next time, or deleted.
			st.leaves = map[*gpb.Path]*gpb.TypedValue{}
		}
		return fmt.Errorf("publish %s: %w", key, err)
	}
	return nil
}

// equalValue compares two leaf values; scalars without reflection.
func equalValue(a, b *gpb.TypedValue) bool {
	switch av := a.GetValue().(type) {
	case *gpb.TypedValue_UintVal:
		bv, ok := b.GetValue().(*gpb.TypedValue_UintVal)
		return ok && av.UintVal == bv.UintVal
	case *gpb.TypedValue_IntVal:
		bv, ok := b.GetValue().(*gpb.TypedValue_IntVal)
		return ok && av.IntVal == bv.IntVal
	case *gpb.TypedValue_StringVal:
		bv, ok := b.GetValue().(*gpb.TypedValue_StringVal)
		return ok && av.StringVal == bv.StringVal
	case *gpb.TypedValue_BoolVal:
		bv, ok := b.GetValue().(*gpb.TypedValue_BoolVal)
		return ok && av.BoolVal == bv.BoolVal
	}
	return proto.Equal(a, b)
}

// pathString is a path's elements as text (a/b[k=v]/c), keys sorted:
// the subtree and leaf identity. It runs for every leaf of every
// rendering, so it avoids fmt.
func pathString(elems []*gpb.PathElem) string {
	var b strings.Builder
	for i, e := range elems {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(e.GetName())
		keys := e.GetKey()
		if len(keys) <= 1 {
			for k, v := range keys {
				writeKey(&b, k, v)
			}
			continue
		}
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			writeKey(&b, k, keys[k])
		}
	}
	return b.String()
}

func writeKey(b *strings.Builder, k, v string) {
	b.WriteByte('[')
	b.WriteString(k)
	b.WriteByte('=')
	b.WriteString(v)
	b.WriteByte(']')
}

// PathString is the text form of prefix joined with path
// (a/b[k=v]/c, keys sorted), as the Tree keys its subtrees and leaves.
func PathString(prefix, path *gpb.Path) string {
	p, q := pathString(prefix.GetElem()), pathString(path.GetElem())
	switch {
	case p == "":
		return q
	case q == "":
		return p
	}
	return p + "/" + q
}

// ValueText is a leaf value as text (numbers in decimal), for logs and
// tests.
func ValueText(v *gpb.TypedValue) string {
	switch x := v.GetValue().(type) {
	case *gpb.TypedValue_UintVal:
		return strconv.FormatUint(x.UintVal, 10)
	case *gpb.TypedValue_IntVal:
		return strconv.FormatInt(x.IntVal, 10)
	case *gpb.TypedValue_StringVal:
		return x.StringVal
	case *gpb.TypedValue_BoolVal:
		return strconv.FormatBool(x.BoolVal)
	}
	return v.String()
}

// elem is a path element, with key k=v if k is given.
func elem(name string, kv ...string) *gpb.PathElem {
	e := &gpb.PathElem{Name: name}
	if len(kv) > 0 {
		e.Key = make(map[string]string, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			e.Key[kv[i]] = kv[i+1]
		}
	}
	return e
}

// joinErrs keeps the first few errors of a rendering pass: one failing
// subtree must not hide the others, nor flood the log.
type joinErrs struct {
	errs []error
	n    int
}

func (j *joinErrs) add(err error) {
	if err == nil {
		return
	}
	j.n++
	if len(j.errs) < 3 {
		j.errs = append(j.errs, err)
	}
}

func (j *joinErrs) err() error {
	if j.n > len(j.errs) {
		j.errs = append(j.errs, fmt.Errorf("and %d more", j.n-len(j.errs)))
	}
	return errors.Join(j.errs...)
}
