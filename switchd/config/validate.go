package config

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/openconfig/goyang/pkg/yang"
	"github.com/openconfig/ygot/util"
	"github.com/openconfig/ygot/ygot"
	"github.com/openconfig/ygot/ytypes"

	"github.com/switchd/switchd/models/oc"
)

// validateTree validates the unmarshalled tree against the schema (types,
// patterns, ranges, leafrefs). ygot's Device.Validate names only the
// schema path of a bad leaf, not which list entry holds it, so each leaf is
// validated on its own during a walk that knows the keys; leafrefs, which
// need the whole tree, are left to Device.Validate and located afterwards
// by schema path and value.
func validateTree(dev *oc.Device) Errors {
	v := &validator{leafrefs: map[string][]path{}}
	v.walk(reflect.ValueOf(dev), oc.LazySchemaTree()["Device"], nil)
	if len(v.list) > 0 {
		return v.list
	}
	err := dev.Validate()
	if err == nil {
		return nil
	}
	errList, ok := err.(util.Errors)
	if !ok {
		errList = util.Errors{err}
	}
	for _, e := range errList {
		v.addLeafrefError(e)
	}
	return v.list
}

type validator struct {
	errs
	// leafrefs maps "schema path\x00value" of each leafref leaf to where it
	// is in the data tree, to locate Device.Validate's leafref errors.
	leafrefs map[string][]path
}

// relPath is the data path of a struct field relative to its struct: the
// config path (shadow-path) where there is one, since that is what intent
// sets.
func relPath(ft reflect.StructField) []string {
	tag := ft.Tag.Get("shadow-path")
	if tag == "" {
		tag = ft.Tag.Get("path")
	}
	return strings.Split(strings.Split(tag, "|")[0], "/")
}

func (v *validator) walk(sv reflect.Value, schema *yang.Entry, p path) {
	if sv.IsNil() {
		return
	}
	s := sv.Elem()
	for i := 0; i < s.NumField(); i++ {
		ft, fv := s.Type().Field(i), s.Field(i)
		if util.IsYgotAnnotation(ft) || util.IsValueNilOrDefault(fv.Interface()) {
			continue
		}
		cs, err := util.ChildSchemaPreferShadow(schema, ft)
		if err != nil || cs == nil {
			v.add(p.child(ft.Name), fmt.Sprintf("no schema for field %s: %v", ft.Name, err))
			continue
		}
		fp := p
		for _, n := range relPath(ft) {
			fp = fp.child(n)
		}
		switch {
		case cs.IsList():
			v.walkList(fv, cs, fp)
		case cs.IsContainer():
			v.walk(fv, cs, fp)
		default:
			v.leaf(fv, cs, fp, schema, ft)
		}
	}
}

func (v *validator) walkList(fv reflect.Value, cs *yang.Entry, p path) {
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
	keyNames := strings.Fields(cs.Key)
	type entry struct {
		p path
		v reflect.Value
	}
	var es []entry
	for _, el := range elems {
		var kvs []kv
		for _, kn := range keyNames {
			kvs = append(kvs, kv{kn, keyField(el, kn)})
		}
		es = append(es, entry{p[:len(p)-1].entry(p[len(p)-1].name, kvs), el})
	}
	sort.Slice(es, func(i, j int) bool { return es[i].p.String() < es[j].p.String() })
	for _, e := range es {
		v.walk(e.v, cs, e.p)
	}
}

// keyField is the value of key leaf name in a list entry struct, as a path
// key value.
func keyField(el reflect.Value, name string) string {
	s := el.Elem()
	for i := 0; i < s.NumField(); i++ {
		for _, alt := range strings.Split(s.Type().Field(i).Tag.Get("path"), "|") {
			if alt != name {
				continue
			}
			f := s.Field(i)
			if f.Kind() == reflect.Ptr {
				if f.IsNil() {
					return ""
				}
				f = f.Elem()
			}
			str, err := ygot.KeyValueAsString(f.Interface())
			if err != nil {
				return fmt.Sprint(f.Interface())
			}
			return str
		}
	}
	return ""
}

var patternError = regexp.MustCompile(`does not match regular expression pattern`)

func (v *validator) leaf(fv reflect.Value, cs *yang.Entry, p path, parent *yang.Entry, ft reflect.StructField) {
	val := fv.Interface()
	if cs.Type != nil && cs.Type.Kind == yang.Yleafref {
		if st, err := util.ChildSchema(parent, ft); err == nil && st != nil {
			vals := []reflect.Value{fv}
			if fv.Kind() == reflect.Slice { // a leaf-list: each value refers
				vals = vals[:0]
				for i := 0; i < fv.Len(); i++ {
					vals = append(vals, fv.Index(i))
				}
			}
			for _, e := range vals {
				k := util.SchemaTreePath(st) + "\x00" + leafText(e)
				v.leafrefs[k] = append(v.leafrefs[k], p)
			}
		}
	}
	errList := ytypes.Validate(cs, val)
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

var leafrefError = regexp.MustCompile(`value (.*) \(\S+(?: ptr)?\) schema (?:path )?(\S+) (?:is empty set|has leafref path)`)

func (v *validator) addLeafrefError(err error) {
	msg := err.Error()
	if m := leafrefError.FindStringSubmatch(msg); m != nil {
		if ps := v.leafrefs[m[2]+"\x00"+m[1]]; len(ps) > 0 {
			for _, p := range ps {
				v.add(p, fmt.Sprintf("%q refers to something that is not configured", m[1]))
			}
			return
		}
	}
	v.list = append(v.list, Error{Path: "/", Reason: msg})
}
