package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/switchd/switchd/host"
)

// fakeEndpoints stands in for host.Manager: the driver's checks are pure
// logic; the Manager is tested on the kernel in package host and with a
// real dockerd in switchd/docker_test.go.
type fakeEndpoints struct {
	pools    []host.Pool
	free     []netip.Addr // handed out in order
	reserved map[netip.Addr]bool
	eps      map[string]host.Endpoint
}

func newFake() *fakeEndpoints {
	return &fakeEndpoints{
		pools:    []host.Pool{{Prefix: netip.MustParsePrefix("10.77.0.0/24")}},
		free:     []netip.Addr{netip.MustParseAddr("10.77.0.1")},
		reserved: map[netip.Addr]bool{},
		eps:      map[string]host.Endpoint{},
	}
}

func (f *fakeEndpoints) Reserve(pool netip.Prefix, fixed netip.Addr) (netip.Addr, error) {
	if len(f.free) == 0 {
		return netip.Addr{}, fmt.Errorf("reserve: allocate: %w", host.ErrPoolExhausted)
	}
	a := f.free[0]
	f.free = f.free[1:]
	f.reserved[a] = true
	return a, nil
}

func (f *fakeEndpoints) Unreserve(a netip.Addr) bool {
	if !f.reserved[a] {
		return false
	}
	delete(f.reserved, a)
	f.free = append(f.free, a)
	return true
}

func (f *fakeEndpoints) Pools() []host.Pool { return f.pools }

func (f *fakeEndpoints) AddDocker(_ context.Context, req host.DockerRequest) (host.Result, string, error) {
	id := host.DockerEndpointID(req.EndpointID)
	if _, ok := f.eps[id]; ok {
		return host.Result{}, "", fmt.Errorf("add %s: %w: duplicate endpoint", id, host.ErrInvalidRequest)
	}
	delete(f.reserved, req.IPv4)
	ep := host.Endpoint{ID: id, Kind: host.KindDocker, Name: req.EndpointID, IPv4: req.IPv4, Labels: req.Labels}
	f.eps[id] = ep
	return host.Result{Endpoint: ep}, "dkrpeer", nil
}

func (f *fakeEndpoints) Del(_ context.Context, id string) error {
	if ep, ok := f.eps[id]; ok {
		f.free = append(f.free, ep.IPv4)
	}
	delete(f.eps, id)
	return nil
}

func (f *fakeEndpoints) List() []host.Endpoint {
	var out []host.Endpoint
	for _, ep := range f.eps {
		out = append(out, ep)
	}
	return out
}

// call posts a request to the driver as dockerd does and returns the
// answer and its Err ("" on success).
func call(t *testing.T, h http.Handler, method string, req any) (map[string]any, string) {
	t.Helper()
	b, _ := json.Marshal(req)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/"+method, bytes.NewReader(b)))
	var res map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
		t.Fatalf("%s: answer %q: %v", method, w.Body.String(), err)
	}
	e, _ := res["Err"].(string)
	if (w.Code != http.StatusOK) != (e != "") {
		t.Fatalf("%s: status %d with Err %q", method, w.Code, e)
	}
	return res, e
}

const (
	net1 = "1111111111110000000000000000000000000000000000000000000000000000"
	ep1  = "aaaaaaaaaaaa0000000000000000000000000000000000000000000000000000"
)

// TestErrors is the bad-input matrix: each request dockerd could send
// wrongly gets an Err starting "switchd: " that names what was wrong, and
// leaves networks, pending endpoints and reservations as they were.
func TestErrors(t *testing.T) {
	f := newFake()
	d, err := New(f, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := d.Handler()
	pool := map[string]any{"Pool": "10.77.0.0/24"}
	if _, e := call(t, h, "NetworkDriver.CreateNetwork", map[string]any{"NetworkID": net1, "IPv4Data": []any{pool}}); e != "" {
		t.Fatal(e)
	}
	res, e := call(t, h, "IpamDriver.RequestAddress", map[string]any{"PoolID": "switchd/10.77.0.0/24"})
	if e != "" || res["Address"] != "10.77.0.1/32" {
		t.Fatalf("RequestAddress = %v %q", res, e)
	}
	iface := map[string]any{"Address": "10.77.0.1/32"}
	if _, e := call(t, h, "NetworkDriver.CreateEndpoint", map[string]any{"NetworkID": net1, "EndpointID": ep1, "Interface": iface}); e != "" {
		t.Fatal(e)
	}
	for _, c := range []struct {
		name, method string
		req          any
		want         string
	}{
		{"unknown network", "NetworkDriver.CreateEndpoint", map[string]any{"NetworkID": "2222", "EndpointID": "bbbb", "Interface": iface}, "unknown network 2222"},
		{"duplicate endpoint", "NetworkDriver.CreateEndpoint", map[string]any{"NetworkID": net1, "EndpointID": ep1, "Interface": iface}, "duplicate endpoint"},
		{"exhausted pool", "IpamDriver.RequestAddress", map[string]any{"PoolID": "switchd/10.77.0.0/24"}, "pool exhausted"},
		{"address outside the pool", "IpamDriver.RequestAddress", map[string]any{"PoolID": "switchd/10.77.0.0/24", "Address": "10.9.0.1"}, "not in pool 10.77.0.0/24"},
		{"unknown pool", "IpamDriver.RequestAddress", map[string]any{"PoolID": "default/172.17.0.0/16"}, "unknown pool"},
		{"foreign pool", "NetworkDriver.CreateNetwork", map[string]any{"NetworkID": "3333", "IPv4Data": []any{map[string]any{"Pool": "172.18.0.0/16"}}},
			"pool 172.18.0.0/16 is not a switchd pool"},
		{"no IPv6 pool", "IpamDriver.RequestPool", map[string]any{"V6": true}, "no IPv6 pool configured"},
		{"pool not switchd's", "IpamDriver.RequestPool", map[string]any{"Pool": "10.1.0.0/16"}, "10.1.0.0/16 is not a switchd IPv4 pool"},
		{"endpoint without address", "NetworkDriver.CreateEndpoint", map[string]any{"NetworkID": net1, "EndpointID": "cccc"}, "no address"},
		{"join of an unknown endpoint", "NetworkDriver.Join", map[string]any{"NetworkID": net1, "EndpointID": "dddd", "SandboxKey": "/x"}, "join dddd: unknown endpoint"},
		{"join on another network", "NetworkDriver.Join", map[string]any{"NetworkID": "4444", "EndpointID": ep1, "SandboxKey": "/x"}, "not 4444"},
		{"unknown driver option", "NetworkDriver.CreateNetwork", map[string]any{"NetworkID": "5555", "IPv4Data": []any{pool},
			"Options": map[string]any{"com.docker.network.generic": map[string]any{"vlan": "7"}}}, "unknown option vlan"},
		{"bad group name", "NetworkDriver.CreateNetwork", map[string]any{"NetworkID": "6666", "IPv4Data": []any{pool},
			"Options": map[string]any{"com.docker.network.generic": map[string]any{GroupOption: "a b"}}}, `option switchd.group="a b"`},
		{"malformed request", "NetworkDriver.CreateNetwork", "{", "decode request"},
	} {
		_, e := call(t, h, c.method, c.req)
		if !strings.HasPrefix(e, "switchd: ") || !strings.Contains(e, c.want) {
			t.Errorf("%s: Err %q, want switchd: ...%s...", c.name, e, c.want)
		}
		if ns := d.Networks(); len(ns) != 1 || ns[0].ID != net1 {
			t.Errorf("%s: networks %v", c.name, ns)
		}
		if len(d.pend) != 1 || len(f.eps) != 0 || len(f.reserved) != 1 {
			t.Errorf("%s: left pending %d, endpoints %v, reserved %v", c.name, len(d.pend), f.eps, f.reserved)
		}
	}
}

// TestLifecycle walks dockerd's calls for network create, run and rm:
// the endpoint joins with the link-local gateway and its label, the
// network's policy selects it, and everything is gone after Leave,
// DeleteEndpoint, ReleaseAddress and DeleteNetwork; networks persist.
func TestLifecycle(t *testing.T) {
	f := newFake()
	dir := t.TempDir()
	d, err := New(f, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := d.Handler()
	res, _ := call(t, h, "Plugin.Activate", nil)
	if fmt.Sprint(res["Implements"]) != "[NetworkDriver IpamDriver]" {
		t.Errorf("Activate = %v", res)
	}
	res, _ = call(t, h, "NetworkDriver.GetCapabilities", nil)
	if res["Scope"] != "local" {
		t.Errorf("capabilities = %v", res)
	}
	res, _ = call(t, h, "IpamDriver.RequestPool", map[string]any{})
	if res["Pool"] != "10.77.0.0/24" || res["PoolID"] != "switchd/10.77.0.0/24" {
		t.Errorf("RequestPool = %v", res)
	}
	res, _ = call(t, h, "IpamDriver.RequestAddress", map[string]any{"PoolID": "switchd/10.77.0.0/24",
		"Options": map[string]string{"RequestAddressType": "com.docker.network.gateway"}})
	if res["Address"] != "169.254.1.1/32" || len(f.reserved) != 0 {
		t.Errorf("gateway = %v (reserved %v)", res, f.reserved)
	}
	call(t, h, "NetworkDriver.CreateNetwork", map[string]any{"NetworkID": net1, "IPv4Data": []any{map[string]any{"Pool": "10.77.0.0/24", "Gateway": "169.254.1.1/32"}}})
	if _, e := call(t, h, "NetworkDriver.CreateNetwork", map[string]any{"NetworkID": net1}); !strings.Contains(e, "network exists") {
		t.Errorf("second create: %q", e)
	}
	web := map[string]any{"com.docker.network.generic": map[string]any{GroupOption: "web"}}
	for _, id := range []string{"5555", "6666"} {
		if _, e := call(t, h, "NetworkDriver.CreateNetwork", map[string]any{"NetworkID": id, "Options": web}); e != "" {
			t.Fatal(e)
		}
	}
	if ps := d.Policies(); len(ps) != 2 || ps[1].Name != "docker-web" || ps[1].Selector.String() != `switchd.docker/network == "web"` {
		t.Errorf("policies with two networks of group web: %+v", ps)
	}
	call(t, h, "NetworkDriver.DeleteNetwork", map[string]any{"NetworkID": "5555"})
	call(t, h, "NetworkDriver.DeleteNetwork", map[string]any{"NetworkID": "6666"})
	again, err := New(f, dir, nil)
	if err != nil || len(again.Networks()) != 1 {
		t.Fatalf("networks after a restart: %v %v", again.Networks(), err)
	}
	ps := d.Policies()
	if len(ps) != 1 || ps[0].Selector.String() != `switchd.docker/network == "111111111111"` || !ps[0].SelectsIngress || ps[0].SelectsEgress ||
		len(ps[0].Ingress) != 1 || ps[0].Ingress[0].Peer.Selector.String() != ps[0].Selector.String() {
		t.Errorf("policies = %+v", ps)
	}
	call(t, h, "IpamDriver.RequestAddress", map[string]any{"PoolID": "switchd/10.77.0.0/24"})
	call(t, h, "NetworkDriver.CreateEndpoint", map[string]any{"NetworkID": net1, "EndpointID": ep1, "Interface": map[string]any{"Address": "10.77.0.1/32"}})
	res, e := call(t, h, "NetworkDriver.Join", map[string]any{"NetworkID": net1, "EndpointID": ep1, "SandboxKey": "/var/run/docker/netns/x"})
	if e != "" || fmt.Sprint(res["InterfaceName"]) != "map[DstPrefix:eth SrcName:dkrpeer]" || res["Gateway"] != "169.254.1.1" ||
		fmt.Sprint(res["StaticRoutes"]) != "[map[Destination:169.254.1.1/32 NextHop: RouteType:1]]" {
		t.Errorf("Join = %v %q", res, e)
	}
	ep, ok := f.eps[host.DockerEndpointID(ep1)]
	if !ok || ep.Labels[NetworkLabel] != "111111111111" || ep.Labels[NetworkIDLabel] != "111111111111" || ep.IPv4 != netip.MustParseAddr("10.77.0.1") || len(f.reserved) != 0 {
		t.Errorf("endpoint %+v %v, reserved %v", ep, ok, f.reserved)
	}
	if _, e := call(t, h, "NetworkDriver.DeleteNetwork", map[string]any{"NetworkID": net1}); !strings.Contains(e, "still on it") {
		t.Errorf("delete of a network in use: %q", e)
	}
	for _, m := range []string{"NetworkDriver.RevokeExternalConnectivity", "NetworkDriver.Leave", "NetworkDriver.DeleteEndpoint"} {
		if _, e := call(t, h, m, map[string]any{"NetworkID": net1, "EndpointID": ep1}); e != "" {
			t.Errorf("%s: %s", m, e)
		}
	}
	call(t, h, "IpamDriver.ReleaseAddress", map[string]any{"PoolID": "switchd/10.77.0.0/24", "Address": "10.77.0.1"})
	call(t, h, "NetworkDriver.DeleteNetwork", map[string]any{"NetworkID": net1})
	if len(f.eps) != 0 || len(d.pend) != 0 || len(d.Networks()) != 0 || !slices.Contains(f.free, netip.MustParseAddr("10.77.0.1")) {
		t.Errorf("left: endpoints %v, pending %v, networks %v, free %v", f.eps, d.pend, d.Networks(), f.free)
	}
}
