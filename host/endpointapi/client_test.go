package endpointapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// serve serves h on a unix socket in a temp dir and returns a client for it.
func serve(t *testing.T, h http.Handler) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &Client{Socket: sock}
}

func apiCode(t *testing.T, err error) (uint, int) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	return e.Code, e.Status
}

func TestClientDaemonNotRunning(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	c := &Client{Socket: sock}
	_, err := c.AddContainer(context.Background(), ContainerAdd{ContainerID: "c1", Netns: "/run/netns/x"})
	if code, _ := apiCode(t, err); code != CodeTryAgainLater || !strings.Contains(err.Error(), sock) {
		t.Errorf("no daemon: %v (code %d), want %d naming %s", err, code, CodeTryAgainLater, sock)
	}
}

// TestClientRequestsAndResults checks what the client sends (method, path
// with each ID segment escaped, JSON body) and that it decodes the result.
func TestClientRequestsAndResults(t *testing.T) {
	var mu sync.Mutex // guards got
	var got []string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/endpoints/containers", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r.Method+" "+r.URL.EscapedPath()+" "+r.Header.Get("Content-Type"))
		w.Write([]byte(`{"endpoint": {"id": "c1/eth0", "kind": "container", "ipv4": "10.0.0.5"}, "gateway_v4": "169.254.1.1"}`))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r.Method+" "+r.URL.EscapedPath())
		w.WriteHeader(http.StatusNoContent)
	})
	c := serve(t, mux)
	ctx := context.Background()
	res, err := c.AddContainer(ctx, ContainerAdd{ContainerID: "c1", Netns: "/run/netns/x"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Endpoint.ID != "c1/eth0" || res.Endpoint.Kind != KindContainer || res.Endpoint.IPv4 != netip.MustParseAddr("10.0.0.5") ||
		res.GatewayV4 != netip.MustParseAddr("169.254.1.1") {
		t.Errorf("result %+v, want c1/eth0, a container, 10.0.0.5 via 169.254.1.1", res)
	}
	if err := c.Del(ctx, ContainerEndpointID("c.1", "")); err != nil {
		t.Fatal(err)
	}
	if err := c.Del(ctx, VMEndpointID("a b%")); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"POST /v1/endpoints/containers application/json",
		"DELETE /v1/endpoints/c.1/eth0",
		"DELETE /v1/endpoints/vm:a%20b%25",
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestClientErrors checks that every failure is an *Error with the CNI
// code and HTTP status: the daemon's error body as sent, a body that is
// not one (a proxy's page) as internal, a result that does not decode as
// a decoding failure.
func TestClientErrors(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/endpoints/drift/eth0", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusConflict)
		w.Write([]byte(`{"code": 103, "msg": "endpoint differs from its record", "details": "route 10.0.0.5/32 missing"}`))
	})
	mux.HandleFunc("GET /v1/endpoints/plain/eth0", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad gateway", http.StatusBadGateway)
	})
	mux.HandleFunc("GET /v1/endpoints", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"endpoints": 5}`))
	})
	c := serve(t, mux)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		call   func() error
		code   uint
		status int
		want   string
	}{
		{"error body", func() error { _, err := c.Check(ctx, "drift/eth0"); return err }, CodeEndpointDrift, http.StatusConflict, "route 10.0.0.5/32 missing"},
		{"not an error body", func() error { _, err := c.Check(ctx, "plain/eth0"); return err }, CodeInternal, http.StatusBadGateway, "bad gateway"},
		{"result does not decode", func() error { _, err := c.List(ctx); return err }, CodeDecodingFailure, http.StatusOK, "GET /v1/endpoints: decode response"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if code, status := apiCode(t, err); code != tc.code || status != tc.status || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v (code %d, status %d), want code %d, status %d, naming %q", err, code, status, tc.code, tc.status, tc.want)
			}
		})
	}
}
