package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchd/switchd/host/endpointapi"
	"github.com/switchd/switchd/sim/ns"
	"github.com/vishvananda/netlink"
)

// serveAPI serves m's API on a unix socket in a temp dir and returns a
// client for it.
func serveAPI(t testing.TB, m *Manager) *endpointapi.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: NewAPIHandler(m, slog.New(slog.NewTextHandler(io.Discard, nil)))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &endpointapi.Client{Socket: sock}
}

// rawRequest sends a request the Client would not build and returns the
// error body of the response as the Client does: an *endpointapi.Error
// with the HTTP status.
func rawRequest(ctx context.Context, sock, method, path, body string) error {
	var d net.Dialer
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return d.DialContext(ctx, "unix", sock)
	}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, method, "http://switchd"+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 300 {
		return nil
	}
	e := &endpointapi.Error{}
	if err := json.NewDecoder(resp.Body).Decode(e); err != nil {
		return fmt.Errorf("%s %s: %s, body is not an error: %w", method, path, resp.Status, err)
	}
	e.Status = resp.StatusCode
	return e
}

func apiCode(t *testing.T, err error) (uint, int) {
	t.Helper()
	var e *endpointapi.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *endpointapi.Error", err, err)
	}
	return e.Code, e.Status
}

func TestAPIContainerLifecyclePrivileged(t *testing.T) {
	ctx := context.Background()
	host := newHost(t)
	wl := ns.NewT(t, "apiwl")
	dir := t.TempDir()
	f := newFakeFIB(t, host)
	c := serveAPI(t, newManager(t, host, dir, f))

	req := endpointapi.ContainerAdd{ContainerID: "c1", Netns: wl.Path(), Labels: map[string]string{"app": "web"}}
	res, err := c.AddContainer(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	ep := res.Endpoint
	if ep.ID != "c1/eth0" || ep.IPv4 != netip.MustParseAddr("10.10.0.0") || ep.IPv6 != netip.MustParseAddr("fd00:10::") ||
		ep.Labels["app"] != "web" || ep.Netns != wl.Path() {
		t.Fatalf("endpoint over the API = %+v", ep)
	}
	if res.GatewayV4 != GatewayV4 || res.GatewayV6 != GatewayV6 || res.HostMAC != HostMAC.String() {
		t.Errorf("result gateways/MAC = %v %v %q", res.GatewayV4, res.GatewayV6, res.HostMAC)
	}
	if _, err := wl.Handle().LinkByName("eth0"); err != nil {
		t.Errorf("no eth0 in the workload after ADD: %v", err)
	}
	if again, err := c.AddContainer(ctx, req); err != nil || again.Endpoint.IPv4 != ep.IPv4 || again.Endpoint.IPv6 != ep.IPv6 || again.Endpoint.HostIface != ep.HostIface {
		t.Errorf("repeated ADD = %+v, %v; want the first result", again, err)
	}
	if got, err := c.Check(ctx, ep.ID); err != nil || got.Endpoint.IPv4 != ep.IPv4 {
		t.Errorf("check = %+v, %v", got, err)
	}
	l, err := c.List(ctx)
	if err != nil || len(l.Endpoints) != 1 || l.Endpoints[0].ID != ep.ID || len(l.Blocks) != 2 {
		t.Errorf("list = %+v, %v; want the one endpoint and two blocks", l, err)
	}

	// Drift: the workload's address vanishes behind the daemon's back.
	eth0, _ := wl.Handle().LinkByName("eth0")
	if err := wl.Handle().AddrDel(eth0, &netlink.Addr{IPNet: ipNet(ep.IPv4, 32)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Check(ctx, ep.ID)
	if code, status := apiCode(t, err); code != endpointapi.CodeEndpointDrift || status != http.StatusConflict || !strings.Contains(err.Error(), "10.10.0.0/32") {
		t.Errorf("check after drift: %v (code %d, status %d), want code %d, 409, naming 10.10.0.0/32", err, code, status, endpointapi.CodeEndpointDrift)
	}

	if err := c.Del(ctx, ep.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.Del(ctx, ep.ID); err != nil {
		t.Errorf("second DEL: %v", err)
	}
	if v := ourVeths(t, host); len(v) != 0 {
		t.Errorf("veths after DEL: %v", v)
	}
	if r := records(t, dir); len(r) != 0 {
		t.Errorf("records after DEL: %v", r)
	}
	if _, ok := f.get("10.10.0.0/32"); ok {
		t.Error("host route left after DEL")
	}
	_, err = c.Check(ctx, ep.ID)
	if code, status := apiCode(t, err); code != endpointapi.CodeUnknownContainer || status != http.StatusNotFound {
		t.Errorf("check after DEL: %v (code %d, status %d), want 3, 404", err, code, status)
	}
}

func TestAPIVMPrivileged(t *testing.T) {
	ctx := context.Background()
	host := newHost(t)
	if err := host.Do(func() error {
		return netlink.LinkAdd(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "tapapi1"}, Mode: netlink.TUNTAP_MODE_TAP})
	}); err != nil {
		t.Fatal(err)
	}
	c := serveAPI(t, newManager(t, host, t.TempDir(), newFakeFIB(t, host)))
	res, err := c.AdoptVM(ctx, endpointapi.VMAdopt{Name: "vm1", Tap: "tapapi1", MAC: "52:54:00:12:34:56"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Endpoint.ID != "vm:vm1" || res.Endpoint.Kind != KindVM || res.Endpoint.MAC != "52:54:00:12:34:56" {
		t.Errorf("VM endpoint = %+v", res.Endpoint)
	}
	if _, err := c.Check(ctx, "vm:vm1"); err != nil {
		t.Error(err)
	}
	_, err = c.AdoptVM(ctx, endpointapi.VMAdopt{Name: "vm2", Tap: "tapnone"})
	if code, _ := apiCode(t, err); code != endpointapi.CodeInterfaceMissing {
		t.Errorf("adopting a missing tap: %v (code %d), want %d", err, code, endpointapi.CodeInterfaceMissing)
	}
	_, err = c.AdoptVM(ctx, endpointapi.VMAdopt{Name: "vm3", Tap: "tapapi1", MAC: "nope"})
	if code, _ := apiCode(t, err); code != endpointapi.CodeInvalidConfig || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("bad MAC: %v (code %d), want %d naming it", err, code, endpointapi.CodeInvalidConfig)
	}
	if err := c.Del(ctx, "vm:vm1"); err != nil {
		t.Fatal(err)
	}
	if l, _ := c.List(ctx); len(l.Endpoints) != 0 {
		t.Errorf("endpoints after DEL: %+v", l.Endpoints)
	}
}

// TestAPIErrorsPrivileged checks the CNI code of each kind of bad request
// and that none leaves a record, veth, route or allocation behind.
func TestAPIErrorsPrivileged(t *testing.T) {
	ctx := context.Background()
	host := newHost(t)
	dir := t.TempDir()
	f := newFakeFIB(t, host)
	// A pool of two addresses, IPv4 only, to exhaust.
	m := newManager(t, host, dir, f, Pool{Prefix: netip.MustParsePrefix("10.20.0.0/31")})
	c := serveAPI(t, m)
	wls := []*ns.NS{ns.NewT(t, "apie1"), ns.NewT(t, "apie2"), ns.NewT(t, "apie3")}
	if _, err := c.AddContainer(ctx, endpointapi.ContainerAdd{ContainerID: "ok1", Netns: wls[0].Path()}); err != nil {
		t.Fatal(err)
	}
	before := m.List()

	raw := func(method, path, body string) error { return rawRequest(ctx, c.Socket, method, path, body) }
	cases := []struct {
		name string
		call func() error
		code uint
		want string // in the message
	}{
		{"malformed JSON", func() error { return raw("POST", "/v1/endpoints/containers", `{"container_id": "x",`) }, endpointapi.CodeDecodingFailure, "decode"},
		{"wrong type", func() error { return raw("POST", "/v1/endpoints/containers", `{"container_id": 5}`) }, endpointapi.CodeDecodingFailure, "container_id"},
		{"unknown field", func() error { return raw("POST", "/v1/endpoints/containers", `{"container_id": "x", "bogus": 1}`) }, endpointapi.CodeUnsupportedField, `"bogus"`},
		{"bad container ID", func() error {
			_, err := c.AddContainer(ctx, endpointapi.ContainerAdd{ContainerID: "a b", Netns: wls[1].Path()})
			return err
		}, endpointapi.CodeInvalidEnv, "CNI_CONTAINERID"},
		{"relative netns", func() error {
			_, err := c.AddContainer(ctx, endpointapi.ContainerAdd{ContainerID: "c2", Netns: "run/netns/x"})
			return err
		}, endpointapi.CodeInvalidEnv, "CNI_NETNS"},
		{"missing netns", func() error {
			_, err := c.AddContainer(ctx, endpointapi.ContainerAdd{ContainerID: "c2", Netns: "/run/netns/" + ns.RunPrefix() + "-none"})
			return err
		}, endpointapi.CodeUnknownContainer, "-none"},
		{"IPv6 in the IPv4 field", func() error {
			_, err := c.AddContainer(ctx, endpointapi.ContainerAdd{ContainerID: "c2", Netns: wls[1].Path(), IPv4: netip.MustParseAddr("fd00::5")})
			return err
		}, endpointapi.CodeInvalidConfig, "fd00::5"},
		{"address in use", func() error {
			_, err := c.AddContainer(ctx, endpointapi.ContainerAdd{ContainerID: "c2", Netns: wls[1].Path(), IPv4: before[0].IPv4})
			return err
		}, endpointapi.CodeAddressInUse, before[0].IPv4.String()},
		{"same container, other netns", func() error {
			_, err := c.AddContainer(ctx, endpointapi.ContainerAdd{ContainerID: "ok1", Netns: wls[1].Path()})
			return err
		}, endpointapi.CodeInvalidConfig, wls[0].Path()},
	}
	for _, tc := range cases {
		err := tc.call()
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if code, _ := apiCode(t, err); code != tc.code || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v (code %d), want code %d and %q in the message", tc.name, err, code, tc.code, tc.want)
		}
	}
	// Exhaust the pool: the second address goes, the third ADD fails.
	if _, err := c.AddContainer(ctx, endpointapi.ContainerAdd{ContainerID: "ok2", Netns: wls[1].Path()}); err != nil {
		t.Fatal(err)
	}
	before = m.List()
	_, err := c.AddContainer(ctx, endpointapi.ContainerAdd{ContainerID: "c3", Netns: wls[2].Path()})
	if code, status := apiCode(t, err); code != endpointapi.CodePoolExhausted || status != http.StatusInsufficientStorage || !strings.Contains(err.Error(), "10.20.0.0/31") {
		t.Errorf("exhausted pool: %v (code %d, status %d), want %d naming the pool", err, code, status, endpointapi.CodePoolExhausted)
	}

	if got := m.List(); len(got) != len(before) {
		t.Errorf("endpoints after failed requests: %+v, want %+v", got, before)
	}
	if r := records(t, dir); len(r) != 2 {
		t.Errorf("records after failed requests: %v, want the two good ones", r)
	}
	if v := ourVeths(t, host); len(v) != 2 {
		t.Errorf("veths after failed requests: %v, want the two good ones", v)
	}
	if links, _ := wls[2].Handle().LinkList(); len(links) != 1 {
		t.Errorf("workload of the failed ADD has links %d, want only lo", len(links))
	}
	if err := c.Del(ctx, "ok1/eth0"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddContainer(ctx, endpointapi.ContainerAdd{ContainerID: "c3", Netns: wls[2].Path()}); err != nil {
		t.Errorf("ADD after a DEL freed an address: %v", err)
	}
}
