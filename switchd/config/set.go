package config

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/goyang/pkg/yang"

	"github.com/switchd/switchd/models/oc"
)

// Set applies a gNMI SetRequest to a config as one transaction: its
// deletes, replaces and updates, in that order (gNMI's), are made to a
// copy of the document running (RFC 7951 JSON, as ToJSON gives it), and
// the result is validated as a whole by Parse, the code `switchd check`
// and a reload run. It returns the new intent and document, or Errors
// naming the OpenConfig path of each problem; running is never changed.
//
// Paths are walked in the schema: an unknown element, a list entry
// without all its keys (or with "*") and a state (config false) node are
// refused at the path. Values are JSON_IETF or JSON (a subtree) or a
// scalar TypedValue (a leaf); a value of the wrong type is refused by the
// validator at the leaf's path. Deleting what is not there is no error
// (gNMI's rule). An update merges: containers member by member, lists
// entry by entry by their keys; a leaf-list is replaced.
func Set(running []byte, req *gpb.SetRequest) (*Intent, []byte, error) {
	v, err := decodeJSON(running)
	if err != nil {
		return nil, nil, Errors{{Path: "/", Reason: fmt.Sprintf("running config: %v", err)}}
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return nil, nil, Errors{{Path: "/", Reason: "running config is not a JSON object"}}
	}
	if len(req.GetUnionReplace()) > 0 {
		return nil, nil, Errors{{Path: "/", Reason: "union_replace is not supported: use replace and update"}}
	}
	s := &setter{root: oc.LazySchemaTree()["Device"]}
	prefix := req.GetPrefix()
	for _, p := range req.GetDelete() {
		doc = s.apply(doc, prefix, p, nil, opDelete)
	}
	for _, u := range req.GetReplace() {
		doc = s.apply(doc, prefix, u.GetPath(), u.GetVal(), opReplace)
	}
	for _, u := range req.GetUpdate() {
		doc = s.apply(doc, prefix, u.GetPath(), u.GetVal(), opUpdate)
	}
	if len(s.list) > 0 {
		return nil, nil, sortErrors(s.list)
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, nil, Errors{{Path: "/", Reason: err.Error()}}
	}
	out = append(out, '\n')
	in, err := Parse(out, "set.json")
	if err != nil {
		return nil, nil, err
	}
	return in, out, nil
}

// LoadJSON is Load that also returns the config as JSON (YAML is
// converted), the running document Set takes.
func LoadJSON(path string) (*Intent, []byte, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, nil, err
	}
	in, err := Parse(data, path)
	if err != nil {
		return nil, nil, err
	}
	j, err := toJSON(data, isYAML(data, path))
	if err != nil {
		return nil, nil, err
	}
	return in, j, nil
}

type setOp int

const (
	opDelete setOp = iota
	opReplace
	opUpdate
)

type setter struct {
	errs
	root *yang.Entry
}

// apply makes one operation on doc and returns the new document (a
// replace of the root is a new one).
func (s *setter) apply(doc map[string]any, prefix, p *gpb.Path, tv *gpb.TypedValue, op setOp) map[string]any {
	for _, o := range []string{prefix.GetOrigin(), p.GetOrigin()} {
		if o != "" && o != "openconfig" {
			s.add(nil, fmt.Sprintf("origin %q: only openconfig is configured", o))
			return doc
		}
	}
	if len(p.GetElement()) > 0 || len(prefix.GetElement()) > 0 {
		s.add(nil, "paths in the deprecated element form are not served: use elem")
		return doc
	}
	elems := append(append([]*gpb.PathElem{}, prefix.GetElem()...), p.GetElem()...)
	if len(elems) == 0 {
		// The whole tree.
		switch op {
		case opDelete:
			return map[string]any{}
		case opReplace:
			if m, ok := s.value(tv, s.root, nil).(map[string]any); ok {
				return m
			}
			s.add(nil, "the root is replaced by a JSON object")
			return doc
		}
		if v := s.value(tv, s.root, nil); v != nil {
			return merge(doc, v, s.root).(map[string]any)
		}
		return doc
	}
	s.at(doc, s.root, elems, nil, op, func(old any, exists bool, sch *yang.Entry, p path) (any, bool) {
		switch op {
		case opDelete:
			return nil, false
		case opReplace:
			return s.value(tv, sch, p), true
		}
		v := s.value(tv, sch, p)
		if !exists || v == nil {
			return v, true
		}
		return merge(old, v, sch), true
	})
	return doc
}

// at finds the node elems name below the object m (whose schema is sch,
// at p) and sets it to what f returns (keep false: removes it). The
// objects and list entries on the way are made if missing, except for a
// delete, which has nothing to do then.
func (s *setter) at(m map[string]any, sch *yang.Entry, elems []*gpb.PathElem, p path, op setOp, f func(old any, exists bool, sch *yang.Entry, p path) (any, bool)) {
	e := elems[0]
	name := e.GetName()
	if i := strings.IndexByte(name, ':'); i >= 0 {
		name = name[i+1:]
	}
	child := sch.Dir[name]
	if child == nil {
		s.add(p.child(name), "unknown path: no such node in the schema")
		return
	}
	if child.ReadOnly() {
		s.add(p.child(name), "state (config false) is not configurable")
		return
	}
	mk := memberKey(m, name)
	last := len(elems) == 1
	if !child.IsList() {
		if len(e.GetKey()) > 0 {
			s.add(p.child(name), "keys given to a node that is not a list")
			return
		}
		p := p.child(name)
		if last {
			old, exists := m[mk]
			if v, keep := f(old, exists, child, p); keep && v != nil {
				m[mk] = v
			} else {
				delete(m, mk)
			}
			return
		}
		sub, ok := m[mk].(map[string]any)
		if !ok {
			if op == opDelete {
				return
			}
			sub = map[string]any{}
			m[mk] = sub
		}
		s.at(sub, child, elems[1:], p, op, f)
		return
	}
	keyNames := strings.Fields(child.Key)
	if len(e.GetKey()) == 0 {
		// The whole list: only as the last element.
		if !last {
			s.add(p.child(name), "a list entry is named by its keys ("+child.Key+")")
			return
		}
		old, exists := m[mk]
		if v, keep := f(old, exists, child, p.child(name)); keep && v != nil {
			m[mk] = v
		} else {
			delete(m, mk)
		}
		return
	}
	var keys []kv
	for _, k := range keyNames {
		v, ok := e.GetKey()[k]
		if !ok || v == "*" {
			s.add(p.child(name), fmt.Sprintf("a Set names every key of the entry (%s), without wildcards", child.Key))
			return
		}
		keys = append(keys, kv{k, v})
	}
	if len(e.GetKey()) != len(keyNames) {
		s.add(p.child(name), fmt.Sprintf("the entry's keys are %s", child.Key))
		return
	}
	p = p.entry(name, keys)
	list, _ := m[mk].([]any)
	idx := -1
	for i, x := range list {
		if o, ok := x.(map[string]any); ok && keysMatch(o, child, keys) {
			idx = i
			break
		}
	}
	if last {
		var old any
		if idx >= 0 {
			old = list[idx]
		}
		v, keep := f(old, idx >= 0, child, p)
		o, isObj := v.(map[string]any)
		switch {
		case !keep || v == nil:
			if idx >= 0 {
				list = append(list[:idx:idx], list[idx+1:]...)
			}
		case !isObj:
			s.add(p, "a list entry is set to a JSON object")
			return
		default:
			if !s.withKeys(o, child, keys, p) {
				return
			}
			if idx >= 0 {
				list[idx] = o
			} else {
				list = append(list, o)
			}
		}
		if len(list) == 0 {
			delete(m, mk)
		} else {
			m[mk] = list
		}
		return
	}
	if idx < 0 {
		if op == opDelete {
			return
		}
		o := map[string]any{}
		s.withKeys(o, child, keys, p)
		list = append(list, o)
		idx = len(list) - 1
		m[mk] = list
	}
	sub, ok := list[idx].(map[string]any)
	if !ok {
		s.add(p, "the running config's entry is not an object")
		return
	}
	s.at(sub, child, elems[1:], p, op, f)
}

// withKeys puts the path's key values into a list entry's object (RFC
// 7951 carries them as leaves of the entry), refusing a value whose own
// keys say otherwise.
func (s *setter) withKeys(o map[string]any, list *yang.Entry, keys []kv, p path) bool {
	for _, k := range keys {
		mk := memberKey(o, k.k)
		if v, ok := o[mk]; ok {
			if !sameKey(keyLeaf(list, k.k), v, k.v) {
				s.add(p, fmt.Sprintf("the value's %s is %v, the path's %s", k.k, v, k.v))
				return false
			}
			continue
		}
		o[mk] = keyValue(keyLeaf(list, k.k), k.v)
	}
	return true
}

// keyValue is a key's path string as the JSON value of its leaf: a
// number for 8- to 32-bit integers, else the string (RFC 7951 writes
// 64-bit numbers as strings too).
func keyValue(leaf *yang.Entry, v string) any {
	if leaf == nil || leaf.Type == nil {
		return v
	}
	switch leaf.Type.Kind {
	case yang.Yint8, yang.Yint16, yang.Yint32, yang.Yuint8, yang.Yuint16, yang.Yuint32:
		if n, err := strconv.ParseFloat(v, 64); err == nil {
			return n
		}
	case yang.Ybool:
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	}
	return v
}

func keysMatch(o map[string]any, list *yang.Entry, keys []kv) bool {
	for _, k := range keys {
		v, ok := member(o, k.k)
		if !ok || !sameKey(keyLeaf(list, k.k), v, k.v) {
			return false
		}
	}
	return true
}

// keyLeaf is the leaf that types a list's key: the entry's key leaf is
// a leafref to its config twin, which has the type.
func keyLeaf(list *yang.Entry, k string) *yang.Entry {
	leaf := list.Dir[k]
	if leaf != nil && leaf.Type != nil && leaf.Type.Kind == yang.Yleafref {
		if c := list.Dir["config"]; c != nil && c.Dir[k] != nil {
			return c.Dir[k]
		}
	}
	return leaf
}

// sameKey says whether a key leaf's JSON value is the path's key value:
// an identity with or without its module prefix
// (openconfig-policy-types:BGP is BGP), a number in any JSON spelling.
func sameKey(leaf *yang.Entry, v any, key string) bool {
	s := fmt.Sprint(v)
	if f, ok := v.(float64); ok {
		s = strconv.FormatFloat(f, 'f', -1, 64)
	}
	if s == key {
		return true
	}
	if leaf == nil || leaf.Type == nil || leaf.Type.Kind != yang.Yidentityref {
		return false
	}
	return stripModule(s) == stripModule(key)
}

// stripModule drops a name's module prefix (a member name's, an
// identity's).
func stripModule(s string) string {
	if i := strings.IndexByte(s, ':'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// memberKey is the name m holds a member under, with or without a module
// prefix; the plain name if it has none yet.
func memberKey(m map[string]any, name string) string {
	if _, ok := m[name]; ok {
		return name
	}
	for k := range m {
		if i := strings.IndexByte(k, ':'); i >= 0 && k[i+1:] == name {
			return k
		}
	}
	return name
}

// value turns a Set's TypedValue into the JSON value of the node: JSON
// and JSON_IETF are decoded as the config file is; scalars become JSON
// scalars (64-bit integers strings, as RFC 7951 writes them).
func (s *setter) value(tv *gpb.TypedValue, sch *yang.Entry, p path) any {
	switch v := tv.GetValue().(type) {
	case *gpb.TypedValue_JsonIetfVal:
		return s.decode(v.JsonIetfVal, p)
	case *gpb.TypedValue_JsonVal:
		return s.decode(v.JsonVal, p)
	case *gpb.TypedValue_StringVal:
		return v.StringVal
	case *gpb.TypedValue_BoolVal:
		return v.BoolVal
	case *gpb.TypedValue_UintVal:
		if wide(sch) {
			return strconv.FormatUint(v.UintVal, 10)
		}
		return float64(v.UintVal)
	case *gpb.TypedValue_IntVal:
		if wide(sch) {
			return strconv.FormatInt(v.IntVal, 10)
		}
		return float64(v.IntVal)
	case *gpb.TypedValue_DoubleVal:
		return v.DoubleVal
	case *gpb.TypedValue_FloatVal:
		return float64(v.FloatVal)
	case *gpb.TypedValue_LeaflistVal:
		var out []any
		for _, e := range v.LeaflistVal.GetElement() {
			out = append(out, s.value(e, sch, p))
		}
		return out
	case nil:
		s.add(p, "no value given")
	default:
		s.add(p, fmt.Sprintf("value encoding %T is not served: use JSON_IETF or a scalar", v))
	}
	return nil
}

func wide(sch *yang.Entry) bool {
	if sch == nil || sch.Type == nil {
		return false
	}
	switch sch.Type.Kind {
	case yang.Yint64, yang.Yuint64, yang.Ydecimal64:
		return true
	}
	return false
}

func (s *setter) decode(data []byte, p path) any {
	v, err := decodeJSON(data)
	if err != nil {
		s.add(p, fmt.Sprintf("value: %v", err))
		return nil
	}
	return v
}

// merge lays an update's value over the old one: objects member by
// member, list entries by their keys; anything else is replaced.
func merge(old, v any, sch *yang.Entry) any {
	switch nv := v.(type) {
	case map[string]any:
		om, ok := old.(map[string]any)
		if !ok || sch == nil {
			return v
		}
		for k, x := range nv {
			mk := memberKey(om, stripModule(k))
			om[mk] = merge(om[mk], x, sch.Dir[stripModule(k)])
		}
		return om
	case []any:
		ol, ok := old.([]any)
		if !ok || sch == nil || !sch.IsList() || sch.Key == "" {
			return v
		}
		for _, x := range nv {
			xo, ok := x.(map[string]any)
			if !ok {
				return v // the validator refuses it
			}
			var keys []kv
			for _, k := range strings.Fields(sch.Key) {
				kvv, _ := member(xo, k)
				if f, ok := kvv.(float64); ok {
					kvv = strconv.FormatFloat(f, 'f', -1, 64)
				}
				keys = append(keys, kv{k, fmt.Sprint(kvv)})
			}
			i := 0
			for ; i < len(ol); i++ {
				if o, ok := ol[i].(map[string]any); ok && keysMatch(o, sch, keys) {
					break
				}
			}
			if i < len(ol) {
				ol[i] = merge(ol[i], xo, sch)
			} else {
				ol = append(ol, xo)
			}
		}
		return ol
	}
	return v
}
