package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/switchd/switchd/host"
	"github.com/switchd/switchd/host/docker"
)

// dockerEndpoints is the Manager as far as creating and deleting
// networks needs it.
type dockerEndpoints struct{}

func (dockerEndpoints) Reserve(netip.Prefix, netip.Addr) (netip.Addr, error) {
	return netip.Addr{}, nil
}
func (dockerEndpoints) Unreserve(netip.Addr) bool { return false }
func (dockerEndpoints) Pools() []host.Pool {
	return []host.Pool{{Prefix: netip.MustParsePrefix("10.77.0.0/24")}}
}
func (dockerEndpoints) AddDocker(context.Context, host.DockerRequest) (host.Result, string, error) {
	return host.Result{}, "", nil
}
func (dockerEndpoints) Del(context.Context, string) error { return nil }
func (dockerEndpoints) List() []host.Endpoint             { return nil }

// TestWiringDockerPolicies: a Docker network created or deleted reaches
// the policy engine as one SetIntent with its group's policy after the
// configured ones (then an Apply), a reload keeps it, and it goes with
// the network.
func TestWiringDockerPolicies(t *testing.T) {
	cfg := testConfig{neighbors: []string{"10.0.1.1"}, dbPort: 5432}
	drv, err := docker.New(dockerEndpoints{}, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	w := newWired(t, cfg, nil)
	w.d.dockerDrv = drv // before the loop, which selects on its feed
	w.run(t)
	post := func(method string, req any) {
		t.Helper()
		b, _ := json.Marshal(req)
		rw := httptest.NewRecorder()
		drv.Handler().ServeHTTP(rw, httptest.NewRequest("POST", "/"+method, bytes.NewReader(b)))
		if strings.Contains(rw.Body.String(), "Err") {
			t.Fatalf("%s: %s", method, rw.Body.String())
		}
	}
	const id = "abcdef0123456789"
	withNet := `policy.SetIntent default allow [db(role == "db"; 10 allow proto 6 ports [5432] from role == "web") ` +
		`docker-abcdef012345(switchd.docker/network == "abcdef012345"; 1 allow proto 0 ports [] from switchd.docker/network == "abcdef012345")]`
	m := w.pe.rec.mark()
	post("NetworkDriver.CreateNetwork", map[string]any{"NetworkID": id, "IPv4Data": []any{map[string]any{"Pool": "10.77.0.0/24"}}})
	// Up to the Apply that follows, which must not fall after the mark
	// the reload is checked from.
	w.pe.rec.waitFor(t, m, "the network's policy given and applied", func(calls []string) bool {
		i := slices.Index(calls, withNet)
		return i >= 0 && slices.Contains(calls[i:], "policy.Apply")
	})

	m = w.pe.rec.mark()
	w.reload(t, cfg.json())
	if calls := w.pe.rec.since(m); len(calls) != 0 {
		t.Errorf("reload of the same config: policy calls %q, want none", calls)
	}

	m = w.pe.rec.mark()
	post("NetworkDriver.DeleteNetwork", map[string]any{"NetworkID": id})
	without := `policy.SetIntent default allow [db(role == "db"; 10 allow proto 6 ports [5432] from role == "web")]`
	w.pe.rec.waitFor(t, m, "the network's policy removed", func(calls []string) bool { return slices.Contains(calls, without) })
}
