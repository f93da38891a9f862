package gnmi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/goyang/pkg/yang"
	"github.com/openconfig/ygot/util"
	"github.com/openconfig/ygot/ygot"
	"google.golang.org/grpc/codes"
)

// Get answers from the cache and the sources. Each requested path gets
// one notification. In JSON or JSON_IETF, a path naming a leaf gets the
// leaf's value; a path naming a container or list entry (wildcards
// allowed) gets one update per matched node, its value the subtree as
// RFC 7951 JSON. In PROTO, every leaf is an update of its own with its
// typed value. The type filter keeps leaves under a "config" container
// for CONFIG, the others for STATE, and of those, ones with no config
// twin in the schema for OPERATIONAL.
func (s *Server) Get(ctx context.Context, req *gpb.GetRequest) (*gpb.GetResponse, error) {
	if err := s.checkTarget(req.GetPrefix().GetTarget()); err != nil {
		return nil, err
	}
	enc := req.GetEncoding()
	switch enc {
	case gpb.Encoding_JSON, gpb.Encoding_JSON_IETF, gpb.Encoding_PROTO:
	default:
		return nil, errorf(codes.Unimplemented, "encoding %v is not served (JSON_IETF, JSON, PROTO are)", enc)
	}
	var resp gpb.GetResponse
	for _, p := range req.GetPath() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pat, err := s.pattern(req.GetPrefix(), p)
		if err != nil {
			return nil, err
		}
		var leaves []leaf
		var ts int64
		err = s.walk(pat, func(n *gpb.Notification) error {
			pre := n.GetPrefix().GetElem()
			for _, u := range n.GetUpdate() {
				l := leaf{elems: append(pre[:len(pre):len(pre)], u.GetPath().GetElem()...), val: u.GetVal()}
				if !s.typeMatches(req.GetType(), l.elems) {
					continue
				}
				leaves = append(leaves, l)
				ts = max(ts, n.GetTimestamp())
			}
			return nil
		})
		if err != nil {
			return nil, errorf(codes.Internal, "get %v: %v", pat, err)
		}
		if len(leaves) == 0 && req.GetType() == gpb.GetRequest_ALL && !hasWildcard(pat) {
			return nil, errorf(codes.NotFound, "no data at %s", pathText(req.GetPrefix(), p))
		}
		n := &gpb.Notification{Timestamp: ts, Prefix: &gpb.Path{Target: req.GetPrefix().GetTarget()}}
		if enc == gpb.Encoding_PROTO {
			for _, l := range leaves {
				n.Update = append(n.Update, &gpb.Update{Path: &gpb.Path{Elem: l.elems}, Val: l.val})
			}
		} else {
			depth := len(req.GetPrefix().GetElem()) + len(p.GetElem())
			if n.Update, err = s.jsonUpdates(leaves, depth, enc == gpb.Encoding_JSON_IETF); err != nil {
				return nil, errorf(codes.Internal, "get %v: %v", pat, err)
			}
		}
		resp.Notification = append(resp.Notification, n)
	}
	return &resp, nil
}

type leaf struct {
	elems []*gpb.PathElem
	val   *gpb.TypedValue
}

func (s *Server) typeMatches(t gpb.GetRequest_DataType, elems []*gpb.PathElem) bool {
	if t == gpb.GetRequest_ALL {
		return true
	}
	config := false
	for _, e := range elems {
		if e.GetName() == "config" {
			config = true
		}
	}
	switch t {
	case gpb.GetRequest_CONFIG:
		return config
	case gpb.GetRequest_STATE:
		return !config
	case gpb.GetRequest_OPERATIONAL:
		return !config && !s.hasConfigTwin(elems)
	}
	return true
}

// hasConfigTwin reports whether a state leaf (…/state/x) has a config
// leaf …/config/x in the schema: state that only mirrors config.
func (s *Server) hasConfigTwin(elems []*gpb.PathElem) bool {
	n := len(elems)
	if s.opts.Schema == nil || n < 2 || elems[n-2].GetName() != "state" {
		return false
	}
	e := s.entry(elems[:n-2])
	if e == nil {
		return false
	}
	c := childEntry(e, "config")
	return c != nil && childEntry(c, elems[n-1].GetName()) != nil
}

// entry is the schema node at elems, or nil.
func (s *Server) entry(elems []*gpb.PathElem) *yang.Entry {
	e := s.opts.Schema
	for _, el := range elems {
		if e == nil {
			return nil
		}
		e = childEntry(e, el.GetName())
	}
	return e
}

// jsonUpdates groups leaves by the node of depth elements they are at or
// below and renders each node's subtree as JSON.
func (s *Server) jsonUpdates(leaves []leaf, depth int, ietf bool) ([]*gpb.Update, error) {
	type node struct {
		path *gpb.Path
		obj  map[string]any
		val  any
	}
	var order []string
	nodes := map[string]*node{}
	for _, l := range leaves {
		d := min(depth, len(l.elems))
		head := l.elems[:d]
		k := (&gpb.Path{Elem: head}).String()
		nd := nodes[k]
		if nd == nil {
			nd = &node{path: &gpb.Path{Elem: head}, obj: map[string]any{}}
			if d > 0 && d < len(l.elems) { // a list entry's object holds its keys
				for k, kv := range head[d-1].GetKey() {
					nd.obj[k] = kv
				}
			}
			nodes[k] = nd
			order = append(order, k)
		}
		v := s.jsonValue(l, ietf)
		if d == len(l.elems) {
			nd.val = v
			continue
		}
		insert(nd.obj, l.elems[d:], v, s.qualifier(ietf, head))
	}
	sort.Strings(order)
	var out []*gpb.Update
	for _, k := range order {
		nd := nodes[k]
		v := nd.val
		if v == nil {
			v = finish(nd.obj)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		tv := &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: b}}
		if !ietf {
			tv = &gpb.TypedValue{Value: &gpb.TypedValue_JsonVal{JsonVal: b}}
		}
		out = append(out, &gpb.Update{Path: nd.path, Val: tv})
	}
	return out, nil
}

// list is a JSON list under construction: entries by their keys.
type list struct {
	order   []string
	entries map[string]map[string]any
}

// insert puts v at rest below obj. qualify names the first-level
// members (nil: as they are).
func insert(obj map[string]any, rest []*gpb.PathElem, v any, qualify func(string) string) {
	for i, e := range rest {
		name := e.GetName()
		if qualify != nil && i == 0 {
			name = qualify(name)
		}
		if i == len(rest)-1 && len(e.GetKey()) == 0 {
			obj[name] = v
			return
		}
		if len(e.GetKey()) == 0 {
			c, ok := obj[name].(map[string]any)
			if !ok {
				c = map[string]any{}
				obj[name] = c
			}
			obj = c
			continue
		}
		l, ok := obj[name].(*list)
		if !ok {
			l = &list{entries: map[string]map[string]any{}}
			obj[name] = l
		}
		kk := strings.Join(sortedValues(e.GetKey()), "\x00")
		entry := l.entries[kk]
		if entry == nil {
			entry = map[string]any{}
			for k, kv := range e.GetKey() {
				entry[k] = kv // the key leaves, which RFC 7951 wants in each entry
			}
			l.entries[kk] = entry
			l.order = append(l.order, kk)
		}
		obj = entry
		if i == len(rest)-1 { // a value for the entry itself: nothing to add
			return
		}
	}
}

// finish turns lists under construction into JSON arrays.
func finish(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, c := range t {
			t[k] = finish(c)
		}
		return t
	case *list:
		sort.Strings(t.order) // the cache's walk has no order; answers should
		arr := make([]any, 0, len(t.order))
		for _, k := range t.order {
			arr = append(arr, finish(t.entries[k]))
		}
		return arr
	}
	return v
}

// qualifier names the members of a JSON_IETF value at node head with
// their module ("openconfig-interfaces:interface"), as ygot's RFC 7951
// rendering does for a value's first level (below it, names are plain:
// the modules of augmented nodes are not told apart). The generated
// schema records a node's module as the first element of its schema
// path. nil when the names stay plain.
func (s *Server) qualifier(ietf bool, head []*gpb.PathElem) func(string) string {
	if !ietf || s.opts.Schema == nil {
		return nil
	}
	parent := s.entry(head)
	if parent == nil {
		return nil
	}
	return func(name string) string {
		e := childEntry(parent, name)
		if e == nil {
			return name
		}
		sp, _ := e.Annotation["schemapath"].(string)
		if m, _, ok := strings.Cut(strings.TrimPrefix(sp, "/"), "/"); ok && m != "" {
			return m + ":" + name
		}
		return name
	}
}

// jsonValue is l's value as RFC 7951 wants it (with ietf): 64-bit
// integers and decimals as strings, others as JSON numbers, booleans and
// strings.
func (s *Server) jsonValue(l leaf, ietf bool) any {
	return s.typedJSON(l.val, ietf && s.is64(l.elems))
}

func (s *Server) typedJSON(tv *gpb.TypedValue, quote64 bool) any {
	switch v := tv.GetValue().(type) {
	case *gpb.TypedValue_StringVal:
		return v.StringVal
	case *gpb.TypedValue_IntVal:
		if quote64 {
			return strconv.FormatInt(v.IntVal, 10)
		}
		return v.IntVal
	case *gpb.TypedValue_UintVal:
		if quote64 {
			return strconv.FormatUint(v.UintVal, 10)
		}
		return v.UintVal
	case *gpb.TypedValue_BoolVal:
		return v.BoolVal
	case *gpb.TypedValue_DoubleVal:
		return v.DoubleVal
	case *gpb.TypedValue_FloatVal:
		return v.FloatVal
	case *gpb.TypedValue_DecimalVal:
		d := v.DecimalVal
		return strconv.FormatFloat(float64(d.GetDigits())/pow10(d.GetPrecision()), 'f', int(d.GetPrecision()), 64)
	case *gpb.TypedValue_BytesVal:
		return base64.StdEncoding.EncodeToString(v.BytesVal)
	case *gpb.TypedValue_JsonIetfVal:
		return json.RawMessage(v.JsonIetfVal)
	case *gpb.TypedValue_JsonVal:
		return json.RawMessage(v.JsonVal)
	case *gpb.TypedValue_LeaflistVal:
		arr := make([]any, 0, len(v.LeaflistVal.GetElement()))
		for _, e := range v.LeaflistVal.GetElement() {
			arr = append(arr, s.typedJSON(e, quote64))
		}
		return arr
	case *gpb.TypedValue_AsciiVal:
		return v.AsciiVal
	}
	return nil
}

func pow10(n uint32) float64 {
	f := 1.0
	for ; n > 0; n-- {
		f *= 10
	}
	return f
}

// is64 reports whether the schema types the leaf at elems as a 64-bit
// integer or decimal64, which RFC 7951 writes as strings.
func (s *Server) is64(elems []*gpb.PathElem) bool { return Is64(s.entry(elems)) }

// Is64 reports whether e (a leafref is followed) is a 64-bit integer or
// decimal64 leaf, which RFC 7951 writes as a string.
func Is64(e *yang.Entry) bool {
	e, err := util.ResolveIfLeafRef(e)
	if err != nil || e == nil || e.Type == nil {
		return false
	}
	switch e.Type.Kind {
	case yang.Yint64, yang.Yuint64, yang.Ydecimal64:
		return true
	}
	return false
}

func hasWildcard(pat []string) bool {
	for _, e := range pat {
		if e == glob || e == globMulti {
			return true
		}
	}
	return false
}

// pathText is prefix + p as gNMI path text, for errors.
func pathText(prefix, p *gpb.Path) string {
	t, err := ygot.PathToString(&gpb.Path{Elem: append(append([]*gpb.PathElem(nil), prefix.GetElem()...), p.GetElem()...)})
	if err != nil {
		return p.String()
	}
	return t
}
