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
	"github.com/openconfig/ygot/ytypes"

	"github.com/switchd/switchd/models/oc"
)

// step is how to reach a node from the root of the JSON document: a member
// name as written and, for a list, the index of the entry and the member
// names of its keys.
type step struct {
	member string
	index  int // -1 unless member is a list
	keys   []string
}

// leaf is a leaf or leaf-list found in the document.
type leaf struct {
	p     path
	steps []step
	key   bool // a list key; checked before the entry's other leaves
}

// checkTree walks the decoded JSON document against the schema. It reports
// what ygot's unmarshaller either reports without a path or does not
// report at all: unknown members, JSON of the wrong shape, state (config
// false) data, list entries without keys and two entries with the same key
// (ygot merges them silently). It returns the leaves it found, for
// locateUnmarshalErrors.
func checkTree(doc any) (Errors, []leaf) {
	w := &walker{}
	root := oc.LazySchemaTree()["Device"]
	m, ok := doc.(map[string]any)
	if !ok {
		w.add(nil, "the config must be a JSON object (the root of the OpenConfig tree)")
		return w.list, nil
	}
	w.container(root, m, nil, nil, nil)
	return w.list, w.leaves
}

type walker struct {
	errs
	leaves []leaf
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

func (w *walker) container(e *yang.Entry, m map[string]any, p path, steps []step, keys []string) {
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
		w.node(c, m[k], cp, append(steps[:len(steps):len(steps)], step{member: k, index: -1}), isKey(k))
	}
}

func (w *walker) node(e *yang.Entry, v any, p path, steps []step, key bool) {
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
			var keyMembers []string
			missing := ""
			for _, kn := range keyNames {
				member, val, ok := lookup(m, kn)
				if !ok {
					missing = kn
					break
				}
				keyMembers = append(keyMembers, member)
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
			s := append(steps[:len(steps)-1:len(steps)-1], step{member: steps[len(steps)-1].member, index: i, keys: keyMembers})
			w.container(e, m, ep, s, keyNames)
		}
	case e.IsContainer():
		m, ok := v.(map[string]any)
		if !ok {
			w.add(p, fmt.Sprintf("expected a JSON object, got %s", jsonKind(v)))
			return
		}
		w.container(e, m, p, steps, nil)
	case e.IsLeafList():
		if _, ok := v.([]any); !ok {
			w.add(p, fmt.Sprintf("expected a JSON array (leaf-list), got %s", jsonKind(v)))
			return
		}
		w.leaves = append(w.leaves, leaf{p: p, steps: steps})
	default:
		switch v := v.(type) {
		case map[string]any:
			w.add(p, "expected a single value, got a JSON object")
			return
		case []any:
			// The YANG type empty is [null] in RFC 7951.
			if !(len(v) == 1 && v[0] == nil && e.Type != nil && e.Type.Kind == yang.Yempty) {
				w.add(p, "expected a single value, got a JSON array")
				return
			}
		}
		w.leaves = append(w.leaves, leaf{p: p, steps: steps, key: key})
	}
}

func lookup(m map[string]any, name string) (string, any, bool) {
	for k, v := range m {
		if splitName(k) == name {
			return k, v, true
		}
	}
	return "", nil, false
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

// minimalDoc builds a document holding only the leaf at steps (and the keys
// of the list entries on the way), so that unmarshalling it on its own
// tells whether this leaf is what ygot rejects.
func minimalDoc(doc map[string]any, steps []step) map[string]any {
	out := map[string]any{}
	o, cur := out, doc
	for i, s := range steps {
		v := cur[s.member]
		if i == len(steps)-1 {
			o[s.member] = v
			break
		}
		if s.index < 0 {
			m := map[string]any{}
			o[s.member] = m
			o, cur = m, v.(map[string]any)
			continue
		}
		el := v.([]any)[s.index].(map[string]any)
		m := map[string]any{}
		for _, k := range s.keys {
			m[k] = el[k]
		}
		o[s.member] = []any{m}
		o, cur = m, el
	}
	return out
}

var wrongType = regexp.MustCompile(`got (\S+) type for field \S+, expect float64`)

// locateUnmarshalErrors finds which leaves ygot rejects, by unmarshalling
// each on its own: ygot's own messages ("got string type for field
// peer-as, expect float64") do not say where in the tree the leaf is.
func locateUnmarshalErrors(doc map[string]any, leaves []leaf) Errors {
	var c errs
	var badEntries []string
	for _, l := range leaves {
		ps := l.p.String()
		skip := false
		for _, b := range badEntries {
			if strings.HasPrefix(ps, b+"/") {
				skip = true
			}
		}
		if skip {
			continue
		}
		err := ytypes.Unmarshal(oc.LazySchemaTree()["Device"], &oc.Device{}, minimalDoc(doc, l.steps), &ytypes.PreferShadowPath{})
		if err == nil {
			continue
		}
		c.add(l.p, "invalid value: "+wrongType.ReplaceAllString(err.Error(), "got a $1, expected a number"))
		if l.key {
			badEntries = append(badEntries, l.p[:len(l.p)-1].String())
		}
	}
	return c.list
}
