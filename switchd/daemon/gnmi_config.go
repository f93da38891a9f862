package daemon

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/goyang/pkg/yang"
	"google.golang.org/protobuf/proto"

	"github.com/switchd/switchd/models/oc"
)

// The running config in the gNMI tree: Get and Subscribe serve it beside
// the state, as the tree a Set edits. It is published from the running
// JSON document (what a Set edits and the file holds), walked in the
// schema, so the leaves are the config containers' (config/peer-as),
// which the state tree (state/...) never publishes. Only changed leaves
// go out, and leaves gone are deleted.

// publishConfig publishes the running document's config leaves. The
// loop's.
func (g *gnmiServe) publishConfig(now time.Time) error {
	var doc map[string]any
	if err := json.Unmarshal(g.running, &doc); err != nil {
		return fmt.Errorf("running config: %w", err)
	}
	leaves := map[string]*gpb.Update{}
	configLeaves(doc, oc.LazySchemaTree()["Device"], nil, false, leaves)
	n := &gpb.Notification{Timestamp: now.UnixNano(), Prefix: &gpb.Path{}}
	for k, u := range leaves {
		if o, ok := g.config[k]; ok && proto.Equal(o.GetVal(), u.GetVal()) {
			continue
		}
		n.Update = append(n.Update, u)
	}
	for k, o := range g.config {
		if _, ok := leaves[k]; !ok {
			n.Delete = append(n.Delete, o.GetPath())
		}
	}
	if len(n.Update) == 0 && len(n.Delete) == 0 {
		return nil
	}
	if err := g.srv.Update(n); err != nil {
		g.config = nil // published whole next time
		return err
	}
	g.config = leaves
	return nil
}

// configLeaves adds the leaves below the object m (schema sch, at
// prefix) to out by path string; inConfig says m is inside a config
// container. List keys are published by their config/ twins.
func configLeaves(m map[string]any, sch *yang.Entry, prefix []*gpb.PathElem, inConfig bool, out map[string]*gpb.Update) {
	for k, v := range m {
		name := k
		if i := strings.IndexByte(k, ':'); i >= 0 {
			name = k[i+1:]
		}
		c := sch.Dir[name]
		if c == nil {
			continue
		}
		switch {
		case c.IsList():
			entries, _ := v.([]any)
			for _, e := range entries {
				o, ok := e.(map[string]any)
				if !ok {
					continue
				}
				keys := map[string]string{}
				for _, kn := range strings.Fields(c.Key) {
					keys[kn] = keyText(o[memberName(o, kn)])
				}
				configLeaves(o, c, appendElem(prefix, &gpb.PathElem{Name: name, Key: keys}), false, out)
			}
		case c.IsContainer():
			if o, ok := v.(map[string]any); ok {
				configLeaves(o, c, appendElem(prefix, &gpb.PathElem{Name: name}), name == "config", out)
			}
		case inConfig:
			tv := leafValue(v, c)
			if tv == nil {
				continue
			}
			p := &gpb.Path{Elem: appendElem(prefix, &gpb.PathElem{Name: name})}
			out[pathKey(p)] = &gpb.Update{Path: p, Val: tv}
		}
	}
}

func appendElem(p []*gpb.PathElem, e *gpb.PathElem) []*gpb.PathElem {
	return append(p[:len(p):len(p)], e)
}

// memberName is the member of o named name, with or without a module
// prefix.
func memberName(o map[string]any, name string) string {
	for k := range o {
		if k == name || strings.HasSuffix(k, ":"+name) {
			return k
		}
	}
	return name
}

// keyText is a key's value as a path carries it: identities without
// their module, numbers in full.
func keyText(v any) string {
	switch v := v.(type) {
	case string:
		// An identity has one colon after a module name; an IPv6
		// address has at least two.
		if m, id, ok := strings.Cut(v, ":"); ok && m != "" && !strings.Contains(id, ":") && isModuleName(m) {
			return id
		}
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// leafValue is a JSON leaf as a gNMI value of its schema type: numbers
// (RFC 7951 writes 64-bit ones as strings) as integers, identities
// without their module, as the state tree renders them.
func leafValue(v any, leaf *yang.Entry) *gpb.TypedValue {
	if l, ok := v.([]any); ok {
		var es []*gpb.TypedValue
		for _, x := range l {
			if tv := leafValue(x, leaf); tv != nil {
				es = append(es, tv)
			}
		}
		return &gpb.TypedValue{Value: &gpb.TypedValue_LeaflistVal{LeaflistVal: &gpb.ScalarArray{Element: es}}}
	}
	kind := yang.Ystring
	if leaf.Type != nil {
		kind = leaf.Type.Kind
	}
	switch kind {
	case yang.Yuint8, yang.Yuint16, yang.Yuint32, yang.Yuint64:
		if n, err := strconv.ParseUint(keyText(v), 10, 64); err == nil {
			return &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: n}}
		}
	case yang.Yint8, yang.Yint16, yang.Yint32, yang.Yint64:
		if n, err := strconv.ParseInt(keyText(v), 10, 64); err == nil {
			return &gpb.TypedValue{Value: &gpb.TypedValue_IntVal{IntVal: n}}
		}
	}
	switch v := v.(type) {
	case bool:
		return &gpb.TypedValue{Value: &gpb.TypedValue_BoolVal{BoolVal: v}}
	case float64:
		if v == float64(uint64(v)) {
			return &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: uint64(v)}}
		}
		return &gpb.TypedValue{Value: &gpb.TypedValue_DoubleVal{DoubleVal: v}}
	case string:
		return &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: keyText(v)}}
	}
	return nil
}

// pathKey is a path's string form with its keys in name order.
func pathKey(p *gpb.Path) string {
	var b strings.Builder
	for _, e := range p.GetElem() {
		b.WriteByte('/')
		b.WriteString(e.GetName())
		names := make([]string, 0, len(e.GetKey()))
		for k := range e.GetKey() {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			fmt.Fprintf(&b, "[%s=%s]", k, e.GetKey()[k])
		}
	}
	return b.String()
}

// isModuleName says whether s may be a YANG module name: a letter or
// underscore, then letters, digits, '_', '-' and '.'.
func isModuleName(s string) bool {
	for i, r := range s {
		switch {
		case r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z':
		case i > 0 && (r == '-' || r == '.' || '0' <= r && r <= '9'):
		default:
			return false
		}
	}
	return true
}
