package main

import (
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchd/switchd/switchd/daemon/apiclient"
)

// serveStatus serves st at the local API's status path on a unix socket
// in a temporary directory, as the daemon's API does, and returns the
// socket.
func serveStatus(t *testing.T, st apiclient.Status) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "switchd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+apiclient.StatusPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// TestShowKubernetes: show kubernetes prints the status's kubernetes
// block from the local API (no gNMI socket needed: none is given), as a
// record and as JSON; cluster mode off says so; a missing API socket is
// exit 1 naming it, extra arguments are usage.
func TestShowKubernetes(t *testing.T) {
	t.Setenv("SWITCHD_GNMI_SOCKET", filepath.Join(t.TempDir(), "none.sock"))
	sock := serveStatus(t, apiclient.Status{Kubernetes: &apiclient.KubernetesStatus{
		Node: "node-a", Synced: true, RequestFailures: 7, Policies: 12, Problems: 2}})
	out, _ := switchd(t, 0, "show", "--socket", sock, "kubernetes")
	for _, want := range [][]string{
		{"Kubernetes", "node", "node-a"}, {"Synced:", "true"}, {"Request", "failures:", "7"},
		{"Policies:", "12"}, {"Problems:", "2"},
	} {
		if got := lineWith(out, want[0]); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("line %q, want %q in:\n%s", got, want, out)
		}
	}
	out, _ = switchd(t, 0, "show", "kubernetes", "--json", "--socket", sock)
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	want := map[string]any{"kubernetes-node": "node-a", "synced": true, "request-failures": 7.0, "policies": 12.0, "problems": 2.0}
	if len(rows) != 1 || len(rows[0]) != len(want) {
		t.Fatalf("--json rows %v, want one %v", rows, want)
	}
	for k, v := range want {
		if rows[0][k] != v {
			t.Errorf("--json %s = %v, want %v", k, rows[0][k], v)
		}
	}

	off := serveStatus(t, apiclient.Status{})
	if out, _ := switchd(t, 0, "show", "--socket", off, "kubernetes"); !strings.HasPrefix(out, "Cluster mode is off") {
		t.Errorf("cluster mode off: %q", out)
	}
	if out, _ := switchd(t, 0, "show", "--socket", off, "--json", "kubernetes"); out != "[]\n" {
		t.Errorf("cluster mode off, --json: %q", out)
	}

	missing := filepath.Join(t.TempDir(), "gone.sock")
	if _, errs := switchd(t, 1, "show", "--socket", missing, "kubernetes"); !strings.Contains(errs, missing) {
		t.Errorf("missing API socket: %q names no socket", errs)
	}
	if _, errs := switchd(t, 2, "show", "kubernetes", "extra"); !strings.Contains(errs, "usage: switchd show") {
		t.Errorf("extra argument: no usage:\n%s", errs)
	}
}
