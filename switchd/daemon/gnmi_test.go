package daemon

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/protobuf/proto"

	"github.com/switchd/switchd/models/oc"
)

// TestSetResponse: one UpdateResult per operation, in the order they
// were applied (deletes, replaces, updates), and the time.
func TestSetResponse(t *testing.T) {
	p := func(n string) *gpb.Path { return &gpb.Path{Elem: []*gpb.PathElem{{Name: n}}} }
	req := &gpb.SetRequest{
		Update:  []*gpb.Update{{Path: p("u")}},
		Replace: []*gpb.Update{{Path: p("r1")}, {Path: p("r2")}},
		Delete:  []*gpb.Path{p("d")},
	}
	ts := time.Unix(100, 5)
	resp := setResponse(req, ts)
	want := []struct {
		name string
		op   gpb.UpdateResult_Operation
	}{{"d", gpb.UpdateResult_DELETE}, {"r1", gpb.UpdateResult_REPLACE}, {"r2", gpb.UpdateResult_REPLACE}, {"u", gpb.UpdateResult_UPDATE}}
	if len(resp.Response) != len(want) || resp.Timestamp != ts.UnixNano() {
		t.Fatalf("response %v", resp)
	}
	for i, w := range want {
		if r := resp.Response[i]; r.Path.Elem[0].Name != w.name || r.Op != w.op {
			t.Errorf("result %d: %v, want %s %v", i, r, w.name, w.op)
		}
	}
}

// TestWriteTemp: the new file is written beside the one a link names,
// with its mode, and renaming it replaces the file, not the link.
func TestWriteTemp(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real", "switchd.json")
	if err := os.MkdirAll(filepath.Dir(real), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(real, []byte("old"), 0o640); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "switchd.json")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	tmp, err := writeTemp(link, []byte("new"))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(tmp) != filepath.Dir(real) {
		t.Errorf("temp file %s not beside %s", tmp, real)
	}
	if err := os.Rename(tmp, configFile(link)); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", st, err)
	}
	if b, err := os.ReadFile(link); err != nil || string(b) != "new" {
		t.Errorf("through the link: %q %v", b, err)
	}
	if st, err := os.Stat(real); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v %v, want 0640", st.Mode(), err)
	}
}

// TestConfigLeaves: the running document's config leaves, at paths with
// their keys (an IPv6 address whole, an identity without its module),
// typed by the schema; leaves outside config containers are left to the
// state tree.
func TestConfigLeaves(t *testing.T) {
	doc := map[string]any{"openconfig-network-instance:network-instances": map[string]any{"network-instance": []any{map[string]any{
		"name":   "DEFAULT",
		"config": map[string]any{"name": "DEFAULT", "type": "openconfig-network-instance-types:DEFAULT_INSTANCE"},
		"protocols": map[string]any{"protocol": []any{map[string]any{
			"identifier": "openconfig-policy-types:BGP", "name": "BGP",
			"bgp": map[string]any{"neighbors": map[string]any{"neighbor": []any{map[string]any{
				"neighbor-address": "fd00:1::",
				"config":           map[string]any{"neighbor-address": "fd00:1::", "peer-as": 65001.0},
			}}}},
		}}},
	}}}}
	out := map[string]*gpb.Update{}
	configLeaves(doc, oc.LazySchemaTree()["Device"], nil, false, out)
	nb := "/network-instances/network-instance[name=DEFAULT]/protocols/protocol[identifier=BGP][name=BGP]/bgp/neighbors/neighbor[neighbor-address=fd00:1::]/config/"
	str := func(s string) *gpb.TypedValue { return &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: s}} }
	want := map[string]*gpb.TypedValue{
		"/network-instances/network-instance[name=DEFAULT]/config/name": str("DEFAULT"),
		"/network-instances/network-instance[name=DEFAULT]/config/type": str("DEFAULT_INSTANCE"),
		nb + "neighbor-address": str("fd00:1::"),
		nb + "peer-as":          {Value: &gpb.TypedValue_UintVal{UintVal: 65001}},
	}
	if len(out) != len(want) {
		t.Errorf("%d leaves, want %d: %v", len(out), len(want), out)
	}
	for k, v := range want {
		u, ok := out[k]
		if !ok {
			t.Errorf("no leaf %s; have %v", k, out)
			continue
		}
		if !proto.Equal(u.GetVal(), v) {
			t.Errorf("%s = %v, want %v", k, u.GetVal(), v)
		}
	}
}
