package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/nftables"
	"sigs.k8s.io/yaml"

	"github.com/switchd/switchd/host/endpointapi"
	"github.com/switchd/switchd/policy"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/switchd/daemon/apiclient"
)

// policyHostConfig is examples/host.json (its VM on tap-vm1, which no
// test here creates; state in dir) with examples/policy.yaml's workload
// policy and failsafe ports merged in.
func policyHostConfig(t *testing.T, dir string) []byte {
	t.Helper()
	var doc, pol map[string]any
	if err := json.Unmarshal(hostConfig(t, dir, true), &doc); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../../examples/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &pol); err != nil {
		t.Fatalf("examples/policy.yaml: %v", err)
	}
	sd := doc["switchd:switchd"].(map[string]any)
	for k, v := range pol["switchd:switchd"].(map[string]any) {
		sd[k] = v
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPolicyPrivileged runs the daemon with examples/policy.yaml's policy
// (role == "db" takes tcp/5432 from role == "web") and adds two containers
// over the endpoint API: the kernel's switchd table then holds the web
// container's address in the peer selector's set and the db container's
// interface in the verdict map of workload ingress, the failsafe sets
// hold the extra port, and the status reports the table in sync. Deleting
// the web container takes its address out of the set.
func TestPolicyPrivileged(t *testing.T) {
	ns.Privileged(t)
	if os.Getenv("SWITCHD_TEST_NETNS") == "" {
		t.Skip("needs ns.TestMain's private namespace")
	}
	dir := t.TempDir()
	_, sock := runDaemon(t, dir, policyHostConfig(t, dir))
	c := &endpointapi.Client{Socket: sock, Timeout: 10 * time.Second}
	ctx := context.Background()
	waitFor(t, "the daemon serves its API", func() error { _, err := c.List(ctx); return err })

	add := func(id, role string) endpointapi.Endpoint {
		t.Helper()
		wl := ns.NewT(t, "pol"+role)
		res, err := c.AddContainer(ctx, endpointapi.ContainerAdd{ContainerID: id, Netns: wl.Path(), Labels: map[string]string{"role": role}})
		if err != nil {
			t.Fatalf("add container %s: %v", id, err)
		}
		return res.Endpoint
	}
	web, db := add("web1", "web"), add("db1", "db")

	conn, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseLasting()
	tbl := &nftables.Table{Name: policy.DefaultName, Family: nftables.TableFamilyINet}
	// elements lists the keys of every set of the table whose name has
	// prefix, by set.
	elements := func(prefix string) (map[string][][]byte, error) {
		sets, err := conn.GetSets(tbl)
		if err != nil {
			return nil, fmt.Errorf("list sets of inet %s: %w", tbl.Name, err)
		}
		out := map[string][][]byte{}
		for _, s := range sets {
			if len(s.Name) < len(prefix) || s.Name[:len(prefix)] != prefix {
				continue
			}
			es, err := conn.GetSetElements(s)
			if err != nil {
				return nil, fmt.Errorf("list elements of %s: %w", s.Name, err)
			}
			for _, e := range es {
				out[s.Name] = append(out[s.Name], e.Key)
			}
		}
		return out, nil
	}
	hasKey := func(sets map[string][][]byte, key []byte) bool {
		for _, ks := range sets {
			if slices.ContainsFunc(ks, func(k []byte) bool { return bytes.Equal(k, key) }) {
				return true
			}
		}
		return false
	}
	inSelector := func(a netip.Addr, want bool) func() error {
		return func() error {
			prefix := "sel4-"
			if a.Is6() {
				prefix = "sel6-"
			}
			sets, err := elements(prefix)
			if err != nil {
				return err
			}
			if hasKey(sets, a.AsSlice()) != want {
				return fmt.Errorf("%s in the selector sets %v: %v, want %v", a, sets, !want, want)
			}
			return nil
		}
	}
	waitFor(t, "web's IPv4 address in the selector set", inSelector(web.IPv4, true))
	waitFor(t, "web's IPv6 address in the selector set", inSelector(web.IPv6, true))
	if err := inSelector(db.IPv4, false)(); err != nil {
		t.Error(err)
	}
	// Every endpoint is in wl-to, db's to its profile, web's (no policy
	// selects it) to the empty wl-open: an interface with host's prefix
	// and no element is dropped, and wl-ifaces holds that prefix.
	waitFor(t, "db's and web's interfaces in the wl-to verdict map", func() error {
		sets, err := conn.GetSets(tbl)
		if err != nil {
			return err
		}
		open := map[string]bool{} // key → goes to wl-open
		for _, s := range sets {
			if s.Name != "wl-to" {
				continue
			}
			es, err := conn.GetSetElements(s)
			if err != nil {
				return err
			}
			for _, e := range es {
				open[string(e.Key)] = bytes.Contains(e.Val, []byte("wl-open\x00"))
			}
		}
		if o, ok := open[string(policy.IfName(db.HostIface))]; !ok || o {
			return fmt.Errorf("wl-to %v: db's %s in it %v, to wl-open %v; want to its profile", open, db.HostIface, ok, o)
		}
		if o := open[string(policy.IfName(web.HostIface))]; !o {
			return fmt.Errorf("wl-to %v: web's %s not to wl-open", open, web.HostIface)
		}
		return nil
	})
	// The configured VM's tap is a workload interface before it exists.
	if is, err := elements("wl-ifaces"); err != nil || !hasKey(is, policy.IfName("swc")) || !hasKey(is, policy.IfName("tap-vm1")) {
		t.Errorf("wl-ifaces %q (%v) lacks host's veth prefix swc or the VM's tap-vm1", is, err)
	}
	// Anti-spoofing is on: each workload's interface . address pairs.
	waitFor(t, "db's interface and addresses in the anti-spoofing sets", func() error {
		sets, err := elements("antispoof-src")
		if err != nil {
			return err
		}
		for _, a := range []netip.Addr{db.IPv4, db.IPv6} {
			if !hasKey(sets, policy.Concat(policy.IfName(db.HostIface), a.AsSlice())) {
				return fmt.Errorf("anti-spoofing sets %v lack %s . %s", sets, db.HostIface, a)
			}
		}
		return nil
	})
	fs, err := elements(policy.SetFailsafeTCP)
	if err != nil {
		t.Fatal(err)
	}
	if !hasKey(fs, []byte{9100 >> 8, 9100 & 0xff}) {
		t.Errorf("failsafe-tcp %v lacks policy.yaml's extra port 9100", fs)
	}

	var st *apiclient.Status
	waitFor(t, "the status shows policy in sync", func() error {
		st, err = apiclient.GetStatus(ctx, sock)
		if err != nil {
			return err
		}
		if p := st.Policy; !p.InSync || p.Endpoints != 2 || p.Rules == 0 || p.Elements == 0 || p.LastError != "" {
			return fmt.Errorf("policy status %+v", p)
		}
		return nil
	})

	if err := c.Del(ctx, web.ID); err != nil {
		t.Fatalf("delete container web1: %v", err)
	}
	waitFor(t, "web's address leaves the selector set", inSelector(web.IPv4, false))
}
