package main

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
)

// TestWorkloadPolicyAcrossHostsPrivileged is issue 9's cross-host
// acceptance on the policy demo topology: examples/policy.yaml on every
// host, db on host2 (behind leaf1), web on host4 (behind leaf2), other on
// host3. host2 knows web is in group web (role == "web") from host4's
// membership route in BGP: the topology declares the group, so the
// simulator writes no network sets. web reaches db:5432 over IPv4 and IPv6, other does not,
// ping from web to db is denied; other and the workloads no policy
// selects stay open; deleting the policy from host2's config and
// reloading reopens db.
func TestWorkloadPolicyAcrossHostsPrivileged(t *testing.T) {
	ns.Privileged(t)
	topo, err := sim.LoadTopology("../sim/topologies/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	topo.Timers = fastTimers
	f := simtest.Start(t, topo)
	simtest.WaitConverged(t, f)
	ctx := context.Background()
	add := func(host, name string) sim.Workload {
		w, err := f.AddWorkload(ctx, host, name)
		if err != nil {
			t.Fatal(err)
		}
		return *w
	}
	db, other, localWeb := add("host2", "w1"), add("host3", "w1"), add("host2", "w2")
	web := add("host4", "w1")
	if db.Label("role") != "db" || web.Label("role") != "web" {
		t.Fatalf("labels from the topology not on the endpoints: web %v, db %v", web.Labels, db.Labels)
	}
	// The listener is a socket of this process in db's namespace: closing
	// it leaves nothing behind.
	l, err := f.ListenWorkload(db, sim.PolicyPort)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const dial = 2 * time.Second

	waitFor(t, 30*time.Second, "web reaches db:5432 (IPv4 and IPv6)", func() error {
		if err := f.ConnectWorkload(web, db, 4, sim.PolicyPort, dial); err != nil {
			return err
		}
		return f.ConnectWorkload(web, db, 6, sim.PolicyPort, dial)
	})
	waitFor(t, 30*time.Second, "other pings the web server on db's host (no policy selects it)", func() error {
		return f.PingWorkload(ctx, other, localWeb, 4)
	})
	// host3 and host2 route to each other now, so what fails below is
	// policy.
	for _, fam := range []int{4, 6} {
		if err := f.ConnectWorkload(other, db, fam, sim.PolicyPort, dial); err == nil {
			t.Errorf("other reached db:%d over IPv%d; the policy allows only role == web", sim.PolicyPort, fam)
		}
	}
	if err := f.PingWorkload(ctx, web, db, 4); err == nil {
		t.Errorf("web pinged db; the policy allows only tcp/%d into db", sim.PolicyPort)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Delete the policy from host2's config: db is selected by none and
	// open again (default-action ALLOW).
	b, err := os.ReadFile(f.ConfigPath("host2"))
	if err != nil {
		t.Fatal(err)
	}
	var tree any
	if err := json.Unmarshal(b, &tree); err != nil {
		t.Fatal(err)
	}
	if !dropKey(tree, "workload-policy") {
		t.Fatalf("host2's config has no workload-policy to delete:\n%s", b)
	}
	nb, err := json.MarshalIndent(tree, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.ConfigPath("host2"), nb, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(ctx, "host2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "other reaches db:5432 after the policy is deleted", func() error {
		return f.ConnectWorkload(other, db, 4, sim.PolicyPort, dial)
	})
	waitFor(t, 10*time.Second, "web pings db after the policy is deleted", func() error {
		return f.PingWorkload(ctx, web, db, 4)
	})
}
