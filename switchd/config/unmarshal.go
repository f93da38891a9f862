package config

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/openconfig/goyang/pkg/yang"
	"github.com/openconfig/ygot/util"
	"github.com/openconfig/ygot/ygot"
	"github.com/openconfig/ygot/ytypes"
)

// Why switchd unmarshals the tree itself: ytypes.Unmarshal looks up struct
// tags and schema entries again for every field of every list entry, and
// pretty-prints each container it fills (debug output it then throws
// away), the root included. That is ~100 µs per small list entry, and
// minutes-long checks of large configs (50,000 aggregates took 30 s). Here
// what a generated struct type needs (its fields, their data paths, their
// schema) is worked out once per type, and leaves of the common kinds
// (strings, booleans, 8 to 32 bit integers, enumerations, identities) are
// converted directly. Anything else (unions, 64-bit numbers, decimal64,
// binary, empty) goes through ytypes.Unmarshal one leaf at a time, so the
// result is what ygot would build: TestUnmarshalMatchesYgot checks that.

// fieldInfo is what unmarshalling and validation need about one field of a
// generated struct.
type fieldInfo struct {
	index int
	// paths are the field's data paths relative to its struct, from the
	// shadow-path tag (the config leaves) where there is one, module
	// prefixes removed: "config/peer-as", or for a list key both
	// "config/name" and "name".
	paths  [][]string
	schema *yang.Entry
}

type typeInfo struct {
	fields []fieldInfo
}

var typeInfos sync.Map // reflect.Type of a struct -> *typeInfo

// infoFor returns the fields of struct type t, whose schema is schema.
func infoFor(t reflect.Type, schema *yang.Entry) (*typeInfo, error) {
	if ti, ok := typeInfos.Load(t); ok {
		return ti.(*typeInfo), nil
	}
	ti := &typeInfo{}
	for i := 0; i < t.NumField(); i++ {
		ft := t.Field(i)
		if util.IsYgotAnnotation(ft) {
			continue
		}
		cs, err := util.ChildSchemaPreferShadow(schema, ft)
		if err != nil || cs == nil {
			return nil, fmt.Errorf("no schema for field %s of %s: %v", ft.Name, t.Name(), err)
		}
		tag := ft.Tag.Get("shadow-path")
		if tag == "" {
			tag = ft.Tag.Get("path")
		}
		fi := fieldInfo{index: i, schema: cs}
		for _, alt := range strings.Split(tag, "|") {
			var elems []string
			for _, e := range strings.Split(alt, "/") {
				elems = append(elems, util.StripModulePrefix(e))
			}
			fi.paths = append(fi.paths, elems)
		}
		ti.fields = append(ti.fields, fi)
	}
	typeInfos.Store(t, ti)
	return ti, nil
}

// unmarshaller fills generated structs from a decoded RFC 7951 document
// that checkTree has walked: members that are not in the schema, state,
// JSON of the wrong shape and list entries without keys are checkTree's to
// report, and skipped here.
type unmarshaller struct {
	errs
}

// member finds a member by its name with or without a module prefix.
func member(m map[string]any, name string) (any, bool) {
	if v, ok := m[name]; ok {
		return v, true
	}
	for k, v := range m {
		if i := strings.IndexByte(k, ':'); i >= 0 && k[i+1:] == name {
			return v, true
		}
	}
	return nil, false
}

// jsonAt follows a relative data path through nested JSON objects.
func jsonAt(m map[string]any, elems []string) (any, bool) {
	var v any = m
	for _, e := range elems {
		o, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = member(o, e); !ok {
			return nil, false
		}
	}
	return v, true
}

func (p path) extend(elems []string) path {
	for _, e := range elems {
		p = p.child(e)
	}
	return p
}

// structure fills the struct sv points to from the JSON object m at p.
func (u *unmarshaller) structure(sv reflect.Value, schema *yang.Entry, m map[string]any, p path) {
	ti, err := infoFor(sv.Type().Elem(), schema)
	if err != nil {
		u.add(p, err.Error())
		return
	}
	for i := range ti.fields {
		f := &ti.fields[i]
		var val any
		var where []string
		for _, alt := range f.paths {
			v, ok := jsonAt(m, alt)
			if !ok {
				continue
			}
			if where != nil {
				// A list key given as the key member and in config.
				if keyText(v) != keyText(val) {
					u.add(p.extend(where), fmt.Sprintf("%s is %s but %s is %s: the key and its config leaf are different",
						strings.Join(alt, "/"), keyText(v), strings.Join(where, "/"), keyText(val)))
				}
				continue
			}
			val, where = v, alt
		}
		if where == nil {
			continue
		}
		u.field(sv, f, val, p.extend(where), where)
	}
}

func (u *unmarshaller) field(sv reflect.Value, f *fieldInfo, val any, p path, where []string) {
	fv := sv.Elem().Field(f.index)
	ft := fv.Type()
	switch {
	case ft.Kind() == reflect.Ptr && ft.Elem().Kind() == reflect.Struct:
		if ft.Implements(reflect.TypeOf((*ygot.GoOrderedMap)(nil)).Elem()) {
			u.orderedList(fv, f.schema, val, p)
			return
		}
		obj, ok := val.(map[string]any)
		if !ok {
			return
		}
		nv := reflect.New(ft.Elem())
		u.structure(nv, f.schema, obj, p)
		fv.Set(nv)
	case ft.Kind() == reflect.Map:
		u.keyedList(fv, f.schema, val, p)
	case ft.Kind() == reflect.Ptr:
		if x, ok := u.scalar(ft.Elem(), f.schema, val, p); ok {
			nv := reflect.New(ft.Elem())
			nv.Elem().Set(x)
			fv.Set(nv)
		} else if !x.IsValid() {
			u.viaYgot(sv, f, val, p, where)
		}
	case ft.Kind() == reflect.Int64 && isEnum(ft):
		if x, ok := u.scalar(ft, f.schema, val, p); ok {
			fv.Set(x)
		}
	case ft.Kind() == reflect.Slice && ft.Elem().Kind() != reflect.Uint8 && ft.Elem().Kind() != reflect.Interface:
		a, ok := val.([]any)
		if !ok {
			return
		}
		out := reflect.MakeSlice(ft, 0, len(a))
		for _, el := range a {
			x, ok := u.scalar(ft.Elem(), f.schema, el, p)
			if !ok {
				if !x.IsValid() {
					u.viaYgot(sv, f, val, p, where)
				}
				return
			}
			out = reflect.Append(out, x)
		}
		fv.Set(out)
	default:
		u.viaYgot(sv, f, val, p, where)
	}
}

var goEnumType = reflect.TypeOf((*ygot.GoEnum)(nil)).Elem()

func isEnum(t reflect.Type) bool { return t.Kind() == reflect.Int64 && t.Implements(goEnumType) }

// enumNames maps the names of an enumeration type to its values.
var enumNames sync.Map // reflect.Type -> map[string]int64

func namesOf(t reflect.Type) map[string]int64 {
	if m, ok := enumNames.Load(t); ok {
		return m.(map[string]int64)
	}
	m := map[string]int64{}
	for v, def := range reflect.Zero(t).Interface().(ygot.GoEnum).ΛMap()[t.Name()] {
		m[def.Name] = v
	}
	enumNames.Store(t, m)
	return m
}

// scalar converts a JSON value to Go type t. ok is false with an invalid
// Value for a kind this code leaves to ygot, and with a valid one (the
// zero Value of t) when the value was wrong and has been reported.
func (u *unmarshaller) scalar(t reflect.Type, schema *yang.Entry, val any, p path) (reflect.Value, bool) {
	bad := func(reason string) (reflect.Value, bool) {
		u.add(p, "invalid value: "+reason)
		return reflect.Zero(t), false
	}
	if isEnum(t) {
		s, ok := val.(string)
		if !ok {
			return bad(fmt.Sprintf("got %s, expected the name of a %s", jsonKind(val), typeName(schema)))
		}
		if i := strings.LastIndexByte(s, ':'); i >= 0 {
			s = s[i+1:]
		}
		v, ok := namesOf(t)[s]
		if !ok {
			return bad(fmt.Sprintf("%q is not a %s (one of %s)", s, typeName(schema), enumList(namesOf(t))))
		}
		return reflect.ValueOf(v).Convert(t), true
	}
	switch t.Kind() {
	case reflect.String:
		s, ok := val.(string)
		if !ok {
			return bad(fmt.Sprintf("got %s, expected a string", jsonKind(val)))
		}
		return reflect.ValueOf(s).Convert(t), true
	case reflect.Bool:
		if t != reflect.TypeOf(false) { // YANGEmpty
			return reflect.Value{}, false
		}
		b, ok := val.(bool)
		if !ok {
			return bad(fmt.Sprintf("got %s, expected true or false", jsonKind(val)))
		}
		return reflect.ValueOf(b), true
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Int8, reflect.Int16, reflect.Int32:
		n, ok := val.(float64)
		if !ok {
			return bad(fmt.Sprintf("got %s, expected a number", jsonKind(val)))
		}
		if n != math.Trunc(n) {
			return bad(notInteger(n, schema))
		}
		x := reflect.New(t).Elem()
		if t.Kind() >= reflect.Uint8 && t.Kind() <= reflect.Uint64 {
			if n < 0 || x.OverflowUint(uint64(n)) {
				return bad(fmt.Sprintf("%v is out of range for %s", n, t.Kind()))
			}
			x.SetUint(uint64(n))
		} else {
			if x.OverflowInt(int64(n)) {
				return bad(fmt.Sprintf("%v is out of range for %s", n, t.Kind()))
			}
			x.SetInt(int64(n))
		}
		return x, true
	}
	return reflect.Value{}, false
}

// notInteger explains a fraction where an integer belongs. For an AS
// number it is most likely asdot notation (RFC 5396), which RFC 7951 JSON
// cannot carry: 65010.5 and 65010.50 are the same JSON number but
// different AS numbers.
func notInteger(n float64, schema *yang.Entry) string {
	msg := fmt.Sprintf("%v is not an integer", n)
	if schema.Type != nil && schema.Type.Name == "as-number" {
		text := strconv.FormatFloat(n, 'f', -1, 64)
		hi, lo, _ := strings.Cut(text, ".")
		h, err1 := strconv.ParseUint(hi, 10, 16)
		l, err2 := strconv.ParseUint(lo, 10, 16)
		msg += "; asdot notation (RFC 5396) is not accepted, give the AS as one number"
		if err1 == nil && err2 == nil {
			msg += fmt.Sprintf(" (asdot %s is %d)", text, h<<16|l)
		}
	}
	return msg
}

func enumList(m map[string]int64) string {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) > 8 {
		names = append(names[:8], "…")
	}
	return strings.Join(names, ", ")
}

// viaYgot unmarshals one leaf with ytypes, for the kinds scalar leaves to
// it, into the struct sv points to.
func (u *unmarshaller) viaYgot(sv reflect.Value, f *fieldInfo, val any, p path, where []string) {
	doc := map[string]any{}
	o := doc
	for _, e := range where[:len(where)-1] {
		m := map[string]any{}
		o[e] = m
		o = m
	}
	o[where[len(where)-1]] = val
	schema := f.schema.Parent
	for range where[:len(where)-1] {
		schema = schema.Parent
	}
	if err := ytypes.Unmarshal(schema, sv.Interface(), doc, &ytypes.PreferShadowPath{}); err != nil {
		if m := noUnionMember.FindStringSubmatch(err.Error()); m != nil && f.schema.Type != nil {
			// ygot names its Go types; say what the YANG union takes.
			u.add(p, fmt.Sprintf("invalid value: %q is not a %s (%s)", m[1], typeName(f.schema), unionMembers(f.schema.Type)))
			return
		}
		u.add(p, "invalid value: "+wrongType.ReplaceAllString(err.Error(), "got a $1, expected a number"))
	}
}

// noUnionMember is ygot's message for a value no member of a union takes.
var noUnionMember = regexp.MustCompile(`could not find suitable union type to unmarshal value (.*) type \S+ into`)

// unionMembers describes what the members of a union type take.
func unionMembers(t *yang.YangType) string {
	var out []string
	for _, m := range t.Type {
		switch {
		case m.Kind == yang.Yenum:
			out = append(out, strings.Join(m.Enum.Names(), ", "))
		case m.Kind == yang.Ystring && len(m.Pattern) > 0:
			out = append(out, "a string matching "+strings.Join(m.Pattern, " or "))
		default:
			out = append(out, "a "+yang.TypeKindToName[m.Kind])
		}
	}
	return strings.Join(out, ", or ")
}

// entryPath is the path of a list entry, keys from the JSON object.
func entryPath(p path, schema *yang.Entry, obj map[string]any) (path, bool) {
	var kvs []kv
	for _, kn := range strings.Fields(schema.Key) {
		v, ok := member(obj, kn)
		if !ok {
			return nil, false
		}
		kvs = append(kvs, kv{kn, keyText(v)})
	}
	return p[:len(p)-1].entry(p[len(p)-1].name, kvs), true
}

// entries unmarshals each entry of a JSON list into a new struct of type
// et and hands it to add.
func (u *unmarshaller) entries(schema *yang.Entry, val any, p path, et reflect.Type, add func(nv reflect.Value)) {
	a, _ := val.([]any)
	for _, el := range a {
		obj, ok := el.(map[string]any)
		if !ok {
			continue
		}
		ep, ok := entryPath(p, schema, obj)
		if !ok {
			continue
		}
		nv := reflect.New(et)
		u.structure(nv, schema, obj, ep)
		add(nv)
	}
}

func (u *unmarshaller) keyedList(fv reflect.Value, schema *yang.Entry, val any, p path) {
	if fv.IsNil() {
		fv.Set(reflect.MakeMap(fv.Type()))
	}
	u.entries(schema, val, p, fv.Type().Elem().Elem(), func(nv reflect.Value) {
		key, err := mapKey(nv, fv.Type().Key())
		if err != nil {
			return // a bad key leaf, reported
		}
		if !fv.MapIndex(key).IsValid() { // a duplicate is checkTree's
			fv.SetMapIndex(key, nv)
		}
	})
}

// mapKey is the map key of a list entry: the key leaf's value, or a key
// struct of them.
func mapKey(entry reflect.Value, kt reflect.Type) (reflect.Value, error) {
	kh, ok := entry.Interface().(ygot.KeyHelperGoStruct)
	if !ok {
		return reflect.Value{}, fmt.Errorf("%s has no list keys", entry.Type())
	}
	km, err := kh.ΛListKeyMap()
	if err != nil {
		return reflect.Value{}, err
	}
	conv := func(v any, t reflect.Type) (reflect.Value, error) {
		rv := reflect.ValueOf(v)
		if !rv.IsValid() || !rv.Type().AssignableTo(t) {
			return reflect.Value{}, fmt.Errorf("key %v (%T) does not fit %s", v, v, t)
		}
		return rv, nil
	}
	if kt.Kind() != reflect.Struct {
		for _, v := range km {
			return conv(v, kt)
		}
		return reflect.Value{}, fmt.Errorf("no key")
	}
	k := reflect.New(kt).Elem()
	for i := 0; i < kt.NumField(); i++ {
		v, err := conv(km[kt.Field(i).Tag.Get("path")], kt.Field(i).Type)
		if err != nil {
			return reflect.Value{}, err
		}
		k.Field(i).Set(v)
	}
	return k, nil
}

// orderedList fills an ordered-by-user list (a generated OrderedMap).
func (u *unmarshaller) orderedList(fv reflect.Value, schema *yang.Entry, val any, p path) {
	if fv.IsNil() {
		fv.Set(reflect.New(fv.Type().Elem()))
	}
	appendFn := fv.MethodByName("Append")
	u.entries(schema, val, p, appendFn.Type().In(0).Elem(), func(nv reflect.Value) {
		appendFn.Call([]reflect.Value{nv}) // a duplicate is checkTree's
	})
}
