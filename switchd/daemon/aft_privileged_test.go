package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
	"github.com/vishvananda/netlink"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchd/switchd/gnmi"
	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/sim/ns"
)

// TestAFTPrivileged: a daemon with a gNMI server as its state publisher
// and one FRR peer. A Get of the AFT in JSON_IETF returns the peer's
// routes, each with a next-hop group whose next hops are the gateways
// and interface `ip route` shows; an ON_CHANGE subscription to the IPv4
// entries sees the entry deleted when the peer withdraws the route.
func TestAFTPrivileged(t *testing.T) {
	ns.Privileged(t)
	if os.Getenv("SWITCHD_TEST_NETNS") == "" {
		t.Skip("needs ns.TestMain's private namespace")
	}
	peer := startFRR(t, 3, 65013)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "switchd.json")
	if err := os.WriteFile(cfg, ecmpConfig([]*frrPeer{peer}), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := gnmi.New(gnmi.Options{Schema: oc.LazySchemaTree()["Device"]})
	if err != nil {
		t.Fatal(err)
	}
	gsock := filepath.Join(dir, "gnmi.sock")
	l, err := srv.Listen(gnmi.ListenOptions{LocalSocket: gsock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	cc, err := grpc.NewClient("unix://"+gsock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	client := gpb.NewGNMIClient(cc)

	v4, v6 := netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8:88::/48")
	sock := filepath.Join(dir, "switchd.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{ConfigPath: cfg, Socket: sock, StateDir: dir, State: srv,
			Logger: slog.New(slog.NewTextHandler(testLogOut(), &slog.HandlerOptions{Level: slog.LevelDebug}))})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		for _, p := range []netip.Prefix{v4, v6} {
			for _, r := range kernelRoutes(p.String()) {
				netlink.RouteDel(&r)
			}
		}
	})
	newStatusClient(sock).waitEstablished(ctx, t, 2)
	for _, p := range []netip.Prefix{v4, v6} {
		peer.announce(t, p, true)
	}
	want := map[netip.Prefix][]netip.Addr{v4: {peer.addr4()}, v6: {peer.addr6()}}
	for p, nhs := range want {
		waitFor(t, fmt.Sprintf("%v in the kernel", p), func() error {
			if got := kernelNextHops(t, p); !slices.Equal(got, nhs) {
				return fmt.Errorf("kernel next hops %v, want %v", got, nhs)
			}
			return nil
		})
	}

	// Get: each entry's group leads to the kernel's next hops. The route
	// feed reaches the view with the Apply that installed the route, so
	// the first Get after `ip route` shows it must have it (retried only
	// for the group, which the same Apply wrote first).
	link := fmt.Sprintf("tofrr%d", peer.n)
	for p, nhs := range want {
		waitFor(t, fmt.Sprintf("%v in the AFT", p), func() error {
			afts, err := getAFT(ctx, client)
			if err != nil {
				return err
			}
			gws, ifs := aftNextHops(afts, p)
			if !slices.Equal(gws, nhs) || !slices.Equal(ifs, []string{link}) {
				return fmt.Errorf("AFT next hops of %v: %v on %v; want %v on %s (the kernel's)", p, gws, ifs, nhs, link)
			}
			return nil
		})
	}

	// switchd's own status beside it: the FIB in sync with the two
	// routes, over the groups the AFT shows.
	waitFor(t, "/switchd/state/fib", func() error {
		fs, err := getJSON(ctx, client, "/switchd/state/fib")
		if err != nil {
			return err
		}
		if fs["in-sync"] != true || fs["routes"] != "2" || fs["nexthop-groups"] == "0" || fs["nexthop-groups"] == nil {
			return fmt.Errorf("fib status %v, want in sync with 2 routes over some groups", fs)
		}
		return nil
	})

	// ON_CHANGE: the IPv4 entries, then the withdrawal.
	sctx, scancel := context.WithTimeout(ctx, time.Minute)
	defer scancel()
	sub, err := client.Subscribe(sctx)
	if err != nil {
		t.Fatal(err)
	}
	entries := mustGPath(t, "/network-instances/network-instance[name=DEFAULT]/afts/ipv4-unicast/ipv4-entry")
	err = sub.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Mode:         gpb.SubscriptionList_STREAM,
		Subscription: []*gpb.Subscription{{Path: entries, Mode: gpb.SubscriptionMode_ON_CHANGE}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	seen := false
	for {
		r, err := sub.Recv()
		if err != nil {
			t.Fatalf("before sync: %v", err)
		}
		if r.GetSyncResponse() {
			break
		}
		for _, u := range r.GetUpdate().GetUpdate() {
			if strings.Contains(pathText(r.GetUpdate().GetPrefix(), u.GetPath()), "prefix="+v4.String()) {
				seen = true
			}
		}
	}
	if !seen {
		t.Fatalf("the initial state of the subscription has no entry for %v", v4)
	}
	peer.announce(t, v4, false)
	for {
		r, err := sub.Recv()
		if err != nil {
			t.Fatalf("no delete of %v's entry: %v", v4, err)
		}
		n := r.GetUpdate()
		deleted := slices.ContainsFunc(n.GetDelete(), func(d *gpb.Path) bool {
			return strings.HasSuffix(pathText(n.GetPrefix(), d), "ipv4-entry[prefix="+v4.String()+"]")
		})
		if deleted {
			break
		}
	}
	if got := kernelNextHops(t, v4); len(got) != 0 {
		t.Errorf("AFT entry deleted while the kernel still routes %v via %v", v4, got)
	}
}

func mustGPath(t *testing.T, s string) *gpb.Path {
	t.Helper()
	p, err := ygot.StringToStructuredPath(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pathText is prefix and p as text (a/b[k=v]/c).
func pathText(prefix, p *gpb.Path) string {
	var parts []string
	for _, e := range append(slices.Clone(prefix.GetElem()), p.GetElem()...) {
		s := e.GetName()
		for k, v := range e.GetKey() {
			s += "[" + k + "=" + v + "]"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "/")
}

// getAFT is a Get of the AFT in JSON_IETF, decoded with the module
// prefixes of member names dropped.
func getAFT(ctx context.Context, c gpb.GNMIClient) (map[string]any, error) {
	return getJSON(ctx, c, "/network-instances/network-instance[name=DEFAULT]/afts")
}

// getJSON is a Get of path in JSON_IETF, decoded with the module
// prefixes of member names dropped.
func getJSON(ctx context.Context, c gpb.GNMIClient, path string) (map[string]any, error) {
	p, err := ygot.StringToStructuredPath(path)
	if err != nil {
		return nil, err
	}
	resp, err := c.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{p}, Encoding: gpb.Encoding_JSON_IETF})
	if err != nil {
		return nil, err
	}
	for _, n := range resp.GetNotification() {
		for _, u := range n.GetUpdate() {
			var v any
			if err := json.Unmarshal(u.GetVal().GetJsonIetfVal(), &v); err != nil {
				return nil, err
			}
			m, _ := unqualified(v).(map[string]any)
			return m, nil
		}
	}
	return nil, fmt.Errorf("get %s: no update in %v", path, resp)
}

func unqualified(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if i := strings.LastIndexByte(k, ':'); i >= 0 {
				k = k[i+1:]
			}
			out[k] = unqualified(e)
		}
		return out
	case []any:
		for i := range x {
			x[i] = unqualified(x[i])
		}
	}
	return v
}

// list is the entries of a JSON list at path (member names) in m.
func list(m map[string]any, path ...string) []map[string]any {
	for _, p := range path[:len(path)-1] {
		m, _ = m[p].(map[string]any)
	}
	var out []map[string]any
	xs, _ := m[path[len(path)-1]].([]any)
	for _, x := range xs {
		if e, ok := x.(map[string]any); ok {
			out = append(out, e)
		}
	}
	return out
}

func leafOf(e map[string]any, leaf string) string {
	s, _ := e["state"].(map[string]any)
	return fmt.Sprint(s[leaf])
}

// aftNextHops follows p's entry to its group and the group's next hops:
// their gateways (sorted) and interfaces.
func aftNextHops(afts map[string]any, p netip.Prefix) (gws []netip.Addr, ifs []string) {
	fam, entry := "ipv4-unicast", "ipv4-entry"
	if p.Addr().Is6() {
		fam, entry = "ipv6-unicast", "ipv6-entry"
	}
	var nhg string
	for _, e := range list(afts, fam, entry) {
		if leafOf(e, "prefix") == p.String() {
			nhg = leafOf(e, "next-hop-group")
		}
	}
	for _, g := range list(afts, "next-hop-groups", "next-hop-group") {
		if leafOf(g, "id") != nhg {
			continue
		}
		for _, m := range list(g, "next-hops", "next-hop") {
			for _, nh := range list(afts, "next-hops", "next-hop") {
				if leafOf(nh, "index") != leafOf(m, "index") {
					continue
				}
				if a, err := netip.ParseAddr(leafOf(nh, "ip-address")); err == nil {
					gws = append(gws, a)
				}
				ref, _ := nh["interface-ref"].(map[string]any)
				ifs = append(ifs, leafOf(ref, "interface"))
			}
		}
	}
	slices.SortFunc(gws, netip.Addr.Compare)
	ifs = slices.Compact(ifs)
	return gws, ifs
}

// waitEstablished waits for n sessions to be ESTABLISHED.
func (s *statusClient) waitEstablished(ctx context.Context, t *testing.T, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d sessions established", n), func() error {
		st, err := s.get(ctx)
		if err != nil {
			return err
		}
		up := 0
		for _, nb := range st.BGP.Neighbors {
			if nb.State == "ESTABLISHED" {
				up++
			}
		}
		if up != n {
			return fmt.Errorf("neighbors %+v", st.BGP.Neighbors)
		}
		return nil
	})
}
