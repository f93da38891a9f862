package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/switchd/switchd/gnmi"
)

// recordingSet stands in for the daemon's Set (another component's job):
// it keeps the requests and refuses any that touches peer-as with a
// string value, naming the path as the daemon's validator does.
type recordingSet struct {
	mu   sync.Mutex
	reqs []*gpb.SetRequest
}

func (r *recordingSet) Set(_ context.Context, _ string, req *gpb.SetRequest) (*gpb.SetResponse, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	resp := &gpb.SetResponse{}
	for _, u := range req.GetUpdate() {
		p, _ := ygot.PathToString(u.GetPath())
		if strings.HasSuffix(p, "/peer-as") && strings.HasPrefix(string(u.GetVal().GetJsonIetfVal()), `"`) {
			return nil, status.Errorf(codes.InvalidArgument, "%s: wrong type: string for a uint32", p)
		}
		resp.Response = append(resp.Response, &gpb.UpdateResult{Path: u.GetPath(), Op: gpb.UpdateResult_UPDATE})
	}
	for _, d := range req.GetDelete() {
		resp.Response = append(resp.Response, &gpb.UpdateResult{Path: d, Op: gpb.UpdateResult_DELETE})
	}
	return resp, nil
}

// TestSetAgainstServer: switchd set sends its operations as one
// SetRequest (values as JSON_IETF, a bare word as a string, @FILE read)
// and prints what was done; a refused Set prints the daemon's error with
// its path and exits 1.
func TestSetAgainstServer(t *testing.T) {
	rec := &recordingSet{}
	sock, _ := startStateServer(t, gnmi.Options{Set: rec})
	file := filepath.Join(t.TempDir(), "v.json")
	if err := os.WriteFile(file, []byte(`{"openconfig-system:hostname": "leaf9"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const peerAS = "/network-instances/network-instance[name=DEFAULT]/protocols/protocol[identifier=BGP][name=BGP]/bgp/neighbors/neighbor[neighbor-address=10.1.1.0]/config/peer-as"
	out, _ := switchd(t, 0, "set", "--gnmi-socket", sock, "--update", "/system/config/description", "spine uplink",
		"--update", peerAS, "65200", "--replace", "/system/config", "@"+file, "--delete", "/system/config/domain-name")
	want := "update /system/config/description\nupdate " + peerAS + "\ndelete /system/config/domain-name\n"
	if out != want {
		t.Errorf("set printed\n%s\nwant\n%s", out, want)
	}
	if len(rec.reqs) != 1 {
		t.Fatalf("%d SetRequests, want 1 transaction", len(rec.reqs))
	}
	req := rec.reqs[0]
	got := []string{}
	for _, u := range append(req.GetReplace(), req.GetUpdate()...) {
		p, _ := ygot.PathToString(u.GetPath())
		got = append(got, p+"="+string(u.GetVal().GetJsonIetfVal()))
	}
	wantVals := []string{`/system/config={"openconfig-system:hostname": "leaf9"}`, `/system/config/description="spine uplink"`, peerAS + "=65200"}
	if strings.Join(got, "\n") != strings.Join(wantVals, "\n") || len(req.GetDelete()) != 1 {
		t.Errorf("SetRequest:\n%s", prototext.Format(req))
	}

	_, errs := switchd(t, 1, "set", "--gnmi-socket", sock, "--update", peerAS, `"many"`)
	if want := "switchd set: refused: InvalidArgument: " + peerAS + ": wrong type"; !strings.HasPrefix(errs, want) {
		t.Errorf("refused set: %q, want prefix %q", errs, want)
	}
	for _, args := range [][]string{{"--update", "/system/config/hostname"}, {"/system"}, {"--delete", "/a", "extra"}, {}} {
		if _, errs := switchd(t, 2, append([]string{"set", "--gnmi-socket", sock}, args...)...); !strings.Contains(errs, "usage: switchd set") {
			t.Errorf("set %v: no usage:\n%s", args, errs)
		}
	}
}

// TestGetAgainstServer: switchd get prints one node's JSON_IETF value
// as it is, several as an object by path; a path with no data is the
// daemon's NotFound, exit 1.
func TestGetAgainstServer(t *testing.T) {
	sock, _ := startStateServer(t, gnmi.Options{})
	out, _ := switchd(t, 0, "get", "--gnmi-socket", sock, "/system/state/hostname")
	if out != "\"leaf7\"\n" {
		t.Errorf("get hostname: %q", out)
	}
	out, _ = switchd(t, 0, "get", "--gnmi-socket", sock, "/interfaces/interface[name=*]/state/oper-status")
	var m map[string]string
	if err := json.Unmarshal([]byte(out), &m); err != nil || m["/interfaces/interface[name=swp1]/state/oper-status"] != "UP" || len(m) != 2 {
		t.Errorf("get oper-status of every interface: %v\n%s", err, out)
	}
	out, _ = switchd(t, 0, "get", "--gnmi-socket", sock, "/acl")
	if !strings.Contains(out, `acl-sets"`) || !strings.Contains(out, `"matched-packets": 99`) {
		t.Errorf("get /acl:\n%s", out)
	}
	if _, errs := switchd(t, 1, "get", "--gnmi-socket", sock, "/interfaces/interface[name=nope]"); !strings.Contains(errs, "NotFound") {
		t.Errorf("get of nothing: %q", errs)
	}
	if _, errs := switchd(t, 2, "get", "--gnmi-socket", sock, "--type", "bogus", "/system"); !strings.Contains(errs, "usage: switchd get") {
		t.Errorf("get --type bogus: %q", errs)
	}
}

func TestSetValue(t *testing.T) {
	for in, want := range map[string]string{
		`65000`: `65000`, `"65000"`: `"65000"`, `true`: `true`, `spine 1`: `"spine 1"`,
		` {"a": 1} `: `{"a": 1}`, `say "hi"`: `"say \"hi\""`,
	} {
		got, err := setValue(in)
		if err != nil || string(got) != want {
			t.Errorf("setValue(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("{not json"), 0o644)
	if _, err := setValue("@" + bad); err == nil {
		t.Errorf("@file with no JSON accepted")
	}
}
