package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serve answers on a unix socket in a temporary directory, as the daemon
// does, and returns the socket's path.
func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestGetStatusReadsWhatTheDaemonServes(t *testing.T) {
	want := Status{
		BGP: BGPStatus{ASN: 65001, RouterID: "10.0.0.1", Neighbors: []NeighborStatus{
			{Address: "192.0.2.1", PeerAS: 65000, State: "established", Received: map[string]uint64{"ipv4-unicast": 3}},
		}},
		FIB: FIBStatus{Routes: 3, InSync: true},
	}
	sock := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != StatusPath {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(want)
	})
	got, err := GetStatus(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	if got.BGP.ASN != 65001 || len(got.BGP.Neighbors) != 1 || got.BGP.Neighbors[0].Received["ipv4-unicast"] != 3 || !got.FIB.InSync || got.FIB.Routes != 3 {
		t.Errorf("GetStatus = %+v, want %+v", got, want)
	}
}

func TestGetStatusNamesSocketOnError(t *testing.T) {
	sock := serve(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bgp neighbors: speaker stopped", http.StatusServiceUnavailable)
	})
	_, err := GetStatus(context.Background(), sock)
	if err == nil || !strings.Contains(err.Error(), sock) || !strings.Contains(err.Error(), "503") {
		t.Errorf("GetStatus of a failing daemon: err = %v, want one naming %s and 503", err, sock)
	}
	missing := filepath.Join(t.TempDir(), "none.sock")
	if _, err := GetStatus(context.Background(), missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("GetStatus without a daemon: err = %v, want one naming %s", err, missing)
	}
}

// TestProfilesReadPprof reads profiles from net/http/pprof's handlers, as
// the daemon serves them on its socket.
func TestProfilesReadPprof(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc(DebugPath, pprof.Index)
	mux.HandleFunc(DebugPath+"profile", pprof.Profile)
	sock := serve(t, mux.ServeHTTP)
	ctx := context.Background()
	gz := []byte{0x1f, 0x8b} // pprof's protobuf is gzipped
	start := time.Now()
	cpu, err := CPUProfile(ctx, sock, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(cpu, gz) || time.Since(start) < time.Second {
		t.Errorf("CPUProfile: %d bytes starting %x after %v, want a gzipped profile of a whole second", len(cpu), cpu[:min(2, len(cpu))], time.Since(start))
	}
	heap, err := HeapProfile(ctx, sock)
	if err != nil || !bytes.HasPrefix(heap, gz) {
		t.Errorf("HeapProfile: %d bytes, %v; want a gzipped profile", len(heap), err)
	}
	missing := filepath.Join(t.TempDir(), "none.sock")
	if _, err := HeapProfile(ctx, missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("HeapProfile without a daemon: err = %v, want one naming %s", err, missing)
	}
}
