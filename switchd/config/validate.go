package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/openconfig/goyang/pkg/yang"
	"github.com/openconfig/ygot/util"
	"github.com/openconfig/ygot/ygot"
	"github.com/openconfig/ygot/ytypes"

	"github.com/switchd/switchd/models/oc"
)

// validateTree refuses what switchd does not apply (see supportedLeaves)
// and validates the rest against the schema (types, patterns, ranges,
// leafrefs), naming the data path of each bad leaf, list
// keys included (ygot's Device.Validate names only the schema path, and
// takes seconds for a large tree). Each leaf is validated on its own with
// ytypes.Validate during a walk that knows the keys; leafrefs are checked
// against the values found in the same walk.
func validateTree(dev *oc.Device) Errors {
	v := &validator{values: map[string]map[string]bool{}}
	v.walk(reflect.ValueOf(dev), oc.LazySchemaTree()["Device"], nil, "")
	if len(v.list) > 0 {
		return v.list
	}
	v.checkLeafrefs()
	return v.list
}

type validator struct {
	errs
	// values holds, by schema path (/a/b/c, no keys, no module
	// prefixes), every value a leaf there has: what leafrefs may refer to.
	values map[string]map[string]bool
	refs   []leafref
}

// leafref is a leafref leaf found by the walk.
type leafref struct {
	p      path
	target string // schema path of what it refers to
	value  string
}

// relPath is the data path of a field relative to its struct: the config
// path (shadow-path) where there is one, since that is what intent sets.
func relPath(f *fieldInfo) []string { return f.paths[0] }

func (v *validator) walk(sv reflect.Value, schema *yang.Entry, p path, sp string) {
	if sv.IsNil() {
		return
	}
	ti, err := infoFor(sv.Type().Elem(), schema)
	if err != nil {
		v.add(p, err.Error())
		return
	}
	s := sv.Elem()
	for i := range ti.fields {
		f := &ti.fields[i]
		fv := s.Field(f.index)
		if util.IsValueNilOrDefault(fv.Interface()) {
			continue
		}
		fp := p.extend(relPath(f))
		fsp := sp + "/" + strings.Join(relPath(f), "/")
		if reason := unsupported(fsp); reason != "" {
			v.add(fp, reason)
			continue
		}
		switch cs := f.schema; {
		case cs.IsList():
			v.walkList(fv, cs, fp, fsp)
		case cs.IsContainer():
			v.walk(fv, cs, fp, fsp)
		default:
			v.leaf(fv, f, fp, sp)
		}
	}
}

func (v *validator) walkList(fv reflect.Value, cs *yang.Entry, p path, sp string) {
	var elems []reflect.Value
	switch {
	case fv.Kind() == reflect.Map:
		for _, k := range fv.MapKeys() {
			elems = append(elems, fv.MapIndex(k))
		}
	case fv.MethodByName("Values").IsValid(): // ordered-by user lists
		vals := fv.MethodByName("Values").Call(nil)[0]
		for i := 0; i < vals.Len(); i++ {
			elems = append(elems, vals.Index(i))
		}
	default:
		return
	}
	// Errors are sorted at the end, so entries are walked in map order.
	keyNames := strings.Fields(cs.Key)
	for _, el := range elems {
		km := map[string]any{}
		if kh, ok := el.Interface().(ygot.KeyHelperGoStruct); ok {
			km, _ = kh.ΛListKeyMap()
		}
		var kvs []kv
		for _, kn := range keyNames {
			kt, err := ygot.KeyValueAsString(km[kn])
			if err != nil {
				kt = fmt.Sprint(km[kn])
			}
			kvs = append(kvs, kv{kn, kt})
		}
		v.walk(el, cs, p[:len(p)-1].entry(p[len(p)-1].name, kvs), sp)
	}
}

var patternError = regexp.MustCompile(`does not match regular expression pattern`)

// leaf validates one leaf (or leaf-list) of the struct whose schema path
// is sp, and records its values for leafrefs.
func (v *validator) leaf(fv reflect.Value, f *fieldInfo, p path, sp string) {
	cs := f.schema
	vals := []reflect.Value{fv}
	if fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() != reflect.Uint8 { // a leaf-list
		vals = vals[:0]
		for i := 0; i < fv.Len(); i++ {
			vals = append(vals, fv.Index(i))
		}
	}
	texts := make([]string, len(vals))
	for i, e := range vals {
		texts[i] = leafText(e)
	}
	// A list key is reachable both as config/name and as name.
	for _, alt := range f.paths {
		at := sp + "/" + strings.Join(alt, "/")
		if v.values[at] == nil {
			v.values[at] = map[string]bool{}
		}
		for _, t := range texts {
			v.values[at][t] = true
		}
	}
	if cs.Type != nil && cs.Type.Kind == yang.Yleafref && !cs.Type.OptionalInstance {
		target := resolveLeafref(sp+"/"+strings.Join(relPath(f), "/"), cs.Type.Path)
		for _, t := range texts {
			v.refs = append(v.refs, leafref{p, target, t})
		}
	}
	errList := ytypes.Validate(cs, fv.Interface())
	if len(errList) == 0 {
		return
	}
	allPattern := true
	for _, e := range errList {
		allPattern = allPattern && patternError.MatchString(e.Error())
	}
	if allPattern {
		v.add(p, fmt.Sprintf("invalid value %q: not a valid %s", leafText(fv), typeName(cs)))
		return
	}
	for _, e := range errList {
		v.add(p, "invalid value: "+e.Error())
	}
}

// resolveLeafref turns a leafref's path, as the schema gives it
// (relative to the leaf or absolute, with module prefixes and
// predicates), into a schema path like those of validator.values.
// State leaves are taken for their config twins. Predicates are dropped: a leafref is satisfied by its value anywhere at
// that schema path. switchd serves one network instance, where that is
// what the predicates would select.
func resolveLeafref(leaf, ref string) string {
	var b strings.Builder
	depth := 0
	for _, c := range ref {
		switch {
		case c == '[':
			depth++
		case c == ']':
			depth--
		case depth == 0:
			b.WriteRune(c)
		}
	}
	var elems []string
	if !strings.HasPrefix(b.String(), "/") {
		elems = strings.Split(strings.TrimPrefix(leaf, "/"), "/")
	}
	for _, e := range strings.Split(b.String(), "/") {
		switch e = strings.TrimSpace(e); e {
		case "", ".":
		case "..":
			if len(elems) > 0 {
				elems = elems[:len(elems)-1]
			}
		case "state":
			// The generated structs hold one field for a config leaf and
			// its state twin; the walk records it under config.
			elems = append(elems, "config")
		default:
			elems = append(elems, util.StripModulePrefix(e))
		}
	}
	return "/" + strings.Join(elems, "/")
}

func (v *validator) checkLeafrefs() {
	for _, r := range v.refs {
		if !v.values[r.target][r.value] {
			v.add(r.p, fmt.Sprintf("%q refers to something that is not configured", r.value))
		}
	}
}

// typeName names the YANG type of a leaf for messages: the typedef name
// (ip-address, dotted-quad) where there is one.
func typeName(e *yang.Entry) string {
	if e.Type == nil {
		return "value"
	}
	if e.Type.Kind == yang.Yleafref {
		if t, err := util.ResolveIfLeafRef(e); err == nil && t != nil && t.Type != nil {
			return t.Type.Name
		}
	}
	return e.Type.Name
}

func leafText(fv reflect.Value) string {
	if fv.Kind() == reflect.Ptr && !fv.IsNil() {
		fv = fv.Elem()
	}
	if s, err := ygot.KeyValueAsString(fv.Interface()); err == nil {
		return s
	}
	return fmt.Sprint(fv.Interface())
}
