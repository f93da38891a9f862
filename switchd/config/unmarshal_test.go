package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openconfig/ygot/ygot"
	"github.com/openconfig/ygot/ytypes"

	"github.com/switchd/switchd/models/oc"
)

// TestUnmarshalMatchesYgot: switchd's unmarshaller builds the same tree as
// ytypes.Unmarshal (with PreferShadowPath) for the examples and the test
// documents, unions, ordered lists and identities included.
func TestUnmarshalMatchesYgot(t *testing.T) {
	docs := map[string]map[string]any{}
	files, _ := filepath.Glob("../../examples/*")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		j, err := toJSON(b, isYAML(b, f))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(j, &m); err != nil {
			t.Fatal(err)
		}
		docs[filepath.Base(f)] = m
	}
	m := leafDoc(t)
	withPolicy(t, m)
	ps := at(t, ni(t, m), "protocols")
	ps["protocol"] = append(ps["protocol"].([]any), map[string]any{
		"identifier": "openconfig-policy-types:STATIC", "name": "STATIC",
		"config": map[string]any{"identifier": "openconfig-policy-types:STATIC", "name": "STATIC"},
		"static-routes": map[string]any{"static": []any{map[string]any{
			"prefix": "192.0.2.0/24", "config": map[string]any{"prefix": "192.0.2.0/24"},
			"next-hops": map[string]any{"next-hop": []any{
				map[string]any{"index": "a", "config": map[string]any{"index": "a", "next-hop": "10.1.1.0", "metric": 10}},
				map[string]any{"index": "b", "config": map[string]any{"index": "b", "next-hop": "openconfig-local-routing:DROP"}},
			}}}}}})
	b, _ := json.Marshal(m) // numbers as float64, as decoded
	m = nil
	json.Unmarshal(b, &m)
	docs["policy and static routes"] = m
	var agg map[string]any
	json.Unmarshal(aggregatesDoc(t, 100), &agg)
	docs["aggregates"] = agg

	for name, doc := range docs {
		t.Run(name, func(t *testing.T) {
			want := &oc.Device{}
			if err := ytypes.Unmarshal(oc.LazySchemaTree()["Device"], want, doc, &ytypes.PreferShadowPath{}); err != nil {
				t.Fatal(err)
			}
			got, err := Unmarshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(emit(t, want), emit(t, got)); diff != "" {
				t.Errorf("tree differs from ygot's (-ygot +switchd):\n%s", diff)
			}
		})
	}
}

func emit(t *testing.T, d *oc.Device) string {
	t.Helper()
	s, err := ygot.EmitJSON(d, &ygot.EmitJSONConfig{Format: ygot.RFC7951, Indent: " ", SkipValidation: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestUnmarshalRefusesFractions: a number with a fraction is not silently
// truncated where an integer belongs; for an AS number the error explains
// asdot.
func TestUnmarshalRefusesFractions(t *testing.T) {
	for _, tc := range []struct {
		name, path, want string
		set              func(m map[string]any)
	}{
		{"global as", bgpP + "/global/config/as", "asdot 65010.5 is 4260495365",
			func(m map[string]any) { at(t, bgpTree(t, m), "global", "config")["as"] = 65010.5 }},
		{"peer-as", hostNb + "/config/peer-as", "65201.25 is not an integer; asdot",
			func(m map[string]any) { at(t, neighbor(t, m, "10.2.1.1"), "config")["peer-as"] = 65201.25 }},
		{"hold-time", hostNb + "/timers/config/hold-time", "9.5 is not an integer",
			func(m map[string]any) {
				neighbor(t, m, "10.2.1.1")["timers"] = map[string]any{"config": map[string]any{"hold-time": 9.5}}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := leafDoc(t)
			tc.set(m)
			_, err := parseDoc(t, m)
			if err == nil || !strings.Contains(err.Error(), tc.path+": invalid value: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error at %s saying %q", err, tc.path, tc.want)
			}
		})
	}
}

// TestParseRecoversPanics: a panic while loading (here forced by a corrupt
// entry in the per-type cache) is an error at "/", not a crash, so a
// daemon reloading its config keeps running.
func TestParseRecoversPanics(t *testing.T) {
	dt := reflect.TypeOf(oc.Device{})
	typeInfos.Store(dt, &typeInfo{fields: []fieldInfo{{index: 1 << 20, paths: [][]string{{"network-instances"}}}}})
	t.Cleanup(func() { typeInfos.Delete(dt) })
	data, err := os.ReadFile("../../examples/leaf.json")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse(data, "leaf.json")
	var es Errors
	if !errors.As(err, &es) || len(es) != 1 || es[0].Path != "/" || !strings.Contains(es[0].Reason, "internal error while loading the config") {
		t.Fatalf("Parse: %v, want one Error at / saying it was an internal error", err)
	}
}
