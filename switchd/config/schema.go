package config

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/openconfig/goyang/pkg/yang"

	"github.com/switchd/switchd/models/oc"
)

// checkTree walks the decoded JSON document against the schema. It reports
// what ygot's unmarshaller either reports without a path or does not
// report at all: unknown members, JSON of the wrong shape, state (config
// false) data, list entries without keys and two entries with the same key
// (ygot merges them silently). Values are the unmarshaller's to check.
func checkTree(doc any) Errors {
	w := &walker{}
	root := oc.LazySchemaTree()["Device"]
	m, ok := doc.(map[string]any)
	if !ok {
		w.add(nil, "the config must be a JSON object (the root of the OpenConfig tree)")
		return w.list
	}
	w.container(root, m, nil, nil)
	return w.list
}

type walker struct {
	errs
}

// knownModules is the set of YANG modules that instantiate nodes of the
// generated tree, from the structs' module tags: the names an RFC 7951
// member may be qualified with. (ygot accepts any qualifier.)
var knownModules = sync.OnceValue(func() map[string]bool {
	mods := map[string]bool{}
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Ptr || t.Kind() == reflect.Map || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			for _, tag := range []string{"module", "shadow-module"} {
				for _, m := range strings.FieldsFunc(f.Tag.Get(tag), func(r rune) bool { return r == '/' || r == '|' }) {
					mods[m] = true
				}
			}
			walk(f.Type)
			// Ordered maps keep their entries behind methods.
			if m, ok := reflect.PointerTo(f.Type).MethodByName("Values"); ok && f.Type.Kind() == reflect.Struct {
				walk(m.Type.Out(0))
			}
			if m, ok := f.Type.MethodByName("Values"); ok {
				walk(m.Type.Out(0))
			}
		}
	}
	walk(reflect.TypeOf(oc.Device{}))
	return mods
})

// splitName splits an RFC 7951 member name "module:name".
func splitName(member string) string {
	if i := strings.IndexByte(member, ':'); i >= 0 {
		return member[i+1:]
	}
	return member
}

// findChild finds a data node child by name, looking through choice and
// case nodes, which have no JSON member of their own.
func findChild(e *yang.Entry, name string) *yang.Entry {
	if c, ok := e.Dir[name]; ok && !c.IsChoice() && !c.IsCase() {
		return c
	}
	for _, c := range e.Dir {
		if c.IsChoice() || c.IsCase() {
			if f := findChild(c, name); f != nil {
				return f
			}
		}
	}
	return nil
}

func (w *walker) container(e *yang.Entry, m map[string]any, p path, keys []string) {
	members := make([]string, 0, len(m))
	for k := range m {
		members = append(members, k)
	}
	// Keys first, so that a broken key is found before the leaves that
	// depend on it.
	isKey := func(k string) bool {
		for _, key := range keys {
			if splitName(k) == key {
				return true
			}
		}
		return false
	}
	sort.Slice(members, func(i, j int) bool {
		ki, kj := isKey(members[i]), isKey(members[j])
		if ki != kj {
			return ki
		}
		return members[i] < members[j]
	})
	for _, k := range members {
		name := splitName(k)
		cp := p.child(name)
		if mod, _, ok := strings.Cut(k, ":"); ok && !knownModules()[mod] {
			w.add(cp, fmt.Sprintf("unknown module %q in member name %q", mod, k))
			continue
		}
		c := findChild(e, name)
		if c == nil {
			w.add(cp, fmt.Sprintf("unknown element %q (not in the OpenConfig schema switchd serves)", name))
			continue
		}
		if c.ReadOnly() {
			w.add(cp, "state (config false) cannot be configured; set the config container instead")
			continue
		}
		w.node(c, m[k], cp)
	}
}

func (w *walker) node(e *yang.Entry, v any, p path) {
	switch {
	case e.IsList():
		a, ok := v.([]any)
		if !ok {
			w.add(p, fmt.Sprintf("expected a JSON array of list entries, got %s", jsonKind(v)))
			return
		}
		keyNames := strings.Fields(e.Key)
		seen := map[string]int{}
		for i, el := range a {
			m, ok := el.(map[string]any)
			if !ok {
				w.add(p, fmt.Sprintf("list entry #%d: expected a JSON object, got %s", i+1, jsonKind(el)))
				continue
			}
			var kvs []kv
			missing := ""
			for _, kn := range keyNames {
				val, ok := member(m, kn)
				if !ok {
					missing = kn
					break
				}
				kvs = append(kvs, kv{kn, keyText(val)})
			}
			if missing != "" {
				w.add(p, fmt.Sprintf("list entry #%d has no key %q", i+1, missing))
				continue
			}
			ep := p[:len(p)-1].entry(p[len(p)-1].name, kvs)
			id := fmt.Sprint(kvs)
			if first, dup := seen[id]; dup {
				w.add(ep, fmt.Sprintf("duplicate list entry: entries #%d and #%d have the same key", first+1, i+1))
				continue
			}
			seen[id] = i
			w.container(e, m, ep, keyNames)
		}
	case e.IsContainer():
		m, ok := v.(map[string]any)
		if !ok {
			w.add(p, fmt.Sprintf("expected a JSON object, got %s", jsonKind(v)))
			return
		}
		w.container(e, m, p, nil)
	case e.IsLeafList():
		if _, ok := v.([]any); !ok {
			w.add(p, fmt.Sprintf("expected a JSON array (leaf-list), got %s", jsonKind(v)))
		}
	default:
		switch v := v.(type) {
		case map[string]any:
			w.add(p, "expected a single value, got a JSON object")
			return
		case []any:
			// The YANG type empty is [null] in RFC 7951.
			if !(len(v) == 1 && v[0] == nil && e.Type != nil && e.Type.Kind == yang.Yempty) {
				w.add(p, "expected a single value, got a JSON array")
			}
		}
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "a JSON object"
	case []any:
		return "a JSON array"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

var identityValue = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*:([A-Za-z_][A-Za-z0-9_.-]*)$`)

// keyText is a key value as it appears in a path: numbers in decimal and
// identities without their module (BGP, not openconfig-policy-types:BGP).
// IPv6 addresses never match identityValue (they have more than one ':'
// or start with a digit).
func keyText(v any) string {
	switch v := v.(type) {
	case string:
		if m := identityValue.FindStringSubmatch(v); m != nil {
			return m[1]
		}
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// wrongType is ygot's message for a JSON value of the wrong type.
var wrongType = regexp.MustCompile(`got (\S+) type for field \S+, expect float64`)
