package host

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/switchd/switchd/sim/ns"
)

// TestDockerEndpointPrivileged walks a Docker endpoint through the
// Manager as the driver does: addresses reserved from a pool, a Join that
// fails (the peer's name is taken) and leaves no record, veth or lost
// address, one that succeeds with the peer left in the host, Docker's
// part done by hand (the peer moved into the container, renamed,
// addressed, routed via 169.254.1.1), a restart that adopts the endpoint
// without touching the container, and Del.
func TestDockerEndpointPrivileged(t *testing.T) {
	ctx := context.Background()
	host := newHost(t)
	wl := ns.NewT(t, "dkwl")
	dir := t.TempDir()
	f := newFakeFIB(t, host)
	m := newManager(t, host, dir, f)

	if _, err := m.Reserve(netip.MustParsePrefix("10.99.0.0/16"), netip.Addr{}); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("reserve from a pool not configured: %v", err)
	}
	a4, err := m.Reserve(pool4.Prefix, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	a6, err := m.Reserve(pool6.Prefix, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	id := DockerEndpointID("e1")
	req := DockerRequest{EndpointID: "e1", Sandbox: "/run/docker/netns/x", IPv4: a4, IPv6: a6, Labels: map[string]string{"switchd.docker/network": "web"}}
	reserved := func(a netip.Addr) bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		h, _ := m.ipam.Owner(a)
		return h == ReservationHandle(a)
	}

	peer := dockerPeerName(id)
	if _, err := host.Run(ctx, "ip", "link", "add", peer, "type", "veth", "peer", "name", "dkrblock"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.AddDocker(ctx, req); err == nil {
		t.Fatal("AddDocker with the peer's name taken succeeded")
	}
	if r := records(t, dir); len(r) != 0 || len(ourVeths(t, host)) != 0 || !reserved(a4) || !reserved(a6) {
		t.Fatalf("after a failed AddDocker: records %v, veths %v, reserved %v %v", r, ourVeths(t, host), reserved(a4), reserved(a6))
	}
	if _, err := host.Run(ctx, "ip", "link", "del", peer); err != nil {
		t.Fatal(err)
	}

	res, got, err := m.AddDocker(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got != peer || res.Endpoint.IPv4 != a4 || res.Endpoint.IPv6 != a6 || reserved(a4) || reserved(a6) || !slices.Equal(records(t, dir), []string{id}) {
		t.Fatalf("AddDocker = %+v, peer %q; reserved %v %v, records %v", res, got, reserved(a4), reserved(a6), records(t, dir))
	}
	if _, _, err := m.AddDocker(ctx, req); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("second AddDocker: %v", err)
	}
	hostAddrs := func() string {
		out, err := host.Run(ctx, "ip", "addr", "show", "dev", res.Endpoint.HostIface)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if out := hostAddrs(); !contains(out, "inet 169.254.1.1/32 scope link") || !contains(out, "inet6 fe80::1/64") {
		t.Errorf("host side %s:\n%s", res.Endpoint.HostIface, out)
	}
	// What Docker does with the peer.
	if _, err := host.Run(ctx, "ip", "link", "set", peer, "netns", wl.Name); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{
		{"ip", "link", "set", peer, "name", "eth0"},
		{"ip", "addr", "add", hostPrefix(a4).String(), "dev", "eth0"},
		{"ip", "addr", "add", hostPrefix(a6).String(), "dev", "eth0", "nodad"},
		{"ip", "link", "set", "eth0", "up"},
		{"ip", "route", "add", "169.254.1.1/32", "dev", "eth0"},
		{"ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0"},
		{"ip", "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0"},
	} {
		if _, err := wl.Run(ctx, c...); err != nil {
			t.Fatal(err)
		}
	}
	reach := func(when string) {
		for _, dst := range []netip.Addr{hostLo4, hostLo6} {
			if err := ping(ctx, wl, dst.String()); err != nil {
				t.Errorf("%s: container to %v: %v", when, dst, err)
			}
		}
	}
	reach("joined")

	m.Close()
	m = newManager(t, host, dir, f)
	if ep, ok := m.Get(id); !ok || ep.Kind != KindDocker || ep.IPv4 != a4 {
		t.Fatalf("after a restart: %+v %v", ep, ok)
	}
	if out := hostAddrs(); !contains(out, "inet 169.254.1.1/32 scope link") {
		t.Errorf("host side after a restart:\n%s", out)
	}
	if out, _ := wl.Run(ctx, "ip", "addr", "show", "dev", "eth0"); !contains(out, hostPrefix(a4).String()) {
		t.Errorf("container's eth0 after a restart:\n%s", out)
	}
	reach("restarted")

	if err := m.Del(ctx, id); err != nil {
		t.Fatal(err)
	}
	if out, _ := wl.Run(ctx, "ip", "-br", "link"); contains(out, "eth0") || len(ourVeths(t, host)) != 0 || len(records(t, dir)) != 0 {
		t.Errorf("after Del: container links %q, veths %v, records %v", out, ourVeths(t, host), records(t, dir))
	}
	if m.Unreserve(a4) {
		t.Error("Unreserve of an address Del freed reported a reservation")
	}
	if again, err := m.Reserve(pool4.Prefix, netip.Addr{}); err != nil || again != a4 {
		t.Errorf("reserve after Del = %v, %v; want %v again", again, err, a4)
	}
}

// TestAllocateIn: a Docker network's pool is the one it was given, not
// the first of the family; a full pool is exhausted even if another has
// room.
func TestAllocateIn(t *testing.T) {
	first, tiny := netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("10.2.0.0/31")
	p, err := NewIPAM([]Pool{{Prefix: first}, {Prefix: tiny}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"10.2.0.0", "10.2.0.1"} {
		a, _, err := p.AllocateIn("h"+want, tiny)
		if err != nil || a.String() != want {
			t.Fatalf("allocation %d in %v = %v, %v; want %s", i, tiny, a, err, want)
		}
	}
	if a, _, err := p.AllocateIn("h3", tiny); !errors.Is(err, ErrPoolExhausted) {
		t.Errorf("third allocation in %v = %v, %v; want exhausted", tiny, a, err)
	}
	if a, _, err := p.Allocate("h4", false); err != nil || !first.Contains(a) {
		t.Errorf("Allocate = %v, %v; want the first pool", a, err)
	}
}
