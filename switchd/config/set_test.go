package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"

	"github.com/switchd/switchd/gnmi"
)

// gp parses a gNMI path string for a test.
func gp(t *testing.T, s string) *gpb.Path {
	t.Helper()
	p, err := ygot.StringToStructuredPath(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func leafJSON(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile("../../examples/leaf.json")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestSet(t *testing.T) {
	running := leafJSON(t)
	orig := bytes.Clone(running)
	host := hostNb
	for _, tc := range []struct {
		name  string
		req   *gpb.SetRequest
		check func(t *testing.T, in *Intent)
	}{
		{"replace peer-as", &gpb.SetRequest{Replace: []*gpb.Update{{Path: gp(t, host+"/config/peer-as"), Val: &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: 65299}}}}},
			func(t *testing.T, in *Intent) { wantPeerAS(t, in, "10.2.1.1", 65299) }},
		{"update JSON_IETF", &gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, host+"/config"), Val: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(`{"peer-as": 65300}`)}}}}},
			func(t *testing.T, in *Intent) {
				wantPeerAS(t, in, "10.2.1.1", 65300)
				for _, n := range in.BGP.Neighbors {
					if n.Address.String() == "10.2.1.1" && n.Description != "host1" {
						t.Errorf("update dropped the description: %q", n.Description)
					}
				}
			}},
		{"new neighbor with prefix", &gpb.SetRequest{
			Prefix: gp(t, bgpP),
			Update: []*gpb.Update{{Path: gp(t, "/neighbors/neighbor[neighbor-address=10.9.9.9]/config"), Val: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(`{"neighbor-address": "10.9.9.9", "peer-as": 65009}`)}}}}},
			func(t *testing.T, in *Intent) { wantPeerAS(t, in, "10.9.9.9", 65009) }},
		{"delete, then replace", &gpb.SetRequest{
			Delete:  []*gpb.Path{gp(t, host)},
			Replace: []*gpb.Update{{Path: gp(t, "/switchd/config/ecmp-hash-policy"), Val: &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: "L3"}}}}},
			func(t *testing.T, in *Intent) {
				for _, n := range in.BGP.Neighbors {
					if n.Address.String() == "10.2.1.1" {
						t.Error("neighbor 10.2.1.1 not deleted")
					}
				}
			}},
		{"IPv6 keys told apart", &gpb.SetRequest{Replace: []*gpb.Update{{Path: gp(t, bgpP+"/neighbors/neighbor[neighbor-address=fd00:1:2::]/config/description"), Val: &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: "spine2 v6"}}}}},
			func(t *testing.T, in *Intent) {
				for _, n := range in.BGP.Neighbors {
					if d := n.Description; (n.Address.String() == "fd00:1:2::") != (d == "spine2 v6") {
						t.Errorf("neighbor %v description %q", n.Address, d)
					}
				}
			}},
		{"identity key without its module", &gpb.SetRequest{Replace: []*gpb.Update{{Path: gp(t, bgpP+"/neighbors/neighbor[neighbor-address=fd00:1:1::]/afi-safis/afi-safi[afi-safi-name=IPV4_UNICAST]/config/enabled"), Val: &gpb.TypedValue{Value: &gpb.TypedValue_BoolVal{BoolVal: false}}}}},
			// A second IPV4_UNICAST entry would be refused as a duplicate.
			func(t *testing.T, in *Intent) {
				for _, n := range in.BGP.Neighbors {
					if n.Address.String() == "fd00:1:1::" && len(n.Families) != 1 {
						t.Errorf("neighbor %v families %v, want IPv6 only", n.Address, n.Families)
					}
				}
			}},
		{"delete of nothing", &gpb.SetRequest{Delete: []*gpb.Path{gp(t, bgpP+"/neighbors/neighbor[neighbor-address=10.7.7.7]")}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, doc, err := Set(running, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, in)
			}
			// The document written is what a reload reads.
			again, err := Parse(doc, "x.json")
			if err != nil {
				t.Fatalf("the new document does not parse: %v", err)
			}
			if len(again.BGP.Neighbors) != len(in.BGP.Neighbors) {
				t.Errorf("reparsed %d neighbors, Set gave %d", len(again.BGP.Neighbors), len(in.BGP.Neighbors))
			}
		})
	}
	if !bytes.Equal(running, orig) {
		t.Error("Set changed the running document")
	}
}

func wantPeerAS(t *testing.T, in *Intent, addr string, as uint32) {
	t.Helper()
	for _, n := range in.BGP.Neighbors {
		if n.Address.String() == addr {
			if n.PeerAS != as {
				t.Errorf("neighbor %s peer-as %d, want %d", addr, n.PeerAS, as)
			}
			return
		}
	}
	t.Errorf("no neighbor %s", addr)
}

// TestSetRefused: each refused Set names the path of its problem.
func TestSetRefused(t *testing.T) {
	running := leafJSON(t)
	str := func(s string) *gpb.TypedValue { return &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: s}} }
	for _, tc := range []struct {
		name string
		req  *gpb.SetRequest
		path string
	}{
		{"wrong type", &gpb.SetRequest{Replace: []*gpb.Update{{Path: gp(t, hostNb+"/config/peer-as"), Val: str("many")}}}, hostNb + "/config/peer-as"},
		{"unknown path", &gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, hostNb+"/config/peer-ass"), Val: str("1")}}}, hostNb + "/config/peer-ass"},
		{"unknown member in JSON", &gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, hostNb+"/config"), Val: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(`{"peer-ass": 1}`)}}}}}, hostNb + "/config/peer-ass"},
		{"neighbor without peer-as", &gpb.SetRequest{Delete: []*gpb.Path{gp(t, hostNb+"/config/peer-as")}}, hostNb},
		{"state", &gpb.SetRequest{Replace: []*gpb.Update{{Path: gp(t, hostNb+"/state/peer-as"), Val: str("1")}}}, hostNb + "/state"},
		{"wildcard key", &gpb.SetRequest{Delete: []*gpb.Path{gp(t, bgpP+"/neighbors/neighbor[neighbor-address=*]")}}, bgpP + "/neighbors/neighbor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Set(running, tc.req)
			wantErrorAt(t, err, tc.path)
		})
	}
}

// TestGRPCConfig: the gNMI listener's config is translated, and its
// problems are refused at their paths.
func TestGRPCConfig(t *testing.T) {
	dir := t.TempDir()
	hash, err := gnmi.HashPassword("secret")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "certs"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"web.crt", "web.key"} {
		if err := os.WriteFile(filepath.Join(dir, "certs", f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	grpcDoc := func(server, users string) []byte {
		d := leafDoc(t)
		d["switchd:switchd"] = map[string]any{"config": map[string]any{"state-dir": dir}}
		return mustJSON(t, d, `"openconfig-system:system": {"grpc-servers": {"grpc-server": [`+server+`]}, "aaa": {"authentication": {"users": {"user": [`+users+`]}}}}`)
	}
	admin := `{"username": "admin", "config": {"username": "admin", "password-hashed": "` + hash + `", "role": "SYSTEM_ROLE_ADMIN"}}`
	in, err := Parse(grpcDoc(`{"name": "gnmi", "config": {"name": "gnmi", "port": 50051, "certificate-id": "web"}}`, admin), "x.json")
	if err != nil {
		t.Fatal(err)
	}
	if g := in.GNMI; !g.Served || g.Port != 50051 || len(g.Listen.Users) != 1 || g.Listen.Users[0].Role != gnmi.RoleAdmin || g.Listen.TLS.CertFile != filepath.Join(dir, "certs", "web.crt") {
		t.Errorf("GNMI %+v", g)
	}
	// A cleartext password is hashed anew each time; the key stays.
	clear := `{"username": "ro", "config": {"username": "ro", "password": "pw"}}`
	in1, err1 := Parse(grpcDoc(`{"name": "gnmi", "config": {"name": "gnmi"}}`, clear), "x.json")
	in2, err2 := Parse(grpcDoc(`{"name": "gnmi", "config": {"name": "gnmi"}}`, clear), "x.json")
	in3, err3 := Parse(grpcDoc(`{"name": "gnmi", "config": {"name": "gnmi", "port": 50052}}`, clear), "x.json")
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	if in1.GNMI.Key != in2.GNMI.Key || in1.GNMI.Key == in3.GNMI.Key || in1.GNMI.Key == "" {
		t.Errorf("keys %q %q %q: want the first two equal, the third (another port) not", in1.GNMI.Key, in2.GNMI.Key, in3.GNMI.Key)
	}
	gs := "/system/grpc-servers/grpc-server[name=gnmi]/config"
	us := "/system/aaa/authentication/users/user"
	for _, tc := range []struct{ name, server, users, path string }{
		{"port 0", `{"name": "gnmi", "config": {"name": "gnmi", "port": 0}}`, admin, gs + "/port"},
		{"unknown certificate", `{"name": "gnmi", "config": {"name": "gnmi", "certificate-id": "nope"}}`, admin, gs + "/certificate-id"},
		{"bad hash", `{"name": "gnmi", "config": {"name": "gnmi"}}`, `{"username": "ro", "config": {"username": "ro", "password-hashed": "$1$abc"}}`, us + "[username=ro]/config/password-hashed"},
		{"duplicate user", `{"name": "gnmi", "config": {"name": "gnmi"}}`, admin + `, ` + strings.ReplaceAll(admin, `"admin"`, `"Admin"`), us + "[username="},
		{"port out of range", `{"name": "gnmi", "config": {"name": "gnmi", "port": 70000}}`, admin, gs + "/port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(grpcDoc(tc.server, tc.users), "x.json")
			wantErrorAt(t, err, tc.path)
		})
	}
}

// mustJSON adds a top-level member, given as JSON text, to a document.
func mustJSON(t *testing.T, d map[string]any, member string) []byte {
	t.Helper()
	data, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return append(append(data[:len(data)-1:len(data)-1], ", "...), member+"}"...)
}

// wantErrorAt checks that err is Errors with one at (or below) path.
func wantErrorAt(t *testing.T, err error, path string) {
	t.Helper()
	if err == nil {
		t.Fatal("accepted")
	}
	for _, e := range err.(Errors) {
		if strings.HasPrefix(e.Path, path) {
			return
		}
	}
	t.Errorf("no error at %s:\n%v", path, err)
}

// BenchmarkSet: one replace of a leaf on examples/leaf.json, validated
// as a whole (the schema stays loaded, as it does within one Set).
func BenchmarkSet(b *testing.B) {
	data, err := os.ReadFile("../../examples/leaf.json")
	if err != nil {
		b.Fatal(err)
	}
	p, err := ygot.StringToStructuredPath(hostNb + "/config/peer-as")
	if err != nil {
		b.Fatal(err)
	}
	req := &gpb.SetRequest{Replace: []*gpb.Update{{Path: p, Val: &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: 65299}}}}}
	for b.Loop() {
		if _, _, err := Set(data, req); err != nil {
			b.Fatal(err)
		}
	}
}
